//! `sluice-sim`: the seed runner behind `sim/run` (which builds it with `--cfg madsim`).
//!
//! `sim/run --seeds A..B [--defect NAME] [--jobs N] [--check-determinism] [--expect-failure]`
//! runs each seed, prints its fault mix and result with a progress bar, and exits non-zero on
//! any violation, printing the one-line replay command of every failing seed.

#[cfg(not(madsim))]
fn main() {
    eprintln!("sluice-sim needs the simulator build: run it through sim/run (RUSTFLAGS=\"--cfg madsim\").");
    std::process::exit(2);
}

#[cfg(madsim)]
fn main() -> std::process::ExitCode {
    runner_main::main()
}

#[cfg(madsim)]
mod runner_main {
    use clap::Parser;
    use sluice_sim::run::{FAULTY_MS_DEFAULT, SeedOptions};
    use sluice_sim::runner::{LOG_TAIL_LINES, SeedReport, replay_command, run_one, write_artifacts, write_trace};
    use sluice_types::defect::Defect;
    use std::io::{IsTerminal, Write};
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::sync::mpsc;
    use std::time::Instant;

    /// Seeds one run may sweep.
    const SEEDS_MAX: u64 = 1_000_000;

    #[derive(Parser, Debug)]
    #[command(name = "sim/run", about = "Deterministic simulation of Sluice clusters under faults")]
    struct Args {
        /// Seeds to run, as A..B (B exclusive).
        #[arg(long, conflicts_with = "seed")]
        seeds: Option<String>,
        /// One seed to run (replay).
        #[arg(long)]
        seed: Option<u64>,
        /// Turn on a planted defect: ack-before-fsync, commit-old-term, fetch-above-hw,
        /// forget-vote, truncate-on-stale-append.
        #[arg(long)]
        defect: Option<String>,
        /// Simulated seconds of the faulty phase.
        #[arg(long, default_value_t = FAULTY_MS_DEFAULT / 1000)]
        faulty_s: u64,
        /// Seeds run in parallel (one thread each).
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Replay every seed in a fresh process and require the same trace hash.
        #[arg(long)]
        check_determinism: bool,
        /// Succeed only if some seed fails (stops at the first failure): proves a planted defect
        /// is caught.
        #[arg(long)]
        expect_failure: bool,
        /// Write each seed's Raft trace (JSON lines) into this folder.
        #[arg(long)]
        trace_out: Option<PathBuf>,
        /// Where failing seeds' logs, histories and traces go.
        #[arg(long, default_value = "target/sim-failures")]
        artifacts: PathBuf,
        /// Print each seed's whole fault mix, not just its summary.
        #[arg(long, short)]
        verbose: bool,
    }

    fn parse_seeds(args: &Args) -> Result<Vec<u64>, String> {
        if let Some(seed) = args.seed {
            return Ok(vec![seed]);
        }
        let text = args.seeds.as_deref().unwrap_or("0..10");
        let (a, b) = text.split_once("..").ok_or_else(|| format!("--seeds {text}: expected A..B"))?;
        let a: u64 = a.parse().map_err(|_| format!("--seeds {text}: bad start"))?;
        let b: u64 = b.parse().map_err(|_| format!("--seeds {text}: bad end"))?;
        if b <= a || b - a > SEEDS_MAX {
            return Err(format!("--seeds {text}: empty or over {SEEDS_MAX} seeds"));
        }
        Ok((a..b).collect())
    }

    fn install_logging() {
        let filter = std::env::var("SLUICE_SIM_LOG").unwrap_or_else(|_| "warn,sluice_sim=info".into());
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(sluice_sim::log::SeedLog)
            .with_ansi(false)
            .init();
    }

    /// Panics that are fatal by design (a broker stopping on a disk error) go to the seed's
    /// event log, not the terminal: the node restarts and the seed goes on.
    fn install_panic_hook() {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if sluice_sim::cluster::FATAL_BY_DESIGN.iter().any(|m| message.contains(m)) {
                tracing::warn!(target: "sluice_sim", "broker stopped by design: {message}");
                sluice_sim::log::record_fatal(message);
            } else {
                default(info);
            }
        }));
    }

    pub fn main() -> ExitCode {
        let args = Args::parse();
        install_logging();
        install_panic_hook();
        let seeds = match parse_seeds(&args) {
            Ok(seeds) => seeds,
            Err(message) => {
                eprintln!("{message}");
                return ExitCode::from(2);
            }
        };
        let defect = match args.defect.as_deref().map(|name| (name, Defect::parse(name))) {
            None => None,
            Some((_, Some(defect))) => Some(defect),
            Some((name, None)) => {
                eprintln!("unknown defect {name}; known: {:?}", Defect::ALL.map(Defect::name));
                return ExitCode::from(2);
            }
        };
        let faulty_ms = args.faulty_s * 1000;
        let options = move |seed| SeedOptions { seed, defect, faulty_ms };
        let started = Instant::now();
        let total = seeds.len();
        let (tx, rx) = mpsc::channel::<(SeedReport, Option<u64>, f64)>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(seeds.into_iter()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut workers = Vec::new();
        for _ in 0..args.jobs.clamp(1, 16) {
            let (tx, queue, stop) = (tx.clone(), queue.clone(), stop.clone());
            let check_determinism = args.check_determinism;
            workers.push(std::thread::spawn(move || {
                loop {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let Some(seed) = queue.lock().expect("queue").next() else { return };
                    let wall = Instant::now();
                    let report = run_one(options(seed));
                    let second = check_determinism.then(|| replay_hash(&options(seed)));
                    let seconds = wall.elapsed().as_secs_f64() / if check_determinism { 2.0 } else { 1.0 };
                    if tx.send((report, second, seconds)).is_err() {
                        return;
                    }
                }
            }));
        }
        drop(tx);
        let mut failed: Vec<u64> = Vec::new();
        let mut done = 0usize;
        let (mut simulated_s, mut wall_s) = (0.0f64, 0.0f64);
        let tty = std::io::stderr().is_terminal();
        for (report, second_hash, seconds) in rx {
            done += 1;
            let mut report = report;
            if let Some(hash) = second_hash
                && hash != report.trace_hash
            {
                report.violations.push(sluice_checker::Violation {
                    checker: sluice_sim::check::DETERMINISM,
                    message: format!(
                        "two runs of seed {} gave trace hashes {:016x} and {hash:016x}",
                        report.seed, report.trace_hash
                    ),
                });
            }
            let o = &report.outcome;
            let sim_s = o.simulated_ms as f64 / 1000.0;
            simulated_s += sim_s;
            wall_s += seconds;
            let status = if report.failed() { "FAIL" } else { "ok" };
            println!(
                "seed {:>6} {status:<4} {} | sim {sim_s:.0}s wall {seconds:.1}s ({:.0}x) sends {} acked {} polls {} nemesis {} raft events {} hash {:016x}",
                report.seed,
                report.mix.short(),
                sim_s / seconds.max(1e-9),
                o.history.ops.iter().filter(|op| matches!(op, sluice_checker::Op::Send { .. })).count(),
                o.history
                    .ops
                    .iter()
                    .filter(|op| matches!(
                        op,
                        sluice_checker::Op::Send { outcome: sluice_checker::SendOutcome::Ok { .. }, .. }
                    ))
                    .count(),
                o.history.ops.iter().filter(|op| matches!(op, sluice_checker::Op::Poll { .. })).count(),
                o.nemesis_actions,
                report.trace.len(),
                report.trace_hash,
            );
            if args.verbose {
                println!("{}", report.mix);
            }
            if let Some(dir) = &args.trace_out {
                let _ = std::fs::create_dir_all(dir);
                let _ = write_trace(&report.trace, &dir.join(format!("seed-{}.jsonl", report.seed)));
            }
            if report.failed() {
                failed.push(report.seed);
                print_failure(&report, &options(report.seed), &args.artifacts);
                if args.expect_failure {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            progress(tty, done, total, failed.len(), started.elapsed().as_secs_f64());
        }
        for worker in workers {
            let _ = worker.join();
        }
        if tty {
            eprintln!();
        }
        let minutes = started.elapsed().as_secs_f64() / 60.0;
        println!(
            "{done} seeds, {} failed, {:.1} seeds/min, simulated {simulated_s:.0}s in {wall_s:.0}s of seed wall time ({:.0}x)",
            failed.len(),
            done as f64 / minutes.max(1e-9),
            simulated_s / wall_s.max(1e-9)
        );
        if args.expect_failure {
            return if failed.is_empty() {
                println!(
                    "expected a failure{}: none of {done} seeds failed",
                    defect.map(|d| format!(" from defect {}", d.name())).unwrap_or_default()
                );
                ExitCode::FAILURE
            } else {
                println!("caught as expected: seed {} failed", failed[0]);
                ExitCode::SUCCESS
            };
        }
        if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }

    /// The trace hash of `seed` replayed in a fresh process, exactly as the replay command
    /// would. A fresh process, not a second run in this one: madsim numbers tasks from a
    /// process-global counter, so only a replay from a clean process is comparable (and that is
    /// the promise the replay line makes). 0 when the replay could not run.
    fn replay_hash(options: &SeedOptions) -> u64 {
        let Ok(exe) = std::env::current_exe() else { return 0 };
        let mut command = std::process::Command::new(exe);
        command.args(["--seed", &options.seed.to_string(), "--faulty-s", &(options.faulty_ms / 1000).to_string()]);
        command.args(["--jobs", "1", "--artifacts", "target/sim-failures/replay"]);
        if let Some(defect) = options.defect {
            command.args(["--defect", defect.name()]);
        }
        let Ok(output) = command.stderr(std::process::Stdio::null()).output() else { return 0 };
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout
            .lines()
            .find(|line| line.starts_with("seed "))
            .and_then(|line| line.rsplit(" hash ").next())
            .and_then(|hash| u64::from_str_radix(hash.trim(), 16).ok())
            .unwrap_or(0)
    }

    fn print_failure(report: &SeedReport, options: &SeedOptions, artifacts: &std::path::Path) {
        println!("--- seed {} failed ---", report.seed);
        println!("{}", report.mix);
        for violation in &report.violations {
            println!("  {violation}");
        }
        let tail = report.log.len().saturating_sub(LOG_TAIL_LINES);
        println!("  event log (last {} of {} lines):", report.log.len() - tail, report.log.len());
        for line in &report.log[tail..] {
            println!("    {line}");
        }
        match write_artifacts(report, artifacts) {
            Ok(folder) => println!("  full event log, history and Raft trace: {}", folder.display()),
            Err(error) => println!("  could not write artifacts: {error}"),
        }
        println!("  replay: {}", replay_command(report.seed, options));
        let _ = std::io::stdout().flush();
    }

    fn progress(tty: bool, done: usize, total: usize, failed: usize, elapsed_s: f64) {
        const WIDTH: usize = 30;
        let filled = done * WIDTH / total.max(1);
        let bar = format!(
            "[{}{}] {done}/{total} seeds, {failed} failed, {:.1} seeds/min",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            done as f64 / (elapsed_s / 60.0).max(1e-9)
        );
        if tty {
            eprint!("\r{bar}");
        } else {
            eprintln!("{bar}");
        }
    }
}
