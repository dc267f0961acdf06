//! The history format: what clients did (sends, polls, seeks of the log; commits and fetches of
//! consumer-group offsets) and what each replica's committed log held after healing (final
//! reads), stored as JSON lines.
//!
//! Why JSON lines: the madsim simulator and the real-process Jepsen harness both append one line
//! per completed operation, so a crashed run still leaves a readable prefix, and `jq`/`grep` work
//! on it. Each line is a [`Line`]: an [`Op`], a [`FinalRead`], a [`NemesisEvent`] (a fault,
//! ignored by the checks) or a [`FinalPolls`] verdict, told apart by the `line` tag; ops carry a
//! second tag, `type` (`Send`, `Poll`, `Seek`, `Commit`, `FetchCommitted`). `Send` and `Poll`
//! lines may name the Jepsen operation they belong to (`"op_id":17`, omitted when absent, so
//! older histories still parse).
//! A group offset line names its group and partition, e.g. `{"line":"op","type":"Commit",
//! "process":3,"group":"billing","partition":{..},"offset":5,"metadata":"p3-5",
//! "invoke_ms":10,"complete_ms":12,"outcome":"Ok"}`; a `FetchCommitted` line ends with
//! `"committed":[5,"p3-5"]`, or `"committed":null` when the group has no offset there.
//!
//! Invariants the harness promises (and `check` verifies, reporting `HarnessError` otherwise):
//! * every sent value is unique across the whole history (Jepsen kafka workload: "values are
//!   unique per key"; ours are unique per history, which is stronger);
//! * every commit's metadata is unique across the whole history, so a fetched (offset, metadata)
//!   names the one commit it came from (Jepsen's register workloads write unique values for the
//!   same reason);
//! * `invoke_ms <= complete_ms`, and all offsets (sent, polled, sought, committed, fetched) and
//!   high watermarks are >= 0;
//! * a final read holds only committed records: `log_start <= offset < high_watermark`, offsets
//!   strictly increasing;
//! * lines sharing an `op_id` belong to one operation of one process, and a process whose lines
//!   carry op_ids runs one operation at a time, as a Jepsen process does (jepsen_tla.md §1.2);
//!   processes without op_ids may pipeline; a final-poll `end_offset` is >= 0;
//! * all times come from one monotonic clock, and an op's `invoke_ms` is taken before its
//!   request leaves (the realtime order of cycles.rs depends on it).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How many lines `from_jsonl` accepts before refusing the input (a bound on memory; a long
/// simulation writes well under a million).
pub const HISTORY_LINES_MAX: u64 = 50_000_000;

/// A Kafka topic partition (Kafka protocol: `string topic`, `int32 partition_index`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionKey {
    pub topic: String,
    /// Invariant: >= 0.
    pub partition: i32,
}

impl PartitionKey {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// What the producer learned about one send.
///
/// Jepsen history types: `Ok` is `:ok`, `Failed` is `:fail`, `Indeterminate` is `:info`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Acknowledged (acks=all): the record is committed at `offset`. Invariant: `offset >= 0`.
    Ok { offset: i64 },
    /// Definitely not written, e.g. a Kafka error that guarantees no append (authorization,
    /// unknown topic). NOT `NOT_LEADER_OR_FOLLOWER`: that one is indeterminate (KAFKA-13574).
    Failed,
    /// Unknown: timeout, disconnect, crash. The record may or may not be in the log.
    Indeterminate,
}

/// What a group member learned about one OffsetCommit of one partition.
///
/// Jepsen history types, as for sends: `Ok` is `:ok`, `Failed` is `:fail`, `Indeterminate` is
/// `:info`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The coordinator answered no error: the commit is durable.
    Ok,
    /// A fencing error the coordinator answers before writing anything (ILLEGAL_GENERATION,
    /// UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID): never visible.
    Failed,
    /// Timeout, disconnect, or a coordinator error (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
    /// ...) that a write in flight may still follow: it may or may not become visible, at any later time.
    Indeterminate,
}

/// One client operation, recorded when it completes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type")]
pub enum Op {
    /// A produce of one record. `value` is unique per history.
    Send {
        process: u64,
        partition: PartitionKey,
        value: String,
        invoke_ms: u64,
        /// Invariant: >= `invoke_ms`.
        complete_ms: u64,
        outcome: SendOutcome,
        /// The producer had `enable.idempotence=true` (KIP-98): duplicates are then violations.
        idempotent: bool,
        /// The Jepsen operation this line belongs to (see [`Op::op_id`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        op_id: Option<u64>,
    },
    /// One consumer poll of one partition.
    Poll {
        process: u64,
        partition: PartitionKey,
        /// The consumer position when the fetch was issued. The harness must, like the Java
        /// consumer, drop records below it (a Fetch returns whole batches).
        fetch_offset: i64,
        invoke_ms: u64,
        /// Invariant: >= `invoke_ms`.
        complete_ms: u64,
        /// The partition high watermark in the Fetch response (Kafka protocol: Fetch
        /// `high_watermark`).
        high_watermark: i64,
        /// (offset, value) in the order returned to the client. Control batches and Raft no-ops
        /// take offsets but are never returned, so gaps are normal.
        records: Vec<(i64, String)>,
        /// The Jepsen operation this line belongs to (see [`Op::op_id`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        op_id: Option<u64>,
    },
    /// The consumer was repositioned (assign, seek, offset reset): poll monotonicity restarts
    /// for this (process, partition).
    Seek { process: u64, partition: PartitionKey, offset: i64, at_ms: u64 },
    /// One OffsetCommit of one partition by a member of `group`.
    Commit {
        process: u64,
        group: String,
        partition: PartitionKey,
        /// Invariant: >= 0.
        offset: i64,
        /// The commit's metadata string, unique per history: a read names the commit it saw.
        metadata: String,
        invoke_ms: u64,
        /// Invariant: >= `invoke_ms`.
        complete_ms: u64,
        outcome: CommitOutcome,
    },
    /// One OffsetFetch answer for one partition of `group`.
    FetchCommitted {
        process: u64,
        group: String,
        partition: PartitionKey,
        invoke_ms: u64,
        /// Invariant: >= `invoke_ms`.
        complete_ms: u64,
        /// (offset, metadata) committed, or None when the group has no offset for it (Kafka answers -1).
        /// Invariant: the offset is >= 0.
        committed: Option<(i64, String)>,
    },
}

impl Op {
    pub fn process(&self) -> u64 {
        match self {
            Op::Send { process, .. }
            | Op::Poll { process, .. }
            | Op::Seek { process, .. }
            | Op::Commit { process, .. }
            | Op::FetchCommitted { process, .. } => *process,
        }
    }

    /// The log partition read or written, or, for `Commit` and `FetchCommitted`, the partition
    /// whose committed offset the group stores.
    pub fn partition(&self) -> &PartitionKey {
        match self {
            Op::Send { partition, .. }
            | Op::Poll { partition, .. }
            | Op::Seek { partition, .. }
            | Op::Commit { partition, .. }
            | Op::FetchCommitted { partition, .. } => partition,
        }
    }

    /// The Jepsen operation a `Send` or `Poll` line belongs to. A Jepsen send op of k records is
    /// recorded as k `Send` lines, a poll op as one `Poll` line per partition it returned; lines
    /// with equal `op_id` are one vertex of the dependency graph (cycles.rs). None: the line is
    /// an operation of its own (the simulator writes none). Invariant: unique per operation
    /// across the history, the lines of one operation share their process, and a process with
    /// op_ids runs one operation at a time (then, and only then, its ops are process-ordered).
    pub fn op_id(&self) -> Option<u64> {
        match self {
            Op::Send { op_id, .. } | Op::Poll { op_id, .. } => *op_id,
            Op::Seek { .. } | Op::Commit { .. } | Op::FetchCommitted { .. } => None,
        }
    }
}

/// Whether a fault was injected or healed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NemesisPhase {
    Start,
    Stop,
}

/// One fault injected or healed (Jepsen: a nemesis op, always `:info`). The checks ignore them;
/// they are kept so a history shows what the cluster went through, and counted in `Stats`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NemesisEvent {
    /// When the nemesis acted, on the clock of the ops' `invoke_ms`/`complete_ms`.
    pub at_ms: u64,
    /// What it did, in Jepsen's words: "start-partition", "kill", "pause", ...
    pub f: String,
    pub phase: NemesisPhase,
    /// The target and details (nodes, grudge, ...); free-form.
    pub value: serde_json::Value,
}

/// The final-poll phase's verdict for one partition (Jepsen kafka workload, final phase:
/// jepsen_tla.md §1.3): after every fault was healed, consumers assigned this partition polled
/// it from its start up to `end_offset`, the partition's log end. Then every acknowledged send to
/// it must have been polled by someone (`Unseen`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FinalPolls {
    pub partition: PartitionKey,
    /// The log end the consumers had to reach. Invariant: >= 0.
    pub end_offset: i64,
    /// False: they could not get there before the deadline, so `Unseen` does not judge this
    /// partition (`Stats::final_polls_unreached` counts it; a harness reports "unknown").
    pub reached: bool,
}

/// One replica's committed log of one partition, read after the faults were healed and the
/// cluster quiesced.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FinalRead {
    pub node: u32,
    pub partition: PartitionKey,
    /// Invariant: >= `log_start`.
    pub high_watermark: i64,
    /// The first offset still in the log (retention or DeleteRecords may have removed earlier
    /// ones). Invariant: >= 0.
    pub log_start: i64,
    /// (offset, value) of every data record in `log_start..high_watermark`, offsets strictly
    /// increasing. Offsets without a record are control batches or Raft no-ops.
    pub records: Vec<(i64, String)>,
}

/// A whole test run: client operations in completion order, the faults injected, the final-poll
/// verdicts, then the final reads.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct History {
    pub ops: Vec<Op>,
    pub final_reads: Vec<FinalRead>,
    /// In the order recorded; ignored by the checks.
    #[serde(default)]
    pub nemesis: Vec<NemesisEvent>,
    /// At most one reached verdict per partition is needed; partitions without one are not
    /// judged by `Unseen`.
    #[serde(default)]
    pub final_polls: Vec<FinalPolls>,
}

/// One line of a `.jsonl` history: `{"line":"op","type":"Send",...}`,
/// `{"line":"final_read","node":1,...}`, `{"line":"nemesis","at_ms":5,"f":"kill",
/// "phase":"start","value":..}` or `{"line":"final_polls","partition":{..},"end_offset":9,
/// "reached":true}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "line", rename_all = "snake_case")]
pub enum Line {
    Op(Op),
    FinalRead(FinalRead),
    Nemesis(NemesisEvent),
    FinalPolls(FinalPolls),
}

/// Why a `.jsonl` history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history line {line_number}: {source}")]
    Parse {
        /// 1-based.
        line_number: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("history has more than {HISTORY_LINES_MAX} lines")]
    TooManyLines,
}

impl History {
    /// Encodes the history as JSON lines: every op in order, then every nemesis event, every
    /// final-poll verdict and every final read (a recorder interleaves them in time; each kind
    /// keeps its own order either way). Ends with a newline unless empty.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        let ops = self.ops.iter().cloned().map(Line::Op);
        let nemesis = self.nemesis.iter().cloned().map(Line::Nemesis);
        let final_polls = self.final_polls.iter().cloned().map(Line::FinalPolls);
        let finals = self.final_reads.iter().cloned().map(Line::FinalRead);
        for line in ops.chain(nemesis).chain(final_polls).chain(finals) {
            // Cannot fail: every map key is a string and every number fits JSON.
            let json = serde_json::to_string(&line).expect("history line serializes");
            assert!(!json.contains('\n'), "serde_json::to_string emits no newline");
            out.push_str(&json);
            out.push('\n');
        }
        out
    }

    /// Decodes JSON lines. Blank lines are skipped; lines of every kind may interleave (each kind
    /// keeps its relative order).
    pub fn from_jsonl(text: &str) -> Result<History, HistoryError> {
        let mut history = History::default();
        for (line_index, text_line) in text.lines().enumerate() {
            let line_number = u64::try_from(line_index).expect("usize fits u64") + 1;
            if line_number > HISTORY_LINES_MAX {
                return Err(HistoryError::TooManyLines);
            }
            if text_line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Line>(text_line) {
                Ok(Line::Op(op)) => history.ops.push(op),
                Ok(Line::FinalRead(read)) => history.final_reads.push(read),
                Ok(Line::Nemesis(event)) => history.nemesis.push(event),
                Ok(Line::FinalPolls(verdict)) => history.final_polls.push(verdict),
                Err(source) => return Err(HistoryError::Parse { line_number, source }),
            }
        }
        Ok(history)
    }
}
