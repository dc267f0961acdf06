//! The JSON-lines history format: round trip, the exact shape of a line (other tools write and
//! grep it), and parse errors that name their line.

mod common;

use common::*;
use sluice_checker::*;

/// Every op type, every send outcome and every commit outcome, across two partitions.
fn every_kind() -> History {
    let mut history = base();
    history.ops.push(send(3, 1, "f", SendOutcome::Failed, false, 50, 51));
    history.ops.push(send(3, 1, "i", SendOutcome::Indeterminate, true, 52, 53));
    history.ops.push(seek(2, 0, 54));
    history.ops.push(commit_ok(4, 2, "p4-2", 55, 56));
    history.ops.push(on_partition(commit(4, GROUP, 1, "p4-1", CommitOutcome::Failed, 57, 58), 1));
    history.ops.push(commit(4, GROUP, 3, "p4-3", CommitOutcome::Indeterminate, 59, 60));
    history.ops.push(fetch_committed(5, GROUP, Some((2, "p4-2")), 61, 62));
    history.ops.push(on_partition(fetch_committed(5, GROUP, None, 63, 64), 1));
    history.final_reads.push(final_read(1, 1, 0, 0, &[]));
    history
}

#[test]
fn jsonl_round_trips() {
    let history = every_kind();
    let text = history.to_jsonl();
    assert_eq!(text.lines().count(), history.ops.len() + history.final_reads.len());
    assert!(text.ends_with('\n'));
    let decoded = History::from_jsonl(&text).expect("decodes");
    assert_eq!(decoded, history);
    assert_eq!(check(&decoded), check(&history));
}

#[test]
fn jsonl_lines_have_the_documented_shape() {
    let history = every_kind();
    let text = history.to_jsonl();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"line":"op","type":"Send","process":1,"partition":{"topic":"payments","partition":0},"value":"a","invoke_ms":10,"complete_ms":20,"outcome":{"Ok":{"offset":0}},"idempotent":true}"#
    );
    assert_eq!(
        lines[3],
        r#"{"line":"op","type":"Poll","process":2,"partition":{"topic":"payments","partition":0},"fetch_offset":0,"invoke_ms":35,"complete_ms":36,"high_watermark":2,"records":[[0,"a"],[1,"b"]]}"#
    );
    assert!(lines[5].contains(r#""outcome":"Failed""#), "{}", lines[5]);
    assert_eq!(
        lines[7],
        r#"{"line":"op","type":"Seek","process":2,"partition":{"topic":"payments","partition":0},"offset":0,"at_ms":54}"#
    );
    assert_eq!(
        lines[8],
        r#"{"line":"op","type":"Commit","process":4,"group":"billing","partition":{"topic":"payments","partition":0},"offset":2,"metadata":"p4-2","invoke_ms":55,"complete_ms":56,"outcome":"Ok"}"#
    );
    assert!(lines[9].contains(r#""partition":1},"offset":1,"metadata":"p4-1""#), "{}", lines[9]);
    assert!(lines[9].ends_with(r#""outcome":"Failed"}"#), "{}", lines[9]);
    assert!(lines[10].ends_with(r#""outcome":"Indeterminate"}"#), "{}", lines[10]);
    assert_eq!(
        lines[11],
        r#"{"line":"op","type":"FetchCommitted","process":5,"group":"billing","partition":{"topic":"payments","partition":0},"invoke_ms":61,"complete_ms":62,"committed":[2,"p4-2"]}"#
    );
    assert!(lines[12].ends_with(r#""committed":null}"#), "{}", lines[12]);
    assert_eq!(
        lines[history.ops.len()],
        r#"{"line":"final_read","node":1,"partition":{"topic":"payments","partition":0},"high_watermark":4,"log_start":0,"records":[[0,"a"],[1,"b"],[3,"c"]]}"#
    );
}

// A Jepsen harness's lines: op ids, faults and final-poll verdicts, each kind in its own order.
#[test]
fn jsonl_round_trips_op_ids_nemesis_and_final_polls() {
    let mut history = base();
    history.ops[0] = with_op_id(history.ops[0].clone(), 7);
    history.ops[3] = with_op_id(history.ops[3].clone(), 8);
    let partition = serde_json::json!({"grudge": {"1": [2, 3]}});
    history.nemesis.push(NemesisEvent {
        at_ms: 12,
        f: "start-partition".to_owned(),
        phase: NemesisPhase::Start,
        value: partition,
    });
    history.nemesis.push(NemesisEvent {
        at_ms: 30,
        f: "stop-partition".to_owned(),
        phase: NemesisPhase::Stop,
        value: ().into(),
    });
    history.final_polls = vec![final_polls(0, 4, true), final_polls(1, 0, false)];
    let text = history.to_jsonl();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), history.ops.len() + 2 + 2 + history.final_reads.len());
    assert!(lines[0].ends_with(r#""idempotent":true,"op_id":7}"#), "{}", lines[0]);
    assert!(lines[3].ends_with(r#""records":[[0,"a"],[1,"b"]],"op_id":8}"#), "{}", lines[3]);
    assert!(!lines[1].contains("op_id"), "an absent op_id is not written: {}", lines[1]);
    let ops = history.ops.len();
    assert_eq!(
        lines[ops],
        r#"{"line":"nemesis","at_ms":12,"f":"start-partition","phase":"start","value":{"grudge":{"1":[2,3]}}}"#
    );
    assert_eq!(lines[ops + 1], r#"{"line":"nemesis","at_ms":30,"f":"stop-partition","phase":"stop","value":null}"#);
    assert_eq!(
        lines[ops + 2],
        r#"{"line":"final_polls","partition":{"topic":"payments","partition":0},"end_offset":4,"reached":true}"#
    );
    assert!(lines[ops + 3].ends_with(r#""end_offset":0,"reached":false}"#), "{}", lines[ops + 3]);
    let decoded = History::from_jsonl(&text).expect("decodes");
    assert_eq!(decoded, history);
    assert_eq!(decoded.ops[0].op_id(), Some(7));
    assert_eq!(check(&decoded), check(&history));
}

// Histories written before op ids existed still parse, as lines of their own.
#[test]
fn jsonl_lines_without_op_id_still_parse() {
    let old = r#"{"line":"op","type":"Send","process":1,"partition":{"topic":"payments","partition":0},"value":"a","invoke_ms":10,"complete_ms":20,"outcome":{"Ok":{"offset":0}},"idempotent":true}"#;
    let history = History::from_jsonl(old).expect("decodes");
    assert_eq!(history.ops, [ok(1, "a", 0, 10, 20)]);
    assert_eq!(history.ops[0].op_id(), None);
    assert!(history.nemesis.is_empty() && history.final_polls.is_empty());
    assert_eq!(history.to_jsonl(), format!("{old}\n"), "and are written back unchanged");
}

#[test]
fn jsonl_accepts_blank_and_interleaved_lines() {
    let history = every_kind();
    let text = history.to_jsonl();
    let mut lines: Vec<&str> = text.lines().collect();
    // Move the first final read to the front and add blank lines: each vector keeps its order.
    let first_final = lines.remove(history.ops.len());
    lines.insert(0, first_final);
    let shuffled = format!("\n{}\n\n", lines.join("\n\n"));
    assert_eq!(History::from_jsonl(&shuffled).expect("decodes"), history);
}

#[test]
fn jsonl_parse_error_names_the_line() {
    let text = format!("{}\n{{\"line\":\"op\",\"type\":\"Teleport\"}}\n", base().to_jsonl().lines().next().unwrap());
    let error = History::from_jsonl(&text).expect_err("unknown op type");
    match &error {
        HistoryError::Parse { line_number, .. } => assert_eq!(*line_number, 2),
        HistoryError::TooManyLines => panic!("wrong error: {error}"),
    }
    assert!(error.to_string().starts_with("history line 2: "), "{error}");
}

#[test]
fn empty_text_is_an_empty_history() {
    assert_eq!(History::from_jsonl("").expect("decodes"), History::default());
    assert_eq!(History::default().to_jsonl(), "");
}
