//! Log compaction (`cleanup.policy=compact`, Kafka's log cleaner): keep the latest record of
//! every key, drop older ones, and drop tombstones (a key with no value) once they are older
//! than `delete.retention.ms`.
//!
//! What never changes (so readers, replicas and the producer table see the same log):
//! - offsets: a kept record keeps its offset; offsets of dropped records become gaps inside
//!   their batch;
//! - batches: every batch keeps its header (base offset, last offset delta, leader epoch,
//!   timestamps, producer identity), so batches still tile the offset space densely and every
//!   Raft entry (a batch, named by its last offset and epoch) is still in the log. A batch
//!   whose records are all dropped stays as an empty batch, as Kafka's cleaner leaves them;
//! - control and transactional batches, which are kept verbatim.
//!
//! Only sealed segments wholly below a caller-given end are rewritten (the caller passes the
//! first offset that is not both committed and flushed, or the active segment's base). One
//! segment is cleaned at a time, by the shell, in three steps that hold the log only briefly:
//! 1. build the [`KeyMap`] (latest offset per key) from the cleanable range, read in chunks;
//! 2. write the segment's kept batches to `{base}.log.cleaned` ([`CleanedSegment`]) and sync it;
//! 3. [`PartitionLog::install_cleaned`]: rename it to `{base}.log.swap`, then over
//!    `{base}.log`, and reopen the segment (its indexes are rebuilt by the walk).
//!
//! Recovery (`recovery.rs`) deletes `.cleaned` files (an interrupted step 2) and completes
//! `.swap` files (a swap is only ever a complete, synced, cleaned segment).
//!
//! Deviation: a tombstone's age is its batch's max timestamp, where Kafka (KIP-534) counts from
//! when the cleaner first saw it.

use crate::PartitionLog;
use crate::error::StorageError;
use crate::segment::{Segment, WalkBounds, segment_file_name};
use bytes::Bytes;
use sluice_io::{Disk, File, OpenOptions};
use sluice_protocol::records::{Record, RecordsError, decode_batch, rewrite_batch};
use sluice_types::{BatchHeader, Offset};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Extensions of a segment being cleaned, and of one cleaned and ready to replace the original.
pub const CLEANED_EXTENSION: &str = "log.cleaned";
pub const SWAP_EXTENSION: &str = "log.swap";
/// Decompressed bytes one batch may expand to while compacting.
const BATCH_DECOMPRESSED_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// The latest offset of every key in the cleanable range, bounded in key bytes (Kafka's
/// `log.cleaner.dedupe.buffer.size`): when full, the range ends where the map filled.
#[derive(Debug)]
pub struct KeyMap {
    latest: BTreeMap<Bytes, Offset>,
    key_bytes: usize,
    key_bytes_max: usize,
    /// Every offset below this was added (the map covers `[start, covered_end)`).
    covered_end: Offset,
}

impl KeyMap {
    pub fn new(key_bytes_max: usize, start: Offset) -> KeyMap {
        KeyMap { latest: BTreeMap::new(), key_bytes: 0, key_bytes_max, covered_end: start }
    }

    /// Adds one stored batch's keys. False when the map is full: the batch was not added and
    /// the covered range ends before it.
    pub fn add_batch(&mut self, batch: &Bytes) -> Result<bool, RecordsError> {
        let header = BatchHeader::parse_verified(batch)?;
        assert!(header.base_offset >= self.covered_end, "batches are added in offset order");
        if header.is_control() || header.is_transactional() {
            self.covered_end = header.next_offset();
            return Ok(true);
        }
        let (_, records) = decode_batch(batch, BATCH_DECOMPRESSED_BYTES_MAX)?;
        let new_bytes: usize = records
            .iter()
            .filter_map(|r| r.key.as_ref())
            .filter(|k| !self.latest.contains_key(*k))
            .map(|k| k.len())
            .sum();
        if self.key_bytes + new_bytes > self.key_bytes_max && !self.latest.is_empty() {
            return Ok(false);
        }
        for record in &records {
            let Some(key) = &record.key else { continue };
            let offset = record.offset(&header);
            if self.latest.insert(key.clone(), offset).is_none() {
                self.key_bytes += key.len();
            }
        }
        self.covered_end = header.next_offset();
        Ok(true)
    }

    /// The first offset the map does not cover.
    pub fn covered_end(&self) -> Offset {
        self.covered_end
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// Whether the record at `offset` with `key` is superseded by a later record of its key.
    fn superseded(&self, key: &Bytes, offset: Offset) -> bool {
        self.latest.get(key).is_some_and(|latest| *latest > offset)
    }
}

/// What cleaning one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCleaning {
    pub records_kept: u32,
    pub records_dropped: u32,
}

/// The batch with only the records compaction keeps: a record is dropped when a later record
/// of its key is in `map`, or when it is a tombstone whose batch is older than
/// `tombstone_horizon_ms` (its max timestamp below it). Records without a key are kept.
/// Returns the bytes verbatim when nothing is dropped.
pub fn clean_batch(
    batch: &Bytes,
    map: &KeyMap,
    tombstone_horizon_ms: i64,
) -> Result<(Bytes, BatchCleaning), RecordsError> {
    let header = BatchHeader::parse_verified(batch)?;
    if header.is_control() || header.is_transactional() || header.record_count == 0 {
        return Ok((batch.clone(), BatchCleaning::default()));
    }
    let (_, records) = decode_batch(batch, BATCH_DECOMPRESSED_BYTES_MAX)?;
    let old_tombstones = header.max_timestamp < tombstone_horizon_ms;
    let keep = |record: &Record| match &record.key {
        None => true,
        Some(key) => {
            let expired_tombstone = record.value.is_none() && old_tombstones;
            !map.superseded(key, record.offset(&header)) && !expired_tombstone
        }
    };
    let kept: Vec<Record> = records.iter().filter(|r| keep(r)).cloned().collect();
    let cleaning =
        BatchCleaning { records_kept: kept.len() as u32, records_dropped: (records.len() - kept.len()) as u32 };
    if kept.len() == records.len() {
        return Ok((batch.clone(), cleaning));
    }
    Ok((rewrite_batch(&header, &kept)?, cleaning))
}

/// A sealed segment the cleaner may rewrite, as it was when chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSpan {
    pub base_offset: Offset,
    pub next_offset: Offset,
    pub size_bytes: u32,
}

/// The cleaned copy of one segment being written (`{base}.log.cleaned`).
pub struct CleanedSegment<F: File> {
    span: SegmentSpan,
    path: PathBuf,
    file: F,
    written_bytes: u64,
    /// The next offset a written batch must start at (batches stay dense).
    next_offset: Offset,
}

impl<F: File> CleanedSegment<F> {
    /// Appends the next cleaned batch.
    pub async fn write(&mut self, batch: Bytes) -> Result<(), StorageError> {
        let header = BatchHeader::parse_verified(&batch)?;
        assert_eq!(header.base_offset, self.next_offset, "cleaned batches stay dense");
        assert!(header.next_offset() <= self.span.next_offset, "cleaned batches stay inside the segment");
        let length = batch.len() as u64;
        self.file.write_at(self.written_bytes, batch).await?;
        self.written_bytes += length;
        self.next_offset = header.next_offset();
        Ok(())
    }

    pub fn span(&self) -> SegmentSpan {
        self.span
    }

    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }
}

impl<D: Disk> PartitionLog<D> {
    /// The sealed segments wholly below `end` (never the active one), oldest first, without
    /// holes (a segment with corrupt ranges is left as it is).
    pub fn sealed_segments_below(&self, end: Offset) -> Vec<SegmentSpan> {
        let active_base = self.active().base_offset;
        self.segments
            .values()
            .filter(|s| s.base_offset < active_base && s.next_offset <= end && s.holes.is_empty())
            .map(|s| SegmentSpan { base_offset: s.base_offset, next_offset: s.next_offset, size_bytes: s.size_bytes })
            .collect()
    }

    /// Starts the cleaned copy of `span` (an earlier one is discarded).
    pub async fn begin_clean(&self, span: SegmentSpan) -> Result<CleanedSegment<D::File>, StorageError> {
        let path = self.dir.join(segment_file_name(span.base_offset, CLEANED_EXTENSION));
        let file = self.disk.open(&path, OpenOptions::CREATE).await?;
        file.set_len(0).await?;
        Ok(CleanedSegment { span, path, file, written_bytes: 0, next_offset: span.base_offset })
    }

    /// Drops a cleaned copy that is not needed (nothing was dropped from its segment).
    pub async fn discard_cleaned(&self, cleaned: CleanedSegment<D::File>) -> Result<(), StorageError> {
        drop(cleaned.file);
        self.disk.remove_file(&cleaned.path).await?;
        Ok(())
    }

    /// Replaces the segment with its cleaned copy, if the segment is still the one the copy
    /// was made from (retention, a truncation or a reset may have removed it meanwhile; the
    /// copy is then discarded and false returned). Durable when it returns.
    pub async fn install_cleaned(
        &mut self,
        cleaned: CleanedSegment<D::File>,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        self.assert_usable();
        let span = cleaned.span;
        let current = self.segments.get(&span.base_offset);
        let unchanged = current.is_some_and(|s| {
            s.next_offset == span.next_offset && s.size_bytes == span.size_bytes && s.holes.is_empty()
        }) && self.active().base_offset > span.base_offset;
        if !unchanged || cleaned.next_offset != span.next_offset {
            drop(cleaned.file);
            self.disk.remove_file(&cleaned.path).await?;
            return Ok(false);
        }
        cleaned.file.sync_data().await?;
        let swap = self.dir.join(segment_file_name(span.base_offset, SWAP_EXTENSION));
        let log = self.dir.join(segment_file_name(span.base_offset, "log"));
        drop(cleaned.file);
        self.disk.rename(&cleaned.path, &swap).await?;
        self.disk.sync_dir(&self.dir).await?;
        self.disk.rename(&swap, &log).await?;
        self.disk.sync_dir(&self.dir).await?;
        let next_base = self.segments.range(span.next_offset..).next().map(|(base, _)| *base);
        let previous_epoch = self.segments.range(..span.base_offset).rev().find_map(|(_, s)| s.last_epoch);
        let bounds = WalkBounds { recovery_point: span.next_offset, end_offset: next_base, previous_epoch };
        let (segment, outcome) = Segment::open(&self.disk, &self.dir, span.base_offset, true, bounds, now_ms).await?;
        // We wrote and synced these bytes ourselves: anything else is corruption.
        assert!(outcome.stopped_by.is_none(), "a cleaned segment failed its walk: {:?}", outcome.stopped_by);
        assert!(segment.holes.is_empty(), "a cleaned segment has holes");
        assert_eq!(segment.next_offset, span.next_offset, "a cleaned segment keeps its offsets");
        assert!(segment.size_bytes <= span.size_bytes, "cleaning never grows a segment");
        segment.sync_indexes().await?;
        self.segments.insert(span.base_offset, segment);
        self.check_invariants();
        Ok(true)
    }
}

/// At open: a `.cleaned` file is an interrupted copy (deleted); a `.swap` file is a complete
/// cleaned segment whose rename over the original did not happen (completed).
pub(crate) async fn finish_interrupted_cleaning<D: Disk>(disk: &D, dir: &Path) -> Result<(), StorageError> {
    let mut changed = false;
    for path in disk.list_dir(dir).await? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if name.ends_with(&format!(".{CLEANED_EXTENSION}")) {
            disk.remove_file(&path).await?;
            changed = true;
        } else if let Some(stem) = name.strip_suffix(&format!(".{SWAP_EXTENSION}")) {
            disk.rename(&path, &dir.join(format!("{stem}.log"))).await?;
            changed = true;
        }
    }
    if changed {
        disk.sync_dir(dir).await?;
    }
    Ok(())
}
