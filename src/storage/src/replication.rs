//! A replica's writes: appending a leader's batch verbatim, truncating a conflicting suffix, and
//! restarting a log that fell behind the leader's log start.
//!
//! Every partition is a Raft group whose entries are the record batches themselves (DESIGN.md,
//! "The one idea"): an entry's index is its batch's last offset, its term the batch's
//! `partitionLeaderEpoch`. The Raft core's persist effects (`sluice_raft::Effect`) map onto:
//!
//! - `Append` (a follower) -> [`PartitionLog::append_replicated`]: the batch arrives stamped by
//!   the leader (base offset, leader epoch, maybe LogAppendTime) and is written byte for byte,
//!   after its CRC, its offset (exactly the log end) and its epoch (never below the log's
//!   latest) are checked. Durable through the ordinary flush (`flush_plan`, fsync,
//!   `complete_flush_plan`).
//! - `Truncate { after }` -> [`PartitionLog::truncate_after`]: removes every batch after the one
//!   whose last offset is `after.index` (Raft §5.3; Kafka's truncation on a leader epoch change,
//!   KIP-101, KIP-279). Durable when it returns.
//! - `ResetLog { before_start }` -> [`PartitionLog::reset_to`] with `before_start.index + 1`:
//!   drops the whole log and restarts it empty there. Durable when it returns.
//!
//! Crash safety (docs/format.md, "Truncation and reset"). The recovery point is what recovery
//! trusts without checking, so a truncation first lowers it durably to the new end (when it is
//! above), then deletes later segments newest first (a crash keeps a prefix of directory
//! operations, so a dense prefix of segments), then cuts the boundary segment with `set_len`
//! and syncs it before returning: bytes appended after the cut can never land on top of stale
//! ones that a crash brings back. A reset deletes every segment newest first and syncs the
//! directory before it creates the new segment and writes the checkpoint with the new log
//! start; recovery restarts a log that ends below its checkpoint's log start empty at the log
//! start. So every crash leaves either a dense prefix of the old log or the finished result,
//! and a prefix is safe: whatever it lacks was never acknowledged on the strength of the
//! operation, and Raft repeats the operation.
//!
//! On an `Err` from a truncation or a reset, memory may no longer match the disk: the log
//! refuses further use (`rewrite_interrupted`) and the caller reopens it, which recovers.

use crate::error::StorageError;
use crate::log::{AppendInfo, PartitionLog};
use crate::producer_state::ProducerStateTable;
use crate::segment::{BATCH_BYTES_MAX, Segment};
use bytes::Bytes;
use sluice_io::{Disk, File};
use sluice_types::batch::TimestampType;
use sluice_types::{BatchError, BatchHeader, Offset, Term};

impl<D: Disk> PartitionLog<D> {
    /// Appends one batch replicated from the leader, byte for byte: its base offset, leader
    /// epoch and timestamps were stamped by the leader (Raft: the follower stores the leader's
    /// entries, Raft §5.3). Control batches (a leader's no-op, membership changes) too.
    ///
    /// Checked first, each failure a typed error with nothing written: the CRC and the header
    /// (`InvalidBatch`: bytes from the network are input, not our state), exactly one batch of
    /// at most `BATCH_BYTES_MAX` (`BatchTooLarge`), the base offset equal to the log end
    /// (`OffsetMismatch`), the leader epoch neither negative nor below the latest epoch in the
    /// log (`LeaderEpochRegression`). Producer state is replayed, not checked (the leader
    /// checked it, KIP-98). Durable after the next completed flush, like any append.
    pub async fn append_replicated(&mut self, batch: Bytes, now_ms: i64) -> Result<AppendInfo, StorageError> {
        self.assert_usable();
        let header = BatchHeader::parse_verified(&batch)?;
        if header.size_bytes() as usize != batch.len() {
            return Err(StorageError::InvalidBatch(BatchError::InvalidLength(header.batch_length)));
        }
        if header.size_bytes() > BATCH_BYTES_MAX {
            return Err(StorageError::BatchTooLarge {
                size_bytes: u64::from(header.size_bytes()),
                limit_bytes: u64::from(BATCH_BYTES_MAX),
            });
        }
        if header.base_offset != self.log_end_offset {
            return Err(StorageError::OffsetMismatch { expected: self.log_end_offset, found: header.base_offset });
        }
        let epoch_min = self.latest_epoch().unwrap_or(Term(0)).max(Term(0));
        if header.partition_leader_epoch < epoch_min {
            return Err(StorageError::LeaderEpochRegression { found: header.partition_leader_epoch, min: epoch_min });
        }
        self.append_stamped(header, batch, now_ms).await?;
        self.producers.replay(&header);
        // Paired with the check above: the epoch cache now ends in this batch's epoch.
        assert_eq!(self.latest_epoch(), Some(header.partition_leader_epoch));
        let log_append_time_ms = match header.timestamp_type() {
            TimestampType::LogAppendTime => header.max_timestamp,
            TimestampType::CreateTime => -1,
        };
        Ok(AppendInfo { base_offset: header.base_offset, last_offset: header.last_offset(), log_append_time_ms })
    }

    /// Keeps every batch whose last offset is at most `last_kept` and removes the rest (Raft
    /// §5.3: a follower's conflicting suffix; KIP-101/KIP-279). `last_kept` is the last offset
    /// of a batch in the log, or the offset before the log start (-1 also means that): keep
    /// nothing. A cut inside a batch, below the log start or beyond the log end is a broken
    /// invariant (Raft truncates only after a whole entry, never below its commit index, and
    /// only committed entries are below the log start) and panics.
    ///
    /// Durable when it returns: the boundary segment's new length (and the directory, when
    /// segments were deleted) is synced here, not left to the flush, so a later append can
    /// never be followed by stale batches a crash brought back (docs/format.md). `flushed_offset` drops to the new end if it was above.
    /// The epoch cache forgets epochs that start at or after the new end; the producer table is
    /// rebuilt (see `replay_headers` for the cost). The active segment takes appends at the new
    /// end; a flush planned before the truncation completes as stale.
    pub async fn truncate_after(&mut self, last_kept: Offset) -> Result<(), StorageError> {
        self.assert_usable();
        let new_end = if last_kept == Offset(-1) { self.log_start_offset } else { last_kept.next() };
        assert!(
            new_end >= self.log_start_offset,
            "truncation after {last_kept} is below the log start {}: only committed entries are there",
            self.log_start_offset
        );
        assert!(
            new_end <= self.log_end_offset,
            "truncation after {last_kept} is beyond the log end {}",
            self.log_end_offset
        );
        if new_end == self.log_end_offset {
            return Ok(());
        }
        let (boundary, position) = self.cut_point(new_end).await?;
        self.rewrite_interrupted = true;
        self.generation += 1;
        self.flushed_offset = self.flushed_offset.min(new_end);
        if self.recovery_point > new_end {
            // Recovery must verify everything from the new end on: what lands there next is new.
            self.write_checkpoint().await?;
        }
        self.remove_segments_after(boundary).await?;
        let segment = self.segments.get_mut(&boundary).expect("the boundary segment");
        if position < segment.size_bytes {
            segment.truncate(position, new_end).await?;
            segment.log.sync_data().await?;
        }
        assert_eq!(segment.next_offset, new_end, "the boundary segment ends at the new end");
        self.log_end_offset = new_end;
        if !segment.holes.is_empty() {
            // A segment with holes is never appended to (recovery.rs): start a fresh one.
            let created_wall_ms = segment.created_wall_ms;
            let fresh = Segment::create(&self.disk, &self.dir, new_end, created_wall_ms).await?;
            self.segments.insert(new_end, fresh);
        }
        self.epochs.retain(|_, start| *start < new_end);
        self.sealed_unsynced.retain(|base| *base < new_end);
        self.replay_headers(false).await?;
        self.rewrite_interrupted = false;
        self.check_invariants();
        assert!(self.latest_epoch().is_none_or(|epoch| self.epochs[&epoch] < new_end));
        Ok(())
    }

    /// Drops the whole log and restarts it empty at `log_start`, which may lie anywhere (Raft:
    /// a follower behind the leader's log start takes the leader's, `ResetLog`). The epoch
    /// cache and the producer table start empty too.
    ///
    /// Durable when it returns. Steps: delete every segment newest first and sync the
    /// directory; create the empty segment at `log_start` (its creation is synced); write the
    /// checkpoint (log start and recovery point `log_start`). A crash before the checkpoint
    /// leaves a dense prefix of the old log (possibly empty) or the empty log at `log_start`,
    /// never old segments after the new start.
    pub async fn reset_to(&mut self, log_start: Offset, now_ms: i64) -> Result<(), StorageError> {
        self.assert_usable();
        assert!(log_start.0 >= 0, "negative log start {log_start}");
        self.rewrite_interrupted = true;
        self.generation += 1;
        let mut deleted = false;
        // Bounded by SEGMENTS_MAX.
        while let Some((_, segment)) = self.segments.pop_last() {
            segment.delete(&self.disk).await?;
            deleted = true;
        }
        if deleted {
            self.disk.sync_dir(&self.dir).await?;
        }
        let segment = Segment::create(&self.disk, &self.dir, log_start, now_ms).await?;
        self.segments.insert(log_start, segment);
        self.log_start_offset = log_start;
        self.log_end_offset = log_start;
        self.flushed_offset = log_start;
        self.unflushed_messages = 0;
        self.sealed_unsynced.clear();
        self.epochs.clear();
        self.producers = ProducerStateTable::default();
        self.producers_at_active_base = (log_start, ProducerStateTable::default());
        self.write_checkpoint().await?;
        self.rewrite_interrupted = false;
        self.check_invariants();
        assert_eq!(self.recovery_point, log_start);
        Ok(())
    }

    /// The segment holding `new_end` (a batch boundary below the log end) and the byte position
    /// where the batch or hole starting at `new_end` begins. Reads only.
    async fn cut_point(&self, new_end: Offset) -> Result<(Offset, u32), StorageError> {
        let (base, segment) = self.segments.range(..=new_end).next_back().expect("the log start lies in a segment");
        assert!(new_end < segment.next_offset, "the cut lies inside the segment that holds it");
        if new_end == segment.base_offset {
            return Ok((*base, 0));
        }
        if let Some(hole) = segment.hole_covering(new_end) {
            if hole.start_offset != new_end {
                let reason = format!(
                    "truncation point {new_end} lies in a damaged range [{}, {})",
                    hole.start_offset, hole.end_offset
                );
                return Err(segment.corrupt(hole.start_position, reason));
            }
            return Ok((*base, hole.start_position));
        }
        let (position, batch_base) = segment.position_of(new_end).await?;
        assert_eq!(
            batch_base, new_end,
            "truncation point {new_end} is inside the batch at {batch_base}: Raft truncates only after a whole entry"
        );
        Ok((*base, position))
    }

    /// Deletes every segment after `boundary`, newest first, then syncs the directory: a crash
    /// in between keeps a dense prefix of the segments (and recovery drops any segment that does
    /// not continue its predecessor).
    async fn remove_segments_after(&mut self, boundary: Offset) -> Result<(), StorageError> {
        let mut deleted = false;
        // Bounded by SEGMENTS_MAX.
        while let Some((base, _)) = self.segments.last_key_value() {
            if *base <= boundary {
                break;
            }
            let (base, segment) = self.segments.pop_last().expect("non-empty");
            self.sealed_unsynced.retain(|sealed| *sealed != base);
            segment.delete(&self.disk).await?;
            deleted = true;
        }
        if deleted {
            self.disk.sync_dir(&self.dir).await?;
        }
        Ok(())
    }
}
