//! One partition replica's shell: it feeds the sans-IO Raft core and carries out its effects on
//! the partition log, keeping the effect contract of `sluice-raft`'s effect.rs.
//!
//! Contract, as kept here:
//! - `PersistHardState` and `ResetLog` are durable when `execute` returns from them (an atomic
//!   file write with fsync; elections and resets are rare);
//! - `Append` and `Truncate` change the log at once and make it dirty; a `Send` that follows a
//!   dirty log is *held* until the flusher has made the log durable through the end it had
//!   (rule 2: no vote or acknowledgement for state a crash could lose), then released by
//!   [`Replica::flushed`], which also reports the durable position with `Input::Persisted`;
//! - `Replicate` (a leader's AppendEntries) leaves at once with its entries' batch bytes read
//!   from the log: the leader counts itself only through `Input::Persisted` (Raft thesis
//!   §10.2.1);
//! - `Committed` is the high watermark: the caller publishes `index + 1` (Kafka's high watermark
//!   is the first offset not yet committed).
//!
//! Entries are the partition's batches (entries.rs): the index of an entry is its batch's last
//! offset and its term the batch's leader epoch, so the log needs no offset translation.
//!
//! The position before the log start and the membership as of it survive restarts in
//! `raft.start.json` (the segments that held them may be gone).

use super::entries::{EntryError, control_batch, entry_meta, membership_epoch};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_io::{Disk, read_file, write_file_atomic};
use sluice_raft::{
    Config, Effect, EntryKind, Envelope, HardState, Input, LogPosition, Membership, Message, Raft, RaftLog,
};
use sluice_storage::{PartitionLog, PersistedHardState, StorageError};
use sluice_types::batch::batches;
use sluice_types::defect::{self, Defect};
use sluice_types::{NodeId, Offset, Term};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Sends held for durability per replica; beyond it the replica stops acknowledging (the leader
/// retries) rather than grow without bound.
pub const HELD_SENDS_MAX: usize = 1024;
/// Bytes read per storage call while rebuilding the entry metadata at open.
const OPEN_SCAN_BYTES: u32 = 4 << 20;
const START_FILE: &str = "raft.start.json";

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("entry: {0}")]
    Entry(#[from] EntryError),
    #[error("start file: {0}")]
    StartFile(String),
    #[error("an appended entry at {0} has no batch bytes")]
    MissingBatch(Offset),
}

/// A message ready for the network. For an AppendEntries, `batches` holds each entry's batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub envelope: Envelope,
    pub batches: Vec<Bytes>,
}

/// What one `execute` changed that the caller publishes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Executed {
    /// The new commit index (high watermark - 1).
    pub committed: Option<Offset>,
    /// The last leadership change: (leader, term).
    pub leader: Option<(Option<NodeId>, Term)>,
    /// The log has writes that must be flushed (appends or truncations).
    pub needs_flush: bool,
}

/// The position before the log start and the membership as of it (`raft.start.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StartRecord {
    version: u32,
    before_start_index: i64,
    before_start_term: i32,
    voters: Vec<i32>,
    learners: Vec<i32>,
    /// The newest membership epoch of the removed prefix (absent in records written before
    /// reassignment existed: -1).
    #[serde(default = "no_epoch")]
    membership_epoch: i64,
}

fn no_epoch() -> i64 {
    -1
}

pub struct Replica {
    raft: Raft,
    dir: PathBuf,
    /// Sends waiting until the log is durable through `.0` (an offset: the log end then).
    held: VecDeque<(Offset, Envelope)>,
    /// The newest epoch any membership entry of this log has carried (-1: none). It only grows,
    /// truncation included: a leader whose metadata is older does not drive a reassignment.
    membership_epoch: Offset,
    /// The epoch the membership entry being proposed carries.
    proposing_epoch: Offset,
}

impl Replica {
    /// Opens the replica of the partition whose log is `log` in `dir`: the hard state, the start
    /// record (or `initial` membership for a new replica) and every batch's entry metadata.
    pub async fn open<D: Disk>(
        config: Config,
        disk: &D,
        dir: &Path,
        log: &PartitionLog<D>,
        initial: Membership,
    ) -> Result<Replica, ReplicaError> {
        let hard = PersistedHardState::read(disk, dir).await?.unwrap_or_default();
        let hard = HardState { term: hard.term, voted_for: hard.voted_for };
        let start = read_start(disk, dir).await?;
        let mut entries = Vec::new();
        let mut first_base = None;
        let mut epoch_seen = Offset(-1);
        let mut offset = log.log_start_offset();
        let end = log.log_end_offset();
        while offset < end {
            let read = log.read(offset, OPEN_SCAN_BYTES, end).await?;
            let buffer = read.records;
            assert!(!buffer.is_empty(), "a read below the log end returns a batch");
            for batch in batches(&buffer) {
                let (header, range) = batch.map_err(StorageError::from)?;
                let bytes = buffer.slice(range);
                entries.push(entry_meta(&bytes)?);
                if let Some(epoch) = membership_epoch(&bytes)? {
                    epoch_seen = epoch_seen.max(epoch);
                }
                first_base.get_or_insert(header.base_offset);
                offset = header.next_offset();
            }
        }
        let (before_start, membership) = match start {
            Some((position, membership, epoch)) => {
                epoch_seen = epoch_seen.max(epoch);
                (position, membership)
            }
            // No record yet: the log starts at its first batch (or is empty). The term before
            // it is unknown; the first batch's term is a lower bound a leader's consistency
            // check corrects (it sends LogStart).
            None => match (first_base, entries.first()) {
                (Some(base), Some(first)) if base > Offset(0) => {
                    (LogPosition { term: first.term, index: Offset(base.0 - 1) }, initial)
                }
                _ => (LogPosition::EMPTY, initial),
            },
        };
        // Entries at or before the recorded start were removed from Raft's view already.
        entries.retain(|e| e.index > before_start.index);
        let raft_log = RaftLog::recovered(before_start, entries, before_start.index);
        #[allow(unused_mut)] // Mutated only in simulation builds.
        let mut raft = Raft::new(config, membership.voters, membership.learners, hard, raft_log);
        #[cfg(madsim)]
        if super::sim_trace::enabled() {
            raft.enable_trace();
        }
        let mut replica = Replica {
            raft,
            dir: dir.to_path_buf(),
            held: VecDeque::new(),
            membership_epoch: epoch_seen,
            proposing_epoch: Offset(-1),
        };
        replica.drain_trace();
        Ok(replica)
    }

    /// Hands the core's trace events to the simulator's sink (simulation builds only).
    /// Hands a message to the driver to send. Every message leaves through here, so a granted
    /// vote or an append acknowledgement is traced when it goes out, after what it promises is
    /// durable (`sluice_raft::trace`).
    fn send(&mut self, out: &mut Vec<Outgoing>, envelope: Envelope, batches: Vec<Bytes>) {
        #[cfg(madsim)]
        if let Some(event) = sluice_raft::TraceEvent::sent(&envelope) {
            let mut events = self.raft.take_trace();
            events.push(event);
            self.record_trace(events);
        }
        out.push(Outgoing { envelope, batches });
    }

    /// Drops the held answers that waited for entries a truncation removed. They are stale
    /// (an append response would claim entries the log no longer has) and could never be
    /// released: no flush reaches an end the log lost, and the driver would re-flush for them
    /// forever (seed 153 spun so). A lost answer is safe: the leader resends (Raft §5.3).
    fn drop_held_beyond(&mut self, log_end: Offset) {
        let before = self.held.len();
        self.held.retain(|(required, _)| *required <= log_end);
        if self.held.len() < before {
            tracing::debug!(dropped = before - self.held.len(), "held answers dropped after a truncation");
        }
    }

    fn drain_trace(&mut self) {
        #[cfg(madsim)]
        {
            let events = self.raft.take_trace();
            self.record_trace(events);
        }
    }

    /// Hands trace events to the simulator's sink, tagged with this replica's node and group.
    #[cfg(madsim)]
    fn record_trace(&self, events: Vec<sluice_raft::TraceEvent>) {
        let group = self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        super::sim_trace::record(self.raft.id(), &group, events);
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The newest epoch a membership entry of this log carried (-1: none).
    pub fn membership_epoch(&self) -> Offset {
        self.membership_epoch
    }

    /// Leader: proposes one membership change (Raft thesis §4.1), driven by the reassignment of
    /// controller epoch `epoch`, which the entry records.
    pub async fn propose_membership<D: Disk>(
        &mut self,
        change: sluice_raft::MembershipChange,
        epoch: Offset,
        disk: &D,
        log: &mut PartitionLog<D>,
        now_ms: i64,
        out: &mut Vec<Outgoing>,
    ) -> Result<Result<Executed, sluice_raft::ProposeError>, ReplicaError> {
        assert!(epoch >= self.membership_epoch, "a change is driven by metadata at least as new as the log's");
        let (_, effects) = match self.raft.propose_membership(change) {
            Ok(proposed) => proposed,
            Err(refused) => return Ok(Err(refused)),
        };
        self.proposing_epoch = epoch;
        let executed = self.execute(effects, disk, log, &BTreeMap::new(), now_ms, out).await;
        self.proposing_epoch = Offset(-1);
        Ok(Ok(executed?))
    }

    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// Feeds one input and carries out its effects. `received` holds the batch bytes of entries
    /// that arrived with the input (an AppendEntries' entries), by entry index.
    pub async fn step<D: Disk>(
        &mut self,
        input: Input,
        disk: &D,
        log: &mut PartitionLog<D>,
        received: &BTreeMap<Offset, Bytes>,
        now_ms: i64,
        out: &mut Vec<Outgoing>,
    ) -> Result<Executed, ReplicaError> {
        let effects = self.raft.step(input);
        self.execute(effects, disk, log, received, now_ms, out).await
    }

    /// Leader: appends a producer batch (already validated, not yet stamped) through Raft. The
    /// batch is stamped with the offsets Raft assigned and this term as its leader epoch.
    /// Returns the entry's (base offset, last offset).
    pub async fn propose<D: Disk>(
        &mut self,
        mut batch: bytes::BytesMut,
        record_offsets: u32,
        disk: &D,
        log: &mut PartitionLog<D>,
        now_ms: i64,
        out: &mut Vec<Outgoing>,
    ) -> Result<Result<(Offset, Offset, Executed), sluice_raft::ProposeError>, ReplicaError> {
        let size_bytes = batch.len() as u32;
        let (entry, effects) = match self.raft.propose(record_offsets, size_bytes) {
            Ok(proposed) => proposed,
            Err(refused) => return Ok(Err(refused)),
        };
        let base = log.stamp(&mut batch, entry.term, now_ms);
        assert_eq!(
            base,
            Offset(entry.index.0 - i64::from(record_offsets) + 1),
            "Raft's log and the partition log agree on the end"
        );
        let received = BTreeMap::from([(entry.index, batch.freeze())]);
        let mut executed = self.execute(effects, disk, log, &received, now_ms, out).await?;
        if defect::active(Defect::AckBeforeFsync) {
            // Planted defect (simulation only): the leader counts its append before fsync.
            let last = LogPosition { term: entry.term, index: entry.index };
            let early = self.step(Input::Persisted { last }, disk, log, &BTreeMap::new(), now_ms, out).await?;
            executed.committed = early.committed.or(executed.committed);
            executed.leader = early.leader.or(executed.leader);
        }
        Ok(Ok((base, entry.index, executed)))
    }

    /// The flusher made the log durable through `end` (exclusive), whose last batch carried
    /// `last_term` when the flush was planned. Reports it to the core and releases held sends.
    pub async fn flushed<D: Disk>(
        &mut self,
        end: Offset,
        last_term: Term,
        disk: &D,
        log: &mut PartitionLog<D>,
        now_ms: i64,
        out: &mut Vec<Outgoing>,
    ) -> Result<Executed, ReplicaError> {
        let last = LogPosition { term: last_term, index: Offset(end.0 - 1) };
        let mut executed = self.step(Input::Persisted { last }, disk, log, &BTreeMap::new(), now_ms, out).await?;
        let durable = log.flushed_offset();
        while let Some((required, _)) = self.held.front() {
            if *required > durable {
                break;
            }
            let (_, envelope) = self.held.pop_front().expect("front exists");
            self.send(out, envelope, Vec::new());
        }
        executed.needs_flush |= !self.held.is_empty();
        Ok(executed)
    }

    async fn execute<D: Disk>(
        &mut self,
        effects: Vec<Effect>,
        disk: &D,
        log: &mut PartitionLog<D>,
        received: &BTreeMap<Offset, Bytes>,
        now_ms: i64,
        out: &mut Vec<Outgoing>,
    ) -> Result<Executed, ReplicaError> {
        self.drain_trace();
        let mut executed = Executed::default();
        let mut dirty = log.flushed_offset() < log.log_end_offset();
        let ack_before_fsync = defect::active(Defect::AckBeforeFsync);
        for effect in effects {
            match effect {
                Effect::PersistHardState(hard) => {
                    // Planted defect `forget-vote` (simulation only) persists the term alone.
                    let voted_for = if defect::active(Defect::ForgetVote) { None } else { hard.voted_for };
                    let persisted = PersistedHardState { term: hard.term, voted_for };
                    persisted.write(disk, &self.dir).await?;
                }
                Effect::Truncate { after } => {
                    // Durable on return (storage syncs it: a lost cut could splice old batches
                    // behind new ones); unflushed appends before it may remain.
                    log.truncate_after(after.index).await?;
                    dirty = log.flushed_offset() < log.log_end_offset();
                    self.drop_held_beyond(log.log_end_offset());
                }
                Effect::Append { entries } => {
                    for entry in entries {
                        let batch = match (received.get(&entry.index), entry.kind) {
                            (Some(batch), _) => batch.clone(),
                            (None, EntryKind::LeaderNoop | EntryKind::Membership(_)) => {
                                let leader = self.raft.id();
                                let epoch = self.proposing_epoch;
                                control_batch(entry.kind, entry.index, entry.term, leader, epoch, now_ms)
                            }
                            (None, EntryKind::Data) => return Err(ReplicaError::MissingBatch(entry.index)),
                        };
                        if let Some(epoch) = membership_epoch(&batch)? {
                            self.membership_epoch = self.membership_epoch.max(epoch);
                        }
                        let appended = log.append_replicated(batch, now_ms).await?;
                        assert_eq!(appended.last_offset, entry.index, "the batch is the entry");
                    }
                    dirty = true;
                    executed.needs_flush = true;
                }
                Effect::ResetLog { before_start, membership } => {
                    log.reset_to(before_start.index.next(), now_ms).await?;
                    write_start(disk, &self.dir, before_start, &membership, self.membership_epoch).await?;
                    dirty = false;
                    // The held answers spoke of the log that is gone.
                    self.drop_held_beyond(Offset(-1));
                }
                Effect::Send(envelope) => {
                    if dirty && !ack_before_fsync {
                        if self.held.len() >= HELD_SENDS_MAX {
                            tracing::warn!(to = %envelope.to.0, "held sends full; dropping an answer (the peer retries)");
                            continue;
                        }
                        self.held.push_back((log.log_end_offset(), envelope));
                        executed.needs_flush = true;
                    } else {
                        self.send(out, envelope, Vec::new());
                    }
                }
                Effect::Replicate(envelope) => {
                    let batches = self.batches_for(&envelope.message, log).await?;
                    self.send(out, envelope, batches);
                }
                Effect::Committed { index } => executed.committed = Some(index),
                Effect::LeaderChanged { leader, term, .. } => executed.leader = Some((leader, term)),
            }
        }
        Ok(executed)
    }

    /// The batch bytes of an AppendEntries' entries, read from the log. One storage read stops
    /// at a segment's end, so entries spanning a roll take several reads (found by the
    /// simulator with tiny segments: seed 19 of the first sweep).
    async fn batches_for<D: Disk>(&self, message: &Message, log: &PartitionLog<D>) -> Result<Vec<Bytes>, ReplicaError> {
        let Message::AppendEntries { prev, entries, .. } = message else { return Ok(Vec::new()) };
        let Some(last) = entries.last() else { return Ok(Vec::new()) };
        let mut batches_out = Vec::with_capacity(entries.len());
        let mut next = prev.index.next();
        // Each read returns at least one batch, so the loop ends within `entries.len()` reads.
        for _ in 0..entries.len() {
            if batches_out.len() == entries.len() {
                break;
            }
            let remaining = &entries[batches_out.len()..];
            let total: u64 = remaining.iter().map(|e| u64::from(e.size_bytes)).sum();
            let read = log.read(next, u32::try_from(total).unwrap_or(u32::MAX), last.index.next()).await?;
            let before = batches_out.len();
            for (batch, entry) in batches(&read.records).zip(remaining) {
                let (header, range) = batch.map_err(StorageError::from)?;
                assert_eq!(header.last_offset(), entry.index, "the log's batch is the entry Raft names");
                batches_out.push(read.records.slice(range));
                next = entry.index.next();
            }
            assert!(batches_out.len() > before, "a read below the log end returns a batch");
        }
        assert_eq!(batches_out.len(), entries.len(), "every entry's batch is in the log");
        Ok(batches_out)
    }

    /// Retention or DeleteRecords moved the log start: tell the core and record the new start.
    pub async fn log_start_moved<D: Disk>(&mut self, disk: &D, log_start: Offset) -> Result<(), ReplicaError> {
        let effects = self.raft.step(Input::LogStartMoved { log_start });
        assert!(effects.is_empty(), "moving the log start has no effects");
        let before_start = self.raft.log().before_start();
        let membership = self.raft.membership_at(before_start.index);
        write_start(disk, &self.dir, before_start, &membership, self.membership_epoch).await
    }
}

async fn read_start<D: Disk>(disk: &D, dir: &Path) -> Result<Option<(LogPosition, Membership, Offset)>, ReplicaError> {
    let Some(bytes) = read_file(disk, &dir.join(START_FILE)).await? else { return Ok(None) };
    let record: StartRecord = serde_json::from_slice(&bytes).map_err(|e| ReplicaError::StartFile(e.to_string()))?;
    if record.version != 1 {
        return Err(ReplicaError::StartFile(format!("unknown version {}", record.version)));
    }
    let position = LogPosition { term: Term(record.before_start_term), index: Offset(record.before_start_index) };
    let voters: BTreeSet<NodeId> = record.voters.into_iter().map(NodeId).collect();
    let learners: BTreeSet<NodeId> = record.learners.into_iter().map(NodeId).collect();
    Ok(Some((position, Membership { voters, learners }, Offset(record.membership_epoch))))
}

async fn write_start<D: Disk>(
    disk: &D,
    dir: &Path,
    before_start: LogPosition,
    membership: &Membership,
    membership_epoch: Offset,
) -> Result<(), ReplicaError> {
    let record = StartRecord {
        version: 1,
        before_start_index: before_start.index.0,
        before_start_term: before_start.term.0,
        voters: membership.voters.iter().map(|n| n.0).collect(),
        learners: membership.learners.iter().map(|n| n.0).collect(),
        membership_epoch: membership_epoch.0,
    };
    let bytes = serde_json::to_vec(&record).expect("a start record serializes");
    write_file_atomic(disk, &dir.join(START_FILE), Bytes::from(bytes)).await?;
    Ok(())
}
