//! Jepsen's Kafka workload (jepsen_tla.md §1.1–1.3), one thread per worker: sends of unique
//! values to keys, polls, reassignments and client crashes at a bounded rate; then the final
//! phase's reads of every partition to its end.
//!
//! Each thread drives one worker process at a time. A send is one record (no transactions: the
//! broker has none yet), so Jepsen's ops have one mop; a poll op records one `Poll` line per
//! partition it returned, all with the op's id. An op that ends indeterminate retires the
//! process: the thread continues with a fresh worker and process id + concurrency (§1.2).

use crate::config::{
    CRASH_INTERVAL_S, FINAL_POLL_MS, KEY_COUNT, POLL_MS, RunConfig, SUB_ONE_IN, SubVia, WORKER_REPLY_TIMEOUT_MS,
    all_partitions, key_partition,
};
use crate::recorder::Recorder;
use crate::worker::{CONSUMER_GROUP, CallError, WorkerProcess};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_checker::{CommitOutcome, Line, Op, PartitionKey, SendOutcome};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Worker restarts one thread may make in a run (a bound on a crash loop).
const RESTARTS_MAX: u32 = 2_000;
/// How long a thread backs off after a worker failed to start.
const RESTART_BACKOFF_MS: u64 = 500;

/// What the threads share.
pub struct Shared {
    pub config: RunConfig,
    pub recorder: Arc<Recorder>,
    next_value: AtomicU64,
    next_op: AtomicU64,
    /// Per partition, the offset after the highest offset acknowledged or polled: what the
    /// final reads must reach (Jepsen: the highest offset ever acknowledged per key).
    ends: Mutex<BTreeMap<PartitionKey, i64>>,
    /// Operation counts by kind and outcome, for the summary.
    pub counts: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    pub fn new(config: &RunConfig, recorder: Arc<Recorder>) -> Shared {
        Shared {
            config: config.clone(),
            recorder,
            next_value: AtomicU64::new(0),
            next_op: AtomicU64::new(0),
            ends: Mutex::new(BTreeMap::new()),
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    fn count(&self, what: &str) {
        *self.counts.lock().expect("counts lock").entry(what.to_string()).or_insert(0) += 1;
    }

    fn saw(&self, key: &PartitionKey, offset: i64) {
        let mut ends = self.ends.lock().expect("ends lock");
        let end = ends.entry(key.clone()).or_insert(0);
        *end = (*end).max(offset + 1);
    }

    pub fn ends(&self) -> BTreeMap<PartitionKey, i64> {
        self.ends.lock().expect("ends lock").clone()
    }
}

/// One workload thread: its current process and worker.
pub struct Thread {
    thread: u32,
    process: u64,
    worker: Option<WorkerProcess>,
    rng: ChaCha8Rng,
    restarts: u32,
    /// The final phase: every new worker is assigned every partition, whatever `sub_via` says.
    assign_all: bool,
    shared: Arc<Shared>,
}

impl Thread {
    pub fn new(shared: Arc<Shared>, thread: u32) -> Thread {
        let rng = ChaCha8Rng::seed_from_u64(shared.config.seed ^ (u64::from(thread) << 40) ^ 0x6a65_7073_656e);
        Thread { thread, process: u64::from(thread), worker: None, rng, restarts: 0, assign_all: false, shared }
    }

    /// Runs ops until `stop`, at this thread's share of the rate.
    pub fn run(&mut self, stop: &AtomicBool) {
        let config = self.shared.config.clone();
        let mean_gap_ms = 1000 * u64::from(config.concurrency) / u64::from(config.rate.max(1));
        let crash_gap_ms = |rng: &mut ChaCha8Rng| rng.gen_range(0..=2 * CRASH_INTERVAL_S * 1000);
        let mut next_crash_ms = self.shared.recorder.now_ms() + crash_gap_ms(&mut self.rng);
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(self.rng.gen_range(0..=2 * mean_gap_ms)));
            if stop.load(Ordering::Acquire) {
                break;
            }
            if self.worker.is_none() && !self.start_worker() {
                continue;
            }
            let now = self.shared.recorder.now_ms();
            if now >= next_crash_ms {
                next_crash_ms = now + crash_gap_ms(&mut self.rng);
                self.shared.count("crash");
                self.retire();
            } else if self.rng.gen_ratio(1, SUB_ONE_IN) {
                let mut partitions = all_partitions();
                partitions.shuffle(&mut self.rng);
                let keep = self.rng.gen_range(1..=partitions.len());
                partitions.truncate(keep);
                self.reassign(&partitions);
            } else if self.rng.r#gen() {
                self.send();
            } else {
                self.poll(POLL_MS);
            }
        }
        self.worker = None;
    }

    /// Starts a worker for the current process and gives it its first assignment.
    fn start_worker(&mut self) -> bool {
        assert!(self.restarts < RESTARTS_MAX, "thread {} restarted its worker {RESTARTS_MAX} times", self.thread);
        self.restarts += 1;
        let started = WorkerProcess::spawn(&self.shared.config, self.process).and_then(|mut worker| {
            worker.ready()?;
            Ok(worker)
        });
        match started {
            Ok(worker) => {
                self.worker = Some(worker);
                match self.shared.config.sub_via {
                    SubVia::Subscribe if !self.assign_all => self.subscribe(),
                    _ => self.reassign(&all_partitions()),
                }
                self.worker.is_some()
            }
            Err(error) => {
                eprintln!("jepsen: thread {}: {error:#}", self.thread);
                self.process += u64::from(self.shared.config.concurrency);
                std::thread::sleep(Duration::from_millis(RESTART_BACKOFF_MS));
                false
            }
        }
    }

    /// Ends the current process (Jepsen: a crashed or indeterminate client is torn down and its
    /// thread continues as a new process).
    fn retire(&mut self) {
        if let Some(mut worker) = self.worker.take() {
            worker.kill();
        }
        self.process += u64::from(self.shared.config.concurrency);
    }

    fn call(&mut self, request: serde_json::Value) -> Result<serde_json::Value, CallError> {
        let worker = self.worker.as_mut().expect("a call needs a worker");
        let answer = worker.call(&request, WORKER_REPLY_TIMEOUT_MS);
        if let Err(CallError::Broken(why)) = &answer {
            eprintln!("jepsen: worker p{} broke: {why}", self.process);
        }
        answer
    }

    fn seek_lines(&self, seeks: &serde_json::Value, at_ms: u64) {
        for seek in seeks.as_array().into_iter().flatten() {
            let (Some(topic), Some(partition), Some(offset)) = (seek[0].as_str(), seek[1].as_i64(), seek[2].as_i64())
            else {
                continue;
            };
            let partition = PartitionKey::new(topic, partition as i32);
            let op = Op::Seek { process: self.process, partition, offset, at_ms };
            self.shared.recorder.record(&Line::Op(op));
        }
    }

    /// The OffsetFetch answers a subscribe-mode worker got when the group assigned it partitions
    /// (during a poll, so within the poll's interval).
    fn fetch_lines(&self, fetches: &serde_json::Value, invoke_ms: u64, complete_ms: u64) {
        for fetch in fetches.as_array().into_iter().flatten() {
            let (Some(topic), Some(partition)) = (fetch[0].as_str(), fetch[1].as_i64()) else { continue };
            let committed = match (fetch[2][0].as_i64(), fetch[2][1].as_str()) {
                (Some(offset), Some(metadata)) => Some((offset, metadata.to_string())),
                _ => None,
            };
            let op = Op::FetchCommitted {
                process: self.process,
                group: CONSUMER_GROUP.to_string(),
                partition: PartitionKey::new(topic, partition as i32),
                invoke_ms,
                complete_ms,
                committed,
            };
            self.shared.recorder.record(&Line::Op(op));
        }
    }

    /// The OffsetCommits a subscribe-mode worker made after a poll, one line per partition.
    fn commit_lines(&self, commits: &serde_json::Value, invoke_ms: u64, complete_ms: u64) {
        for commit in commits.as_array().into_iter().flatten() {
            let (Some(topic), Some(partition), Some(offset), Some(metadata), Some(outcome)) =
                (commit[0].as_str(), commit[1].as_i64(), commit[2].as_i64(), commit[3].as_str(), commit[4].as_str())
            else {
                continue;
            };
            let outcome = match outcome {
                "Ok" => CommitOutcome::Ok,
                "Failed" => CommitOutcome::Failed,
                _ => CommitOutcome::Indeterminate,
            };
            self.shared.count("commit");
            let op = Op::Commit {
                process: self.process,
                group: CONSUMER_GROUP.to_string(),
                partition: PartitionKey::new(topic, partition as i32),
                offset,
                metadata: metadata.to_string(),
                invoke_ms,
                complete_ms,
                outcome,
            };
            self.shared.recorder.record(&Line::Op(op));
        }
    }

    fn reassign(&mut self, partitions: &[(String, i32)]) {
        let list: Vec<serde_json::Value> = partitions.iter().map(|(t, p)| serde_json::json!([t, p])).collect();
        let at_ms = self.shared.recorder.now_ms();
        match self.call(serde_json::json!({"f": "assign", "partitions": list})) {
            Ok(answer) => {
                self.shared.count("assign");
                self.seek_lines(&answer["seeks"], at_ms);
            }
            Err(_) => self.retire(),
        }
    }

    fn subscribe(&mut self) {
        let topics = self.shared.config.topics();
        match self.call(serde_json::json!({"f": "subscribe", "topics": topics})) {
            Ok(_) => self.shared.count("subscribe"),
            Err(_) => self.retire(),
        }
    }

    fn send(&mut self) {
        let key = self.rng.gen_range(0..KEY_COUNT);
        let (topic, partition) = key_partition(key);
        let value = format!("v{}", self.shared.next_value.fetch_add(1, Ordering::Relaxed));
        let op_id = self.shared.next_op.fetch_add(1, Ordering::Relaxed);
        let request = serde_json::json!({"f": "send", "topic": topic, "partition": partition, "value": value});
        let invoke_ms = self.shared.recorder.now_ms();
        let answer = self.call(request);
        let complete_ms = self.shared.recorder.now_ms();
        let partition = PartitionKey::new(topic, partition);
        let outcome = match &answer {
            Ok(a) if a["type"] == "ok" => match a["offset"].as_i64() {
                Some(offset) if offset >= 0 => SendOutcome::Ok { offset },
                _ => SendOutcome::Indeterminate,
            },
            Ok(a) if a["type"] == "fail" => SendOutcome::Failed,
            _ => SendOutcome::Indeterminate,
        };
        let kind = match outcome {
            SendOutcome::Ok { offset } => {
                self.shared.saw(&partition, offset);
                "send:ok"
            }
            SendOutcome::Failed => "send:fail",
            SendOutcome::Indeterminate => "send:info",
        };
        self.shared.count(kind);
        let op = Op::Send {
            process: self.process,
            partition,
            value,
            invoke_ms,
            complete_ms,
            outcome: outcome.clone(),
            idempotent: self.shared.config.idempotent(self.process),
            op_id: Some(op_id),
        };
        self.shared.recorder.record(&Line::Op(op));
        if !matches!(outcome, SendOutcome::Ok { .. }) {
            self.retire();
        }
    }

    /// One poll op; returns the partitions it read, with the offset after the last record.
    fn poll(&mut self, poll_ms: u64) -> BTreeMap<PartitionKey, i64> {
        let op_id = self.shared.next_op.fetch_add(1, Ordering::Relaxed);
        let invoke_ms = self.shared.recorder.now_ms();
        let answer = self.call(serde_json::json!({"f": "poll", "poll_ms": poll_ms}));
        let complete_ms = self.shared.recorder.now_ms();
        let mut read = BTreeMap::new();
        let Ok(answer) = answer else {
            self.shared.count("poll:info");
            self.retire();
            return read;
        };
        self.shared.count("poll:ok");
        for rebalance in answer["rebalances"].as_array().into_iter().flatten() {
            self.fetch_lines(&rebalance["fetches"], invoke_ms, complete_ms);
            self.seek_lines(&rebalance["seeks"], invoke_ms);
        }
        self.commit_lines(&answer["commits"], invoke_ms, complete_ms);
        for poll in answer["polls"].as_array().into_iter().flatten() {
            let (Some(topic), Some(partition)) = (poll["topic"].as_str(), poll["partition"].as_i64()) else { continue };
            let partition = PartitionKey::new(topic, partition as i32);
            let records: Vec<(i64, String)> = poll["records"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| Some((r[0].as_i64()?, r[1].as_str()?.to_string())))
                .collect();
            if let Some(&(last, _)) = records.last() {
                self.shared.saw(&partition, last);
                read.insert(partition.clone(), last + 1);
            }
            let op = Op::Poll {
                process: self.process,
                partition,
                fetch_offset: poll["fetch_offset"].as_i64().unwrap_or(0),
                invoke_ms,
                complete_ms,
                high_watermark: poll["high_watermark"].as_i64().unwrap_or(0),
                records,
                op_id: Some(op_id),
            };
            self.shared.recorder.record(&Line::Op(op));
        }
        read
    }

    /// The final phase for this thread (Jepsen §1.3): a fresh client assigned every partition
    /// from the beginning polls until it has read up to `ends` everywhere or `deadline_ms`
    /// passes. Returns the partitions it reached.
    pub fn final_reads(&mut self, ends: &BTreeMap<PartitionKey, i64>, deadline_ms: u64) -> Vec<PartitionKey> {
        self.retire();
        self.assign_all = true;
        let mut positions: BTreeMap<PartitionKey, i64> = BTreeMap::new();
        let reached = |positions: &BTreeMap<PartitionKey, i64>| -> Vec<PartitionKey> {
            ends.iter()
                .filter(|(key, end)| positions.get(*key).copied().unwrap_or(0) >= **end)
                .map(|(key, _)| key.clone())
                .collect()
        };
        while self.shared.recorder.now_ms() < deadline_ms && reached(&positions).len() < ends.len() {
            if self.worker.is_none() {
                positions.clear();
                self.start_worker();
                continue;
            }
            for (key, end) in self.poll(FINAL_POLL_MS) {
                let position = positions.entry(key).or_insert(0);
                *position = (*position).max(end);
            }
        }
        self.worker = None;
        reached(&positions)
    }
}
