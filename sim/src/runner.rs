//! The seed runner: one OS thread and one madsim runtime per seed, the checks, and what a human
//! needs when a seed fails (the violations, the event log's tail, files with the full log, the
//! history and the Raft trace, and the one-line replay command).
//!
//! A new OS thread per seed is required, not a convenience: madsim seeds std's `HashMap` keys
//! once per thread (reference/dst.md §1.1), and the defect switch, the trace sink, the message
//! fault layer and the event log are thread-locals. It is not sufficient either: tokio's
//! `select!` order comes from a process-global counter, so a sweep gives each seed its own
//! process as well (`sweep.rs`).

use crate::check::{PANIC, check_all, convert, trace_hash};
use crate::run::{SeedOptions, SeedOutcome, run_seed};
use crate::swarm::FaultMix;
use sluice_checker::raft::RaftRecord;
use sluice_checker::{HARNESS_ERROR, Violation};
use sluice_types::buggify::Buggify;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Simulated time one seed may take before madsim stops it (a hung seed is a failure).
pub const SEED_SIMULATED_S_MAX: u64 = 900;
/// Event log lines printed when a seed fails (the full log goes to a file).
pub const LOG_TAIL_LINES: usize = 40;

/// The result of one seed, as the runner reports it.
pub struct SeedReport {
    pub seed: u64,
    pub mix: FaultMix,
    pub violations: Vec<Violation>,
    pub outcome: SeedOutcome,
    pub trace: Vec<RaftRecord>,
    pub trace_overflowed: bool,
    pub log: Vec<String>,
    pub trace_hash: u64,
}

impl SeedReport {
    pub fn failed(&self) -> bool {
        !self.violations.is_empty()
    }
}

/// Runs one seed on a fresh thread; a panic inside the simulation is a violation.
pub fn run_one(options: SeedOptions) -> SeedReport {
    let seed = options.seed;
    let mix = FaultMix::draw(seed);
    let thread_mix = mix.clone();
    let joined = std::thread::Builder::new()
        .name(format!("seed-{seed}"))
        .stack_size(64 << 20)
        .spawn(move || {
            crate::log::reset();
            sluice_types::defect::set_active(options.defect);
            sluice_types::buggify::set(Buggify { step_down_per_tick: thread_mix.step_down_per_tick });
            let mut runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
            runtime.set_time_limit(Duration::from_secs(SEED_SIMULATED_S_MAX));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(run_seed(options.clone(), thread_mix))
            }));
            sluice_types::defect::set_active(None);
            sluice_types::buggify::set(Buggify::default());
            let (records, overflowed) = sluice_broker::replication::sim_trace::finish();
            let trace: Vec<RaftRecord> = records.iter().map(convert).collect();
            (result.map_err(panic_message), trace, overflowed, crate::log::take())
        })
        .expect("spawn seed thread")
        .join();
    let (result, trace, trace_overflowed, log) = match joined {
        Ok(parts) => parts,
        Err(panic) => (Err(panic_message(panic)), Vec::new(), false, Vec::new()),
    };
    let (outcome, mut violations) = match result {
        Ok(outcome) => {
            let violations = outcome.violations.clone();
            (outcome, violations)
        }
        Err(message) => (SeedOutcome::default(), vec![Violation { checker: PANIC, message }]),
    };
    if violations.iter().all(|v| v.checker != PANIC) {
        violations.extend(check_all(&outcome.history, &trace, &mix.faulty_disk_nodes));
    }
    if trace_overflowed {
        violations.push(Violation { checker: HARNESS_ERROR, message: "the Raft trace overflowed its bound".into() });
    }
    let trace_hash = trace_hash(&outcome.history, &trace);
    SeedReport { seed, mix, violations, outcome, trace, trace_overflowed, log, trace_hash }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// The one-line command that replays `seed` bit for bit.
pub fn replay_command(seed: u64, options: &SeedOptions) -> String {
    let mut command = format!("sim/run --seed {seed}");
    if let Some(defect) = options.defect {
        command.push_str(&format!(" --defect {}", defect.name()));
    }
    if options.faulty_ms != crate::run::FAULTY_MS_DEFAULT {
        command.push_str(&format!(" --faulty-s {}", options.faulty_ms / 1000));
    }
    command
}

/// Writes the failing seed's event log, history and trace under `dir`; returns the folder.
pub fn write_artifacts(report: &SeedReport, dir: &Path) -> std::io::Result<PathBuf> {
    let folder = dir.join(format!("seed-{}", report.seed));
    std::fs::create_dir_all(&folder)?;
    std::fs::write(folder.join("events.log"), report.log.join("\n"))?;
    std::fs::write(folder.join("history.jsonl"), report.outcome.history.to_jsonl())?;
    write_trace(&report.trace, &folder.join("raft-trace.jsonl"))?;
    Ok(folder)
}

/// One JSON object per Raft trace record.
pub fn write_trace(trace: &[RaftRecord], path: &Path) -> std::io::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for record in trace {
        serde_json::to_writer(&mut file, record)?;
        file.write_all(b"\n")?;
    }
    file.flush()
}
