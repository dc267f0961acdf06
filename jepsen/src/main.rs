//! `sluice-jepsen`: a Jepsen-style test of a real `sluice` cluster. Hosts are network namespaces
//! joined by a bridge; clients are librdkafka processes running Jepsen's Kafka workload; a
//! seeded nemesis partitions, kills, pauses, skews clocks, drops packets and fills disks; the
//! history is judged by `sluice-checker`, the checker `sim/` uses (jepsen_tla.md §1–2).
//!
//! Subcommands: `run` (the test; `jepsen/run` wraps it), `run-inner` (the test itself, run by
//! `run` inside the client namespace), `teardown` (remove a run's namespaces and mounts),
//! `check FILE` (judge a history.jsonl). Exit codes: 0 valid, 1 invalid, 2 unknown.

mod cluster;
mod config;
mod final_read;
mod nemesis;
mod plot;
mod recorder;
mod results;
mod run;
mod shell;
mod supervisor;
mod topology;
mod worker;
mod workload;

use clap::{Parser, Subcommand};
use config::{Idempotence, NEMESES, RunConfig, SubVia};
use nemesis::grudge::Shape;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "sluice-jepsen", about = "A Jepsen-style test of a real sluice cluster")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a test (as root): build the network, start the cluster, run, check, tear down.
    Run(RunArgs),
    /// The test itself, inside the client namespace (started by `run`).
    #[command(hide = true)]
    RunInner {
        #[arg(long)]
        config: PathBuf,
    },
    /// Remove every sj-* namespace and host disk a run left behind.
    Teardown,
    /// Judge a history.jsonl; prints the verdict and the anomaly counts.
    Check { history: PathBuf },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Hosts (Jepsen uses 3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Faults, comma-separated: partition, kill, pause, clock, loss, disk; or all, or none.
    #[arg(long, default_value = "all")]
    nemesis: String,
    /// Partition shapes: one, majority, majorities-ring, minority-third, bridge, primaries; or all.
    #[arg(long, default_value = "all")]
    partition_shapes: String,
    /// Seconds of workload under faults.
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Seconds the final phase (heal, read everything) may take (Jepsen: 200).
    #[arg(long, default_value_t = 120)]
    final_time_limit: u64,
    /// Seeds the nemesis schedule and the workload's choices (default: the time).
    #[arg(long)]
    seed: Option<u64>,
    /// Operations per second across all clients (Jepsen: 100).
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Client threads (default: two per host).
    #[arg(long)]
    concurrency: Option<u32>,
    #[arg(long, value_enum, default_value_t = Idempotence::On)]
    idempotence: Idempotence,
    #[arg(long, value_enum, default_value_t = SubVia::Assign)]
    sub_via: SubVia,
    /// Where the run's files go (default: jepsen/store/<time>-seed<S>).
    #[arg(long)]
    store: Option<PathBuf>,
    /// The broker binary.
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    /// A Python with confluent-kafka.
    #[arg(long, default_value = ".venv/bin/python")]
    python: PathBuf,
}

fn list(text: &str, all: &[&str], what: &str) -> anyhow::Result<Vec<String>> {
    let items: Vec<String> = match text {
        "all" => all.iter().map(|s| s.to_string()).collect(),
        "none" | "" => Vec::new(),
        _ => text.split(',').map(|s| s.trim().to_string()).collect(),
    };
    for item in &items {
        anyhow::ensure!(all.contains(&item.as_str()), "unknown {what} {item:?}; known: {}", all.join(", "));
    }
    Ok(items)
}

/// The shapes that cut something on `nodes` hosts (majorities-ring needs 4, minority-third 4:
/// on 3 nodes Jepsen's versions are no-ops). Naming only impossible shapes is an error.
fn possible_shapes(shapes: Vec<String>, nodes: u32) -> anyhow::Result<Vec<String>> {
    use rand::SeedableRng;
    let requested = shapes.len();
    let possible: Vec<String> = shapes
        .into_iter()
        .filter(|name| {
            let shape: Shape = name.parse().expect("names were checked");
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let primaries = std::collections::BTreeSet::from([1]);
            nemesis::grudge::grudge(shape, nodes, &mut rng, &primaries).is_some()
        })
        .collect();
    anyhow::ensure!(requested == 0 || !possible.is_empty(), "no requested partition shape can cut {nodes} nodes");
    Ok(possible)
}

fn config_from(args: RunArgs) -> anyhow::Result<RunConfig> {
    anyhow::ensure!((3..=config::NODES_MAX).contains(&args.nodes), "--nodes must be 3..={}", config::NODES_MAX);
    anyhow::ensure!(args.rate >= 1 && args.time_limit >= 1, "--rate and --time-limit must be positive");
    let shapes: Vec<&str> = Shape::ALL.iter().map(|s| s.name()).collect();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    });
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let store = args.store.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        PathBuf::from(format!("jepsen/store/{secs}-seed{seed}"))
    });
    let nemesis = list(&args.nemesis, &NEMESES, "nemesis")?;
    let partition_shapes = possible_shapes(list(&args.partition_shapes, &shapes, "partition shape")?, args.nodes)?;
    anyhow::ensure!(
        !nemesis.iter().any(|n| n == "partition") || !partition_shapes.is_empty(),
        "the partition nemesis needs a partition shape"
    );
    Ok(RunConfig {
        nodes: args.nodes,
        nemesis,
        partition_shapes,
        time_limit_s: args.time_limit,
        final_time_limit_s: args.final_time_limit,
        seed,
        rate: args.rate,
        concurrency: args.concurrency.unwrap_or(config::default_concurrency(args.nodes)).max(1),
        idempotence: args.idempotence,
        sub_via: args.sub_via,
        store: absolute(store),
        sluice: absolute(args.sluice),
        python: absolute(args.python),
        worker_script: absolute(PathBuf::from("jepsen/client/worker.py")),
    })
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => config_from(args).and_then(|config| {
            anyhow::ensure!(config.sluice.exists(), "no broker binary at {}", config.sluice.display());
            anyhow::ensure!(config.python.exists(), "no python at {}", config.python.display());
            eprintln!("jepsen: store {}", config.store.display());
            supervisor::supervise(&config)
        }),
        Command::RunInner { config } => std::fs::read_to_string(&config)
            .map_err(anyhow::Error::from)
            .and_then(|text| Ok(serde_json::from_str::<RunConfig>(&text)?))
            .and_then(|config| run::run(&config)),
        Command::Teardown => {
            topology::teardown();
            Ok(0)
        }
        Command::Check { history } => results::check_file(&history),
    };
    match code {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("sluice-jepsen: {error:#}");
            std::process::exit(supervisor::EXIT_UNKNOWN);
        }
    }
}
