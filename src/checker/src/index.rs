//! Derived structures, computed once per history and shared by every checker.
//!
//! Why: Jepsen's kafka checker builds its version order (`log[k][offset] -> #{values}`) and its
//! reader/writer maps once and runs every anomaly query over them (jepsen_tla.md §1.4). Ours is
//! the same idea with raw offsets (no dense indices: gaps are judged against the final log), and
//! it remembers *where* each (offset, value) was seen so a violation can name its witnesses.
//!
//! Invariants: every collection is a BTreeMap/BTreeSet or a Vec in history order, so iteration
//! (and therefore the report) is deterministic; nothing here judges the history. Group offset
//! ops (`Commit`, `FetchCommitted`) neither read nor write the log, so they are not indexed here
//! and name no partition in `partitions` (group_offsets.rs indexes them).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::history::{History, Op, PartitionKey, SendOutcome};

/// How many witnesses are kept per (offset, value); more add nothing to a message.
pub(crate) const SOURCES_PER_RECORD_MAX: usize = 4;

/// Where an (offset, value) pair was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Ack { op: u64, process: u64 },
    Poll { op: u64, process: u64 },
    Final { node: u32 },
}

impl Source {
    pub(crate) fn is_read(self) -> bool {
        !matches!(self, Source::Ack { .. })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Ack { op, process } => write!(f, "acknowledged to process {process} (op #{op})"),
            Source::Poll { op, process } => write!(f, "polled by process {process} (op #{op})"),
            Source::Final { node } => write!(f, "final log of node {node}"),
        }
    }
}

pub(crate) struct SendView<'h> {
    /// Position in `History::ops`.
    pub op: u64,
    pub process: u64,
    pub partition: &'h PartitionKey,
    pub value: &'h str,
    pub invoke_ms: u64,
    pub complete_ms: u64,
    pub outcome: &'h SendOutcome,
    pub idempotent: bool,
    /// The Jepsen operation the line belongs to (`Op::op_id`).
    pub op_id: Option<u64>,
}

impl SendView<'_> {
    pub(crate) fn acked_offset(&self) -> Option<i64> {
        match self.outcome {
            SendOutcome::Ok { offset } => Some(*offset),
            SendOutcome::Failed | SendOutcome::Indeterminate => None,
        }
    }
}

pub(crate) struct PollView<'h> {
    pub op: u64,
    pub process: u64,
    pub partition: &'h PartitionKey,
    pub fetch_offset: i64,
    pub invoke_ms: u64,
    pub complete_ms: u64,
    pub high_watermark: i64,
    pub records: &'h [(i64, String)],
    /// The Jepsen operation the line belongs to (`Op::op_id`).
    pub op_id: Option<u64>,
}

pub(crate) struct SeekView<'h> {
    pub op: u64,
    pub process: u64,
    pub partition: &'h PartitionKey,
    pub at_ms: u64,
}

/// One replica's committed log of one partition (the first final read for that node wins).
pub(crate) struct Replica<'h> {
    pub node: u32,
    pub log_start: i64,
    pub high_watermark: i64,
    /// offset -> value; the first record wins if a read repeats an offset.
    pub records: BTreeMap<i64, &'h str>,
}

impl Replica<'_> {
    /// "node 2 (which holds offsets 0..57)".
    pub(crate) fn describe(&self) -> String {
        format!("node {} (which holds offsets {}..{})", self.node, self.log_start, self.high_watermark)
    }
}

#[derive(Default)]
pub(crate) struct PartitionIndex<'h> {
    /// offset -> value -> witnesses (at most `SOURCES_PER_RECORD_MAX` each).
    pub observed: BTreeMap<i64, BTreeMap<&'h str, Vec<Source>>>,
    /// value -> every offset it was seen at, by any source.
    pub offsets_by_value: BTreeMap<&'h str, BTreeSet<i64>>,
    /// Values seen by a poll or a final read (not merely acknowledged).
    pub read_values: BTreeSet<&'h str>,
    /// The highest offset any poll returned, and that poll.
    pub highest_polled: Option<(i64, Source)>,
    /// node -> committed log.
    pub replicas: BTreeMap<u32, Replica<'h>>,
    /// Indices into `Index::sends` / `Index::polls`, in history order.
    pub sends: Vec<usize>,
    pub polls: Vec<usize>,
}

impl<'h> PartitionIndex<'h> {
    fn observe(&mut self, offset: i64, value: &'h str, source: Source) {
        let sources = self.observed.entry(offset).or_default().entry(value).or_default();
        if sources.len() < SOURCES_PER_RECORD_MAX && !sources.contains(&source) {
            sources.push(source);
        }
        self.offsets_by_value.entry(value).or_default().insert(offset);
        if source.is_read() {
            self.read_values.insert(value);
        }
        if matches!(source, Source::Poll { .. }) && self.highest_polled.is_none_or(|(highest, _)| offset > highest) {
            self.highest_polled = Some((offset, source));
        }
    }

    /// The first witness of (offset, value). Panics if it was never observed.
    pub(crate) fn first_source(&self, offset: i64, value: &str) -> Source {
        let sources = &self.observed[&offset][value];
        *sources.first().expect("an observed record has a witness")
    }

    /// "\"v\" (polled by process 1 (op #3))": the value and its first witness.
    pub(crate) fn witness(&self, offset: i64, value: &str) -> String {
        let first = self.observed.get(&offset).and_then(|values| values.get(value));
        match first.and_then(|sources| sources.first()) {
            Some(source) => format!("{value:?} ({source})"),
            None => format!("{value:?}"),
        }
    }
}

pub(crate) struct Index<'h> {
    pub sends: Vec<SendView<'h>>,
    pub polls: Vec<PollView<'h>>,
    pub seeks: Vec<SeekView<'h>>,
    /// value -> index of the first send of that value.
    pub send_by_value: BTreeMap<&'h str, usize>,
    pub partitions: BTreeMap<&'h PartitionKey, PartitionIndex<'h>>,
}

impl<'h> Index<'h> {
    pub(crate) fn build(history: &'h History) -> Index<'h> {
        let mut index = Index {
            sends: Vec::new(),
            polls: Vec::new(),
            seeks: Vec::new(),
            send_by_value: BTreeMap::new(),
            partitions: BTreeMap::new(),
        };
        for (position, op) in history.ops.iter().enumerate() {
            let op_number = u64::try_from(position).expect("usize fits u64");
            index.add_op(op_number, op);
        }
        for read in &history.final_reads {
            let partition = index.partitions.entry(&read.partition).or_default();
            if partition.replicas.contains_key(&read.node) {
                continue; // HarnessError, reported by wellformed.rs.
            }
            let mut records = BTreeMap::new();
            for (offset, value) in &read.records {
                partition.observe(*offset, value, Source::Final { node: read.node });
                records.entry(*offset).or_insert(value.as_str());
            }
            let replica =
                Replica { node: read.node, log_start: read.log_start, high_watermark: read.high_watermark, records };
            partition.replicas.insert(read.node, replica);
        }
        index
    }

    fn add_op(&mut self, op_number: u64, op: &'h Op) {
        match op {
            Op::Send { process, partition: key, value, invoke_ms, complete_ms, outcome, idempotent, op_id } => {
                let partition = self.partitions.entry(key).or_default();
                let send = SendView {
                    op: op_number,
                    process: *process,
                    partition: key,
                    value,
                    invoke_ms: *invoke_ms,
                    complete_ms: *complete_ms,
                    outcome,
                    idempotent: *idempotent,
                    op_id: *op_id,
                };
                if let Some(offset) = send.acked_offset() {
                    partition.observe(offset, value, Source::Ack { op: op_number, process: *process });
                }
                partition.sends.push(self.sends.len());
                self.send_by_value.entry(value).or_insert(self.sends.len());
                self.sends.push(send);
            }
            Op::Poll {
                process,
                partition: key,
                fetch_offset,
                invoke_ms,
                complete_ms,
                high_watermark,
                records,
                op_id,
            } => {
                let partition = self.partitions.entry(key).or_default();
                for (offset, value) in records {
                    partition.observe(*offset, value, Source::Poll { op: op_number, process: *process });
                }
                partition.polls.push(self.polls.len());
                self.polls.push(PollView {
                    op: op_number,
                    process: *process,
                    partition: key,
                    fetch_offset: *fetch_offset,
                    invoke_ms: *invoke_ms,
                    complete_ms: *complete_ms,
                    high_watermark: *high_watermark,
                    records,
                    op_id: *op_id,
                });
            }
            Op::Seek { process, partition: key, offset: _, at_ms } => {
                self.partitions.entry(key).or_default();
                self.seeks.push(SeekView { op: op_number, process: *process, partition: key, at_ms: *at_ms });
            }
            // Not an access to the log: judged by group_offsets.rs alone.
            Op::Commit { .. } | Op::FetchCommitted { .. } => {}
        }
    }

    /// The send of `value`, if any op sent it.
    pub(crate) fn send_of(&self, value: &str) -> Option<&SendView<'h>> {
        self.send_by_value.get(value).map(|&i| &self.sends[i])
    }
}
