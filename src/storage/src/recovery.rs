//! Opening a partition log: recovery after a clean or an unclean shutdown.
//!
//! Steps (Kafka's `LogLoader`, adapted):
//! 1. Read the checkpoint (log start offset, recovery point). A corrupt or missing checkpoint
//!    means "recover everything": recovery point 0.
//! 2. Open segments in offset order. Segments that end at or below the recovery point are
//!    trusted: only their batch headers are walked, to rebuild the indexes. From the segment holding the
//!    recovery point on, every batch's CRC is verified and the log is truncated at the first
//!    torn or corrupt batch; all later segments are deleted.
//! 3. Rebuild the producer state table and the leader epoch cache from the batch headers.
//! 4. fsync what was recovered, then write a checkpoint whose recovery point is the log end,
//!    and fsync the directory, so that the next crash does not redo this work.
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
use sluice_types::Offset;
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
        let bases: Vec<Offset> =
            disk.list_dir(dir).await?.iter().filter_map(|path| parse_segment_file_name(path)).collect();
        let segments = open_segments(&disk, dir, &bases, checkpoint.recovery_point, now_ms).await?;
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
        log.replay_headers().await?;
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

    /// Rebuilds producer state and the epoch cache from every batch header, in log order.
    async fn replay_headers(&mut self) -> Result<(), StorageError> {
        for segment in self.segments.values() {
            let mut position = 0u32;
            while position < segment.size_bytes {
                if let Some(hole) = segment.hole_at_position(position) {
                    position = hole.end_position; // Unknown content: no producer or epoch facts.
                    continue;
                }
                let header = segment.header_at(position).await?;
                self.producers.record(&header);
                let term = header.partition_leader_epoch;
                if term.0 >= 0 && self.epochs.keys().next_back().is_none_or(|last| term > *last) {
                    self.epochs.insert(term, header.base_offset);
                }
                position += header.size_bytes();
            }
        }
        Ok(())
    }
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
