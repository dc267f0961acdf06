//! One hand-made history per anomaly, each caught by the right checker (and only the checkers
//! the anomaly necessarily implies) and counted under its anomaly class. Scenario names follow
//! Jepsen's kafka anomaly names (jepsen_tla.md §1.5) where one exists; dependency cycles (§1.6)
//! are in cycles.rs.

mod common;

use common::*;
use sluice_checker::*;

#[test]
fn clean_base_history_passes() {
    let report = check(&base());
    assert_names(&report, &[]);
    assert_anomalies(&report, &[]);
}

// Jepsen: inconsistent-offsets. Two consumers disagree about offset 1.
#[test]
fn offsets_unique_catches_two_values_polled_at_one_offset() {
    let mut history = base();
    history.ops.push(send(3, 0, "x", SendOutcome::Indeterminate, true, 50, 60));
    history.ops.push(poll(4, 0, 2, &[(0, "a"), (1, "x")], 61, 62));
    let report = check(&history);
    // The poll of "x" is also a dirty read: the final log holds "b" there.
    assert_names(&report, &[OFFSETS_UNIQUE, READS_BELOW_HIGH_WATERMARK]);
    assert_message(&report, OFFSETS_UNIQUE, &["payments/0 offset 1 holds 2 different values", "\"b\"", "\"x\""]);
    assert_anomalies(&report, &[(anomaly::INCONSISTENT_OFFSETS, 1), (anomaly::DIRTY_READ, 1)]);
}

#[test]
fn offsets_unique_catches_two_acks_at_one_offset() {
    let mut history = base();
    // A second leader acknowledged "x" at offset 3 too (a split brain); only "c" survived.
    history.ops.push(send(3, 0, "x", SendOutcome::Ok { offset: 3 }, false, 32, 39));
    let report = check(&history);
    assert_names(&report, &[OFFSETS_UNIQUE, NO_LOST_WRITE]);
    assert_message(&report, OFFSETS_UNIQUE, &["offset 3", "acknowledged to process 3 (op #5)"]);
    // "x" is missing from each of the three replicas.
    assert_anomalies(&report, &[(anomaly::INCONSISTENT_OFFSETS, 1), (anomaly::LOST_WRITE, 3)]);
}

// dst.md §5.3: committed prefixes identical across replicas.
#[test]
fn offsets_unique_catches_replicas_disagreeing_on_a_value() {
    let mut history = base();
    history.ops.push(send(3, 0, "x", SendOutcome::Indeterminate, false, 50, 60));
    history.final_reads[2] = final_read(3, 0, 0, 4, &[(0, "a"), (1, "x"), (3, "c")]);
    let report = check(&history);
    // Node 3 lost acknowledged "b", and process 2's poll of "b" is dirty as far as node 3 knows.
    assert_names(&report, &[OFFSETS_UNIQUE, NO_LOST_WRITE, READS_BELOW_HIGH_WATERMARK]);
    assert_message(&report, OFFSETS_UNIQUE, &["offset 1", "final log of node 3"]);
    assert_message(&report, NO_LOST_WRITE, &["node 3", "which holds \"x\" there"]);
    let expected = [(anomaly::INCONSISTENT_OFFSETS, 1), (anomaly::LOST_WRITE, 1), (anomaly::DIRTY_READ, 1)];
    assert_anomalies(&report, &expected);
}

#[test]
fn offsets_unique_catches_a_record_facing_a_hole_on_another_replica() {
    let mut history = base();
    // "d" (indeterminate) was committed at 4 on nodes 1 and 2; node 3 has a hole there.
    history.ops.push(send(3, 0, "d", SendOutcome::Indeterminate, true, 50, 60));
    let log = [(0, "a"), (1, "b"), (3, "c"), (4, "d")];
    history.final_reads = replicas(0, 5, &log);
    history.final_reads[2] = final_read(3, 0, 0, 5, &log[..3]);
    let report = check(&history);
    assert_names(&report, &[OFFSETS_UNIQUE]);
    assert_message(&report, OFFSETS_UNIQUE, &["offset 4 holds \"d\" on node 1 but no record on node 3"]);
    assert_anomalies(&report, &[(anomaly::REPLICA_DIVERGENCE, 2)]); // Nodes 1 and 2 each face node 3.
}

// Jepsen: lost-write + unseen, against the final log.
#[test]
fn no_lost_write_catches_an_acked_value_missing_from_the_final_log() {
    let mut history = base();
    history.ops.pop(); // Nobody polled "c".
    history.final_reads = replicas(0, 3, &[(0, "a"), (1, "b")]);
    let report = check(&history);
    assert_names(&report, &[NO_LOST_WRITE]);
    assert_eq!(report.violations.len(), NODES.len(), "one per replica:\n{report}");
    let expected = "NoLostWrite: payments/0 value \"c\" acknowledged at offset 3 is missing from the \
                    final log of node 1 (which holds offsets 0..3); sent by process 1 (op #2)";
    assert_eq!(report.violations[0].to_string(), expected);
    assert_anomalies(&report, &[(anomaly::LOST_WRITE, 3)]);
}

// Jepsen: lost-write. No final reads; offset 3 was polled but acknowledged "b" at 1 never was.
#[test]
fn no_lost_write_catches_jepsen_lost_write_without_final_reads() {
    let history = History {
        ops: vec![
            ok(1, "a", 0, 10, 20),
            ok(1, "b", 1, 21, 30),
            ok(1, "c", 3, 31, 40),
            poll(2, 0, 4, &[(0, "a"), (3, "c")], 45, 46),
        ],
        final_reads: vec![],
        ..History::default()
    };
    let report = check(&history);
    assert_names(&report, &[NO_LOST_WRITE]);
    assert_message(&report, NO_LOST_WRITE, &["\"b\" acknowledged at offset 1 was never read, though offset 3 was"]);
    assert_anomalies(&report, &[(anomaly::LOST_WRITE, 1)]);
}

// Jepsen: duplicate, with the idempotent producer (KIP-98).
#[test]
fn no_duplicate_catches_an_idempotent_value_at_two_offsets() {
    let mut history = base();
    history.final_reads = replicas(0, 5, &[(0, "a"), (1, "b"), (3, "c"), (4, "b")]);
    let report = check(&history);
    assert_names(&report, &[NO_DUPLICATE]);
    assert_message(&report, NO_DUPLICATE, &["value \"b\" from idempotent process 1", "at 2 offsets: 1 (", "4 ("]);
    assert_eq!(report.stats.duplicates_allowed, 0);
    assert_anomalies(&report, &[(anomaly::DUPLICATE, 1)]);
}

// Jepsen: nonmonotonic-poll (across polls, no seek between).
#[test]
fn poll_monotonic_catches_a_consumer_going_backwards() {
    let mut history = base();
    history.ops[4] = poll(2, 2, 4, &[(1, "b"), (3, "c")], 45, 46);
    let report = check(&history);
    assert_names(&report, &[POLL_MONOTONIC]);
    assert_message(&report, POLL_MONOTONIC, &["returned offset 1 after op #3 had returned up to offset 1"]);
    // Also below its own fetch offset (2).
    assert_anomalies(&report, &[(anomaly::NONMONOTONIC_POLL, 2)]);
}

// Jepsen: poll-skip. The second poll starts past "b".
#[test]
fn poll_monotonic_catches_a_skip_between_polls() {
    let mut history = base();
    history.ops[3] = poll(2, 0, 2, &[(0, "a")], 35, 36);
    let report = check(&history);
    assert_names(&report, &[POLL_MONOTONIC]);
    assert_message(&report, POLL_MONOTONIC, &["skipped offsets 1..3", "offset 1 holds data record \"b\""]);
    assert_anomalies(&report, &[(anomaly::POLL_SKIP, 1)]);
}

// Jepsen: int-poll-skip.
#[test]
fn poll_monotonic_catches_a_skip_within_one_poll() {
    let mut history = base();
    history.ops.truncate(3);
    history.ops.push(poll(2, 0, 4, &[(0, "a"), (3, "c")], 45, 46));
    let report = check(&history);
    assert_names(&report, &[POLL_MONOTONIC]);
    assert_message(&report, POLL_MONOTONIC, &["skipped offsets 1..3 within op #3 (offset 0 then 3)"]);
    assert_anomalies(&report, &[(anomaly::INT_POLL_SKIP, 1)]);
}

// Jepsen: int-poll-skip between two poll mops of one op (two `Poll` lines of one op_id).
#[test]
fn poll_monotonic_catches_a_skip_between_lines_of_one_poll_op() {
    let mut history = base();
    history.ops[3] = with_op_id(poll(2, 0, 2, &[(0, "a")], 35, 36), 7);
    history.ops[4] = with_op_id(poll(2, 2, 4, &[(3, "c")], 35, 36), 7);
    let report = check(&history);
    assert_names(&report, &[POLL_MONOTONIC]);
    assert_message(&report, POLL_MONOTONIC, &["skipped offsets 1..3 between op #3", "holds data record \"b\""]);
    assert_anomalies(&report, &[(anomaly::INT_POLL_SKIP, 1)]);
}

#[test]
fn poll_monotonic_catches_a_skip_past_the_fetch_offset() {
    let mut history = base();
    history.ops[3] = poll(2, 0, 2, &[(1, "b")], 35, 36);
    let report = check(&history);
    assert_names(&report, &[POLL_MONOTONIC]);
    assert_message(&report, POLL_MONOTONIC, &["skipped offsets 0..1 in op #3 (fetched from offset 0, first offset 1)"]);
    assert_anomalies(&report, &[(anomaly::POLL_SKIP, 1)]);
}

// Jepsen: int-nonmonotonic-poll.
#[test]
fn poll_monotonic_catches_offsets_out_of_order_within_one_poll() {
    let mut history = base();
    history.ops[3] = poll(2, 0, 2, &[(1, "b"), (0, "a")], 35, 36);
    let report = check(&history);
    // Reading 1 before 0 also skips 0 (from the fetch offset) and 1 (the cursor is after 0).
    assert_names(&report, &[POLL_MONOTONIC]);
    assert_message(&report, POLL_MONOTONIC, &["returned offset 0 after offset 1"]);
    assert_anomalies(&report, &[(anomaly::INT_NONMONOTONIC_POLL, 1), (anomaly::POLL_SKIP, 2)]);
}

#[test]
fn poll_monotonic_catches_a_record_below_the_fetch_offset() {
    let mut history = base();
    history.ops[4] = poll(2, 3, 4, &[(1, "b"), (3, "c")], 45, 46);
    let report = check(&history);
    assert_names(&report, &[POLL_MONOTONIC]);
    assert_message(&report, POLL_MONOTONIC, &["fetched from offset 3 but returned offset 1"]);
    // Below its own fetch offset, and below where op #3 left the consumer.
    assert_anomalies(&report, &[(anomaly::NONMONOTONIC_POLL, 2)]);
}

#[test]
fn reads_below_high_watermark_catches_a_read_at_the_high_watermark() {
    let mut history = base();
    history.ops[4] = poll(2, 2, 3, &[(3, "c")], 45, 46);
    let report = check(&history);
    assert_names(&report, &[READS_BELOW_HIGH_WATERMARK]);
    assert_message(&report, READS_BELOW_HIGH_WATERMARK, &["read \"c\" at offset 3, at or above its high watermark 3"]);
    assert_anomalies(&report, &[(anomaly::READ_ABOVE_HIGH_WATERMARK, 1)]);
}

// dst.md §5.1.6 / KIP-101: a consumer read an uncommitted record that was later truncated.
#[test]
fn reads_below_high_watermark_catches_a_dirty_read() {
    let mut history = base();
    history.ops.push(send(3, 0, "x", SendOutcome::Indeterminate, true, 50, 60));
    history.ops.push(poll(2, 4, 5, &[(4, "x")], 55, 56));
    let report = check(&history);
    // The broker also advertised a high watermark (5) the cluster never committed.
    assert_names(&report, &[READS_BELOW_HIGH_WATERMARK, HIGH_WATERMARK_MONOTONIC]);
    assert_message(
        &report,
        READS_BELOW_HIGH_WATERMARK,
        &["read \"x\" at offset 4, but no replica's final log reaches it", "(dirty read)"],
    );
    assert_anomalies(&report, &[(anomaly::DIRTY_READ, 1), (anomaly::HIGH_WATERMARK_ABOVE_FINAL, 1)]);
}

// Jepsen: nonmonotonic-send. Pipelined idempotent sends landed in reverse order.
#[test]
fn send_monotonic_catches_idempotent_sends_reordered() {
    let history = History {
        ops: vec![ok(1, "a", 1, 10, 30), ok(1, "b", 0, 11, 25)],
        final_reads: replicas(0, 2, &[(0, "b"), (1, "a")]),
        ..History::default()
    };
    let report = check(&history);
    assert_names(&report, &[SEND_MONOTONIC]);
    assert_message(
        &report,
        SEND_MONOTONIC,
        &["process 1 sent \"a\" (op #0, invoked at 10 ms) before \"b\"", "offsets 1 and 0"],
    );
    // The two sends overlap in time, so the dependency graph has no process edge between them.
    assert_anomalies(&report, &[(anomaly::NONMONOTONIC_SEND, 1)]);
}

// Jepsen: int-nonmonotonic-send. One send op of two records to one partition (one op_id).
#[test]
fn send_monotonic_catches_records_of_one_send_op_reordered() {
    let history = History {
        ops: vec![with_op_id(ok(1, "a", 1, 10, 30), 7), with_op_id(ok(1, "b", 0, 10, 30), 7)],
        final_reads: replicas(0, 2, &[(0, "b"), (1, "a")]),
        ..History::default()
    };
    let report = check(&history);
    assert_names(&report, &[SEND_MONOTONIC]);
    assert_message(&report, SEND_MONOTONIC, &["sent \"a\" (op #0, invoked at 10 ms) before \"b\" (op #1"]);
    assert_anomalies(&report, &[(anomaly::INT_NONMONOTONIC_SEND, 1)]);
}

// jepsen_tla.md §1.8: acknowledged before invoked => lower offset. The same order is a G0-realtime
// cycle of the dependency graph (§1.8: "equivalent to no G0-realtime over single-mop sends").
#[test]
fn send_realtime_order_catches_a_later_send_at_a_lower_offset() {
    let history = History {
        ops: vec![ok(1, "a", 1, 0, 5), ok(2, "b", 0, 6, 9)],
        final_reads: replicas(0, 2, &[(0, "b"), (1, "a")]),
        ..History::default()
    };
    let report = check(&history);
    assert_names(&report, &[SEND_REALTIME_ORDER, DEPENDENCY_CYCLE]);
    assert_message(
        &report,
        SEND_REALTIME_ORDER,
        &["\"a\" was acknowledged at offset 1 at 5 ms", "\"b\" got the lower offset 0"],
    );
    assert_anomalies(&report, &[(anomaly::REALTIME_SEND_ORDER, 1), (anomaly::G0_REALTIME, 1)]);
}

#[test]
fn high_watermark_monotonic_catches_a_client_seeing_it_decrease() {
    let mut history = base();
    history.ops.push(seek(2, 0, 50));
    history.ops.push(poll(2, 0, 2, &[(0, "a")], 51, 52));
    let report = check(&history);
    assert_names(&report, &[HIGH_WATERMARK_MONOTONIC]);
    assert_message(
        &report,
        HIGH_WATERMARK_MONOTONIC,
        &["saw high watermark 4 in op #4 (completed at 46 ms), then 2 in op #6"],
    );
    assert_anomalies(&report, &[(anomaly::NONMONOTONIC_HIGH_WATERMARK, 1)]);
}

#[test]
fn high_watermark_monotonic_catches_a_high_watermark_above_the_final_one() {
    let mut history = base();
    history.ops.push(poll(2, 4, 9, &[], 50, 51));
    let report = check(&history);
    assert_names(&report, &[HIGH_WATERMARK_MONOTONIC]);
    assert_message(&report, HIGH_WATERMARK_MONOTONIC, &["saw high watermark 9 in op #5, above the highest final one"]);
    assert_anomalies(&report, &[(anomaly::HIGH_WATERMARK_ABOVE_FINAL, 1)]);
}

// Jepsen: G1a. A definitely-failed send is in the committed log.
#[test]
fn aborted_read_catches_a_failed_send_in_the_final_log() {
    let mut history = base();
    history.ops.push(send(3, 0, "x", SendOutcome::Failed, true, 50, 60));
    history.final_reads = replicas(0, 5, &[(0, "a"), (1, "b"), (3, "c"), (4, "x")]);
    let report = check(&history);
    assert_names(&report, &[ABORTED_READ]);
    assert_message(
        &report,
        ABORTED_READ,
        &["value \"x\" whose send definitely failed (process 3, op #5) is visible at offset 4"],
    );
    assert_anomalies(&report, &[(anomaly::G1A, 1)]);
}

#[test]
fn aborted_read_catches_a_failed_send_seen_by_a_poll() {
    let mut history = base();
    history.ops.push(send(3, 0, "x", SendOutcome::Failed, false, 50, 60));
    history.ops.push(poll(2, 4, 4, &[(4, "x")], 55, 56));
    let report = check(&history);
    assert_names(&report, &[ABORTED_READ, READS_BELOW_HIGH_WATERMARK]);
    assert_message(&report, ABORTED_READ, &["polled by process 2 (op #6)"]);
    // Offset 4 is at the poll's own high watermark, and beyond every final log.
    let expected = [(anomaly::G1A, 1), (anomaly::READ_ABOVE_HIGH_WATERMARK, 1), (anomaly::DIRTY_READ, 1)];
    assert_anomalies(&report, &expected);
}

#[test]
fn no_phantom_read_catches_a_value_nobody_sent() {
    let mut history = base();
    history.final_reads = replicas(0, 5, &[(0, "a"), (1, "b"), (3, "c"), (4, "garbage")]);
    let report = check(&history);
    assert_names(&report, &[NO_PHANTOM_READ]);
    assert_message(&report, NO_PHANTOM_READ, &["offset 4 holds \"garbage\"", "which no send produced"]);
    assert_anomalies(&report, &[(anomaly::PHANTOM_READ, 1)]);
}

#[test]
fn no_phantom_read_catches_a_value_in_the_wrong_partition() {
    let mut history = base();
    history.ops.push(send(3, 0, "x", SendOutcome::Indeterminate, true, 50, 60));
    history.final_reads.extend(NODES.iter().map(|node| final_read(*node, 1, 0, 1, &[(0, "x")])));
    let report = check(&history);
    assert_names(&report, &[NO_PHANTOM_READ]);
    assert_message(&report, NO_PHANTOM_READ, &["payments/1 offset 0 holds \"x\"", "sent to payments/0"]);
    assert_anomalies(&report, &[(anomaly::PHANTOM_READ, 1)]);
}

// Jepsen: unseen (jepsen_tla.md §1.5.6). The final polls reached payments/0's log end, yet
// nobody ever polled acknowledged "c" (which every replica still holds).
#[test]
fn unseen_catches_an_acked_value_the_final_polls_never_returned() {
    let mut history = base();
    history.ops.pop();
    history.final_polls.push(final_polls(0, 4, true));
    let report = check(&history);
    assert_names(&report, &[UNSEEN]);
    assert_message(
        &report,
        UNSEEN,
        &["payments/0", "1 acknowledged values were never polled: \"c\" (acknowledged at 3)"],
    );
    assert_anomalies(&report, &[(anomaly::UNSEEN, 1)]);
    assert_eq!(report.stats.final_polls_unreached, 0);
}

// One violation per partition, naming a bounded sample; every unseen value is counted.
#[test]
fn unseen_counts_every_value_and_lists_a_sample() {
    const SENDS: u64 = 20;
    let mut history = History::default();
    for i in 0..SENDS {
        history.ops.push(ok(1, &format!("v{i}"), i64::try_from(i).unwrap(), 2 * i, 2 * i + 1));
    }
    history.final_polls.push(final_polls(0, 20, true));
    let report = check(&history);
    assert_names(&report, &[UNSEEN]);
    assert_eq!(report.violations.len(), 1, "{report}");
    assert_message(&report, UNSEEN, &["20 acknowledged values", "\"v7\" (acknowledged at 7) and 12 more"]);
    assert_anomalies(&report, &[(anomaly::UNSEEN, SENDS)]);
}

// A deadline hit in the final phase leaves unseen unknown: counted, not a violation.
#[test]
fn unseen_does_not_judge_a_partition_the_final_polls_never_reached() {
    let mut history = base();
    history.ops.pop();
    history.final_polls.push(final_polls(0, 4, false));
    let report = check(&history);
    assert_names(&report, &[]);
    assert_eq!(report.stats.final_polls_unreached, 1);
    assert_eq!(report.stats.final_polls, 1);
}
