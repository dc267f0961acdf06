//! `PartitionLog`: one partition's segments, offsets, producer state and leader epochs.
//!
//! The log assigns offsets, appends whole batches to the active segment, rolls segments, and
//! serves reads of whole CRC-verified batches. Durability is explicit and split in two so that
//! an fsync never holds the caller's lock: [`PartitionLog::flush_plan`] names the files to sync
//! and the offset they cover, the caller syncs them, then [`PartitionLog::complete_flush_plan`]
//! advances `flushed_offset`. Acknowledgements that need durability wait for that offset.
//!
//! A replica's log also shrinks at its end: truncation and reset (`replication.rs`). Each bumps
//! the log's `generation`, so a flush planned before one cannot vouch for the bytes after it.
//!
//! Invariants (asserted in `check_invariants`):
//! - `log_start_offset <= flushed_offset <= log_end_offset`;
//! - segments are dense: each segment's base offset is the previous one's next offset, and the
//!   last segment ends at `log_end_offset`;
//! - the checkpoint's recovery point never exceeds `flushed_offset`.

use crate::checkpoint::Checkpoint;
use crate::config::LogConfig;
use crate::error::StorageError;
use crate::producer_state::{ProducerStateTable, SequenceVerdict};
use crate::segment::Segment;
use bytes::{Bytes, BytesMut};
use sluice_io::{Disk, File};
use sluice_types::batch::{set_base_offset, set_log_append_time, set_partition_leader_epoch};
use sluice_types::{BatchHeader, Offset, Term};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Segments one partition may hold; beyond it retention must catch up first.
pub const SEGMENTS_MAX: usize = 100_000;

/// Where an appended batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// The LogAppendTime stamped into the batch, or -1 for CreateTime topics.
    pub log_append_time_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended(AppendInfo),
    /// A retried idempotent batch already in the log (KIP-98): nothing was written.
    Duplicate(AppendInfo),
}

impl AppendOutcome {
    pub fn info(&self) -> AppendInfo {
        match self {
            AppendOutcome::Appended(info) | AppendOutcome::Duplicate(info) => *info,
        }
    }
}

/// Files to fsync so that every offset below `end_offset` is durable.
pub struct FlushPlan<F: File> {
    pub files: Vec<Arc<F>>,
    pub end_offset: Offset,
    /// The log's generation when the plan was made: a truncation or reset since then makes the
    /// plan stale (its files held bytes that are gone), and completing it records nothing.
    pub generation: u64,
}

/// Whole batches read from the log.
#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    pub records: Bytes,
}

pub struct PartitionLog<D: Disk> {
    pub(crate) disk: D,
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Invariant: never empty; the last one is the active segment.
    pub(crate) segments: BTreeMap<Offset, Segment<D::File>>,
    pub(crate) log_start_offset: Offset,
    pub(crate) log_end_offset: Offset,
    pub(crate) flushed_offset: Offset,
    pub(crate) recovery_point: Offset,
    pub(crate) unflushed_messages: i64,
    pub(crate) last_flush_wall_ms: i64,
    pub(crate) producers: ProducerStateTable,
    /// Leader epoch -> the first offset written in it (KIP-101 leader epoch cache).
    pub(crate) epochs: BTreeMap<Term, Offset>,
    /// Sealed segments whose indexes were not yet synced.
    pub(crate) sealed_unsynced: Vec<Offset>,
    /// The producer table as of the active segment's base (every batch below it recorded),
    /// tagged with that base: a truncation inside the active segment restores it and replays
    /// only that segment. Taken at open and at every roll.
    pub(crate) producers_at_active_base: (Offset, ProducerStateTable),
    /// Bumped by every truncation and reset (see [`FlushPlan::generation`]).
    pub(crate) generation: u64,
    /// A truncation or reset failed part-way: memory may not match the disk. Only dropping the
    /// log and opening it again (recovery) is allowed; every mutation asserts this is false.
    pub(crate) rewrite_interrupted: bool,
}

impl<D: Disk> PartitionLog<D> {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> Offset {
        self.log_end_offset
    }

    /// Everything below this offset is durable.
    pub fn flushed_offset(&self) -> Offset {
        self.flushed_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| u64::from(s.size_bytes)).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn producers(&self) -> &ProducerStateTable {
        &self.producers
    }

    pub(crate) fn active(&self) -> &Segment<D::File> {
        self.segments.values().next_back().expect("a log always has an active segment")
    }

    /// Crash on use after a failed truncation or reset (`rewrite_interrupted`).
    pub(crate) fn assert_usable(&self) {
        assert!(!self.rewrite_interrupted, "partition log used after a failed truncation or reset; reopen it");
    }

    /// Validates, stamps and appends one producer batch (already CRC-checked by the caller).
    /// `batch` is rewritten in place: base offset, leader epoch and maybe LogAppendTime.
    pub async fn append(
        &mut self,
        mut batch: BytesMut,
        term: Term,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        let header = BatchHeader::parse(&batch)?;
        assert_eq!(header.size_bytes() as usize, batch.len(), "one batch per append");
        if header.size_bytes() > self.config.max_message_bytes {
            return Err(StorageError::BatchTooLarge {
                size_bytes: u64::from(header.size_bytes()),
                limit_bytes: u64::from(self.config.max_message_bytes),
            });
        }
        let log_append_time_ms = if self.config.log_append_time { now_ms } else { -1 };
        match self.producers.check(&header).map_err(StorageError::Producer)? {
            SequenceVerdict::Duplicate { first_offset, last_offset } => {
                let info = AppendInfo { base_offset: first_offset, last_offset, log_append_time_ms };
                return Ok(AppendOutcome::Duplicate(info));
            }
            SequenceVerdict::Append => {}
        }
        let base_offset = self.stamp(&mut batch, term, now_ms);
        let header = BatchHeader::parse(&batch)?;
        self.append_stamped(header, batch.freeze(), now_ms).await?;
        self.producers.record(&header);
        let info = AppendInfo { base_offset, last_offset: header.last_offset(), log_append_time_ms };
        Ok(AppendOutcome::Appended(info))
    }

    /// Stamps a producer batch for the log end: its base offset, `term` as its leader epoch, and
    /// the LogAppendTime when the topic uses it (which recomputes the CRC). Returns the base
    /// offset. The leader's Raft shell stamps through this too, so both paths agree.
    pub fn stamp(&self, batch: &mut [u8], term: Term, now_ms: i64) -> Offset {
        let base_offset = self.log_end_offset;
        set_base_offset(batch, base_offset);
        set_partition_leader_epoch(batch, term);
        if self.config.log_append_time {
            set_log_append_time(batch, now_ms);
        }
        base_offset
    }

    /// Writes one batch whose header fields are final at the log end. The caller records it in
    /// the producer table (checked or replayed).
    pub(crate) async fn append_stamped(
        &mut self,
        header: BatchHeader,
        batch: Bytes,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        self.assert_usable();
        assert_eq!(header.base_offset, self.log_end_offset);
        assert_eq!(header.size_bytes() as usize, batch.len(), "one whole batch");
        self.maybe_roll(header.size_bytes(), now_ms).await?;
        let active_base = *self.segments.keys().next_back().expect("active segment");
        let segment = self.segments.get_mut(&active_base).expect("active segment");
        segment.append(&header, batch).await?;
        let term = header.partition_leader_epoch;
        if self.epochs.keys().next_back().is_none_or(|last| term > *last) {
            self.epochs.insert(term, header.base_offset);
        }
        self.log_end_offset = header.next_offset();
        self.unflushed_messages += i64::from(header.record_count);
        assert_eq!(self.active().next_offset, self.log_end_offset);
        Ok(())
    }

    /// Rolls to a new active segment if `incoming_bytes` would not fit or the segment is old.
    async fn maybe_roll(&mut self, incoming_bytes: u32, now_ms: i64) -> Result<(), StorageError> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let full = u64::from(active.size_bytes) + u64::from(incoming_bytes) > u64::from(self.config.segment_bytes);
        let old = now_ms.saturating_sub(active.created_wall_ms) >= self.config.segment_ms;
        if full || old { self.roll(now_ms).await } else { Ok(()) }
    }

    pub(crate) async fn roll(&mut self, now_ms: i64) -> Result<(), StorageError> {
        self.assert_usable();
        assert!(self.segments.len() < SEGMENTS_MAX, "too many segments");
        let sealed = *self.segments.keys().next_back().expect("active segment");
        assert!(!self.active().is_empty(), "rolling an empty segment");
        let segment = Segment::create(&self.disk, &self.dir, self.log_end_offset, now_ms).await?;
        self.segments.insert(self.log_end_offset, segment);
        self.sealed_unsynced.push(sealed);
        self.producers_at_active_base = (self.log_end_offset, self.producers.clone());
        Ok(())
    }

    /// The files to fsync to make the whole log durable, or `None` if it already is.
    pub fn flush_plan(&self) -> Option<FlushPlan<D::File>> {
        self.assert_usable();
        if self.flushed_offset == self.log_end_offset && self.sealed_unsynced.is_empty() {
            return None;
        }
        let mut files = Vec::new();
        for segment in self.segments.values() {
            if segment.next_offset > self.flushed_offset || self.sealed_unsynced.contains(&segment.base_offset) {
                files.push(segment.log.clone());
            }
        }
        Some(FlushPlan { files, end_offset: self.log_end_offset, generation: self.generation })
    }

    /// Records that `plan`'s files were synced: its data is durable. Returns false, recording
    /// nothing, when the log was truncated or reset after the plan was made (the synced files
    /// held bytes that are gone, and new bytes may now sit at the same offsets): the caller
    /// plans again if the log still needs a flush.
    pub async fn complete_flush_plan(&mut self, plan: &FlushPlan<D::File>, now_ms: i64) -> Result<bool, StorageError> {
        if plan.generation != self.generation {
            tracing::debug!(dir = %self.dir.display(), end = %plan.end_offset,
                "flush plan made before a truncation or reset: ignored");
            return Ok(false);
        }
        self.complete_flush(plan.end_offset, now_ms).await?;
        Ok(true)
    }

    /// Records that a [`FlushPlan`] ending at `end_offset` completed: its data is durable.
    /// Only for callers that never truncate or reset the log while a plan is in flight (a
    /// single-node log); a replica uses [`PartitionLog::complete_flush_plan`].
    pub async fn complete_flush(&mut self, end_offset: Offset, now_ms: i64) -> Result<(), StorageError> {
        self.assert_usable();
        assert!(end_offset <= self.log_end_offset, "flushed beyond the log end");
        for base in std::mem::take(&mut self.sealed_unsynced) {
            if let Some(segment) = self.segments.get(&base) {
                segment.sync_indexes().await?;
            }
        }
        if end_offset > self.flushed_offset {
            self.flushed_offset = end_offset;
        }
        self.unflushed_messages = 0;
        self.last_flush_wall_ms = now_ms;
        Ok(())
    }

    /// Whether the topic's flush policy (`flush.messages`, `flush.ms`) asks for an fsync now.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        if self.flushed_offset == self.log_end_offset {
            return false;
        }
        self.unflushed_messages >= self.config.flush_messages
            || now_ms.saturating_sub(self.last_flush_wall_ms) >= self.config.flush_ms
    }

    /// Reads whole batches from the batch containing `offset`, up to `max_bytes` (at least one
    /// batch, KIP-74) and only batches that start below `max_offset` (the high watermark).
    pub async fn read(&self, offset: Offset, max_bytes: u32, max_offset: Offset) -> Result<ReadResult, StorageError> {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset,
            });
        }
        let max_offset = max_offset.min(self.log_end_offset);
        if offset >= max_offset {
            return Ok(ReadResult::default());
        }
        let (_, segment) = self.segments.range(..=offset).next_back().expect("segment for offset");
        let (position, base_offset) = segment.position_of(offset).await?;
        let records = segment.read_batches(position, base_offset, max_bytes, max_offset, |o| self.epoch_of(o)).await?;
        // Paired check: the first batch served must hold `offset` (the walk that found it read
        // headers without their CRC; the bytes served were verified). An empty read below
        // `max_offset` is corruption too.
        let first = BatchHeader::parse_header_only(&records).ok();
        if !first.is_some_and(|h| h.base_offset <= offset && offset < h.next_offset()) {
            return Err(segment.corrupt(position, format!("no verified batch holds offset {offset}")));
        }
        Ok(ReadResult { records })
    }

    /// The first batch that holds a record with timestamp >= `timestamp_ms` at or above the log
    /// start, for ListOffsets by timestamp. The caller finds the exact record inside it.
    pub async fn batch_for_timestamp(
        &self,
        timestamp_ms: i64,
        max_offset: Offset,
    ) -> Result<Option<Bytes>, StorageError> {
        for segment in self.segments.values() {
            if segment.max_timestamp_ms < timestamp_ms || segment.is_empty() {
                continue;
            }
            let mut position = segment.position_for_timestamp(timestamp_ms);
            while position < segment.size_bytes {
                let header = segment.header_at(position).await?;
                if header.base_offset >= max_offset {
                    return Ok(None);
                }
                let usable = header.next_offset() > self.log_start_offset;
                if usable && header.max_timestamp >= timestamp_ms {
                    let batch = segment
                        .read_batches(position, header.base_offset, header.size_bytes(), max_offset, |o| {
                            self.epoch_of(o)
                        })
                        .await?;
                    return Ok(Some(batch));
                }
                position += header.size_bytes();
            }
        }
        Ok(None)
    }

    /// The batch holding the largest timestamp in the log (ListOffsets MAX_TIMESTAMP, KIP-734).
    pub async fn batch_with_max_timestamp(&self, max_offset: Offset) -> Result<Option<Bytes>, StorageError> {
        let Some(segment) = self.segments.values().filter(|s| !s.is_empty()).max_by_key(|s| s.max_timestamp_ms) else {
            return Ok(None);
        };
        let mut position = 0;
        while position < segment.size_bytes {
            let header = segment.header_at(position).await?;
            if header.base_offset >= max_offset {
                break;
            }
            if header.max_timestamp == segment.max_timestamp_ms {
                return Ok(Some(
                    segment
                        .read_batches(position, header.base_offset, header.size_bytes(), max_offset, |o| {
                            self.epoch_of(o)
                        })
                        .await?,
                ));
            }
            position += header.size_bytes();
        }
        Ok(None)
    }

    /// OffsetForLeaderEpoch (KIP-101, KIP-279): the largest epoch <= `epoch` and the offset at
    /// which the next epoch starts (or the log end). `None` when no epoch that old is known.
    pub fn end_offset_for_epoch(&self, epoch: Term) -> Option<(Term, Offset)> {
        let (found, _) = self.epochs.range(..=epoch).next_back()?;
        let end = self
            .epochs
            .range(Term(found.0.saturating_add(1))..)
            .next()
            .map_or(self.log_end_offset, |(_, start)| *start);
        Some((*found, end))
    }

    /// The leader epoch the batch starting at `offset` must carry, from the epoch cache.
    pub(crate) fn epoch_of(&self, offset: Offset) -> Option<Term> {
        // Epoch start offsets increase with the epoch, and there are few epochs.
        self.epochs.iter().rev().find(|(_, start)| **start <= offset).map(|(epoch, _)| *epoch)
    }

    /// The latest leader epoch written in the log, if any.
    pub fn latest_epoch(&self) -> Option<Term> {
        self.epochs.keys().next_back().copied()
    }

    /// DeleteRecords: moves the log start offset up to `offset` (at most the high watermark,
    /// which the caller checks) and deletes whole segments below it. Durable on return.
    pub async fn delete_records(&mut self, offset: Offset) -> Result<Offset, StorageError> {
        self.assert_usable();
        assert!(offset <= self.log_end_offset, "DeleteRecords beyond the log end");
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
        }
        self.delete_segments_below_start().await?;
        self.write_checkpoint().await?;
        Ok(self.log_start_offset)
    }

    /// Applies `retention.ms` and `retention.bytes` (whole segments only, oldest first, never
    /// data that is not yet durable). Returns how many segments were deleted.
    pub async fn enforce_retention(&mut self, now_ms: i64) -> Result<u32, StorageError> {
        self.assert_usable();
        if !self.config.cleanup_policy.deletes() {
            return Ok(0);
        }
        let mut deleted = 0u32;
        if self.config.retention_ms >= 0 {
            let cutoff_ms = now_ms.saturating_sub(self.config.retention_ms);
            let active = self.active();
            let active_expired = !active.is_empty() && active.max_timestamp_ms < cutoff_ms;
            if active_expired && self.flushed_offset == self.log_end_offset {
                self.roll(now_ms).await?; // Kafka rolls an expired active segment to delete it.
            }
            while let Some(first) = self.deletable_first() {
                if first.max_timestamp_ms >= cutoff_ms {
                    break;
                }
                self.delete_first_segment().await?;
                deleted += 1;
            }
        }
        if self.config.retention_bytes >= 0 {
            let retention_bytes = self.config.retention_bytes as u64;
            while let Some(first) = self.deletable_first() {
                if self.size_bytes() - u64::from(first.size_bytes) < retention_bytes {
                    break;
                }
                self.delete_first_segment().await?;
                deleted += 1;
            }
        }
        if deleted > 0 {
            let first_base = *self.segments.keys().next().expect("active segment");
            self.log_start_offset = self.log_start_offset.max(first_base);
            self.disk.sync_dir(&self.dir).await?;
            self.write_checkpoint().await?;
        }
        Ok(deleted)
    }

    /// The oldest segment, if it is sealed and entirely durable.
    fn deletable_first(&self) -> Option<&Segment<D::File>> {
        if self.segments.len() < 2 {
            return None;
        }
        let first = self.segments.values().next().expect("non-empty");
        (first.next_offset <= self.flushed_offset).then_some(first)
    }

    async fn delete_first_segment(&mut self) -> Result<(), StorageError> {
        assert!(self.segments.len() >= 2, "never delete the active segment");
        let (base, segment) = self.segments.pop_first().expect("non-empty");
        self.sealed_unsynced.retain(|b| *b != base);
        segment.delete(&self.disk).await
    }

    async fn delete_segments_below_start(&mut self) -> Result<(), StorageError> {
        let mut deleted = false;
        while self.segments.len() >= 2 {
            let first = self.segments.values().next().expect("non-empty");
            if first.next_offset > self.log_start_offset {
                break;
            }
            self.delete_first_segment().await?;
            deleted = true;
        }
        if deleted {
            self.disk.sync_dir(&self.dir).await?;
        }
        Ok(())
    }

    /// Persists the log start offset and the recovery point (= the flushed offset).
    pub async fn write_checkpoint(&mut self) -> Result<(), StorageError> {
        assert!(self.log_start_offset <= self.flushed_offset.max(self.log_start_offset));
        let checkpoint = Checkpoint { log_start_offset: self.log_start_offset, recovery_point: self.flushed_offset };
        checkpoint.write(&self.disk, &self.dir).await?;
        self.recovery_point = self.flushed_offset;
        Ok(())
    }

    /// Flushes everything and writes the checkpoint, so the next open scans nothing.
    pub async fn close(&mut self, now_ms: i64) -> Result<(), StorageError> {
        if let Some(plan) = self.flush_plan() {
            for file in &plan.files {
                file.sync_data().await?;
            }
            self.complete_flush(plan.end_offset, now_ms).await?;
        }
        self.write_checkpoint().await
    }

    /// Deletes every file of the partition and its directory (DeleteTopics).
    pub async fn delete(mut self) -> Result<(), StorageError> {
        while let Some((_, segment)) = self.segments.pop_first() {
            segment.delete(&self.disk).await?;
        }
        for path in self.disk.list_dir(&self.dir).await? {
            self.disk.remove_file(&path).await?;
        }
        self.disk.remove_dir(&self.dir).await?;
        if let Some(parent) = self.dir.parent() {
            self.disk.sync_dir(parent).await?;
        }
        Ok(())
    }

    pub(crate) fn check_invariants(&self) {
        assert!(self.log_start_offset <= self.log_end_offset.max(self.log_start_offset));
        assert!(self.flushed_offset <= self.log_end_offset, "flushed beyond log end");
        assert!(self.recovery_point <= self.flushed_offset, "recovery point beyond flushed");
        let mut expected = None;
        for (base, segment) in &self.segments {
            assert_eq!(*base, segment.base_offset);
            if let Some(expected) = expected {
                assert_eq!(segment.base_offset, expected, "segments are not dense");
            }
            expected = Some(segment.next_offset);
        }
        assert_eq!(expected, Some(self.log_end_offset), "active segment does not end at LEO");
        assert!(self.active().holes.is_empty(), "the active segment has holes");
        assert_eq!(
            self.producers_at_active_base.0,
            self.active().base_offset,
            "producer snapshot not at the active base"
        );
    }
}
