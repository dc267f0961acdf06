//! Histories that look suspicious but are legal Kafka behaviour (and must pass), plus the
//! checker's own bookkeeping: stats, the violation cap, determinism and report order.

mod common;

use std::collections::BTreeMap;

use common::*;
use sluice_checker::*;

#[test]
fn empty_history_passes() {
    let report = check(&History::default());
    assert_names(&report, &[]);
    assert_eq!(report.stats, Stats::default());
}

#[test]
fn stats_count_what_the_history_holds() {
    let mut history = base();
    history.ops.push(send(3, 0, "x", SendOutcome::Failed, true, 50, 60));
    history.ops.push(send(3, 0, "y", SendOutcome::Indeterminate, true, 61, 70));
    history.ops.push(seek(2, 0, 71));
    let kill = |phase| NemesisEvent { at_ms: 41, f: "kill".to_owned(), phase, value: serde_json::json!([2]) };
    history.nemesis = vec![kill(NemesisPhase::Start), kill(NemesisPhase::Stop)];
    // Partition 0's final polls reached its end (and saw every acknowledged value); partition
    // 1's never did.
    history.final_polls = vec![final_polls(0, 4, true), final_polls(1, 0, false)];
    let report = check(&history);
    assert_names(&report, &[]);
    let expected = Stats {
        sends_ok: 3,
        sends_failed: 1,
        sends_indeterminate: 1,
        polls: 2,
        seeks: 1,
        commits: 0,
        committed_reads: 0,
        records_read: 3,
        duplicates_allowed: 0,
        final_read_replicas: 3,
        partitions: 1,
        violations_suppressed: 0,
        anomalies: BTreeMap::new(),
        nemesis_events: 2,
        final_polls: 2,
        final_polls_unreached: 1,
        cycle_search_truncated: false,
    };
    assert_eq!(report.stats, expected);
}

// Every violation is counted under its class, listed or not (VIOLATIONS_PER_CHECKER_MAX).
#[test]
fn anomalies_count_suppressed_violations_too() {
    let count = VIOLATIONS_PER_CHECKER_MAX + 10;
    let mut history = History::default();
    for i in 0..count {
        let offset = i64::try_from(i).unwrap();
        history.ops.push(ok(1, &format!("v{i}"), offset, i * 2, i * 2 + 1));
    }
    history.final_reads.push(final_read(1, 0, 0, 0, &[]));
    let report = check(&history);
    let expected: BTreeMap<String, u64> = [(anomaly::LOST_WRITE.to_owned(), count)].into();
    assert_eq!(report.stats.anomalies, expected);
    assert_eq!(report.stats.anomaly_count(anomaly::LOST_WRITE), count);
    assert_eq!(report.stats.anomaly_count(anomaly::G0), 0);
}

// Control batches and Raft no-ops take offsets but are never returned (KIP-98).
#[test]
fn gap_over_a_control_batch_offset_is_fine() {
    let mut history = base();
    history.ops.truncate(3);
    history.ops.push(poll(2, 0, 4, &[(0, "a"), (1, "b"), (3, "c")], 45, 46));
    history.ops.push(poll(5, 2, 4, &[(3, "c")], 47, 48)); // Fetch offset 2 is the control batch.
    assert_names(&check(&history), &[]);
}

#[test]
fn duplicate_without_idempotence_is_allowed_and_counted() {
    let history = History {
        ops: vec![
            send(1, 0, "a", SendOutcome::Ok { offset: 1 }, false, 10, 30),
            poll(2, 0, 2, &[(0, "a"), (1, "a")], 31, 32),
        ],
        final_reads: replicas(0, 2, &[(0, "a"), (1, "a")]),
        ..History::default()
    };
    let report = check(&history);
    assert_names(&report, &[]);
    assert_eq!(report.stats.duplicates_allowed, 1);
}

#[test]
fn indeterminate_send_present_is_fine() {
    let mut history = base();
    history.ops.push(send(3, 0, "d", SendOutcome::Indeterminate, true, 50, 60));
    history.ops.push(poll(2, 4, 5, &[(4, "d")], 61, 62));
    history.final_reads = replicas(0, 5, &[(0, "a"), (1, "b"), (3, "c"), (4, "d")]);
    assert_names(&check(&history), &[]);
}

#[test]
fn indeterminate_send_absent_is_fine() {
    let mut history = base();
    history.ops.push(send(3, 0, "d", SendOutcome::Indeterminate, true, 50, 60));
    history.ops.push(send(3, 0, "e", SendOutcome::Failed, true, 61, 62));
    assert_names(&check(&history), &[]);
}

#[test]
fn seek_resets_poll_monotonicity() {
    let mut history = base();
    history.ops.push(seek(2, 0, 50));
    history.ops.push(poll(2, 0, 4, &[(0, "a"), (1, "b")], 51, 52));
    history.ops.push(seek(2, 3, 53));
    history.ops.push(poll(2, 3, 4, &[(3, "c")], 54, 55));
    assert_names(&check(&history), &[]);
}

#[test]
fn streams_of_different_processes_and_partitions_are_independent() {
    let mut history = base();
    // Process 5 starts mid-log (its first fetch is at 3); process 2 re-reading is another stream.
    history.ops.push(poll(5, 3, 4, &[(3, "c")], 50, 51));
    history.ops.push(send(1, 1, "p1", SendOutcome::Ok { offset: 0 }, true, 52, 53));
    history.final_reads.extend(NODES.iter().map(|node| final_read(*node, 1, 0, 1, &[(0, "p1")])));
    let report = check(&history);
    assert_names(&report, &[]);
    assert_eq!(report.stats.partitions, 2);
}

// Retention or DeleteRecords moved log start past acknowledged records: nothing to check there.
#[test]
fn records_below_log_start_are_not_lost() {
    let mut history = base();
    history.ops.push(seek(2, 0, 50));
    history.ops.push(poll(2, 0, 4, &[(3, "c")], 51, 52)); // The consumer was reset to log start.
    history.final_reads = replicas(2, 4, &[(3, "c")]);
    assert_names(&check(&history), &[]);
}

// A replica whose log does not yet reach an acknowledged offset fails NoLostWrite: the harness
// must read final logs only after every replica caught up.
#[test]
fn lagging_replica_is_a_lost_write() {
    let mut history = base();
    history.final_reads[1] = final_read(2, 0, 0, 2, &[(0, "a"), (1, "b")]);
    let report = check(&history);
    assert_names(&report, &[NO_LOST_WRITE]);
    assert_message(&report, NO_LOST_WRITE, &["missing from the final log of node 2 (which holds offsets 0..2)"]);
}

#[test]
fn high_watermark_may_drop_between_overlapping_polls() {
    let mut history = base();
    // Op 5 (44..47 ms) overlaps op 4 (45..46 ms): no real-time order between them.
    history.ops.push(poll(2, 4, 2, &[], 44, 47));
    assert_names(&check(&history), &[]);
}

#[test]
fn concurrent_sends_may_land_in_either_order() {
    let history = History {
        ops: vec![
            ok(1, "a", 1, 0, 10),
            ok(2, "b", 0, 5, 12),
            send(3, 0, "c", SendOutcome::Ok { offset: 2 }, false, 8, 9),
        ],
        final_reads: replicas(0, 3, &[(0, "b"), (1, "a"), (2, "c")]),
        ..History::default()
    };
    assert_names(&check(&history), &[]);
}

#[test]
fn non_idempotent_sends_may_reorder() {
    let history = History {
        ops: vec![
            send(1, 0, "a", SendOutcome::Ok { offset: 1 }, false, 10, 30),
            send(1, 0, "b", SendOutcome::Ok { offset: 0 }, false, 11, 25),
        ],
        final_reads: replicas(0, 2, &[(0, "b"), (1, "a")]),
        ..History::default()
    };
    assert_names(&check(&history), &[]);
}

#[test]
fn harness_errors_are_reported() {
    let mut history = base();
    history.ops.push(ok(4, "a", 5, 50, 60)); // "a" sent twice.
    history.ops.push(ok(4, "late", 6, 70, 69)); // Completes before it is invoked.
    history.ops.push(send(4, 7, "lonely", SendOutcome::Indeterminate, true, 71, 72)); // No final read.
    history.final_reads[2] = final_read(3, 0, 0, 4, &[(0, "a"), (1, "b"), (3, "c"), (4, "x")]);
    history.final_reads.push(final_read(1, 0, 0, 4, &[]));
    let report = check(&history);
    assert!(names(&report).contains(HARNESS_ERROR), "report:\n{report}");
    assert_message(&report, HARNESS_ERROR, &["value \"a\" was sent 2 times (ops [0, 5])"]);
    assert_message(&report, HARNESS_ERROR, &["op #6", "completes at 69 ms before invoke at 70 ms"]);
    assert_message(&report, HARNESS_ERROR, &["payments/7 has operations but no final read"]);
    assert_message(&report, HARNESS_ERROR, &["node 3: record \"x\" at offset 4 is outside the committed range 0..4"]);
    assert_message(&report, HARNESS_ERROR, &["payments/0 has two final reads from node 1"]);
}

#[test]
fn violations_beyond_the_cap_are_counted_not_listed() {
    let count = VIOLATIONS_PER_CHECKER_MAX + 10;
    let mut history = History::default();
    for i in 0..count {
        let offset = i64::try_from(i).unwrap();
        history.ops.push(ok(1, &format!("v{i}"), offset, i * 2, i * 2 + 1));
    }
    history.final_reads.push(final_read(1, 0, 0, 0, &[])); // Every acknowledged record is lost.
    let report = check(&history);
    assert_names(&report, &[NO_LOST_WRITE]);
    assert_eq!(u64::try_from(report.violations.len()).unwrap(), VIOLATIONS_PER_CHECKER_MAX);
    assert_eq!(report.stats.violations_suppressed, 10);
    assert!(report.to_string().contains("... and 10 more violations"));
}

#[test]
fn report_is_deterministic_and_grouped_by_checker() {
    let mut history = base();
    history.ops.push(send(3, 0, "x", SendOutcome::Failed, true, 50, 60));
    history.ops.push(poll(2, 4, 4, &[(4, "x")], 55, 56));
    history.final_reads = replicas(0, 3, &[(0, "a"), (1, "b")]);
    let first = check(&history);
    assert_eq!(first, check(&history.clone()));
    let ranks: Vec<usize> =
        first.violations.iter().map(|v| CHECKER_NAMES.iter().position(|name| *name == v.checker).unwrap()).collect();
    assert!(ranks.windows(2).all(|pair| pair[0] <= pair[1]), "report:\n{first}");
    assert!(names(&first).len() >= 3, "report:\n{first}");
}

#[test]
fn checker_names_are_the_documented_strings() {
    let expected = [
        "HarnessError",
        "OffsetsUnique",
        "NoLostWrite",
        "Unseen",
        "NoDuplicate",
        "AbortedRead",
        "NoPhantomRead",
        "PollMonotonic",
        "ReadsBelowHighWatermark",
        "SendMonotonic",
        "SendRealtimeOrder",
        "DependencyCycle",
        "HighWatermarkMonotonic",
        "GroupOffsetsDurable",
    ];
    assert_eq!(CHECKER_NAMES, expected);
}

#[test]
fn anomaly_classes_are_jepsens_names_in_a_fixed_order() {
    let expected = [
        "lost-write",
        "duplicate",
        "inconsistent-offsets",
        "poll-skip",
        "int-poll-skip",
        "nonmonotonic-poll",
        "int-nonmonotonic-poll",
        "nonmonotonic-send",
        "int-nonmonotonic-send",
        "unseen",
        "G0",
        "G0-process",
        "G0-realtime",
        "G1c",
        "G1c-process",
        "G1c-realtime",
        "G1a",
        "phantom-read",
        "realtime-send-order",
    ];
    assert_eq!(ANOMALY_CLASSES, expected);
}
