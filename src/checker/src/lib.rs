//! `sluice-checker`: judges a recorded client history of a Kafka-compatible log.
//!
//! What: [`check`] takes a [`History`] (sends, polls and seeks as clients saw them, consumer-group
//! offset commits and fetches, plus each replica's committed log after healing) and returns a
//! [`Report`] of named [`Violation`]s. The checks are Jepsen's kafka queue anomalies
//! (jepsen_tla.md §1.5) and the stricter ones a Raft-replicated, acks=all broker allows
//! (jepsen_tla.md §1.8, dst.md §5): replica logs agree, acknowledged sends survive on every
//! replica, and acknowledged-before-invoked sends are ordered. Committed group offsets are judged
//! as registers (Herlihy & Wing 1990): a fetched offset was committed, and an acknowledged commit
//! is never lost nor overwritten by an older one (Kafka protocol guide, OffsetCommit). Where the
//! harness ran Jepsen's final-poll phase, acknowledged values must all have been polled
//! (`Unseen`), and the ops' dependency graph must be acyclic (`DependencyCycle`, Elle's G0/G1c
//! classes and their -process/-realtime variants, jepsen_tla.md §1.6). Every violation is also
//! counted under an anomaly class ([`anomaly`], Jepsen's names where Jepsen has one).
//!
//! Why a separate, pure crate: the madsim simulator and the real-process Jepsen harness record
//! the same JSON-lines history and must reach the same verdict. So this crate has no tokio, no
//! madsim, no clock and no I/O, and it iterates only BTreeMaps and Vecs: the same history always
//! yields the same report, violation for violation.
//!
//! Cost: every check is a linear or n·log n pass over maps built once (dst.md §5.3, "checks are
//! linear-time maps"); no search over orderings. The cycle search is linear per anomaly class
//! (strongly connected components, then one breadth-first search per component) and bounded by
//! named constants in cycles.rs.

pub mod anomaly;
mod cycles;
mod group_offsets;
mod history;
mod index;
mod offsets;
mod polls;
pub mod raft;
mod report;
mod scc;
mod unseen;
mod wellformed;
mod writes;

pub use anomaly::{ANOMALY_CLASSES, SLUICE_ANOMALY_CLASSES};
pub use history::{
    CommitOutcome, FinalPolls, FinalRead, HISTORY_LINES_MAX, History, HistoryError, Line, NemesisEvent, NemesisPhase,
    Op, PartitionKey, SendOutcome,
};
pub use report::{
    ABORTED_READ, CHECKER_NAMES, DEPENDENCY_CYCLE, GROUP_OFFSETS_DURABLE, HARNESS_ERROR, HIGH_WATERMARK_MONOTONIC,
    NO_DUPLICATE, NO_LOST_WRITE, NO_PHANTOM_READ, OFFSETS_UNIQUE, POLL_MONOTONIC, READS_BELOW_HIGH_WATERMARK, Report,
    SEND_MONOTONIC, SEND_REALTIME_ORDER, Stats, UNSEEN, VIOLATIONS_PER_CHECKER_MAX, Violation,
};

use history::SendOutcome as Outcome;
use index::Index;
use report::Sink;

/// Runs every checker over `history`. Deterministic: equal histories give equal reports.
pub fn check(history: &History) -> Report {
    let index = Index::build(history);
    let mut sink = Sink::default();
    wellformed::check(history, &index, &mut sink);
    let duplicates_allowed = offsets::check(&index, &mut sink);
    writes::check(&index, &mut sink);
    let final_polls_unreached = unseen::check(history, &index, &mut sink);
    polls::check(&index, &mut sink);
    let cycle_search_truncated = cycles::check(&index, &mut sink);
    group_offsets::check(history, &mut sink);
    let mut stats = stats(history, &index, duplicates_allowed);
    (stats.final_polls_unreached, stats.cycle_search_truncated) = (final_polls_unreached, cycle_search_truncated);
    sink.finish(stats)
}

fn stats(history: &History, index: &Index<'_>, duplicates_allowed: u64) -> Stats {
    let count = |n: usize| u64::try_from(n).expect("usize fits u64");
    let outcomes = |wanted: fn(&Outcome) -> bool| count(index.sends.iter().filter(|s| wanted(s.outcome)).count());
    let ops_where = |wanted: fn(&Op) -> bool| count(history.ops.iter().filter(|op| wanted(op)).count());
    let stats = Stats {
        sends_ok: outcomes(|o| matches!(o, Outcome::Ok { .. })),
        sends_failed: outcomes(|o| matches!(o, Outcome::Failed)),
        sends_indeterminate: outcomes(|o| matches!(o, Outcome::Indeterminate)),
        polls: count(index.polls.len()),
        seeks: count(index.seeks.len()),
        commits: ops_where(|op| matches!(op, Op::Commit { .. })),
        committed_reads: ops_where(|op| matches!(op, Op::FetchCommitted { .. })),
        records_read: count(index.polls.iter().map(|poll| poll.records.len()).sum()),
        duplicates_allowed,
        final_read_replicas: count(history.final_reads.len()),
        partitions: count(index.partitions.len()),
        violations_suppressed: 0,
        anomalies: std::collections::BTreeMap::new(),
        nemesis_events: count(history.nemesis.len()),
        final_polls: count(history.final_polls.len()),
        final_polls_unreached: 0,
        cycle_search_truncated: false,
    };
    let ops = stats.sends_ok
        + stats.sends_failed
        + stats.sends_indeterminate
        + stats.polls
        + stats.seeks
        + stats.commits
        + stats.committed_reads;
    assert_eq!(ops, count(history.ops.len()), "every op is counted exactly once");
    stats
}
