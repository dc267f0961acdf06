//! Opening a partition log: recovery after a clean or an unclean shutdown.
//!
//! Steps (Kafka's `LogLoader`, adapted):
//! 1. Read the checkpoint (log start offset, recovery point). A corrupt or missing checkpoint
//!    means "recover everything": recovery point 0.
//! 2. Open segments in offset order. Segments that end at or below the recovery point are
//!    trusted: only their batch headers are walked, to rebuild the indexes. From the segment holding the
//!    recovery point on, every batch's CRC is verified and the log is truncated at the first
//!    torn or corrupt batch; all later segments are deleted.
//! 3. The checkpoint's log start decides where the log may end: if every recovered batch lies
//!    below it, the log restarts empty at the log start (a reset whose new segment was lost, or
//!    an unflushed tail lost below a DeleteRecords point): offsets below the log start are never
//!    handed out again.
//! 4. Rebuild the producer state table and the leader epoch cache from the batch headers.
//! 5. fsync what was recovered, then write a checkpoint whose recovery point is the log end,
//!    and fsync the directory, so that the next crash does not redo this work.
//!
//! A crash inside a truncation or a reset needs nothing more (`replication.rs` orders their
//! steps so that every crash leaves a dense prefix of the old log, or the finished result).
//!
//! Invariant: recovery never removes a batch below the recovery point, and everything it keeps
//! is a dense, CRC-valid prefix of what was written.

use crate::checkpoint::Checkpoint;
use crate::config::LogConfig;
use crate::error::StorageError;
use crate::log::PartitionLog;
use crate::producer_state::ProducerStateTable;
use crate::segment::{Segment, WalkBounds, parse_segment_file_name};
use sluice_io::{Disk, File};
use sluice_types::{Offset, Term};
use std::collections::BTreeMap;
use std::path::Path;

impl<D: Disk> PartitionLog<D> {
    /// Opens (creating if needed) the partition log in `dir` and recovers it.
    pub async fn open(disk: D, dir: &Path, config: LogConfig, now_ms: i64) -> Result<PartitionLog<D>, StorageError> {
        disk.create_dir_all(dir).await?;
        // The directory's own name is durable only once its parent is synced (disk.rs contract);
        // without this a crash can take the whole partition, fsynced batches included.
        if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            disk.sync_dir(parent).await?;
        }
        let checkpoint = match Checkpoint::read(&disk, dir).await {
            Ok(found) => found,
            Err(StorageError::CorruptCheckpoint(why)) => {
                tracing::warn!(dir = %dir.display(), %why, "corrupt checkpoint; full recovery");
                None
            }
            Err(error) => return Err(error),
        };
        let checkpoint = checkpoint.unwrap_or(Checkpoint { log_start_offset: Offset(0), recovery_point: Offset(0) });
        crate::compaction::finish_interrupted_cleaning(&disk, dir).await?;
        let bases: Vec<Offset> =
            disk.list_dir(dir).await?.iter().filter_map(|path| parse_segment_file_name(path)).collect();
        let mut segments = open_segments(&disk, dir, &bases, checkpoint.recovery_point, now_ms).await?;
        drop_log_below_start(&disk, dir, &mut segments, checkpoint.log_start_offset).await?;
        let mut log = PartitionLog {
            disk,
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset: checkpoint.log_start_offset,
            log_end_offset: Offset(0),
            flushed_offset: Offset(0),
            recovery_point: Offset(0),
            unflushed_messages: 0,
            last_flush_wall_ms: now_ms,
            producers: ProducerStateTable::default(),
            epochs: BTreeMap::new(),
            sealed_unsynced: Vec::new(),
            producers_at_active_base: (Offset(-1), ProducerStateTable::default()), // None yet.
            generation: 0,
            rewrite_interrupted: false,
        };
        let last = log.segments.values().next_back();
        if last.is_none_or(|segment| !segment.holes.is_empty()) {
            // No segment, or the last one has holes: appends go to a fresh active segment.
            let base = last.map_or(checkpoint.log_start_offset, |segment| segment.next_offset);
            let segment = Segment::create(&log.disk, dir, base, now_ms).await?;
            log.segments.insert(base, segment);
        }
        let first_base = *log.segments.keys().next().expect("a segment");
        log.log_start_offset = log.log_start_offset.max(first_base);
        log.log_end_offset = log.segments.values().next_back().expect("a segment").next_offset;
        log.log_start_offset = log.log_start_offset.min(log.log_end_offset);
        log.replay_headers(true).await?;
        for segment in log.segments.values() {
            segment.log.sync_data().await?;
            segment.sync_indexes().await?;
        }
        log.disk.sync_dir(dir).await?;
        log.flushed_offset = log.log_end_offset;
        log.write_checkpoint().await?;
        log.check_invariants();
        Ok(log)
    }

    /// Rebuilds the producer table from the batch headers, in log order, for the log as it now
    /// ends, and takes the snapshot at the active segment's base on the way. With
    /// `rebuild_epochs` (at open) the whole log is replayed and the KIP-101 epoch cache rebuilt
    /// too; holes carry no producer or epoch facts, and negative epochs (never stamped) are
    /// skipped.
    ///
    /// Cost. At open: one 61-byte read per retained batch. After a truncation inside the active
    /// segment, the snapshot taken at its base (at open or roll) is restored and only that
    /// segment's headers are replayed: one read per batch of at most one segment. A truncation
    /// below the active segment's base (an uncommitted suffix that spanned a roll) has no
    /// snapshot that old and replays the whole log, as recovery does. Why replay rather than
    /// undo in place: a removed batch may have started a new producer epoch, which cleared the
    /// older batches that must come back (KIP-98: retries of them are duplicates, not fenced).
    /// The snapshot costs one copy of the table in memory (at most `PRODUCER_IDS_MAX`
    /// producers) and one clone per roll.
    pub(crate) async fn replay_headers(&mut self, rebuild_epochs: bool) -> Result<(), StorageError> {
        let active_base = self.active().base_offset;
        let (from, mut producers) = match &self.producers_at_active_base {
            (base, snapshot) if *base == active_base && !rebuild_epochs => (active_base, snapshot.clone()),
            _ => (Offset(0), ProducerStateTable::default()),
        };
        let mut epochs: BTreeMap<Term, Offset> = BTreeMap::new();
        for segment in self.segments.range(from..).map(|(_, segment)| segment) {
            if segment.base_offset == active_base {
                self.producers_at_active_base = (active_base, producers.clone());
            }
            segment
                .for_each_header(|header| {
                    producers.replay(header);
                    let term = header.partition_leader_epoch;
                    if term.0 >= 0 && epochs.keys().next_back().is_none_or(|last| term > *last) {
                        epochs.insert(term, header.base_offset);
                    }
                })
                .await?;
        }
        assert_eq!(self.producers_at_active_base.0, active_base, "the snapshot is at the active base");
        self.producers = producers;
        if rebuild_epochs {
            self.epochs = epochs;
        }
        Ok(())
    }
}

/// The checkpoint's log start decides where the log may end: when every recovered batch lies
/// below it (a reset whose new segment was lost, or an unflushed tail lost below a DeleteRecords
/// point), every segment is deleted and the caller starts the log empty at the log start, so
/// no offset below a durable log start is handed out again.
async fn drop_log_below_start<D: Disk>(
    disk: &D,
    dir: &Path,
    segments: &mut BTreeMap<Offset, Segment<D::File>>,
    log_start: Offset,
) -> Result<(), StorageError> {
    let log_end = segments.values().next_back().map(|segment| segment.next_offset);
    if log_end.is_none_or(|end| end >= log_start) {
        return Ok(());
    }
    tracing::warn!(dir = %dir.display(), log_start = log_start.0, log_end = ?log_end,
        "the log ends below its log start; restarting it empty at the log start");
    // Newest first, like a truncation: a crash in between leaves a dense prefix.
    while let Some((_, segment)) = segments.pop_last() {
        segment.delete(disk).await?;
    }
    disk.sync_dir(dir).await?;
    assert!(segments.is_empty());
    Ok(())
}

/// Opens every segment, verifying those from the recovery point on, and drops everything after
/// the first torn batch above the recovery point. Corruption below the recovery point marks a
/// hole in its segment instead (`Segment::open`): acknowledged data around it is kept.
async fn open_segments<D: Disk>(
    disk: &D,
    dir: &Path,
    bases: &[Offset],
    recovery_point: Offset,
    now_ms: i64,
) -> Result<BTreeMap<Offset, Segment<D::File>>, StorageError> {
    let verify_from = bases.iter().rev().find(|base| **base <= recovery_point).copied();
    let mut segments: BTreeMap<Offset, Segment<D::File>> = BTreeMap::new();
    let mut truncated = false;
    for (index, base) in bases.iter().enumerate() {
        let expected = segments.values().next_back().map(|s| s.next_offset);
        let dense = expected.is_none_or(|next| next == *base);
        if truncated || !dense {
            tracing::warn!(dir = %dir.display(), base = base.0, "deleting segment after truncation point");
            let (segment, _) = Segment::open(disk, dir, *base, false, WalkBounds::default(), now_ms).await?;
            segment.delete(disk).await?;
            truncated = true;
            continue;
        }
        let verify = verify_from.is_none_or(|from| *base >= from);
        let next_base = bases.get(index + 1).copied();
        let previous_epoch = segments.values().rev().find_map(|s| s.last_epoch);
        let bounds = WalkBounds { recovery_point, end_offset: next_base, previous_epoch };
        let (segment, outcome) = Segment::open(disk, dir, *base, verify, bounds, now_ms).await?;
        for hole in segment.holes.values() {
            tracing::error!(dir = %dir.display(), segment = base.0, from = hole.start_offset.0, to = hole.end_offset.0,
                "durable data failed verification; these offsets will answer KAFKA_STORAGE_ERROR");
        }
        if let Some(reason) = &outcome.stopped_by {
            tracing::warn!(dir = %dir.display(), base = base.0, valid_bytes = outcome.valid_bytes, %reason, "truncated torn log tail");
            truncated = true;
        }
        if segment.is_empty() && segment.holes.is_empty() && !segments.is_empty() && truncated {
            segment.delete(disk).await?;
            continue;
        }
        segments.insert(*base, segment);
    }
    // An empty segment may only be the last one; drop empty ones left in the middle by a crash.
    let empty_inner: Vec<Offset> = segments
        .iter()
        .rev()
        .skip(1)
        .filter(|(_, s)| s.is_empty() && s.holes.is_empty())
        .map(|(base, _)| *base)
        .collect();
    for base in empty_inner {
        let segment = segments.remove(&base).expect("present");
        segment.delete(disk).await?;
    }
    Ok(segments)
}
