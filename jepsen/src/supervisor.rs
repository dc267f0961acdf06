//! The outer process, in the root network namespace: builds the network, runs the test inside
//! the client namespace as a child (`ip netns exec sj-c sluice-jepsen run-inner`), and tears
//! everything down whatever happens: the child's exit, its failure, an interrupt, a timeout.
//!
//! Why two processes: the test's own sockets (admin HTTP, the clients) must live in the client
//! namespace, and entering a namespace from Rust needs `setns` (unsafe here); re-executing under
//! `ip netns exec` needs nothing. Teardown stays outside, so it runs even if the test is killed.

use crate::config::{RunConfig, SUPERVISOR_SLACK_S};
use crate::{shell, topology};
use anyhow::bail;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// One run at a time: the namespaces have fixed names.
const LOCK_FILE: &str = "/run/sluice-jepsen.pid";
/// How often the supervisor looks at its child and for signals.
const TICK_MS: u64 = 100;

/// Exit code when the run could not reach a verdict (Jepsen's :unknown).
pub const EXIT_UNKNOWN: i32 = 2;

fn take_lock() -> anyhow::Result<()> {
    if let Ok(pid) = std::fs::read_to_string(LOCK_FILE) {
        let pid = pid.trim();
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if pid != std::process::id().to_string() && cmdline.contains("sluice-jepsen") {
            bail!("another sluice-jepsen run (pid {pid}) is under way; its namespaces are named sj-*");
        }
    }
    std::fs::write(LOCK_FILE, std::process::id().to_string())?;
    Ok(())
}

/// Runs the test described by `config`; returns the exit code (0 valid, 1 invalid, 2 unknown).
pub fn supervise(config: &RunConfig) -> anyhow::Result<i32> {
    take_lock()?;
    std::fs::create_dir_all(&config.store)?;
    shell::set_log(&config.store.join("commands.log"));
    let stale = topology::namespaces();
    if !stale.is_empty() {
        eprintln!("jepsen: removing a previous run's namespaces {stale:?}");
        topology::teardown();
    }
    let config_path = config.store.join("config.json");
    std::fs::write(&config_path, serde_json::to_string_pretty(config)?)?;
    let code = match topology::up(config) {
        Ok(()) => run_child(config, &config_path),
        Err(error) => {
            eprintln!("jepsen: building the network failed: {error:#}");
            Ok(EXIT_UNKNOWN)
        }
    };
    topology::teardown();
    let left = topology::namespaces();
    assert!(left.is_empty(), "teardown left namespaces {left:?}");
    let _ = std::fs::remove_file(LOCK_FILE);
    code
}

fn run_child(config: &RunConfig, config_path: &Path) -> anyhow::Result<i32> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", crate::config::CLIENT_NS])
        .arg(exe)
        .arg("run-inner")
        .arg("--config")
        .arg(config_path)
        .spawn()?;
    let limit_s = config.time_limit_s + config.final_time_limit_s + SUPERVISOR_SLACK_S;
    let deadline = Instant::now() + Duration::from_secs(limit_s);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(wait_child(&mut child, deadline, limit_s))
}

async fn wait_child(child: &mut Child, deadline: Instant, limit_s: u64) -> anyhow::Result<i32> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let why = loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code().unwrap_or(EXIT_UNKNOWN));
        }
        if Instant::now() >= deadline {
            break format!("the run exceeded {limit_s} s; killing it");
        }
        tokio::select! {
            _ = interrupt.recv() => break "interrupted; tearing down".to_string(),
            _ = terminate.recv() => break "terminated; tearing down".to_string(),
            _ = tokio::time::sleep(Duration::from_millis(TICK_MS)) => {}
        }
    };
    eprintln!("jepsen: {why}");
    let _ = child.kill();
    let _ = child.wait();
    Ok(EXIT_UNKNOWN)
}
