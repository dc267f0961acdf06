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
//!   A crash may also undo an unsynced truncation: the recovered log then ends in an older
//!   term than the shadow held there. Those entries become `Entry::Reverted` (their terms are
//!   unknown, but no larger than the recovered last term, since terms never decrease along a
//!   log), and later removals of them are not checked.
//! - HighWatermarkMonotonic: within one incarnation a replica's commit index never decreases.
//! - CurrentTermCommit (§5.4.2): a leader's commit index only ever lands on an entry of its
//!   own term; older entries commit with it, never by counting replicas alone (Figure 8).
//! - DurableBeforeAck (Figure 2, "updated on stable storage before responding to RPCs"): a
//!   replica that acknowledged entries through a position (`Ack`) still holds them after any
//!   crash, unless a truncation removed them first. Not checked on replicas whose disks inject
//!   faults (`check_raft_with_faulty_disks`): those may lose synced data by design.
//!
//! How: a shadow of each replica's log (index to term) follows `Append`, `Truncate`,
//! `ResetLog` and `Restart`; a `Commit` marks every entry of the committing replica's shadow
//! at or below the index as committed for the group. Linear in the trace, plus one pass over the
//! committed entries per election.

use crate::report::{HIGH_WATERMARK_MONOTONIC, Sink, Violation};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const ELECTION_SAFETY: &str = "ElectionSafety";
pub const LOG_MATCHING: &str = "LogMatching";
pub const LEADER_COMPLETENESS: &str = "LeaderCompleteness";
pub const COMMITTED_NEVER_LOST: &str = "CommittedNeverLost";
pub const CURRENT_TERM_COMMIT: &str = "CurrentTermCommit";
pub const DURABLE_BEFORE_ACK: &str = "DurableBeforeAck";

/// Every name the Raft checks report under (HighWatermarkMonotonic is shared with the
/// client-observed history check: the same property seen from a replica).
pub const RAFT_CHECKER_NAMES: [&str; 7] = [
    ELECTION_SAFETY,
    LOG_MATCHING,
    LEADER_COMPLETENESS,
    COMMITTED_NEVER_LOST,
    HIGH_WATERMARK_MONOTONIC,
    CURRENT_TERM_COMMIT,
    DURABLE_BEFORE_ACK,
];

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
    Vote { term: i64, candidate: u32 },
    Ack { matched: Position },
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

/// What the shadow knows of one entry of one replica's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// The entry's term.
    Known(i64),
    /// Recovered after a crash undid a truncation: the term is at most `term_max`.
    Reverted { term_max: i64 },
}

impl Entry {
    /// Whether this entry may be the entry of `term`.
    fn may_be(self, term: i64) -> bool {
        match self {
            Entry::Known(held) => held == term,
            Entry::Reverted { term_max } => term <= term_max,
        }
    }
}

struct Replica {
    /// Entries after `base`, index to what the shadow knows.
    log: BTreeMap<i64, Entry>,
    /// The position before the first entry (log start), -1 for a full log.
    base: i64,
    /// The commit index in this incarnation (-1: none yet).
    commit: i64,
    /// The current term, as far as the trace says.
    term: i64,
    /// The vote granted (or recovered) per term, across incarnations.
    votes: BTreeMap<i64, u32>,
    /// The role in this incarnation.
    role: RaftRole,
    /// The furthest position this replica acknowledged that no truncation has removed since.
    acked: Option<Position>,
}

impl Default for Replica {
    fn default() -> Self {
        Replica {
            log: BTreeMap::new(),
            base: -1,
            commit: -1,
            term: 0,
            votes: BTreeMap::new(),
            role: RaftRole::Follower,
            acked: None,
        }
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
    check_raft_with_faulty_disks(trace, &BTreeSet::new())
}

/// `check_raft`, with DurableBeforeAck skipped for the replicas on `faulty_disk_nodes`.
pub fn check_raft_with_faulty_disks(trace: &[RaftRecord], faulty_disk_nodes: &BTreeSet<u32>) -> Vec<Violation> {
    let mut groups: BTreeMap<&str, Group> = BTreeMap::new();
    let mut out = Sink::capped(RAFT_VIOLATIONS_PER_CHECKER_MAX);
    for (at, record) in trace.iter().enumerate() {
        let group = groups.entry(&record.group).or_default();
        step(group, at, record, faulty_disk_nodes.contains(&record.node), &mut out);
    }
    out.into_violations()
}

fn step(group: &mut Group, at: usize, record: &RaftRecord, faulty_disk: bool, out: &mut Sink) {
    let (node, name) = (record.node, &record.group);
    let replica = group.replicas.entry(node).or_default();
    match &record.event {
        RaftEvent::Restart { term, voted_for, last, .. } => {
            replica.role = RaftRole::Follower;
            // The recovered log is a prefix of what was written (unsynced entries may be gone).
            replica.log.retain(|index, _| *index <= last.0);
            let reverted = last.0 > replica.base && replica.log.get(&last.0) != Some(&Entry::Known(last.1));
            if let Some(acked) = replica.acked.take()
                && !faulty_disk
                && (last.0 < acked.0 || (reverted && acked.1 > last.1))
            {
                out.push(
                    DURABLE_BEFORE_ACK,
                    format!(
                        "{name}: node {node} acknowledged its log through ({}, term {}) but recovered only through ({}, term {}) after a crash (trace event {at})",
                        acked.0, acked.1, last.0, last.1
                    ),
                );
            }
            if reverted {
                // A crash undid an unsynced truncation (and the appends after it): the entries
                // with a later term than the recovered last one were replaced by older ones.
                for entry in replica.log.values_mut() {
                    if matches!(entry, Entry::Known(term) if *term > last.1) {
                        *entry = Entry::Reverted { term_max: last.1 };
                    }
                }
                replica.log.insert(last.0, Entry::Known(last.1));
            }
            replica.commit = -1;
            replica.term = *term;
            if let Some(candidate) = voted_for {
                replica.votes.entry(*term).or_insert(*candidate);
            }
        }
        // A vote to be persisted counts only once it is granted (`Vote`): a crash before then
        // loses it without anyone having seen it.
        RaftEvent::HardState { term, .. } => replica.term = replica.term.max(*term),
        RaftEvent::Vote { term, candidate } => {
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
        RaftEvent::Ack { matched } => {
            if replica.acked.is_none_or(|acked| matched.0 > acked.0) {
                replica.acked = Some(*matched);
            }
        }
        RaftEvent::Role { term, role: RaftRole::Leader, .. } => {
            replica.term = replica.term.max(*term);
            replica.role = RaftRole::Leader;
            // A leader counted its own vote: it must not have granted the term to another.
            if let Some(other) = replica.votes.get(term).copied()
                && other != node
            {
                out.push(
                    ELECTION_SAFETY,
                    format!("{name}: node {node} led term {term} after voting for {other} in it (trace event {at})"),
                );
            }
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
                *commit_term < *term && !replica.log.get(index).is_some_and(|e| e.may_be(*entry_term))
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
        RaftEvent::Role { term, role, .. } => {
            replica.term = replica.term.max(*term);
            replica.role = *role;
        }
        RaftEvent::Append { entries } => {
            for (index, term) in entries {
                if let Some((last, _)) = replica.log.last_key_value() {
                    assert!(index > last, "trace: append at {index} after {last} on node {node} of {name}");
                }
                replica.log.insert(*index, Entry::Known(*term));
            }
        }
        RaftEvent::Truncate { after } => {
            if replica.acked.is_some_and(|acked| acked.0 > after.0) {
                replica.acked = (after.0 >= 0).then_some(*after);
            }
            removed(group, name, node, after.0, "truncated", at, out);
        }
        RaftEvent::ResetLog { before_start } => {
            replica.acked = None;
            removed(group, name, node, before_start.0, "reset its log past", at, out);
            let replica = group.replicas.get_mut(&node).expect("present");
            replica.log.clear();
            replica.base = before_start.0;
        }
        RaftEvent::Commit { index, term } => commit(group, node, name, *index, *term, at, out),
    }
}

/// A replica drops its entries after `after`: none of them may be committed.
fn removed(group: &mut Group, name: &str, node: u32, after: i64, what: &str, at: usize, out: &mut Sink) {
    let replica = group.replicas.get_mut(&node).expect("present");
    let dropped: Vec<(i64, i64)> = replica
        .log
        .range(after + 1..)
        .filter_map(|(i, e)| match e {
            Entry::Known(t) => Some((*i, *t)),
            Entry::Reverted { .. } => None,
        })
        .collect();
    replica.log.retain(|index, _| *index <= after);
    for (index, term) in dropped {
        if group.committed.get(&index).is_some_and(|(committed_term, _)| *committed_term == term) {
            out.push(
                COMMITTED_NEVER_LOST,
                format!(
                    "{name}: node {node} {what} {after}, removing the committed entry ({index}, term {term}) (trace event {at})"
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
    if replica.role == RaftRole::Leader && term < replica.term && index > replica.commit {
        out.push(
            CURRENT_TERM_COMMIT,
            format!(
                "{name}: node {node}, leader of term {}, committed through ({index}, term {term}): an earlier term's entry, by counting replicas (trace event {at})",
                replica.term
            ),
        );
    }
    let from = replica.commit.max(replica.base);
    replica.commit = replica.commit.max(index);
    if let Some(held) = replica.log.get(&index)
        && !held.may_be(term)
    {
        out.push(
            LOG_MATCHING,
            format!("{name}: node {node} committed ({index}, term {term}) but holds {held:?} there"),
        );
    }
    if index <= from {
        return;
    }
    let commit_term = replica.term;
    for (i, entry) in replica.log.range(from + 1..=index) {
        // A reverted entry's term is not known; the replicas that hold it known commit it.
        let Entry::Known(t) = entry else { continue };
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
        let vote = |c| rec(3, RaftEvent::Vote { term: 4, candidate: c });
        let restart = rec(3, RaftEvent::Restart { term: 4, voted_for: None, last: (-1, -1), committed: -1 });
        assert_eq!(names(&check_raft(&[vote(1), restart.clone(), vote(2)])), [ELECTION_SAFETY]);
        assert_eq!(names(&check_raft(&[vote(1), restart, leader(3, 4)])), [ELECTION_SAFETY]);
    }

    /// Seed 264: a candidate asked to persist its own vote, lost power before the vote was
    /// durable (so it never asked anyone for theirs), and voted for another node in that term.
    #[test]
    fn a_vote_lost_before_it_was_granted_is_not_a_double_vote() {
        let trace = vec![
            rec(2, RaftEvent::HardState { term: 2, voted_for: Some(2) }),
            rec(2, RaftEvent::Role { term: 2, role: RaftRole::Candidate, leader: None }),
            rec(2, RaftEvent::Restart { term: 1, voted_for: Some(1), last: (2, 1), committed: -1 }),
            rec(2, RaftEvent::HardState { term: 2, voted_for: Some(1) }),
            rec(2, RaftEvent::Vote { term: 2, candidate: 1 }),
            leader(1, 2),
        ];
        assert!(check_raft(&trace).is_empty(), "{:?}", check_raft(&trace));
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

    fn restart(node: u32, term: i64, last: Position) -> RaftRecord {
        rec(node, RaftEvent::Restart { term, voted_for: None, last, committed: -1 })
    }

    /// Seed 57: a follower truncated its term-1 tail and appended the leader's term-3 entries,
    /// which committed elsewhere; it crashed before syncing, recovered the old (11, term 1), and
    /// the next leader truncated that again. Nothing committed was removed.
    #[test]
    fn a_crash_that_undoes_an_unsynced_truncation_is_not_a_removal() {
        let trace = vec![
            append(1, &[(10, 1), (11, 1)]),
            append(2, &[(10, 1), (11, 3)]),
            rec(2, RaftEvent::Commit { index: 11, term: 3 }),
            rec(1, RaftEvent::Truncate { after: (10, 1) }),
            append(1, &[(11, 3)]),
            rec(1, RaftEvent::Commit { index: 11, term: 3 }),
            restart(1, 4, (11, 1)),
            rec(1, RaftEvent::Truncate { after: (10, 1) }),
            append(1, &[(11, 3), (12, 5)]),
            rec(1, RaftEvent::Commit { index: 12, term: 5 }),
        ];
        assert!(check_raft(&trace).is_empty(), "{:?}", check_raft(&trace));
    }

    /// The reverted entries still count against the replica as a leader: its recovered entry
    /// at a committed index has a term no larger than the recovered last term.
    #[test]
    fn a_leader_whose_crash_reverted_a_committed_entry_breaks_leader_completeness() {
        let trace = vec![
            append(1, &[(10, 1), (11, 3), (12, 3)]),
            rec(1, RaftEvent::Commit { index: 12, term: 3 }),
            restart(1, 3, (12, 2)),
            leader(1, 4),
        ];
        assert_eq!(names(&check_raft(&trace)), [LEADER_COMPLETENESS]);
    }

    /// Figure 8: a leader of term 4 commits index 2, whose entry is from term 2.
    #[test]
    fn a_leader_committing_an_earlier_terms_entry_breaks_current_term_commit() {
        let commit = |index, term| rec(1, RaftEvent::Commit { index, term });
        let bad = vec![append(1, &[(1, 1), (2, 2)]), leader(1, 4), commit(2, 2)];
        assert_eq!(names(&check_raft(&bad)), [CURRENT_TERM_COMMIT]);
        // The same entry committing with the leader's own no-op after it is fine, and so is a
        // follower learning an old-term commit.
        let good = vec![append(1, &[(1, 1), (2, 2), (3, 4)]), leader(1, 4), commit(3, 4)];
        assert!(check_raft(&good).is_empty());
        let follower = vec![
            append(2, &[(1, 1), (2, 2)]),
            rec(2, RaftEvent::Role { term: 4, role: RaftRole::Follower, leader: Some(1) }),
            rec(2, RaftEvent::Commit { index: 2, term: 2 }),
        ];
        assert!(check_raft(&follower).is_empty());
    }

    /// A follower acknowledged through (5, term 2), lost power, and came back with (3, term 2).
    #[test]
    fn losing_acknowledged_entries_in_a_crash_breaks_durable_before_ack() {
        let ack = rec(2, RaftEvent::Ack { matched: (5, 2) });
        let trace = vec![append(2, &[(3, 2), (4, 2), (5, 2)]), ack.clone(), restart(2, 2, (3, 2))];
        assert_eq!(names(&check_raft(&trace)), [DURABLE_BEFORE_ACK]);
        // Not on a disk that injects faults, and not when a truncation removed them first.
        assert!(check_raft_with_faulty_disks(&trace, &BTreeSet::from([2])).is_empty());
        let truncated = vec![
            append(2, &[(3, 2), (4, 2), (5, 2)]),
            ack,
            rec(2, RaftEvent::Truncate { after: (3, 2) }),
            restart(2, 3, (3, 2)),
        ];
        assert!(check_raft(&truncated).is_empty());
    }

    /// A known committed entry below the recovered end is still guarded.
    #[test]
    fn truncating_a_committed_entry_after_a_restart_is_caught() {
        let trace = vec![
            append(1, &[(0, 1), (1, 1), (2, 1)]),
            rec(1, RaftEvent::Commit { index: 1, term: 1 }),
            restart(1, 1, (2, 1)),
            rec(1, RaftEvent::Truncate { after: (0, 1) }),
        ];
        assert_eq!(names(&check_raft(&trace)), [COMMITTED_NEVER_LOST]);
    }
}
