//! The verdict of a run: `sluice_checker::check` over `history.jsonl`, plus what only the
//! harness saw (replica comparison on disk, brokers that crashed, a cluster that did not heal),
//! written as `results.json`, `summary.txt` and `latency.svg`, and summarized in one last line.
//!
//! Exit codes, as Jepsen's `:valid?` true / false / :unknown: 0 valid; 1 anomalies (the checker
//! or the replica comparison found something, or a broker crashed); 2 unknown (the run could not
//! show validity: the cluster did not heal, the final reads did not reach the end, or the cycle
//! search was cut short).

use crate::config::RunConfig;
use crate::plot::{self, Outcome as PlotOutcome, Point, Window};
use sluice_checker::{ANOMALY_CLASSES, History, Op, Report, SLUICE_ANOMALY_CLASSES, SendOutcome};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Violations listed in results.json and the summary (all are counted).
const VIOLATIONS_LISTED_MAX: usize = 50;

/// What the harness itself observed, beside the history.
#[derive(Default)]
pub struct Outcome {
    /// Why the cluster did not converge after healing, if it did not.
    pub converged: Option<String>,
    pub unclean_stops: Vec<String>,
    pub unexpected_exits: Vec<String>,
    pub replica_findings: Vec<String>,
    /// (nemesis, start ms, stop ms) as the faults really ran.
    pub windows: Vec<(String, u64, u64)>,
    pub counts: BTreeMap<String, u64>,
}

/// Judges a finished run: writes its results and returns the exit code.
pub fn judge(config: &RunConfig, outcome: &Outcome) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(config.store.join("history.jsonl"))?;
    let history = History::from_jsonl(&text)?;
    let report = sluice_checker::check(&history);
    let unknown = unknown_reasons(&report, outcome);
    let panics = broker_panics(config);
    let invalid = !report.is_valid()
        || !outcome.replica_findings.is_empty()
        || !outcome.unclean_stops.is_empty()
        || !panics.is_empty();
    let (verdict, code) = verdict(invalid, &unknown);
    let end_ms = history.ops.iter().map(op_end_ms).max().unwrap_or(0);
    let windows: Vec<Window> = outcome
        .windows
        .iter()
        .map(|(f, start_ms, stop_ms)| Window { f: f.clone(), start_ms: *start_ms, stop_ms: *stop_ms })
        .collect();
    let title = format!("sluice-jepsen seed {} nemesis {}", config.seed, config.nemesis.join(","));
    std::fs::write(config.store.join("latency.svg"), plot::latency_svg(&title, &points(&history), &windows, end_ms))?;

    let last_line = last_line(verdict, &report, outcome);
    let violations: Vec<String> = report.violations.iter().take(VIOLATIONS_LISTED_MAX).map(|v| v.to_string()).collect();
    let results = serde_json::json!({
        "valid": code == 0,
        "verdict": verdict,
        "exit": code,
        "seed": config.seed,
        "config": config,
        "ops": outcome.counts,
        "anomalies": report.stats.anomalies,
        "stats": report.stats,
        "violations": violations,
        "replica_findings": outcome.replica_findings,
        "unclean_stops": outcome.unclean_stops,
        "unexpected_exits": outcome.unexpected_exits,
        "broker_panics": panics,
        "unknown": unknown,
        "nemesis_windows": outcome.windows,
        "summary": last_line,
    });
    std::fs::write(config.store.join("results.json"), serde_json::to_string_pretty(&results)?)?;

    let mut summary = String::new();
    let _ = writeln!(summary, "sluice-jepsen: {verdict}");
    let _ = writeln!(summary, "store: {}", config.store.display());
    let _ = writeln!(summary, "replay: jepsen/run {}", replay_args(config));
    let _ = writeln!(summary, "operations: {:?}", outcome.counts);
    let _ = writeln!(summary, "checked: {:?}", report.stats);
    for (f, start, stop) in &outcome.windows {
        let _ = writeln!(summary, "nemesis {f}: {start}..{stop} ms");
    }
    for line in violations.iter().chain(&outcome.replica_findings).chain(&outcome.unclean_stops).chain(&panics) {
        let _ = writeln!(summary, "FOUND {line}");
    }
    for line in outcome.unexpected_exits.iter() {
        let _ = writeln!(summary, "broker exit: {line}");
    }
    for line in &unknown {
        let _ = writeln!(summary, "UNKNOWN {line}");
    }
    let _ = writeln!(summary, "{last_line}");
    std::fs::write(config.store.join("summary.txt"), &summary)?;
    print!("{summary}");
    Ok(code)
}

/// Jepsen's `:valid?`: anything found makes a run invalid; otherwise any reason it could not show
/// validity makes it unknown.
fn verdict(invalid: bool, unknown: &[String]) -> (&'static str, i32) {
    match (invalid, unknown.is_empty()) {
        (true, _) => ("INVALID", 1),
        (false, false) => ("UNKNOWN", 2),
        (false, true) => ("VALID", 0),
    }
}

fn unknown_reasons(report: &Report, outcome: &Outcome) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Some(why) = &outcome.converged {
        reasons.push(format!("the cluster did not heal: {why}"));
    }
    if report.stats.final_polls_unreached > 0 {
        reasons.push(format!("{} partitions were not read to their end", report.stats.final_polls_unreached));
    }
    if report.stats.cycle_search_truncated {
        reasons.push("the cycle search was cut short".to_string());
    }
    reasons
}

/// Lines of broker logs that report a panic (Jepsen's Redpanda test greps its logs for
/// assertion failures the same way).
fn broker_panics(config: &RunConfig) -> Vec<String> {
    let mut found = Vec::new();
    for node in 1..=config.nodes {
        let log = std::fs::read_to_string(config.node_dir(node).join("broker.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.contains("panicked at")) {
            let message = lines.get(i + 1).copied().unwrap_or("");
            // ENOSPC (os error 28) is the disk nemesis at work: a broker stops on a failed write
            // by design, and is restarted once there is room.
            if !message.contains("(os error 28)") {
                found.push(format!("node {node}: {} {}", line.trim(), message.trim()));
            }
        }
    }
    found
}

/// The one-line summary: verdict, operation counts, every anomaly class's count.
fn last_line(verdict: &str, report: &Report, outcome: &Outcome) -> String {
    let stats = &report.stats;
    let mut line = format!(
        "jepsen: {verdict} sends={} ok={} fail={} info={} polls={} records-read={}",
        stats.sends_ok + stats.sends_failed + stats.sends_indeterminate,
        stats.sends_ok,
        stats.sends_failed,
        stats.sends_indeterminate,
        stats.polls,
        stats.records_read
    );
    for class in ANOMALY_CLASSES.iter().chain(SLUICE_ANOMALY_CLASSES.iter()) {
        let _ = write!(line, " {class}={}", stats.anomaly_count(class));
    }
    let _ = write!(line, " replica-findings={}", outcome.replica_findings.len());
    line
}

fn replay_args(config: &RunConfig) -> String {
    format!(
        "--nodes {} --nemesis {} --partition-shapes {} --time-limit {} --final-time-limit {} --seed {}",
        config.nodes,
        if config.nemesis.is_empty() { "none".to_string() } else { config.nemesis.join(",") },
        config.partition_shapes.join(","),
        config.time_limit_s,
        config.final_time_limit_s,
        config.seed
    )
}

fn op_end_ms(op: &Op) -> u64 {
    match op {
        Op::Send { complete_ms, .. }
        | Op::Poll { complete_ms, .. }
        | Op::Commit { complete_ms, .. }
        | Op::FetchCommitted { complete_ms, .. } => *complete_ms,
        Op::Seek { at_ms, .. } => *at_ms,
    }
}

/// One point per send and per poll op (a poll op's lines share an op id).
fn points(history: &History) -> Vec<Point> {
    let mut points = Vec::new();
    let mut polls_seen = BTreeSet::new();
    for op in &history.ops {
        match op {
            Op::Send { invoke_ms, complete_ms, outcome, .. } => points.push(Point {
                t_ms: *invoke_ms,
                latency_ms: complete_ms - invoke_ms,
                f: "send".to_string(),
                outcome: match outcome {
                    SendOutcome::Ok { .. } => PlotOutcome::Ok,
                    SendOutcome::Failed => PlotOutcome::Fail,
                    SendOutcome::Indeterminate => PlotOutcome::Info,
                },
            }),
            Op::Poll { invoke_ms, complete_ms, op_id, .. } if op_id.is_none_or(|id| polls_seen.insert(id)) => {
                points.push(Point {
                    t_ms: *invoke_ms,
                    latency_ms: complete_ms - invoke_ms,
                    f: "poll".to_string(),
                    outcome: PlotOutcome::Ok,
                });
            }
            _ => {}
        }
    }
    points
}

/// `sluice-jepsen check FILE`: judges a history on its own (no harness observations) and prints
/// its violations and the one-line summary; the exit code is as for a run.
pub fn check_file(path: &std::path::Path) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(path)?;
    let history = History::from_jsonl(&text)?;
    let report = sluice_checker::check(&history);
    let outcome = Outcome::default();
    let unknown = unknown_reasons(&report, &outcome);
    let (verdict, code) = verdict(!report.is_valid(), &unknown);
    for violation in report.violations.iter().take(VIOLATIONS_LISTED_MAX) {
        println!("FOUND {violation}");
    }
    for reason in &unknown {
        println!("UNKNOWN {reason}");
    }
    println!("{}", last_line(verdict, &report, &outcome));
    Ok(code)
}
