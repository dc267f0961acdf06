//! `sluice`: the one binary. `sluice serve` runs a broker; the other subcommands administer a
//! running cluster over the Kafka protocol (`--brokers`, default 127.0.0.1:9092).

mod commands;
mod serve;

use clap::{Parser, Subcommand};

/// Survives hostile array counts in Kafka frames (see `sluice_broker::allocator`).
#[global_allocator]
static ALLOCATOR: sluice_broker::allocator::LazyHugeAllocator = sluice_broker::allocator::LazyHugeAllocator;

#[derive(Parser)]
#[command(name = "sluice", version, about = "Sluice: a Kafka-compatible event streaming broker")]
struct Cli {
    /// Bootstrap broker(s) for the admin commands, host:port[,host:port...].
    #[arg(short = 'b', long, global = true, env = "SLUICE_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Output format of the admin commands.
    #[arg(long, global = true, value_enum, default_value_t = commands::OutputFormat::Text)]
    format: commands::OutputFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (single node on embedded defaults).
    Serve(Box<serve::ServeArgs>),
    #[command(flatten)]
    Admin(commands::Command),
}

/// A broker stops whole on any panic. A panic is a broken invariant or a storage failure
/// (DESIGN.md, Style: crash on corruption and broken invariants), and tokio would otherwise end
/// only the panicking task: the broker would keep serving with a replica's driver gone, a
/// replica that never catches up again and is never restarted (found by jepsen/'s disk-full
/// nemesis: "stopping the broker rather than risk an acknowledged record" did not stop it).
fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::abort();
    }));
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    sluice_broker::allocator::tune_system_allocator();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        abort_on_panic();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Admin(command) => commands::run(command, &cli.brokers, cli.format).await,
        }
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line with the cause chain; no backtrace for expected failures.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
