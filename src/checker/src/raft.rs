//! Raft safety over a trace of every replica's state transitions.
//!
//! What: [`check_raft`] replays a cluster-wide, totally ordered trace of [`RaftRecord`]s (the
//! simulator collects them from `sluice_raft::TraceEvent`) and checks Raft's safety properties
//! per group (one partition or the controller), with the names DESIGN.md gives them:
//! - ElectionSafety (Raft §5.2, Figure 3): at most one leader per term; and the cause it guards
//!   against, a replica voting for two candidates in one term (votedFor is persistent, Figure 2).
//! - LogMatching (§5.3, Figure 3): two replicas never commit different entries at one index.
//! - LeaderCompleteness (§5.4, Figure 3): a new leader holds every entry committed so far.
//! - CommittedNeverLost: no replica removes a committed entry from its log (a truncation or a
//!   reset below it; a crash that loses unsynced entries is not a removal: `Restart` trims).
//! - HighWatermarkMonotonic: within one incarnation a replica's commit index never decreases.
//!
//! How: a shadow of each replica's log (index to term) follows `Append`, `Truncate`,
//! `ResetLog` and `Restart`; a `Commit` marks every entry of the committing replica's shadow
//! at or below the index as committed for the group. Linear in the trace, plus one pass over the
//! committed entries per election.

use crate::report::{HIGH_WATERMARK_MONOTONIC, Sink, Violation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const ELECTION_SAFETY: &str = "ElectionSafety";
pub const LOG_MATCHING: &str = "LogMatching";
pub const LEADER_COMPLETENESS: &str = "LeaderCompleteness";
pub const COMMITTED_NEVER_LOST: &str = "CommittedNeverLost";

/// Every name the Raft checks report under (HighWatermarkMonotonic is shared with the
/// client-observed history check: the same property seen from a replica).
pub const RAFT_CHECKER_NAMES: [&str; 5] =
    [ELECTION_SAFETY, LOG_MATCHING, LEADER_COMPLETENESS, COMMITTED_NEVER_LOST, HIGH_WATERMARK_MONOTONIC];

/// Violations reported per checker (one root cause repeats).
pub const RAFT_VIOLATIONS_PER_CHECKER_MAX: u64 = 16;

/// A log position: (index, term). Index -1 is the empty log.
pub type Position = (i64, i64);

/// A replica's role.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftRole {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
    Learner,
}

/// One state transition (mirrors `sluice_raft::TraceEvent`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "event")]
pub enum RaftEvent {
    Restart { term: i64, voted_for: Option<u32>, last: Position, committed: i64 },
    Role { term: i64, role: RaftRole, leader: Option<u32> },
    HardState { term: i64, voted_for: Option<u32> },
    Append { entries: Vec<Position> },
    Truncate { after: Position },
    ResetLog { before_start: Position },
    Commit { index: i64, term: i64 },
}

/// One event of one replica of one group, in global trace order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RaftRecord {
    pub node: u32,
    pub group: String,
    #[serde(flatten)]
    pub event: RaftEvent,
}

struct Replica {
    /// Entries after `base`, index to term.
    log: BTreeMap<i64, i64>,
    /// The position before the first entry (log start), -1 for a full log.
    base: i64,
    /// The commit index in this incarnation (-1: none yet).
    commit: i64,
    /// The current term, as far as the trace says.
    term: i64,
    /// The last vote persisted per term (across incarnations).
    votes: BTreeMap<i64, u32>,
}

impl Default for Replica {
    fn default() -> Self {
        Replica { log: BTreeMap::new(), base: -1, commit: -1, term: 0, votes: BTreeMap::new() }
    }
}

#[derive(Default)]
struct Group {
    replicas: BTreeMap<u32, Replica>,
    /// Committed entries: index to (entry term, the earliest term in which a replica knew it
    /// committed). Raft §5.4's Leader Completeness binds leaders of terms *after* the commit: a
    /// candidate of an earlier term may still win with votes cast before it.
    committed: BTreeMap<i64, (i64, i64)>,
    leaders: BTreeMap<i64, u32>,
}

/// Checks the trace; returns the violations (at most `RAFT_VIOLATIONS_PER_CHECKER_MAX` each).
pub fn check_raft(trace: &[RaftRecord]) -> Vec<Violation> {
    let mut groups: BTreeMap<&str, Group> = BTreeMap::new();
    let mut out = Sink::capped(RAFT_VIOLATIONS_PER_CHECKER_MAX);
    for (at, record) in trace.iter().enumerate() {
        let group = groups.entry(&record.group).or_default();
        step(group, at, record, &mut out);
    }
    out.into_violations()
}

fn step(group: &mut Group, at: usize, record: &RaftRecord, out: &mut Sink) {
    let (node, name) = (record.node, &record.group);
    let replica = group.replicas.entry(node).or_default();
    match &record.event {
        RaftEvent::Restart { term, voted_for, last, .. } => {
            // The recovered log is a prefix of what was written (unsynced entries may be gone).
            replica.log.retain(|index, _| *index <= last.0);
            replica.commit = -1;
            replica.term = *term;
            if let Some(candidate) = voted_for {
                replica.votes.entry(*term).or_insert(*candidate);
            }
        }
        RaftEvent::HardState { term, voted_for: Some(candidate) } => {
            replica.term = replica.term.max(*term);
            if let Some(previous) = replica.votes.insert(*term, *candidate)
                && previous != *candidate
            {
                out.push(
                    ELECTION_SAFETY,
                    format!("{name}: node {node} voted for {previous} and then {candidate} in term {term} (trace event {at})"),
                );
            }
        }
        RaftEvent::HardState { term, voted_for: None } => replica.term = replica.term.max(*term),
        RaftEvent::Role { term, role: RaftRole::Leader, .. } => {
            replica.term = replica.term.max(*term);
            if let Some(other) = group.leaders.insert(*term, node)
                && other != node
            {
                out.push(
                    ELECTION_SAFETY,
                    format!("{name}: nodes {other} and {node} both led term {term} (trace event {at})"),
                );
            }
            let replica = &group.replicas[&node];
            let missing = group.committed.range(replica.base + 1..).find(|(index, (entry_term, commit_term))| {
                *commit_term < *term && replica.log.get(index) != Some(entry_term)
            });
            if let Some((index, (committed_term, _))) = missing {
                out.push(
                    LEADER_COMPLETENESS,
                    format!(
                        "{name}: node {node} became leader of term {term} without the committed entry ({index}, term {committed_term}); it holds {:?} there (trace event {at})",
                        replica.log.get(index)
                    ),
                );
            }
        }
        RaftEvent::Role { term, .. } => replica.term = replica.term.max(*term),
        RaftEvent::Append { entries } => {
            for (index, term) in entries {
                if let Some((last, _)) = replica.log.last_key_value() {
                    assert!(index > last, "trace: append at {index} after {last} on node {node} of {name}");
                }
                replica.log.insert(*index, *term);
            }
        }
        RaftEvent::Truncate { after } => removed(group, node, after.0, "truncated", at, out),
        RaftEvent::ResetLog { before_start } => {
            removed(group, node, before_start.0, "reset its log past", at, out);
            let replica = group.replicas.get_mut(&node).expect("present");
            replica.log.clear();
            replica.base = before_start.0;
        }
        RaftEvent::Commit { index, term } => commit(group, node, name, *index, *term, at, out),
    }
}

/// A replica drops its entries after `after`: none of them may be committed.
fn removed(group: &mut Group, node: u32, after: i64, what: &str, at: usize, out: &mut Sink) {
    let replica = group.replicas.get_mut(&node).expect("present");
    let dropped: Vec<(i64, i64)> = replica.log.range(after + 1..).map(|(i, t)| (*i, *t)).collect();
    replica.log.retain(|index, _| *index <= after);
    for (index, term) in dropped {
        if group.committed.get(&index).is_some_and(|(committed_term, _)| *committed_term == term) {
            out.push(
                COMMITTED_NEVER_LOST,
                format!(
                    "node {node} {what} {after}, removing the committed entry ({index}, term {term}) (trace event {at})"
                ),
            );
            break;
        }
    }
}

fn commit(group: &mut Group, node: u32, name: &str, index: i64, term: i64, at: usize, out: &mut Sink) {
    let replica = group.replicas.get_mut(&node).expect("present");
    if index < replica.commit {
        out.push(
            HIGH_WATERMARK_MONOTONIC,
            format!(
                "{name}: node {node} moved its commit index back from {} to {index} (trace event {at})",
                replica.commit
            ),
        );
    }
    let from = replica.commit.max(replica.base);
    replica.commit = replica.commit.max(index);
    if let Some(held) = replica.log.get(&index)
        && *held != term
    {
        out.push(
            LOG_MATCHING,
            format!("{name}: node {node} committed ({index}, term {term}) but holds term {held} there"),
        );
    }
    if index <= from {
        return;
    }
    let commit_term = replica.term;
    for (i, t) in replica.log.range(from + 1..=index) {
        let known = group.committed.entry(*i).or_insert((*t, commit_term));
        known.1 = known.1.min(commit_term);
        if known.0 != *t {
            let other = known.0;
            out.push(
                LOG_MATCHING,
                format!("{name}: node {node} committed ({i}, term {t}) where ({i}, term {other}) was already committed (trace event {at})"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(node: u32, event: RaftEvent) -> RaftRecord {
        RaftRecord { node, group: "t-0".into(), event }
    }

    fn leader(node: u32, term: i64) -> RaftRecord {
        rec(node, RaftEvent::Role { term, role: RaftRole::Leader, leader: Some(node) })
    }

    fn append(node: u32, entries: &[Position]) -> RaftRecord {
        rec(node, RaftEvent::Append { entries: entries.to_vec() })
    }

    fn names(violations: &[Violation]) -> Vec<&'static str> {
        violations.iter().map(|v| v.checker).collect()
    }

    #[test]
    fn a_clean_replication_passes() {
        let trace = vec![
            leader(1, 1),
            append(1, &[(0, 1), (5, 1)]),
            append(2, &[(0, 1), (5, 1)]),
            rec(1, RaftEvent::Commit { index: 5, term: 1 }),
            rec(2, RaftEvent::Commit { index: 5, term: 1 }),
            leader(2, 2),
        ];
        assert!(check_raft(&trace).is_empty());
    }

    #[test]
    fn two_leaders_in_a_term_break_election_safety() {
        let trace = vec![leader(1, 3), leader(2, 3)];
        assert_eq!(names(&check_raft(&trace)), [ELECTION_SAFETY]);
    }

    #[test]
    fn two_votes_in_a_term_break_election_safety() {
        let vote = |c| rec(3, RaftEvent::HardState { term: 4, voted_for: Some(c) });
        let restart = rec(3, RaftEvent::Restart { term: 4, voted_for: None, last: (-1, -1), committed: -1 });
        assert_eq!(names(&check_raft(&[vote(1), restart, vote(2)])), [ELECTION_SAFETY]);
    }

    #[test]
    fn a_leader_without_a_committed_entry_breaks_leader_completeness() {
        let trace = vec![
            append(1, &[(0, 1)]),
            append(2, &[(0, 1)]),
            rec(1, RaftEvent::Commit { index: 0, term: 1 }),
            leader(3, 2),
        ];
        assert_eq!(names(&check_raft(&trace)), [LEADER_COMPLETENESS]);
    }

    #[test]
    fn a_leader_of_an_earlier_term_than_the_commit_is_not_bound_by_it() {
        // Votes for term 2 were cast before term 3 committed; delayed answers elect node 3 later.
        let trace = vec![
            rec(1, RaftEvent::Role { term: 3, role: RaftRole::Leader, leader: Some(1) }),
            append(1, &[(0, 3)]),
            rec(1, RaftEvent::Commit { index: 0, term: 3 }),
            leader(3, 2),
        ];
        assert!(check_raft(&trace).is_empty());
    }

    #[test]
    fn truncating_a_committed_entry_is_caught() {
        let trace = vec![
            append(2, &[(0, 1), (1, 1)]),
            rec(2, RaftEvent::Commit { index: 1, term: 1 }),
            rec(2, RaftEvent::Truncate { after: (0, 1) }),
        ];
        assert_eq!(names(&check_raft(&trace)), [COMMITTED_NEVER_LOST]);
    }

    #[test]
    fn committing_different_entries_at_one_index_breaks_log_matching() {
        let trace = vec![
            append(1, &[(0, 1)]),
            rec(1, RaftEvent::Commit { index: 0, term: 1 }),
            append(2, &[(0, 2)]),
            rec(2, RaftEvent::Commit { index: 0, term: 2 }),
        ];
        assert_eq!(names(&check_raft(&trace)), [LOG_MATCHING]);
    }

    #[test]
    fn losing_unsynced_entries_in_a_crash_is_not_a_removal() {
        let trace = vec![
            append(1, &[(0, 1), (1, 1)]),
            rec(1, RaftEvent::Restart { term: 1, voted_for: None, last: (0, 1), committed: -1 }),
            append(1, &[(1, 2)]),
        ];
        assert!(check_raft(&trace).is_empty());
    }
}
