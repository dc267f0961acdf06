//! `DependencyCycle`: Elle's dependency cycles (jepsen_tla.md §1.6) caught and counted under
//! their class, and the legal histories that look cyclic at first sight but are not.
//!
//! G0 and G1c proper (without a process or realtime edge) have no test that catches them: with
//! single-record sends, ww edges form one chain per partition and wr edges end at polls, which
//! write nothing; only an op that sends several records could close such a cycle, and without
//! transactions such an op is not atomic, so the cycle would be legal (see
//! `multi_record_sends_landing_in_opposite_orders_are_not_a_cycle` and cycles.rs).

mod common;

use common::*;
use sluice_checker::*;

/// Jepsen-style ops 1..3: "a" acknowledged at offset 1 by process 1 over 0..20 ms, a poll that
/// returned it, and "b" acknowledged later at offset 0.
fn in_flight_history(reader: u64, read_ms: (u64, u64), second: (u64, u64, u64)) -> History {
    let (process, invoke_ms, complete_ms) = second;
    History {
        ops: vec![
            with_op_id(send(1, 0, "a", SendOutcome::Ok { offset: 1 }, false, 0, 20), 1),
            with_op_id(poll(reader, 1, 2, &[(1, "a")], read_ms.0, read_ms.1), 2),
            with_op_id(send(process, 0, "b", SendOutcome::Ok { offset: 0 }, false, invoke_ms, complete_ms), 3),
        ],
        final_reads: replicas(0, 2, &[(0, "b"), (1, "a")]),
        ..History::default()
    }
}

// A poll read "a" at offset 1 before "b" was invoked, so offset 0 was already taken; yet "b"
// got offset 0. No linear check sees it ("a" was acknowledged only after "b" was invoked).
#[test]
fn g1c_realtime_catches_a_send_landing_below_a_record_already_read() {
    let report = check(&in_flight_history(2, (6, 7), (3, 10, 12)));
    assert_names(&report, &[DEPENDENCY_CYCLE]);
    assert_eq!(
        report.violations[0].message,
        "G1c-realtime cycle of 3 ops: op #0 (op_id 1, send by process 1) -[wr payments/0 \"a\"@1]-> op #1 (op_id 2, \
         poll by process 2) -[realtime 7 ms < 10 ms]-> op #2 (op_id 3, send by process 3) -[ww payments/0 \"b\"@0 \
         < \"a\"@1]-> op #0 (op_id 1, send by process 1)"
    );
    assert_anomalies(&report, &[(anomaly::G1C_REALTIME, 1)]);
}

// The same, with the poll and the late send in one process, back to back in the same
// millisecond: only the process order relates them.
#[test]
fn g1c_process_catches_a_process_sending_below_what_it_read() {
    let report = check(&in_flight_history(2, (6, 10), (2, 10, 12)));
    assert_names(&report, &[DEPENDENCY_CYCLE]);
    assert_message(&report, DEPENDENCY_CYCLE, &["G1c-process cycle of 3 ops", "-[process 2]->"]);
    assert_anomalies(&report, &[(anomaly::G1C_PROCESS, 1)]);
}

/// Process 1 sends "a" (acknowledged at offset 1, 0..5 ms), then "b" (offset 0, 5..9 ms).
fn reversed_sends(op_ids: bool) -> History {
    let ops = vec![
        send(1, 0, "a", SendOutcome::Ok { offset: 1 }, false, 0, 5),
        send(1, 0, "b", SendOutcome::Ok { offset: 0 }, false, 5, 9),
    ];
    let ops = if op_ids { ops.into_iter().zip(1..).map(|(op, id)| with_op_id(op, id)).collect() } else { ops };
    History { ops, final_reads: replicas(0, 2, &[(0, "b"), (1, "a")]), ..History::default() }
}

// A Jepsen process's sends landed in reverse order (not idempotent, so SendMonotonic does not
// apply, and the first completed in the millisecond the second began, so neither does
// SendRealtimeOrder).
#[test]
fn g0_process_catches_a_process_whose_sends_landed_in_reverse() {
    let report = check(&reversed_sends(true));
    assert_names(&report, &[DEPENDENCY_CYCLE]);
    assert_message(
        &report,
        DEPENDENCY_CYCLE,
        &["G0-process cycle of 2 ops: op #0 (op_id 1, send by process 1) -[process 1]-> op #1 (op_id 2, send by \
           process 1) -[ww payments/0 \"b\"@0 < \"a\"@1]-> op #0"],
    );
    assert_anomalies(&report, &[(anomaly::G0_PROCESS, 1)]);
}

// Lines without op ids may come from a pipelined client (the format allows one: see
// send_monotonic_catches_idempotent_sends_reordered): whether "b" was invoked before "a"
// completed, inside millisecond 5, is unknown, so such lines get no process order.
#[test]
fn lines_without_op_ids_have_no_process_order() {
    assert_names(&check(&reversed_sends(false)), &[]);
}

// A process with op ids promises one op at a time; an overlap breaks the promise.
#[test]
fn overlapping_ops_of_a_process_with_op_ids_are_a_harness_error() {
    let mut history = reversed_sends(true);
    history.ops[1] = with_op_id(send(1, 0, "b", SendOutcome::Ok { offset: 0 }, false, 4, 9), 2);
    let report = check(&history);
    assert_names(&report, &[HARNESS_ERROR]);
    assert_message(
        &report,
        HARNESS_ERROR,
        &["process 1 invoked op_id 2 at 4 ms, before its op_id 1 completed at 5 ms"],
    );
}

// Ops are grouped by op_id: the poll op read two partitions (nothing, here), and the realtime
// order goes through it (transitively reduced: "a" precedes "b" through the poll op).
#[test]
fn g0_realtime_catches_sends_reordered_across_an_op_of_two_lines() {
    let history = History {
        ops: vec![
            with_op_id(send(1, 0, "a", SendOutcome::Ok { offset: 1 }, false, 0, 5), 1),
            with_op_id(on_partition(poll(2, 0, 1, &[], 6, 7), 1), 2),
            with_op_id(poll(2, 0, 2, &[], 6, 7), 2),
            with_op_id(send(3, 0, "b", SendOutcome::Ok { offset: 0 }, false, 8, 9), 3),
        ],
        final_reads: vec![],
        ..History::default()
    };
    let report = check(&history);
    assert_names(&report, &[SEND_REALTIME_ORDER, DEPENDENCY_CYCLE]);
    assert_eq!(
        report.violations_of(DEPENDENCY_CYCLE).map(|v| v.message.as_str()).collect::<Vec<_>>(),
        ["G0-realtime cycle of 3 ops: op #0 (op_id 1, send by process 1) -[realtime 5 ms < 6 ms]-> op #1 (op_id 2, \
          poll by process 2) -[realtime 7 ms < 8 ms]-> op #3 (op_id 3, send by process 3) -[ww payments/0 \"b\"@0 < \
          \"a\"@1]-> op #0 (op_id 1, send by process 1)"]
    );
    assert_anomalies(&report, &[(anomaly::G0_REALTIME, 1), (anomaly::REALTIME_SEND_ORDER, 1)]);
}

// A poll may return a record before its send is acknowledged (the ack is still on its way), and
// a later send may be acknowledged first: no realtime edge points back at the slow send.
#[test]
fn reading_a_record_before_its_ack_arrives_is_not_a_cycle() {
    let history = History {
        ops: vec![
            send(1, 0, "a", SendOutcome::Ok { offset: 0 }, false, 0, 100),
            poll(2, 0, 1, &[(0, "a")], 10, 11),
            send(3, 0, "b", SendOutcome::Ok { offset: 1 }, false, 20, 25),
            poll(2, 1, 2, &[(1, "b")], 30, 31),
        ],
        final_reads: replicas(0, 2, &[(0, "a"), (1, "b")]),
        ..History::default()
    };
    let report = check(&history);
    assert_names(&report, &[]);
    assert_anomalies(&report, &[]);
}

// An indeterminate send's record may land long after the op gave up, behind the process's next
// send: an :info op precedes nothing (Elle: never a process or realtime source).
#[test]
fn an_indeterminate_send_landing_after_the_next_one_is_not_a_cycle() {
    let history = History {
        ops: vec![
            send(1, 0, "x", SendOutcome::Indeterminate, false, 0, 10),
            send(1, 0, "y", SendOutcome::Ok { offset: 0 }, false, 11, 15),
            poll(2, 0, 2, &[(0, "y"), (1, "x")], 50, 51),
        ],
        final_reads: replicas(0, 2, &[(0, "y"), (1, "x")]),
        ..History::default()
    };
    assert_names(&check(&history), &[]);
}

// Without transactions a send op of two records is two appends: two such ops may land in
// opposite orders on two partitions. Elle's op-level graph calls that G0 (which Jepsen allows,
// jepsen_tla.md §1.7); the record-level graph knows it is legal.
#[test]
fn multi_record_sends_landing_in_opposite_orders_are_not_a_cycle() {
    let history = History {
        ops: vec![
            with_op_id(send(1, 0, "a0", SendOutcome::Ok { offset: 0 }, false, 0, 10), 1),
            with_op_id(send(1, 1, "a1", SendOutcome::Ok { offset: 1 }, false, 0, 10), 1),
            with_op_id(send(2, 0, "b0", SendOutcome::Ok { offset: 1 }, false, 0, 10), 2),
            with_op_id(send(2, 1, "b1", SendOutcome::Ok { offset: 0 }, false, 0, 10), 2),
        ],
        final_reads: vec![],
        ..History::default()
    };
    assert_names(&check(&history), &[]);
}

// The same on one partition: another producer's record between two of one op's records.
#[test]
fn another_send_between_the_records_of_one_op_is_not_a_cycle() {
    let history = History {
        ops: vec![
            with_op_id(ok(1, "a1", 0, 0, 10), 1),
            with_op_id(ok(1, "a2", 2, 0, 10), 1),
            with_op_id(ok(2, "b", 1, 0, 10), 2),
            with_op_id(poll(3, 0, 3, &[(0, "a1"), (1, "b"), (2, "a2")], 11, 12), 3),
        ],
        final_reads: replicas(0, 3, &[(0, "a1"), (1, "b"), (2, "a2")]),
        ..History::default()
    };
    assert_names(&check(&history), &[]);
}

// A Jepsen-style history (op ids, a poll op over two partitions, faults, final polls, no final
// reads) with nothing wrong: valid, and every anomaly count is zero.
#[test]
fn clean_jepsen_style_history_passes_with_zero_counts() {
    let history = History {
        ops: vec![
            with_op_id(ok(1, "a", 0, 0, 5), 1),
            with_op_id(send(1, 1, "b", SendOutcome::Ok { offset: 0 }, true, 6, 9), 2),
            with_op_id(ok(2, "c", 1, 7, 12), 3),
            with_op_id(poll(3, 0, 2, &[(0, "a"), (1, "c")], 15, 16), 4),
            with_op_id(on_partition(poll(3, 0, 1, &[(0, "b")], 15, 16), 1), 4),
            with_op_id(ok(1, "d", 2, 17, 20), 5),
            with_op_id(poll(3, 2, 3, &[(2, "d")], 21, 22), 6),
        ],
        final_reads: vec![],
        nemesis: vec![
            NemesisEvent {
                at_ms: 3,
                f: "start-partition".to_owned(),
                phase: NemesisPhase::Start,
                value: "majority".into(),
            },
            NemesisEvent { at_ms: 13, f: "stop-partition".to_owned(), phase: NemesisPhase::Stop, value: ().into() },
        ],
        final_polls: vec![final_polls(0, 3, true), final_polls(1, 1, true)],
    };
    let report = check(&history);
    assert_names(&report, &[]);
    for class in ANOMALY_CLASSES.iter().chain(&SLUICE_ANOMALY_CLASSES) {
        assert_eq!(report.stats.anomaly_count(class), 0, "{class}");
    }
    assert_eq!((report.stats.nemesis_events, report.stats.final_polls, report.stats.final_polls_unreached), (2, 2, 0));
    assert!(!report.stats.cycle_search_truncated);
}

/// A correct broker, simulated: every record is appended at one instant inside its send (an
/// indeterminate one possibly after it, or never), offsets follow append order, and a poll
/// returns the records appended before the instant it read. Clocks tick in microseconds and are
/// recorded in whole milliseconds, rounded down, as the simulator and the harness record them.
mod model {
    use super::*;

    pub const SEEDS_MAX: u64 = 300;
    const PARTITIONS: i32 = 2;
    const SEQUENTIAL_PRODUCERS: u64 = 3;
    const CONSUMERS: u64 = 2;
    const OPS_PER_PROCESS_MAX: u64 = 10;
    const OP_US_MAX: u64 = 4_000;
    const PAUSE_US_MAX: u64 = 1_500;
    const RECORDS_PER_POLL_MAX: usize = 3;

    /// splitmix64: a deterministic stream without a dependency.
    pub fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(state: &mut u64, n: u64) -> u64 {
        next(state) % n
    }

    fn ms(us: u64) -> u64 {
        us / 1_000
    }

    /// One send line before offsets are known: (op line, partition, append instant if appended).
    struct Record {
        line: Op,
        partition: i32,
        appended_us: Option<u64>,
    }

    /// Producers 1..=3 run one op at a time, with op ids, sending one or two records per op;
    /// producer 4 pipelines single-record sends without op ids (as a simulator client may);
    /// consumers 5 and 6 poll both partitions per op, with op ids.
    pub fn legal_history(state: &mut u64) -> History {
        let mut records: Vec<Record> = Vec::new();
        let mut op_id = 0;
        for process in 1..=SEQUENTIAL_PRODUCERS + 1 {
            let pipelined = process > SEQUENTIAL_PRODUCERS;
            let mut now_us = below(state, PAUSE_US_MAX);
            for _ in 0..1 + below(state, OPS_PER_PROCESS_MAX) {
                op_id += 1;
                let (invoke_us, complete_us) = (now_us, now_us + 2 + below(state, OP_US_MAX));
                let fate = below(state, 10); // 0..7 ok, 7..9 indeterminate, 9 failed.
                for r in 0..if pipelined { 1 } else { 1 + below(state, 2) } {
                    let partition = i32::try_from(below(state, 2)).expect("small");
                    let inside = invoke_us + 1 + below(state, complete_us - invoke_us - 1);
                    let (outcome, appended_us) = match fate {
                        0..7 => (SendOutcome::Ok { offset: -1 }, Some(inside)),
                        7..9 if below(state, 2) == 0 => (SendOutcome::Indeterminate, None),
                        7..9 => (SendOutcome::Indeterminate, Some(invoke_us + 1 + below(state, 3 * OP_US_MAX))),
                        _ => (SendOutcome::Failed, None),
                    };
                    let value = format!("p{process}-{op_id}-{r}");
                    let line = send(process, partition, &value, outcome, false, ms(invoke_us), ms(complete_us));
                    let line = if pipelined { line } else { with_op_id(line, op_id) };
                    records.push(Record { line, partition, appended_us });
                }
                now_us =
                    if pipelined { invoke_us + 1 + below(state, complete_us - invoke_us) } else { complete_us + 1 }
                        + below(state, PAUSE_US_MAX);
            }
        }
        // Offsets follow append order (values break ties between simultaneous appends).
        let mut logs: Vec<Vec<(u64, String)>> = vec![Vec::new(); PARTITIONS as usize];
        for record in &records {
            let (Some(at_us), Op::Send { value, .. }) = (record.appended_us, &record.line) else { continue };
            logs[record.partition as usize].push((at_us, value.clone()));
        }
        logs.iter_mut().for_each(|log| log.sort());
        let mut ops: Vec<(u64, Op)> = Vec::new();
        for mut record in records {
            let Op::Send { value, outcome, complete_ms, .. } = &mut record.line else { unreachable!("sends") };
            if let SendOutcome::Ok { offset } = outcome {
                let log = &logs[record.partition as usize];
                *offset = i64::try_from(log.iter().position(|(_, v)| v == value).expect("appended")).expect("small");
            }
            ops.push((*complete_ms, record.line));
        }
        for process in SEQUENTIAL_PRODUCERS + 2..SEQUENTIAL_PRODUCERS + 2 + CONSUMERS {
            let mut positions = [0_usize; PARTITIONS as usize];
            let mut now_us = below(state, PAUSE_US_MAX);
            for _ in 0..1 + below(state, 2 * OPS_PER_PROCESS_MAX) {
                op_id += 1;
                let (invoke_us, complete_us) = (now_us, now_us + 2 + below(state, OP_US_MAX));
                let read_us = invoke_us + 1 + below(state, complete_us - invoke_us - 1);
                for (partition, log) in logs.iter().enumerate() {
                    let high_watermark = log.iter().filter(|(at_us, _)| *at_us < read_us).count();
                    let from = positions[partition];
                    let to = high_watermark.min(from + RECORDS_PER_POLL_MAX);
                    let pairs: Vec<(i64, &str)> =
                        (from..to).map(|o| (i64::try_from(o).expect("small"), log[o].1.as_str())).collect();
                    let (fetch, hw) =
                        (i64::try_from(from).expect("small"), i64::try_from(high_watermark).expect("small"));
                    let line = poll(process, fetch, hw, &pairs, ms(invoke_us), ms(complete_us));
                    let partition = i32::try_from(partition).expect("small");
                    ops.push((ms(complete_us), with_op_id(on_partition(line, partition), op_id)));
                    positions[partition as usize] = to;
                }
                now_us = complete_us + 1 + below(state, PAUSE_US_MAX);
            }
        }
        ops.sort_by_key(|(complete_ms, _)| *complete_ms); // Recorded in completion order.
        let mut final_reads = Vec::new();
        for (partition, log) in logs.iter().enumerate() {
            let pairs: Vec<(i64, &str)> =
                log.iter().enumerate().map(|(o, (_, v))| (i64::try_from(o).expect("small"), v.as_str())).collect();
            let end = i64::try_from(log.len()).expect("small");
            let partition = i32::try_from(partition).expect("small");
            final_reads.extend(NODES.iter().map(|node| final_read(*node, partition, 0, end, &pairs)));
        }
        History { ops: ops.into_iter().map(|(_, op)| op).collect(), final_reads, ..History::default() }
    }
}

// The soundness claim of cycles.rs, exercised: whatever a correct broker does concurrently
// (reads of records not yet acknowledged, indeterminate records landing late, two-record ops
// interleaving, pipelined producers), no check finds anything.
#[test]
fn histories_of_a_correct_broker_pass_every_check() {
    let mut state = 0;
    let mut cycles_possible = 0;
    for seed in 0..model::SEEDS_MAX {
        let history = model::legal_history(&mut state);
        let report = check(&history);
        assert!(report.is_valid(), "seed {seed}:\n{report}\n{}", history.to_jsonl());
        assert_anomalies(&report, &[]);
        cycles_possible += u64::from(report.stats.sends_ok > 1 && report.stats.polls > 1);
    }
    assert!(cycles_possible > model::SEEDS_MAX / 2, "the histories are not trivial");
}

// Lines of one op_id must share their process: the graph's process order depends on it.
#[test]
fn an_op_id_shared_by_two_processes_is_a_harness_error() {
    let mut history = base();
    history.ops[3] = with_op_id(history.ops[3].clone(), 9);
    history.ops[4] = with_op_id(poll(5, 2, 4, &[(3, "c")], 45, 46), 9);
    let report = check(&history);
    assert_message(&report, HARNESS_ERROR, &["op #4 by process 5 has op_id 9, as op #3 by process 2 does"]);
    assert_anomalies(&report, &[(anomaly::HARNESS_ERROR, 1)]);
}
