//! One log segment: a `.log` file of concatenated record batches and its two indexes.
//!
//! The walk that rebuilds a segment at open is in `segment_scan.rs`; verified reads are in
//! `segment_read.rs`. A segment only grows at its end, except [`Segment::truncate`], which cuts
//! it at a batch boundary (a replica's conflicting suffix, Raft §5.3).
//!
//! Invariants:
//! - `size_bytes` is the end of the last whole batch; batches tile `[0, size_bytes)` exactly.
//! - Batches are in offset order and dense: each base offset is the previous next offset.
//! - `next_offset` is one past the last record in the segment (`base_offset` when empty).
//! - `max_timestamp_ms` is the largest `maxTimestamp` of the batches walked or appended.

use crate::error::StorageError;
use crate::index::{
    OFFSET_INDEX_ENTRY_BYTES, OffsetIndex, OffsetIndexEntry, TIME_INDEX_ENTRY_BYTES, TimeIndex, TimeIndexEntry,
};
use bytes::Bytes;
use sluice_io::{Disk, File, OpenOptions};
use sluice_types::{BatchHeader, Offset, Term};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes read per I/O while scanning a segment.
pub const SCAN_CHUNK_BYTES: u32 = 1024 * 1024;
/// A segment may never exceed this, whatever `segment.bytes` says (positions are u32).
pub const SEGMENT_BYTES_MAX: u32 = i32::MAX as u32;
/// The largest batch storage will hold (far above any `max.message.bytes` we accept).
pub const BATCH_BYTES_MAX: u32 = 256 * 1024 * 1024;
const _: () = assert!(SEGMENT_BYTES_MAX >= BATCH_BYTES_MAX);

pub fn segment_file_name(base_offset: Offset, extension: &str) -> String {
    assert!(base_offset.0 >= 0);
    format!("{:020}.{extension}", base_offset.0)
}

/// Parses `00000000000000000042.log` into offset 42.
pub fn parse_segment_file_name(path: &Path) -> Option<Offset> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse::<i64>().ok().map(Offset)
}

/// What a scan of a segment found.
pub struct ScanOutcome {
    /// End of the last valid batch.
    pub valid_bytes: u32,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped_by: Option<String>,
}

/// What the walk needs to tell a torn tail from corruption, and where a hole may end.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalkBounds {
    /// Everything below it was durable: a bad batch there is corruption, not a torn write.
    pub recovery_point: Offset,
    /// The next segment's base offset, if there is a next segment.
    pub end_offset: Option<Offset>,
    /// The leader epoch of the last good batch before this segment (epochs never decrease).
    pub previous_epoch: Option<Term>,
}

pub struct Segment<F: File> {
    pub base_offset: Offset,
    pub next_offset: Offset,
    pub size_bytes: u32,
    /// Largest record timestamp in the segment, and the wall time it was created.
    pub max_timestamp_ms: i64,
    pub created_wall_ms: i64,
    pub log: Arc<F>,
    offset_index_file: Arc<F>,
    time_index_file: Arc<F>,
    pub(crate) offset_index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    /// For each offset index entry, the largest timestamp of the batches before its batch (-1
    /// when none). In memory only: it lets a truncation restore `max_timestamp_ms` by walking
    /// one index interval instead of the whole segment. Invariant: one per offset index entry.
    max_timestamp_before_entry_ms: Vec<i64>,
    bytes_since_index_entry: u32,
    dir: PathBuf,
    /// Stored ranges below the recovery point that failed verification at open, by start
    /// offset: their offsets answer `CorruptStoredBatch`, everything around them is served.
    /// Invariant: holes tile with batches (a hole ends where the next good batch begins), and
    /// the active segment has none.
    pub holes: BTreeMap<Offset, Hole>,
    /// The leader epoch of the last batch recorded (walked or appended).
    pub last_epoch: Option<Term>,
    /// During a recovery walk: the walk's recovery point, and the position of a batch with an
    /// impossible epoch found at or above it (the walk then stops there: a torn tail).
    pub(crate) walk_recovery_point: Offset,
    pub(crate) epoch_outlier_at: Option<u32>,
}

/// A damaged byte range of a segment and the offsets it held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hole {
    pub start_offset: Offset,
    pub end_offset: Offset,
    pub start_position: u32,
    pub end_position: u32,
}

impl<F: File> Segment<F> {
    pub async fn create<D: Disk<File = F>>(
        disk: &D,
        dir: &Path,
        base_offset: Offset,
        now_ms: i64,
    ) -> Result<Segment<F>, StorageError> {
        let segment = Segment::open_files(disk, dir, base_offset, now_ms).await?;
        for file in [&segment.log, &segment.offset_index_file, &segment.time_index_file] {
            file.set_len(0).await?;
        }
        disk.sync_dir(dir).await?;
        Ok(segment)
    }

    /// Opens (creating if missing) the segment's three files, with empty in-memory state.
    async fn open_files<D: Disk<File = F>>(
        disk: &D,
        dir: &Path,
        base_offset: Offset,
        now_ms: i64,
    ) -> Result<Segment<F>, StorageError> {
        let open = |ext: &'static str| {
            let path = dir.join(segment_file_name(base_offset, ext));
            async move { disk.open(&path, OpenOptions::CREATE).await.map(Arc::new) }
        };
        Ok(Segment {
            base_offset,
            next_offset: base_offset,
            size_bytes: 0,
            max_timestamp_ms: -1,
            created_wall_ms: now_ms,
            log: open("log").await?,
            offset_index_file: open("index").await?,
            time_index_file: open("timeindex").await?,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            max_timestamp_before_entry_ms: Vec::new(),
            bytes_since_index_entry: 0,
            dir: dir.to_path_buf(),
            holes: BTreeMap::new(),
            last_epoch: None,
            walk_recovery_point: Offset(0),
            epoch_outlier_at: None,
        })
    }

    /// Opens an existing segment and rebuilds its in-memory state and indexes by walking it.
    ///
    /// With `verify`, every batch's CRC is checked; without, only headers are walked (segments
    /// wholly below the recovery point). What a bad batch means depends on the recovery point
    /// (everything below it was durable): at or above it, a torn tail, and the file is
    /// truncated there; below it, corruption of acknowledged data, so the file is kept and the
    /// bad range becomes a hole that ends where the next good batch begins (`segment_scan.rs`).
    pub async fn open<D: Disk<File = F>>(
        disk: &D,
        dir: &Path,
        base_offset: Offset,
        verify: bool,
        bounds: WalkBounds,
        now_ms: i64,
    ) -> Result<(Segment<F>, ScanOutcome), StorageError> {
        let mut segment = Segment::open_files(disk, dir, base_offset, now_ms).await?;
        let file_bytes = segment.log.len().await?;
        let file_bytes = u32::try_from(file_bytes.min(u64::from(SEGMENT_BYTES_MAX))).expect("clamped to u32");
        let mut outcome = segment.rebuild(file_bytes, verify, bounds).await;
        if !verify && (outcome.stopped_by.is_some() || !segment.holes.is_empty()) {
            // A header walk cannot tell which batch is bad (a flipped lastOffsetDelta shows up
            // as a gap at the next batch): walk again checking CRCs to find the bad ones.
            segment.reset();
            outcome = segment.rebuild(file_bytes, true, bounds).await;
        }
        if outcome.stopped_by.is_some() && outcome.valid_bytes < file_bytes {
            // A torn tail above the recovery point: it was never acknowledged.
            segment.log.set_len(u64::from(outcome.valid_bytes)).await?;
        }
        segment.write_indexes().await?;
        Ok((segment, outcome))
    }

    /// Forgets everything learned by a walk, to walk again.
    pub(crate) fn reset(&mut self) {
        self.next_offset = self.base_offset;
        self.size_bytes = 0;
        self.max_timestamp_ms = -1;
        self.offset_index = OffsetIndex::default();
        self.time_index = TimeIndex::default();
        self.max_timestamp_before_entry_ms.clear();
        self.bytes_since_index_entry = 0;
        self.holes.clear();
        self.last_epoch = None;
    }

    /// Updates the in-memory state for a batch written (or found) at `position`.
    pub(crate) fn record_batch(&mut self, header: &BatchHeader, position: u32) -> (Option<Bytes>, Option<Bytes>) {
        assert_eq!(position, self.size_bytes, "batches must tile the segment");
        assert_eq!(header.base_offset, self.next_offset, "offsets must be dense");
        let relative_offset =
            u32::try_from(header.base_offset.0 - self.base_offset.0).expect("relative offset fits u32");
        let mut offset_entry = None;
        let mut time_entry = None;
        if position == 0 || self.bytes_since_index_entry >= INDEX_INTERVAL_BYTES_DEFAULT {
            offset_entry = Some(self.offset_index.push(OffsetIndexEntry { relative_offset, position }));
            self.max_timestamp_before_entry_ms.push(self.max_timestamp_ms);
            self.bytes_since_index_entry = 0;
        }
        if header.max_timestamp > self.max_timestamp_ms {
            self.max_timestamp_ms = header.max_timestamp;
            let newer = self.time_index.last_timestamp_ms().is_none_or(|t| header.max_timestamp > t);
            if offset_entry.is_some() && newer {
                time_entry =
                    Some(self.time_index.push(TimeIndexEntry { timestamp_ms: header.max_timestamp, relative_offset }));
            }
        }
        self.bytes_since_index_entry += header.size_bytes();
        self.last_epoch = Some(header.partition_leader_epoch);
        self.size_bytes += header.size_bytes();
        self.next_offset = header.next_offset();
        (offset_entry, time_entry)
    }

    async fn write_indexes(&self) -> Result<(), StorageError> {
        self.offset_index_file.set_len(0).await?;
        self.offset_index_file.write_at(0, self.offset_index.encode()).await?;
        self.time_index_file.set_len(0).await?;
        self.time_index_file.write_at(0, self.time_index.encode()).await?;
        Ok(())
    }

    /// Appends one batch whose header (with its final base offset) is `header`.
    pub async fn append(&mut self, header: &BatchHeader, batch: Bytes) -> Result<(), StorageError> {
        assert_eq!(batch.len() as u64, u64::from(header.size_bytes()));
        assert!(u64::from(self.size_bytes) + batch.len() as u64 <= u64::from(SEGMENT_BYTES_MAX));
        let position = self.size_bytes;
        assert!(self.holes.is_empty(), "append to a segment with holes");
        // The log write comes first: if it fails, nothing in memory changed, and the next
        // append overwrites whatever part of it reached the file.
        self.log.write_at(u64::from(position), batch).await?;
        let (offset_entry, time_entry) = self.record_batch(header, position);
        // Index files are derived (rebuilt at every open), so failing to extend one is no
        // reason to fail an append whose batch is already in the log.
        if let Some(entry) = offset_entry {
            let at = (self.offset_index.entries.len() as u64 - 1) * u64::from(OFFSET_INDEX_ENTRY_BYTES);
            if let Err(error) = self.offset_index_file.write_at(at, entry).await {
                tracing::warn!(segment = %self.base_offset, %error, "offset index write failed; rebuilt at next open");
            }
        }
        if let Some(entry) = time_entry {
            let at = (self.time_index.entries.len() as u64 - 1) * u64::from(TIME_INDEX_ENTRY_BYTES);
            if let Err(error) = self.time_index_file.write_at(at, entry).await {
                tracing::warn!(segment = %self.base_offset, %error, "time index write failed; rebuilt at next open");
            }
        }
        Ok(())
    }

    /// Cuts the segment at `position`, where the batch (or hole) starting at `next_offset`
    /// begins: the file shrinks to `position`, and the in-memory state and the index files forget
    /// everything from there on. The caller syncs the log file: the cut is durable only then.
    ///
    /// Bounded: `max_timestamp_ms` and `last_epoch` are restored from the last kept offset index
    /// entry plus a walk of the headers after it (one index interval and one batch, and any
    /// holes among them), not from a walk of the whole segment.
    pub async fn truncate(&mut self, position: u32, next_offset: Offset) -> Result<(), StorageError> {
        assert!(position < self.size_bytes && next_offset < self.next_offset, "a cut removes something");
        assert!(next_offset >= self.base_offset, "a cut inside the segment");
        assert_eq!(position == 0, next_offset == self.base_offset, "position 0 holds the segment's base offset");
        assert!(self.hole_covering(next_offset).is_none_or(|hole| hole.start_offset == next_offset));
        self.log.set_len(u64::from(position)).await?;
        let relative_offset = u32::try_from(next_offset.0 - self.base_offset.0).expect("relative offset fits u32");
        let kept_entries = self.offset_index.entries.partition_point(|entry| entry.position < position);
        self.offset_index.entries.truncate(kept_entries);
        self.max_timestamp_before_entry_ms.truncate(kept_entries);
        let kept_times = self.time_index.entries.partition_point(|entry| entry.relative_offset < relative_offset);
        self.time_index.entries.truncate(kept_times);
        self.holes.retain(|_, hole| hole.end_position <= position);
        assert!(self.holes.values().all(|hole| hole.end_offset <= next_offset), "a kept hole ends below the cut");
        let (walk_from, max_before_ms) = match self.offset_index.entries.last() {
            Some(entry) => (entry.position, *self.max_timestamp_before_entry_ms.last().expect("one per entry")),
            None => (0, -1),
        };
        self.size_bytes = position;
        self.next_offset = next_offset;
        self.max_timestamp_ms = max_before_ms;
        self.bytes_since_index_entry = 0;
        self.last_epoch = None;
        let mut at = walk_from;
        // Bounded: every round moves past one batch or one hole below `position`.
        while at < position {
            if let Some(hole) = self.hole_at_position(at) {
                at = hole.end_position;
                continue;
            }
            let header = self.header_at(at).await?;
            self.max_timestamp_ms = self.max_timestamp_ms.max(header.max_timestamp);
            self.bytes_since_index_entry += header.size_bytes();
            self.last_epoch = Some(header.partition_leader_epoch);
            at += header.size_bytes();
        }
        assert_eq!(at, position, "batches and holes tile the kept part of the segment");
        assert_eq!(self.offset_index.entries.len(), self.max_timestamp_before_entry_ms.len());
        // Index files are derived (rebuilt at every open): a failed rewrite is not a failed cut.
        if let Err(error) = self.write_indexes().await {
            tracing::warn!(segment = %self.base_offset, %error,
                "index rewrite after truncation failed; rebuilt at next open");
        }
        Ok(())
    }

    /// Makes the segment's log and indexes durable (used when it is sealed or flushed).
    pub async fn sync_indexes(&self) -> Result<(), StorageError> {
        self.offset_index_file.sync_data().await?;
        self.time_index_file.sync_data().await?;
        Ok(())
    }

    /// Deletes the segment's files. The caller syncs the directory.
    pub async fn delete<D: Disk<File = F>>(self, disk: &D) -> Result<(), StorageError> {
        for ext in ["log", "index", "timeindex"] {
            let path = self.dir.join(segment_file_name(self.base_offset, ext));
            match disk.remove_file(&path).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }
}

/// Bytes of log between two index entries (`index.interval.bytes`, Kafka default 4096).
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;
