//! One client process: `jepsen/client/worker.py` (confluent-kafka over librdkafka) spoken to in
//! JSON lines, one request at a time, each answer awaited with a deadline.
//!
//! Why a deadline per request and a kill after it: a Jepsen client whose operation hangs is
//! recorded as indeterminate (`:info`) and torn down (jepsen_tla.md §1.2); the next operation
//! runs in a fresh process with a fresh id. A reader thread forwards the child's stdout lines
//! into a channel, so waiting is `recv_timeout`, never a blocked read.

use crate::config::{RunConfig, WORKER_START_TIMEOUT_MS};
use anyhow::{Context, bail};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::Duration;

/// Answers buffered from one worker (it answers one request at a time, so one suffices; a few
/// absorb stray output without blocking the reader).
const ANSWERS_QUEUED_MAX: usize = 4;

/// The one consumer group of every worker: in `--sub-via subscribe` mode the group spreads the
/// partitions over the live workers and moves them as workers crash (Jepsen's subscribe mode);
/// in assign mode the group is unused (no commits).
pub const CONSUMER_GROUP: &str = "jepsen-group";

pub struct WorkerProcess {
    pub process: u64,
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum CallError {
    /// No answer within the deadline; the worker was killed.
    Timeout,
    /// The worker exited or wrote something that is not an answer; it was killed.
    Broken(String),
}

impl WorkerProcess {
    /// Starts the worker of Jepsen process `process`; its stderr goes to `workers/p<id>.log`.
    pub fn spawn(config: &RunConfig, process: u64) -> anyhow::Result<WorkerProcess> {
        let log_dir = config.store.join("workers");
        std::fs::create_dir_all(&log_dir)?;
        let log = std::fs::File::create(log_dir.join(format!("p{process}.log")))?;
        let idempotent = if config.idempotent(process) { "true" } else { "false" };
        let mut child = Command::new(&config.python)
            .arg(&config.worker_script)
            .args([&config.bootstrap(), idempotent, &format!("jepsen-p{process}"), CONSUMER_GROUP])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start worker p{process}"))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, answers) = sync_channel(ANSWERS_QUEUED_MAX);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(WorkerProcess { process, child, stdin, answers })
    }

    /// Sends one request and waits at most `timeout_ms` for its answer.
    pub fn call(&mut self, request: &serde_json::Value, timeout_ms: u64) -> Result<serde_json::Value, CallError> {
        let line = format!("{request}\n");
        if let Err(error) = self.stdin.write_all(line.as_bytes()).and_then(|()| self.stdin.flush()) {
            self.kill();
            return Err(CallError::Broken(format!("write: {error}")));
        }
        match self.answers.recv_timeout(Duration::from_millis(timeout_ms)) {
            Ok(answer) => serde_json::from_str(&answer).map_err(|error| {
                self.kill();
                CallError::Broken(format!("answer {answer:?}: {error}"))
            }),
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(CallError::Timeout)
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.kill();
                Err(CallError::Broken("the worker exited".to_string()))
            }
        }
    }

    /// Waits for the worker to import its client library: a no-op request (an empty assign).
    pub fn ready(&mut self) -> anyhow::Result<()> {
        let request = serde_json::json!({"f": "assign", "partitions": []});
        match self.call(&request, WORKER_START_TIMEOUT_MS) {
            Ok(_) => Ok(()),
            Err(error) => bail!("worker p{} did not start: {error:?}", self.process),
        }
    }

    /// Tears the process down (Jepsen's crash), waiting for its exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
