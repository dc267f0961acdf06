//! Runs one external command (ip, nft, mount, kill, sluice) with a deadline, and logs it.
//!
//! Why: the harness drives the kernel through its command-line tools, as Jepsen drives its
//! nodes over SSH. Every command is bounded (`COMMAND_TIMEOUT_MS`) and appended with its exit
//! status and error output to `commands.log`, so a failed run shows exactly what was done.

use crate::config::COMMAND_TIMEOUT_MS;
use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where commands are logged; unset until a run's store directory exists.
static LOG: Mutex<Option<PathBuf>> = Mutex::new(None);
/// How often a running command is polled for exit.
const WAIT_POLL_MS: u64 = 10;

pub fn set_log(path: &Path) {
    *LOG.lock().expect("shell log lock") = Some(path.to_path_buf());
}

fn log(line: &str) {
    let path = LOG.lock().expect("shell log lock").clone();
    if let Some(path) = path
        && let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path)
    {
        let _ = writeln!(file, "{line}");
    }
}

/// The output of a command that ran to completion.
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `argv` with `stdin` fed to it; waits at most `COMMAND_TIMEOUT_MS`.
pub fn run_input(argv: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
    assert!(!argv.is_empty(), "a command has a program");
    let started = Instant::now();
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {argv:?}"))?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(text.as_bytes()).with_context(|| format!("write stdin of {argv:?}"))?;
    }
    let mut stdout_pipe = child.stdout.take().expect("stdout is piped");
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout_pipe.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let deadline = started + Duration::from_millis(COMMAND_TIMEOUT_MS);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            log(&format!("TIMEOUT {argv:?}"));
            bail!("{argv:?} did not finish within {COMMAND_TIMEOUT_MS} ms");
        }
        std::thread::sleep(Duration::from_millis(WAIT_POLL_MS));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let code = status.code().unwrap_or(-1);
    let elapsed_ms = started.elapsed().as_millis();
    log(&format!(
        "{argv:?} -> {code} ({elapsed_ms} ms){}",
        if stderr.is_empty() { String::new() } else { format!(" stderr: {}", stderr.trim()) }
    ));
    Ok(Output { status: code, stdout, stderr })
}

/// Runs `argv`; fails unless it exits 0.
pub fn run(argv: &[&str]) -> anyhow::Result<String> {
    run_ok(argv, None)
}

/// Runs `argv` with `stdin`; fails unless it exits 0.
pub fn run_ok(argv: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let output = run_input(argv, stdin)?;
    if output.status != 0 {
        bail!("{argv:?} exited {}: {}", output.status, output.stderr.trim());
    }
    Ok(output.stdout)
}

/// Runs `argv`, ignoring its exit status (teardown steps that may find nothing to undo).
pub fn run_quiet(argv: &[&str]) {
    let _ = run_input(argv, None);
}
