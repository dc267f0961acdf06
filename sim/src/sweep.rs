//! The sweep: every seed of `sim/run --seeds A..B` runs in a fresh child process (the same
//! binary, with `--seed N`), `--jobs` children at a time.
//!
//! Why a process per seed, not a thread: some state is process-global and outlives a seed's
//! thread. tokio's `select!` draws its branch order from a thread RNG seeded from a
//! process-global counter (`tokio/src/loom/std/mod.rs`, `COUNTER`), so a second seed in one
//! process sees different `select!` orders than the same seed alone. The replay line promises
//! that `sim/run --seed N` reproduces a failure bit for bit, and only a fresh process keeps that
//! promise; the sweep therefore runs each seed exactly as its replay line would.
//!
//! A child prints its human report (the seed line and, on failure, the violations and event
//! log) and, last, one machine line (`RESULT_PREFIX` and a JSON object) that the parent parses.
//! A child that dies without that line is a failure, reported with its stderr's tail.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::{Command, Stdio};

/// Starts the machine line a child prints last.
pub const RESULT_PREFIX: &str = "sim-child-result ";
/// Stderr lines of a child that died without a result, printed for the human.
pub const STDERR_TAIL_LINES: usize = 40;

/// What a child reports about its seed.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ChildResult {
    pub seed: u64,
    pub failed: bool,
    pub simulated_ms: u64,
    pub wall_ms: u64,
    pub trace_hash: u64,
}

impl ChildResult {
    /// The machine line.
    pub fn line(&self) -> String {
        format!("{RESULT_PREFIX}{}", serde_json::to_string(self).expect("serializable"))
    }

    /// Finds the machine line in a child's stdout.
    pub fn parse(stdout: &str) -> Option<ChildResult> {
        let line = stdout.lines().rev().find(|line| line.starts_with(RESULT_PREFIX))?;
        serde_json::from_str(&line[RESULT_PREFIX.len()..]).ok()
    }
}

/// One finished child: its result and the human report to print.
pub struct ChildRun {
    pub result: ChildResult,
    /// The child's stdout without the machine line (plus its stderr tail when it died).
    pub report: String,
}

/// Runs `exe --seed N <args>` and waits for it. `args` carry everything but the seed (defect,
/// faulty phase, artifacts, trace folder), exactly as the replay command would.
pub fn run_child(exe: &Path, seed: u64, args: &[String]) -> ChildRun {
    let started = std::time::Instant::now();
    let output = Command::new(exe)
        .arg("--seed")
        .arg(seed.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    let wall_ms = started.elapsed().as_millis() as u64;
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            let report = format!("seed {seed:>6} FAIL could not start the child process: {error}\n");
            return ChildRun { result: died(seed, wall_ms), report };
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: String = stdout.lines().filter(|l| !l.starts_with(RESULT_PREFIX)).map(|l| format!("{l}\n")).collect();
    match ChildResult::parse(&stdout) {
        Some(result) => ChildRun { result, report },
        None => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = &lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..];
            let mut report = format!(
                "{report}seed {seed:>6} FAIL the child process exited with {} and no result; stderr tail:\n",
                output.status
            );
            for line in tail {
                report.push_str(&format!("    {line}\n"));
            }
            ChildRun { result: died(seed, wall_ms), report }
        }
    }
}

fn died(seed: u64, wall_ms: u64) -> ChildResult {
    ChildResult { seed, failed: true, wall_ms, ..ChildResult::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_round_trips_and_the_last_one_wins() {
        let a = ChildResult { seed: 7, failed: true, simulated_ms: 40_000, wall_ms: 90, trace_hash: u64::MAX };
        let b = ChildResult { seed: 7, failed: false, ..a.clone() };
        let stdout = format!("seed 7 FAIL ...\n{}\nnoise\n{}\n", a.line(), b.line());
        assert_eq!(ChildResult::parse(&stdout), Some(b));
        assert_eq!(ChildResult::parse("seed 7 ok\n"), None);
        assert_eq!(ChildResult::parse(&format!("{RESULT_PREFIX}{{not json")), None);
    }
}
