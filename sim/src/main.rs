//! `sluice-sim`: the seed runner behind `sim/run` (which builds it with `--cfg madsim`).
//!
//! `sim/run --seeds A..B [--defect NAME] [--jobs N] [--check-determinism] [--expect-failure]`
//! runs each seed in a fresh child process (`sweep.rs`), prints its fault mix and result with a
//! progress bar, and exits non-zero on any violation, printing the one-line replay command of
//! every failing seed. `sim/run --seed N` runs one seed in this process: the replay.

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
    use sluice_checker::{CommitOutcome, Op, SendOutcome};
    use sluice_sim::run::{FAULTY_MS_DEFAULT, SeedOptions};
    use sluice_sim::runner::{LOG_TAIL_LINES, SeedReport, replay_command, run_one, write_artifacts, write_trace};
    use sluice_sim::sweep::{ChildResult, ChildRun, run_child};
    use sluice_types::defect::Defect;
    use std::io::{IsTerminal, Write};
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::sync::mpsc;
    use std::time::Instant;

    /// Seeds one run may sweep.
    const SEEDS_MAX: u64 = 1_000_000;
    /// Child processes at once.
    const JOBS_MAX: usize = 16;
    /// Failing seeds listed in the summary line.
    const FAILED_SHOWN_MAX: usize = 50;

    #[derive(Parser, Debug)]
    #[command(name = "sim/run", about = "Deterministic simulation of Sluice clusters under faults")]
    struct Args {
        /// Seeds to run, as A..B (B exclusive).
        #[arg(long, conflicts_with = "seed")]
        seeds: Option<String>,
        /// One seed to run (replay).
        #[arg(long)]
        seed: Option<u64>,
        /// Run the named scenarios: the seeds that found bugs (`scenarios.rs`).
        #[arg(long, conflicts_with_all = ["seed", "seeds"])]
        scenarios: bool,
        /// Turn on a planted defect: ack-before-fsync, commit-old-term, fetch-above-hw,
        /// forget-vote, truncate-on-stale-append, append-duplicate-retry, group-commit-before-durable.
        #[arg(long)]
        defect: Option<String>,
        /// Simulated seconds of the faulty phase.
        #[arg(long, default_value_t = FAULTY_MS_DEFAULT / 1000)]
        faulty_s: u64,
        /// Seeds run in parallel (one child process each).
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Run every seed twice, each in a fresh process, and require the same trace hash.
        #[arg(long)]
        check_determinism: bool,
        /// Internal: this process is a sweep's child; print the machine result line last.
        #[arg(long, hide = true)]
        child: bool,
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
        if args.scenarios {
            for scenario in sluice_sim::scenarios::SCENARIOS {
                println!("scenario seed {:>6}: {}", scenario.seed, scenario.found);
            }
            return Ok(sluice_sim::scenarios::SCENARIOS.iter().map(|s| s.seed).collect());
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
        let options = SeedOptions { seed: seeds[0], defect, faulty_ms: args.faulty_s * 1000 };
        if seeds.len() == 1 && !args.check_determinism {
            return run_here(&args, options);
        }
        sweep(&args, seeds, options)
    }

    /// One seed in this process: the replay path, and what every sweep child runs.
    fn run_here(args: &Args, options: SeedOptions) -> ExitCode {
        let wall = Instant::now();
        let report = run_one(options.clone());
        let wall_ms = wall.elapsed().as_millis() as u64;
        print_seed_line(&report, wall_ms as f64 / 1000.0, args.verbose);
        if let Some(dir) = &args.trace_out {
            let _ = std::fs::create_dir_all(dir);
            let _ = write_trace(&report.trace, &dir.join(format!("seed-{}.jsonl", report.seed)));
        }
        if report.failed() {
            print_failure(&report, &options, &args.artifacts);
        }
        let simulated_ms = report.outcome.simulated_ms;
        if args.child {
            let result = ChildResult {
                seed: report.seed,
                failed: report.failed(),
                simulated_ms,
                wall_ms,
                trace_hash: report.trace_hash,
            };
            println!("{}", result.line());
        } else {
            let simulated_s = simulated_ms as f64 / 1000.0;
            let wall_s = wall_ms as f64 / 1000.0;
            println!(
                "1 seed, {} failed, simulated {simulated_s:.0}s in {wall_s:.1}s ({:.0}x)",
                u8::from(report.failed()),
                simulated_s / wall_s.max(1e-9)
            );
        }
        if report.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
    }

    /// Many seeds: each in a fresh child process (`sweep.rs` says why), `--jobs` at a time.
    fn sweep(args: &Args, seeds: Vec<u64>, options: SeedOptions) -> ExitCode {
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(error) => {
                eprintln!("cannot find this binary to run seeds: {error}");
                return ExitCode::from(2);
            }
        };
        let mut child_args: Vec<String> = vec!["--child".into(), "--faulty-s".into(), args.faulty_s.to_string()];
        if let Some(defect) = options.defect {
            child_args.extend(["--defect".into(), defect.name().into()]);
        }
        if args.verbose {
            child_args.push("--verbose".into());
        }
        let mut replay_args = child_args.clone();
        replay_args.extend(["--artifacts".into(), args.artifacts.join("replay").display().to_string()]);
        child_args.extend(["--artifacts".into(), args.artifacts.display().to_string()]);
        if let Some(dir) = &args.trace_out {
            child_args.extend(["--trace-out".into(), dir.display().to_string()]);
        }
        let started = Instant::now();
        let total = seeds.len();
        let (tx, rx) = mpsc::channel::<(ChildRun, Option<ChildResult>)>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(seeds.into_iter()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut workers = Vec::new();
        for _ in 0..args.jobs.clamp(1, JOBS_MAX) {
            let (tx, queue, stop) = (tx.clone(), queue.clone(), stop.clone());
            let (exe, child_args, replay_args) = (exe.clone(), child_args.clone(), replay_args.clone());
            let check_determinism = args.check_determinism;
            workers.push(std::thread::spawn(move || {
                loop {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let Some(seed) = queue.lock().expect("queue").next() else { return };
                    let first = run_child(&exe, seed, &child_args);
                    let second = check_determinism.then(|| run_child(&exe, seed, &replay_args).result);
                    if tx.send((first, second)).is_err() {
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
        for (run, second) in rx {
            done += 1;
            let result = &run.result;
            if tty {
                eprint!("\r\x1b[K");
            }
            print!("{}", run.report);
            let mut seed_failed = result.failed;
            if let Some(second) = second
                && !result.failed
                && (second.failed || second.trace_hash != result.trace_hash)
            {
                seed_failed = true;
                println!(
                    "  {}: two fresh runs of seed {} gave trace hashes {:016x} and {:016x}",
                    sluice_sim::check::DETERMINISM,
                    result.seed,
                    result.trace_hash,
                    second.trace_hash
                );
                println!("  replay: {}", replay_command(result.seed, &SeedOptions { seed: result.seed, ..options }));
            }
            simulated_s += result.simulated_ms as f64 / 1000.0;
            wall_s += result.wall_ms as f64 / 1000.0;
            if seed_failed {
                failed.push(result.seed);
                if args.expect_failure {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _ = std::io::stdout().flush();
            progress(tty, done, total, failed.len(), started.elapsed().as_secs_f64());
        }
        for worker in workers {
            let _ = worker.join();
        }
        if tty {
            eprintln!();
        }
        failed.sort_unstable();
        let minutes = started.elapsed().as_secs_f64() / 60.0;
        println!(
            "{done} seeds, {} failed, {:.1} seeds/min, simulated {simulated_s:.0}s in {wall_s:.0}s of seed wall time ({:.0}x){}",
            failed.len(),
            done as f64 / minutes.max(1e-9),
            simulated_s / wall_s.max(1e-9),
            if args.check_determinism { ", each seed run twice for determinism" } else { "" }
        );
        if !failed.is_empty() {
            let shown: Vec<String> = failed.iter().take(FAILED_SHOWN_MAX).map(u64::to_string).collect();
            println!("failed seeds: {}{}", shown.join(" "), if failed.len() > FAILED_SHOWN_MAX { " ..." } else { "" });
        }
        if args.expect_failure {
            return if failed.is_empty() {
                println!(
                    "expected a failure{}: none of {done} seeds failed",
                    options.defect.map(|d| format!(" from defect {}", d.name())).unwrap_or_default()
                );
                ExitCode::FAILURE
            } else {
                println!("caught as expected: seed {} failed", failed[0]);
                ExitCode::SUCCESS
            };
        }
        if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }

    fn print_seed_line(report: &SeedReport, seconds: f64, verbose: bool) {
        let o = &report.outcome;
        let sim_s = o.simulated_ms as f64 / 1000.0;
        let status = if report.failed() { "FAIL" } else { "ok" };
        let ops = &o.history.ops;
        let sends = ops.iter().filter(|op| matches!(op, Op::Send { .. })).count();
        let acked = ops.iter().filter(|op| matches!(op, Op::Send { outcome: SendOutcome::Ok { .. }, .. })).count();
        let polls = ops.iter().filter(|op| matches!(op, Op::Poll { .. })).count();
        let commits = ops.iter().filter(|op| matches!(op, Op::Commit { outcome: CommitOutcome::Ok, .. })).count();
        println!(
            "seed {:>6} {status:<4} {} | sim {sim_s:.0}s wall {seconds:.1}s ({:.0}x) sends {sends} acked {acked} polls {polls} commits {commits} nemesis {} raft events {} hash {:016x}",
            report.seed,
            report.mix.short(),
            sim_s / seconds.max(1e-9),
            o.nemesis_actions,
            report.trace.len(),
            report.trace_hash,
        );
        if verbose {
            println!("{}", report.mix);
        }
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
