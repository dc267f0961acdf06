//! Builders for hand-made histories, shared by the checker's integration tests.
//!
//! Why: each test states one scenario as data (ops and final reads) and the exact set of
//! checker names it must trip, so the tests read as a specification of the checkers.
//! `base()` is the clean reference history every anomaly test perturbs.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::{BTreeMap, BTreeSet};

use sluice_checker::{CommitOutcome, FinalPolls, FinalRead, History, Op, PartitionKey, Report, SendOutcome};

pub const TOPIC: &str = "payments";
/// The consumer group of the group offset scenarios.
pub const GROUP: &str = "billing";
pub const NODES: [u32; 3] = [1, 2, 3];

pub fn key(partition: i32) -> PartitionKey {
    PartitionKey::new(TOPIC, partition)
}

pub fn send(
    process: u64,
    partition: i32,
    value: &str,
    outcome: SendOutcome,
    idempotent: bool,
    invoke_ms: u64,
    complete_ms: u64,
) -> Op {
    Op::Send {
        process,
        partition: key(partition),
        value: value.to_owned(),
        invoke_ms,
        complete_ms,
        outcome,
        idempotent,
        op_id: None,
    }
}

/// An idempotent send acknowledged at `offset`.
pub fn ok(process: u64, value: &str, offset: i64, invoke_ms: u64, complete_ms: u64) -> Op {
    send(process, 0, value, SendOutcome::Ok { offset }, true, invoke_ms, complete_ms)
}

pub fn records(pairs: &[(i64, &str)]) -> Vec<(i64, String)> {
    pairs.iter().map(|(offset, value)| (*offset, (*value).to_owned())).collect()
}

pub fn poll(
    process: u64,
    fetch_offset: i64,
    high_watermark: i64,
    pairs: &[(i64, &str)],
    invoke_ms: u64,
    complete_ms: u64,
) -> Op {
    Op::Poll {
        process,
        partition: key(0),
        fetch_offset,
        invoke_ms,
        complete_ms,
        high_watermark,
        records: records(pairs),
        op_id: None,
    }
}

pub fn seek(process: u64, offset: i64, at_ms: u64) -> Op {
    Op::Seek { process, partition: key(0), offset, at_ms }
}

/// An OffsetCommit of `payments/0` by a member of `group`.
pub fn commit(
    process: u64,
    group: &str,
    offset: i64,
    metadata: &str,
    outcome: CommitOutcome,
    invoke_ms: u64,
    complete_ms: u64,
) -> Op {
    Op::Commit {
        process,
        group: group.to_owned(),
        partition: key(0),
        offset,
        metadata: metadata.to_owned(),
        invoke_ms,
        complete_ms,
        outcome,
    }
}

/// An acknowledged OffsetCommit of `payments/0` by a member of `GROUP`.
pub fn commit_ok(process: u64, offset: i64, metadata: &str, invoke_ms: u64, complete_ms: u64) -> Op {
    commit(process, GROUP, offset, metadata, CommitOutcome::Ok, invoke_ms, complete_ms)
}

/// An OffsetFetch answer for `payments/0` of `group`: (offset, metadata), or None for -1.
pub fn fetch_committed(
    process: u64,
    group: &str,
    committed: Option<(i64, &str)>,
    invoke_ms: u64,
    complete_ms: u64,
) -> Op {
    Op::FetchCommitted {
        process,
        group: group.to_owned(),
        partition: key(0),
        invoke_ms,
        complete_ms,
        committed: committed.map(|(offset, metadata)| (offset, metadata.to_owned())),
    }
}

/// The same op on another partition of `payments`.
pub fn on_partition(mut op: Op, partition_index: i32) -> Op {
    match &mut op {
        Op::Send { partition, .. }
        | Op::Poll { partition, .. }
        | Op::Seek { partition, .. }
        | Op::Commit { partition, .. }
        | Op::FetchCommitted { partition, .. } => *partition = key(partition_index),
    }
    op
}

/// The same `Send` or `Poll` line, as a line of Jepsen operation `id`.
pub fn with_op_id(mut op: Op, id: u64) -> Op {
    match &mut op {
        Op::Send { op_id, .. } | Op::Poll { op_id, .. } => *op_id = Some(id),
        Op::Seek { .. } | Op::Commit { .. } | Op::FetchCommitted { .. } => panic!("only sends and polls have an op_id"),
    }
    op
}

/// The final-poll verdict for `payments/<partition>`.
pub fn final_polls(partition: i32, end_offset: i64, reached: bool) -> FinalPolls {
    FinalPolls { partition: key(partition), end_offset, reached }
}

pub fn final_read(node: u32, partition: i32, log_start: i64, high_watermark: i64, pairs: &[(i64, &str)]) -> FinalRead {
    FinalRead { node, partition: key(partition), high_watermark, log_start, records: records(pairs) }
}

/// The same committed log of partition 0 read from every node.
pub fn replicas(log_start: i64, high_watermark: i64, pairs: &[(i64, &str)]) -> Vec<FinalRead> {
    NODES.iter().map(|node| final_read(*node, 0, log_start, high_watermark, pairs)).collect()
}

/// The clean reference history for `payments/0`:
/// process 1 (idempotent) sends "a", "b", "c", acknowledged at 0, 1, 3; offset 2 is a control
/// batch (a Raft no-op), never returned to clients. Process 2 polls 0..2, then 3. Every replica
/// ends with high watermark 4.
pub fn base() -> History {
    History {
        ops: vec![
            ok(1, "a", 0, 10, 20),
            ok(1, "b", 1, 21, 30),
            ok(1, "c", 3, 31, 40),
            poll(2, 0, 2, &[(0, "a"), (1, "b")], 35, 36),
            poll(2, 2, 4, &[(3, "c")], 45, 46),
        ],
        final_reads: replicas(0, 4, &[(0, "a"), (1, "b"), (3, "c")]),
        ..History::default()
    }
}

/// The distinct checker names in a report.
pub fn names(report: &Report) -> BTreeSet<&'static str> {
    report.violations.iter().map(|v| v.checker).collect()
}

/// Asserts the report trips exactly `expected` checkers (and prints it otherwise).
pub fn assert_names(report: &Report, expected: &[&str]) {
    let expected: BTreeSet<&str> = expected.iter().copied().collect();
    assert_eq!(names(report), expected, "report:\n{report}");
    assert_eq!(report.is_valid(), expected.is_empty(), "report:\n{report}");
}

/// Asserts the report counts exactly these anomaly classes, with these counts.
pub fn assert_anomalies(report: &Report, expected: &[(&str, u64)]) {
    let expected: BTreeMap<String, u64> = expected.iter().map(|(class, n)| ((*class).to_owned(), *n)).collect();
    assert_eq!(report.stats.anomalies, expected, "report:\n{report}");
}

/// Asserts some violation of `checker` mentions every fragment.
pub fn assert_message(report: &Report, checker: &str, fragments: &[&str]) {
    let found = report.violations_of(checker).any(|v| fragments.iter().all(|fragment| v.message.contains(fragment)));
    assert!(found, "no {checker} violation mentions {fragments:?}; report:\n{report}");
}
