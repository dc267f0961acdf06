//! `GroupOffsetsDurable`: consumer-group committed offsets as registers (Herlihy & Wing 1990,
//! as Jepsen's register checkers apply it to unique values) whose acknowledged writes are
//! durable (Kafka protocol guide, OffsetCommit). One clean history across a rebalance and a
//! coordinator failover, then one perturbation per anomaly, then the legal look-alikes.

mod common;

use common::*;
use sluice_checker::*;

/// `base()` plus group `billing` consuming `payments/0` and `payments/1`:
/// * generation 1: process 1 owns both partitions, commits offset 2 of partition 0 and offset 1
///   of partition 1, and reads partition 0 back;
/// * rebalance: process 1's late commit of offset 3 is fenced (ILLEGAL_GENERATION);
/// * generation 2: process 2 owns partition 0, reads offset 2, commits 3;
/// * coordinator failover: process 2's commit of 4 times out (NOT_COORDINATOR); the new
///   coordinator first answers 3, then 4 once the in-flight write lands; process 2 commits 5.
///
/// Offset 5 is past the log's high watermark (4), and partition 1 has no final read: group
/// offsets are not log accesses, so the log checkers ignore them.
fn rebalance() -> History {
    let mut history = base();
    history.ops.extend([
        commit_ok(1, 2, "g1-p1-0-2", 10, 12),                  // op #5
        on_partition(commit_ok(1, 1, "g1-p1-1-1", 10, 12), 1), // op #6
        fetch_committed(1, GROUP, Some((2, "g1-p1-0-2")), 13, 14),
        commit(1, GROUP, 3, "g1-p1-0-3", CommitOutcome::Failed, 20, 21), // op #8
        fetch_committed(2, GROUP, Some((2, "g1-p1-0-2")), 25, 26),
        commit_ok(2, 3, "g2-p2-0-3", 30, 33), // op #10
        commit(2, GROUP, 4, "g2-p2-0-4", CommitOutcome::Indeterminate, 40, 50), // op #11
        fetch_committed(2, GROUP, Some((3, "g2-p2-0-3")), 52, 53),
        fetch_committed(2, GROUP, Some((4, "g2-p2-0-4")), 55, 56),
        commit_ok(2, 5, "g2-p2-0-5", 60, 62), // op #14
        fetch_committed(2, GROUP, Some((5, "g2-p2-0-5")), 70, 71),
        on_partition(fetch_committed(1, GROUP, Some((1, "g1-p1-1-1")), 70, 71), 1),
    ]);
    history
}

/// `rebalance()` plus one more read of `payments/0` by process 3 at 80..81 ms (op #17).
fn rebalance_then_read(committed: Option<(i64, &str)>) -> History {
    let mut history = rebalance();
    history.ops.push(fetch_committed(3, GROUP, committed, 80, 81));
    history
}

#[test]
fn clean_rebalance_and_failover_passes() {
    let report = check(&rebalance());
    assert_names(&report, &[]);
    assert_eq!((report.stats.commits, report.stats.committed_reads), (6, 6));
    assert_eq!(report.stats.partitions, 1, "group offsets name no log partition");
    assert_eq!(report.stats.sends_ok + report.stats.polls, 5, "the log ops are counted as before");
}

#[test]
fn a_commit_nobody_made_is_caught() {
    let report = check(&rebalance_then_read(Some((5, "nobody"))));
    assert_names(&report, &[GROUP_OFFSETS_DURABLE]);
    assert_message(
        &report,
        GROUP_OFFSETS_DURABLE,
        &[
            "group \"billing\" payments/0: process 3 (op #17, 80..81 ms) read offset 5 with metadata \"nobody\", which no commit made",
        ],
    );
}

#[test]
fn a_commit_of_another_group_is_caught() {
    let mut history = rebalance();
    history.ops.push(commit(3, "audit", 5, "audit-5", CommitOutcome::Ok, 75, 76));
    history.ops.push(fetch_committed(3, GROUP, Some((5, "audit-5")), 80, 81));
    let report = check(&history);
    assert_names(&report, &[GROUP_OFFSETS_DURABLE]);
    assert_message(
        &report,
        GROUP_OFFSETS_DURABLE,
        &["which is the commit \"audit-5\"", "of group \"audit\" payments/0"],
    );
}

#[test]
fn a_commit_of_another_partition_is_caught() {
    let report = check(&rebalance_then_read(Some((1, "g1-p1-1-1"))));
    assert_names(&report, &[GROUP_OFFSETS_DURABLE]);
    assert_message(
        &report,
        GROUP_OFFSETS_DURABLE,
        &["metadata \"g1-p1-1-1\", which is the commit \"g1-p1-1-1\"", "of group \"billing\" payments/1"],
    );
}

#[test]
fn an_offset_other_than_the_one_committed_is_caught() {
    let report = check(&rebalance_then_read(Some((4, "g2-p2-0-5"))));
    assert_names(&report, &[GROUP_OFFSETS_DURABLE]);
    assert_message(
        &report,
        GROUP_OFFSETS_DURABLE,
        &[
            "read offset 4 with metadata \"g2-p2-0-5\", but that is the commit \"g2-p2-0-5\" of offset 5 by process 2 (op #14, 60..62 ms, Ok)",
        ],
    );
}

// A fencing error is answered before anything is written (Kafka: validateOffsetCommit).
#[test]
fn a_refused_commit_made_visible_is_caught() {
    let mut history = rebalance();
    history.ops.push(fetch_committed(3, GROUP, Some((3, "g1-p1-0-3")), 22, 23));
    let report = check(&history);
    assert_names(&report, &[GROUP_OFFSETS_DURABLE]);
    assert_eq!(report.violations.len(), 1, "report:\n{report}");
    assert_message(
        &report,
        GROUP_OFFSETS_DURABLE,
        &["read the commit \"g1-p1-0-3\"", "Failed), which the coordinator refused"],
    );
}

#[test]
fn a_read_from_the_future_is_caught() {
    let mut history = rebalance();
    history.ops.push(fetch_committed(3, GROUP, Some((9, "later-9")), 80, 81));
    history.ops.push(commit_ok(3, 9, "later-9", 90, 91)); // op #18
    let report = check(&history);
    assert_names(&report, &[GROUP_OFFSETS_DURABLE]);
    assert_eq!(report.violations.len(), 1, "report:\n{report}");
    assert_message(
        &report,
        GROUP_OFFSETS_DURABLE,
        &[
            "(op #17, 80..81 ms) read the commit \"later-9\"",
            "(op #18, 90..91 ms, Ok), invoked after the read completed",
        ],
    );
}

// The new coordinator loaded an older offset: "g2-p2-0-5" was acknowledged at 62 ms, after
// "g2-p2-0-3" completed and before the read began.
#[test]
fn a_stale_read_after_a_newer_acknowledged_commit_is_caught() {
    let report = check(&rebalance_then_read(Some((3, "g2-p2-0-3"))));
    assert_names(&report, &[GROUP_OFFSETS_DURABLE]);
    assert_message(
        &report,
        GROUP_OFFSETS_DURABLE,
        &[
            "process 3 (op #17, 80..81 ms) read the commit \"g2-p2-0-3\" of offset 3 by process 2 (op #10, 30..33 ms, Ok)",
            "but the commit \"g2-p2-0-5\" of offset 5 by process 2 (op #14, 60..62 ms, Ok)",
            "(stale read)",
        ],
    );
}

#[test]
fn no_offset_after_an_acknowledged_commit_is_caught() {
    let report = check(&rebalance_then_read(None));
    assert_names(&report, &[GROUP_OFFSETS_DURABLE]);
    assert_message(
        &report,
        GROUP_OFFSETS_DURABLE,
        &[
            "(op #17, 80..81 ms) found no committed offset, but the commit \"g2-p2-0-5\"",
            "(3 acknowledged commits were): an acknowledged commit was lost",
        ],
    );
}

// The NOT_COORDINATOR commit of 4 may land after the acknowledged commit of 5 and overwrite it.
#[test]
fn an_indeterminate_commit_seen_late_is_fine() {
    let report = check(&rebalance_then_read(Some((4, "g2-p2-0-4"))));
    assert_names(&report, &[]);
}

// Neither commit wholly precedes the other, so either may be the last; reads are not judged
// against one another.
#[test]
fn concurrent_commits_may_be_read_in_either_order() {
    let mut history = rebalance();
    history.ops.push(commit_ok(3, 10, "x", 80, 90));
    history.ops.push(commit_ok(4, 11, "y", 85, 95));
    history.ops.push(fetch_committed(5, GROUP, Some((10, "x")), 100, 101));
    history.ops.push(fetch_committed(5, GROUP, Some((11, "y")), 102, 103));
    history.ops.push(fetch_committed(6, GROUP, Some((10, "x")), 104, 105));
    assert_names(&check(&history), &[]);
}

// Real-time order is strict: a commit completing at the very millisecond a read begins, or one
// still in flight, need not be visible yet.
#[test]
fn reads_overlapping_a_commit_may_miss_it() {
    let history = History {
        ops: vec![
            fetch_committed(2, GROUP, None, 11, 12),
            commit_ok(1, 2, "first", 10, 12),
            fetch_committed(2, GROUP, None, 12, 13),
            commit_ok(1, 3, "second", 20, 30),
            fetch_committed(2, GROUP, Some((2, "first")), 25, 26),
            fetch_committed(2, GROUP, Some((2, "first")), 30, 31),
            fetch_committed(2, GROUP, Some((3, "second")), 31, 32),
            fetch_committed(2, "fresh", None, 40, 41), // Another group has no offset yet.
        ],
        final_reads: vec![],
        ..History::default()
    };
    assert_names(&check(&history), &[]);
}

#[test]
fn group_offset_harness_errors_are_reported() {
    let mut history = rebalance();
    history.ops.push(commit_ok(3, 7, "g2-p2-0-5", 80, 81)); // Metadata used twice.
    history.ops.push(commit_ok(3, 8, "backwards", 90, 89)); // Completes before it is invoked.
    history.ops.push(commit_ok(3, -2, "negative", 91, 92));
    history.ops.push(fetch_committed(3, GROUP, Some((-1, "minus-one")), 93, 94));
    history.ops.push(fetch_committed(3, GROUP, None, 96, 95));
    let report = check(&history);
    assert!(names(&report).contains(HARNESS_ERROR), "report:\n{report}");
    assert_message(&report, HARNESS_ERROR, &["commit metadata \"g2-p2-0-5\" was used 2 times (ops [14, 17])"]);
    assert_message(
        &report,
        HARNESS_ERROR,
        &["op #18", "commit of group \"billing\" completes at 89 ms before invoke at 90 ms"],
    );
    assert_message(&report, HARNESS_ERROR, &["op #19", "commits negative offset -2"]);
    assert_message(&report, HARNESS_ERROR, &["op #20", "fetch of group \"billing\" returned negative offset -1"]);
    assert_message(
        &report,
        HARNESS_ERROR,
        &["op #21", "fetch of group \"billing\" completes at 95 ms before invoke at 96 ms"],
    );
}

#[test]
fn group_offset_violations_beyond_the_cap_are_counted_not_listed() {
    let mut history = History { ops: vec![commit_ok(1, 0, "only", 0, 1)], final_reads: vec![], ..History::default() };
    let count = VIOLATIONS_PER_CHECKER_MAX + 5;
    for i in 0..count {
        history.ops.push(fetch_committed(2, GROUP, None, 10 + i, 10 + i));
    }
    let report = check(&history);
    assert_names(&report, &[GROUP_OFFSETS_DURABLE]);
    assert_eq!(u64::try_from(report.violations.len()).unwrap(), VIOLATIONS_PER_CHECKER_MAX);
    assert_eq!(report.stats.violations_suppressed, 5);
}

#[test]
fn group_offset_report_is_deterministic_and_last_in_order() {
    let mut history = rebalance_then_read(Some((3, "g2-p2-0-3")));
    history.ops.push(send(3, 0, "x", SendOutcome::Failed, true, 90, 91));
    history.ops.push(poll(2, 4, 4, &[(4, "x")], 92, 93)); // AbortedRead and a dirty read.
    history.ops.push(on_partition(fetch_committed(3, GROUP, None, 94, 95), 1));
    let first = check(&history);
    assert_eq!(first, check(&history.clone()));
    assert_names(&first, &[ABORTED_READ, READS_BELOW_HIGH_WATERMARK, GROUP_OFFSETS_DURABLE]);
    assert_eq!(first.violations.last().map(|v| v.checker), Some(GROUP_OFFSETS_DURABLE), "report:\n{first}");
    // Registers are judged in (group, partition) order: payments/0 before payments/1.
    let group_messages: Vec<&str> = first.violations_of(GROUP_OFFSETS_DURABLE).map(|v| v.message.as_str()).collect();
    assert_eq!(group_messages.len(), 2, "report:\n{first}");
    assert!(group_messages[0].contains("payments/0") && group_messages[1].contains("payments/1"), "{group_messages:?}");
}
