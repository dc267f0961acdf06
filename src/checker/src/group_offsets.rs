//! `GroupOffsetsDurable`: every committed offset a consumer group reads back is one that was
//! committed, and no acknowledged commit is lost or overwritten by an older one, across
//! coordinator failovers.
//!
//! What: per (group, partition) the committed offset is a register, written by OffsetCommit
//! (`Op::Commit`) and read by OffsetFetch (`Op::FetchCommitted`). Commit metadata is unique per
//! history (a harness promise, checked by wellformed.rs), so a read names the one commit W it
//! saw, and the register rule of linearizability (Herlihy & Wing 1990), as Jepsen's register
//! checkers apply it to unique values, needs no search over orders. A read of W is legal only if
//! * W is a commit of the same group and partition, of the offset read (else a phantom);
//! * W was not refused: fencing errors are answered before anything is written (`Failed`);
//! * W was invoked no later than the read completed (else a read from the future);
//! * no commit W2 that was acknowledged before the read began was invoked after W completed
//!   (else a stale read: W2 wholly follows W, so it is the newer value, and an acknowledged
//!   commit is durable: Kafka protocol guide, OffsetCommit). An `Indeterminate` W may land at
//!   any later time, so its completion counts as +infinity and it is never stale.
//!
//! A read of nothing is legal only if no commit was acknowledged before it began (else an
//! acknowledged commit was lost, typically by a new coordinator that did not load it).
//!
//! Not judged, so this is weaker than a full register check: reads against one another (a read
//! that saw W2 followed by one that saw an older W is caught only if W2 was acknowledged before
//! the second read began). The workload must not delete groups or offsets nor let them expire
//! (`offsets.retention.minutes`): a read of nothing would then be legal.
//!
//! Cost: n·log n. Per register the acknowledged commits are sorted by completion once, with a
//! prefix maximum of their invocations; a read binary-searches the commits acknowledged before
//! it began (dst.md §5.3, "checks are linear-time maps").

use std::collections::BTreeMap;
use std::fmt;

use crate::anomaly;
use crate::history::{CommitOutcome, History, Op, PartitionKey};
use crate::report::{GROUP_OFFSETS_DURABLE, Sink};

/// One `Commit` op.
struct CommitView<'h> {
    /// Position in `History::ops`.
    op: u64,
    process: u64,
    group: &'h str,
    partition: &'h PartitionKey,
    offset: i64,
    metadata: &'h str,
    invoke_ms: u64,
    complete_ms: u64,
    outcome: &'h CommitOutcome,
}

impl fmt::Display for CommitView<'_> {
    /// `commit "p3-5" of offset 5 by process 3 (op #7, 10..12 ms, Ok)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "commit {:?} of offset {} by process {} (op #{}, {}..{} ms, {:?})",
            self.metadata, self.offset, self.process, self.op, self.invoke_ms, self.complete_ms, self.outcome
        )
    }
}

/// One `FetchCommitted` op.
struct ReadView<'h> {
    /// Position in `History::ops`.
    op: u64,
    process: u64,
    group: &'h str,
    partition: &'h PartitionKey,
    invoke_ms: u64,
    complete_ms: u64,
    committed: Option<(i64, &'h str)>,
}

impl fmt::Display for ReadView<'_> {
    /// `group "billing" payments/0: process 2 (op #9, 20..21 ms)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "group {:?} {}: process {} (op #{}, {}..{} ms)",
            self.group, self.partition, self.process, self.op, self.invoke_ms, self.complete_ms
        )
    }
}

/// The commits and reads of one (group, partition).
#[derive(Default)]
struct Register {
    /// Indices into `Groups::reads`, in history order.
    reads: Vec<usize>,
    /// Indices into `Groups::commits` of the `Ok` commits, sorted by (complete_ms, op).
    acknowledged: Vec<usize>,
    /// `latest_invoked[i]`: the commit among `acknowledged[..=i]` invoked last (the first such
    /// in `acknowledged` order). Invariant: as long as `acknowledged`.
    latest_invoked: Vec<usize>,
}

/// Every group offset op of a history, indexed once.
struct Groups<'h> {
    commits: Vec<CommitView<'h>>,
    reads: Vec<ReadView<'h>>,
    /// metadata -> index of the first commit with it (duplicates are a HarnessError).
    commit_by_metadata: BTreeMap<&'h str, usize>,
    registers: BTreeMap<(&'h str, &'h PartitionKey), Register>,
}

impl<'h> Groups<'h> {
    fn build(history: &'h History) -> Groups<'h> {
        let mut groups = Groups {
            commits: Vec::new(),
            reads: Vec::new(),
            commit_by_metadata: BTreeMap::new(),
            registers: BTreeMap::new(),
        };
        for (position, op) in history.ops.iter().enumerate() {
            let op_number = u64::try_from(position).expect("usize fits u64");
            groups.add_op(op_number, op);
        }
        let commits = &groups.commits;
        for register in groups.registers.values_mut() {
            register.acknowledged.sort_by_key(|&i| (commits[i].complete_ms, commits[i].op));
            let mut latest: Option<usize> = None;
            for &i in &register.acknowledged {
                assert!(matches!(commits[i].outcome, CommitOutcome::Ok), "only acknowledged commits are indexed");
                if latest.is_none_or(|l| commits[i].invoke_ms > commits[l].invoke_ms) {
                    latest = Some(i);
                }
                register.latest_invoked.push(latest.expect("set above"));
            }
            assert_eq!(register.latest_invoked.len(), register.acknowledged.len(), "one prefix maximum per commit");
        }
        groups
    }

    fn add_op(&mut self, op_number: u64, op: &'h Op) {
        match op {
            Op::Commit { process, group, partition, offset, metadata, invoke_ms, complete_ms, outcome } => {
                let index = self.commits.len();
                let register = self.registers.entry((group, partition)).or_default();
                if matches!(outcome, CommitOutcome::Ok) {
                    register.acknowledged.push(index);
                }
                self.commit_by_metadata.entry(metadata).or_insert(index);
                self.commits.push(CommitView {
                    op: op_number,
                    process: *process,
                    group,
                    partition,
                    offset: *offset,
                    metadata,
                    invoke_ms: *invoke_ms,
                    complete_ms: *complete_ms,
                    outcome,
                });
            }
            Op::FetchCommitted { process, group, partition, invoke_ms, complete_ms, committed } => {
                self.registers.entry((group, partition)).or_default().reads.push(self.reads.len());
                self.reads.push(ReadView {
                    op: op_number,
                    process: *process,
                    group,
                    partition,
                    invoke_ms: *invoke_ms,
                    complete_ms: *complete_ms,
                    committed: committed.as_ref().map(|(offset, metadata)| (*offset, metadata.as_str())),
                });
            }
            // Accesses to the log: the other checkers judge them.
            Op::Send { .. } | Op::Poll { .. } | Op::Seek { .. } => {}
        }
    }

    /// How many of `register`'s acknowledged commits completed strictly before `at_ms`.
    fn acknowledged_before(&self, register: &Register, at_ms: u64) -> usize {
        register.acknowledged.partition_point(|&i| self.commits[i].complete_ms < at_ms)
    }
}

pub(crate) fn check(history: &History, sink: &mut Sink) {
    let groups = Groups::build(history);
    for ((group, partition), register) in &groups.registers {
        for &r in &register.reads {
            let read = &groups.reads[r];
            assert!(read.group == *group && read.partition == *partition, "reads are indexed under their register");
            match read.committed {
                None => check_not_lost(&groups, register, read, sink),
                Some((offset, metadata)) => check_read_of(&groups, register, read, offset, metadata, sink),
            }
        }
    }
}

// Kafka protocol guide, OffsetCommit: an acknowledged commit is durable, so once one completed,
// OffsetFetch never again answers "no offset" (-1).
fn check_not_lost(groups: &Groups<'_>, register: &Register, read: &ReadView<'_>, sink: &mut Sink) {
    let before = groups.acknowledged_before(register, read.invoke_ms);
    let Some(last) = before.checked_sub(1) else { return };
    let lost = &groups.commits[register.acknowledged[last]];
    assert!(lost.complete_ms < read.invoke_ms, "the binary search keeps commits acknowledged before the read");
    let message = format!(
        "{read} found no committed offset, but the {lost} was acknowledged before the read began ({before} acknowledged commits were): an acknowledged commit was lost"
    );
    sink.push_as(GROUP_OFFSETS_DURABLE, anomaly::GROUP_OFFSET_LOST, message);
}

// Herlihy & Wing 1990, as Jepsen's register checkers apply it to unique values: the value read
// was written by a commit of this register, not refused, invoked before the read completed,
// and not overwritten by a commit acknowledged before the read began.
fn check_read_of(
    groups: &Groups<'_>,
    register: &Register,
    read: &ReadView<'_>,
    offset: i64,
    metadata: &str,
    sink: &mut Sink,
) {
    let Some(&w) = groups.commit_by_metadata.get(metadata) else {
        let message = format!("{read} read offset {offset} with metadata {metadata:?}, which no commit made");
        sink.push_as(GROUP_OFFSETS_DURABLE, anomaly::GROUP_OFFSET_UNKNOWN_COMMIT, message);
        return;
    };
    let commit = &groups.commits[w];
    if commit.group != read.group || commit.partition != read.partition {
        let message = format!(
            "{read} read offset {offset} with metadata {metadata:?}, which is the {commit} of group {:?} {}",
            commit.group, commit.partition
        );
        sink.push_as(GROUP_OFFSETS_DURABLE, anomaly::GROUP_OFFSET_UNKNOWN_COMMIT, message);
        return;
    }
    if commit.offset != offset {
        let message = format!("{read} read offset {offset} with metadata {metadata:?}, but that is the {commit}");
        sink.push_as(GROUP_OFFSETS_DURABLE, anomaly::GROUP_OFFSET_UNKNOWN_COMMIT, message);
    }
    if commit.invoke_ms > read.complete_ms {
        let message = format!("{read} read the {commit}, invoked after the read completed (read from the future)");
        sink.push_as(GROUP_OFFSETS_DURABLE, anomaly::GROUP_OFFSET_FUTURE_READ, message);
    }
    match commit.outcome {
        CommitOutcome::Failed => {
            let message =
                format!("{read} read the {commit}, which the coordinator refused (a refused commit is visible)");
            sink.push_as(GROUP_OFFSETS_DURABLE, anomaly::GROUP_OFFSET_REFUSED_READ, message);
        }
        // Its write may land at any later time: never stale.
        CommitOutcome::Indeterminate => {}
        CommitOutcome::Ok => {
            if let Some(newer) = newer_acknowledged(groups, register, read, commit) {
                let message = format!(
                    "{read} read the {commit}, but the {newer} was invoked after it completed and acknowledged before the read began (stale read)"
                );
                sink.push_as(GROUP_OFFSETS_DURABLE, anomaly::GROUP_OFFSET_STALE_READ, message);
            }
        }
    }
}

/// An acknowledged commit W2 of `register` with `commit.complete_ms < W2.invoke_ms` and
/// `W2.complete_ms < read.invoke_ms`, if any: the one invoked last among those acknowledged
/// before the read began.
fn newer_acknowledged<'g, 'h>(
    groups: &'g Groups<'h>,
    register: &Register,
    read: &ReadView<'_>,
    commit: &CommitView<'_>,
) -> Option<&'g CommitView<'h>> {
    let before = groups.acknowledged_before(register, read.invoke_ms);
    let latest = &groups.commits[register.latest_invoked[before.checked_sub(1)?]];
    // W2 != W follows from W.invoke <= W.complete < W2.invoke; only a history whose commit
    // completes before it is invoked (a HarnessError) can make the maximum W itself.
    (latest.invoke_ms > commit.complete_ms && latest.op != commit.op).then_some(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: &str = "billing";
    /// Registers in the randomized comparison, and ops in each.
    const SEEDS_MAX: u64 = 200;
    const COMMITS_PER_SEED_MAX: u64 = 12;
    const READS_PER_SEED_MAX: u64 = 12;

    fn key() -> PartitionKey {
        PartitionKey::new("payments", 0)
    }

    fn commit(metadata: &str, outcome: CommitOutcome, invoke_ms: u64, complete_ms: u64) -> Op {
        let (process, group, partition, offset, metadata) = (1, GROUP.to_owned(), key(), 7, metadata.to_owned());
        Op::Commit { process, group, partition, offset, metadata, invoke_ms, complete_ms, outcome }
    }

    fn read(committed: Option<&str>, invoke_ms: u64, complete_ms: u64) -> Op {
        let committed = committed.map(|metadata| (7, metadata.to_owned()));
        Op::FetchCommitted { process: 2, group: GROUP.to_owned(), partition: key(), invoke_ms, complete_ms, committed }
    }

    fn messages(history: &History) -> Vec<String> {
        let mut sink = Sink::capped(u64::MAX);
        check(history, &mut sink);
        sink.into_violations().into_iter().map(|v| v.message).collect()
    }

    /// splitmix64: a deterministic stream without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn prefix_maximum_tracks_the_latest_invocation() {
        let history = History {
            ops: vec![
                commit("late", CommitOutcome::Ok, 30, 40),
                commit("early", CommitOutcome::Ok, 5, 10),
                commit("refused", CommitOutcome::Failed, 50, 51),
                commit("middle", CommitOutcome::Ok, 20, 45),
            ],
            final_reads: vec![],
            ..History::default()
        };
        let groups = Groups::build(&history);
        let partition = key();
        let register = &groups.registers[&(GROUP, &partition)];
        assert_eq!(register.acknowledged, [1, 0, 3], "sorted by completion, refused ones left out");
        assert_eq!(register.latest_invoked, [1, 0, 0], "the maximum invocation so far");
        assert_eq!(groups.acknowledged_before(register, 40), 1);
        assert_eq!(groups.acknowledged_before(register, 41), 2);
    }

    #[test]
    fn stale_read_names_both_commits_and_the_read() {
        let history = History {
            ops: vec![
                commit("old", CommitOutcome::Ok, 10, 12),
                commit("new", CommitOutcome::Ok, 20, 22),
                read(Some("old"), 30, 31),
                read(Some("old"), 21, 31), // Began before "new" was acknowledged: fine.
            ],
            final_reads: vec![],
            ..History::default()
        };
        let found = messages(&history);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0],
            "group \"billing\" payments/0: process 2 (op #2, 30..31 ms) read the commit \"old\" of offset 7 by \
             process 1 (op #0, 10..12 ms, Ok), but the commit \"new\" of offset 7 by process 1 (op #1, 20..22 ms, Ok) \
             was invoked after it completed and acknowledged before the read began (stale read)"
        );
    }

    // The binary search over the prefix maximum finds a newer acknowledged commit exactly when
    // the quadratic definition does (Herlihy & Wing 1990, register rule).
    #[test]
    fn stale_search_agrees_with_the_quadratic_definition() {
        let outcomes = [CommitOutcome::Ok, CommitOutcome::Ok, CommitOutcome::Indeterminate, CommitOutcome::Failed];
        let mut state = 0;
        let mut stale_reads = 0;
        for _ in 0..SEEDS_MAX {
            let mut ops = Vec::new();
            let commits = 1 + next(&mut state) % COMMITS_PER_SEED_MAX;
            for c in 0..commits {
                let invoke_ms = next(&mut state) % 100;
                let complete_ms = invoke_ms + next(&mut state) % 30;
                let outcome = outcomes[usize::try_from(next(&mut state) % 4).unwrap()].clone();
                ops.push(commit(&format!("m{c}"), outcome, invoke_ms, complete_ms));
            }
            for _ in 0..1 + next(&mut state) % READS_PER_SEED_MAX {
                let seen = format!("m{}", next(&mut state) % commits);
                let invoke_ms = next(&mut state) % 160;
                ops.push(read(Some(&seen), invoke_ms, invoke_ms + next(&mut state) % 10));
            }
            let history = History { ops, final_reads: vec![], ..History::default() };
            let groups = Groups::build(&history);
            let partition = key();
            let register = &groups.registers[&(GROUP, &partition)];
            for &r in &register.reads {
                let read = &groups.reads[r];
                let metadata = read.committed.expect("every read saw a commit").1;
                let commit = &groups.commits[groups.commit_by_metadata[metadata]];
                let ok = |c: &CommitView<'_>| matches!(c.outcome, CommitOutcome::Ok);
                let quadratic = groups.commits.iter().any(|newer| {
                    ok(newer)
                        && newer.op != commit.op
                        && commit.complete_ms < newer.invoke_ms
                        && newer.complete_ms < read.invoke_ms
                });
                let found = newer_acknowledged(&groups, register, read, commit);
                assert_eq!(found.is_some(), quadratic, "read op #{} of {commit}", read.op);
                if let Some(newer) = found {
                    assert!(ok(newer) && commit.complete_ms < newer.invoke_ms && newer.complete_ms < read.invoke_ms);
                    stale_reads += 1;
                }
            }
        }
        assert!(stale_reads > 0, "the random histories exercise stale reads");
    }
}
