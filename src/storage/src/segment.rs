//! One log segment: a `.log` file of concatenated record batches and its two indexes.
//!
//! Invariants:
//! - `size_bytes` is the end of the last whole batch; batches tile `[0, size_bytes)` exactly.
//! - Batches are in offset order and dense: each base offset is the previous next offset.
//! - `next_offset` is one past the last record in the segment (`base_offset` when empty).

use crate::error::StorageError;
use crate::index::{OffsetIndex, OffsetIndexEntry, TimeIndex, TimeIndexEntry};
use bytes::Bytes;
use sluice_io::{Disk, File, OpenOptions};
use sluice_types::batch::BATCH_HEADER_BYTES;
use sluice_types::{BatchHeader, Offset};
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
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index_entry: u32,
    dir: PathBuf,
}

impl<F: File> Segment<F> {
    pub async fn create<D: Disk<File = F>>(
        disk: &D,
        dir: &Path,
        base_offset: Offset,
        now_ms: i64,
    ) -> Result<Segment<F>, StorageError> {
        let open = |ext: &'static str| {
            let path = dir.join(segment_file_name(base_offset, ext));
            async move { disk.open(&path, OpenOptions::CREATE).await }
        };
        let log = open("log").await?;
        let offset_index_file = open("index").await?;
        let time_index_file = open("timeindex").await?;
        for file in [&log, &offset_index_file, &time_index_file] {
            file.set_len(0).await?;
        }
        disk.sync_dir(dir).await?;
        Ok(Segment {
            base_offset,
            next_offset: base_offset,
            size_bytes: 0,
            max_timestamp_ms: -1,
            created_wall_ms: now_ms,
            log: Arc::new(log),
            offset_index_file: Arc::new(offset_index_file),
            time_index_file: Arc::new(time_index_file),
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index_entry: 0,
            dir: dir.to_path_buf(),
        })
    }

    /// Opens an existing segment. With `verify`, every batch is CRC-checked and the log is
    /// truncated at the first invalid one (the torn tail after a crash); the indexes are rebuilt.
    /// Without it, the indexes are trusted if they are consistent, and only headers are walked.
    pub async fn open<D: Disk<File = F>>(
        disk: &D,
        dir: &Path,
        base_offset: Offset,
        verify: bool,
        now_ms: i64,
    ) -> Result<(Segment<F>, ScanOutcome), StorageError> {
        let open = |ext: &'static str| {
            let path = dir.join(segment_file_name(base_offset, ext));
            async move { disk.open(&path, OpenOptions::CREATE).await }
        };
        let log = Arc::new(open("log").await?);
        let file_bytes = log.len().await?;
        let file_bytes = u32::try_from(file_bytes.min(u64::from(SEGMENT_BYTES_MAX))).expect("clamped to u32");
        let mut segment = Segment {
            base_offset,
            next_offset: base_offset,
            size_bytes: 0,
            max_timestamp_ms: -1,
            created_wall_ms: now_ms,
            log,
            offset_index_file: Arc::new(open("index").await?),
            time_index_file: Arc::new(open("timeindex").await?),
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index_entry: 0,
            dir: dir.to_path_buf(),
        };
        let outcome = segment.rebuild(file_bytes, verify).await?;
        if outcome.valid_bytes < file_bytes {
            segment.log.set_len(u64::from(outcome.valid_bytes)).await?;
        }
        segment.write_indexes().await?;
        Ok((segment, outcome))
    }

    /// Walks every batch in `[0, file_bytes)`, rebuilding offsets, timestamps and indexes.
    async fn rebuild(&mut self, file_bytes: u32, verify: bool) -> Result<ScanOutcome, StorageError> {
        let mut position = 0u32;
        let mut stopped_by = None;
        while position < file_bytes {
            let chunk_bytes = (file_bytes - position).min(SCAN_CHUNK_BYTES);
            let chunk = self.log.read_at(u64::from(position), chunk_bytes).await?;
            let mut cursor = 0usize;
            let mut progressed = false;
            while cursor < chunk.len() {
                let header = match BatchHeader::parse(&chunk[cursor..]) {
                    Ok(header) => header,
                    Err(sluice_types::BatchError::Truncated { needed, .. })
                        if u64::from(position) + cursor as u64 + needed <= u64::from(file_bytes)
                            && needed <= u64::from(BATCH_BYTES_MAX) =>
                    {
                        break; // The batch continues past this chunk: re-read from its start.
                    }
                    Err(error) => {
                        stopped_by = Some(error.to_string());
                        break;
                    }
                };
                let end = cursor + header.size_bytes() as usize;
                let expected = self.next_offset;
                if header.base_offset != expected {
                    stopped_by = Some(format!("offset {} where {expected} expected", header.base_offset));
                    break;
                }
                if verify && let Err(error) = header.verify_crc(&chunk[cursor..end]) {
                    stopped_by = Some(error.to_string());
                    break;
                }
                self.record_batch(&header, position + cursor as u32);
                cursor = end;
                progressed = true;
            }
            position += cursor as u32;
            if stopped_by.is_some() {
                break;
            }
            if !progressed {
                // A single batch larger than the chunk: read exactly that batch.
                let head = self.log.read_at(u64::from(position), BATCH_HEADER_BYTES).await?;
                let header = match BatchHeader::parse_header_only(&head) {
                    Ok(h)
                        if h.base_offset == self.next_offset
                            && u64::from(position) + u64::from(h.size_bytes()) <= u64::from(file_bytes) =>
                    {
                        h
                    }
                    _ => {
                        stopped_by = Some("invalid oversized batch".to_string());
                        break;
                    }
                };
                let batch = self.log.read_at(u64::from(position), header.size_bytes()).await?;
                if verify && let Err(error) = header.verify_crc(&batch) {
                    stopped_by = Some(error.to_string());
                    break;
                }
                self.record_batch(&header, position);
                position += header.size_bytes();
            }
        }
        assert_eq!(position, self.size_bytes, "scan position and segment size disagree");
        Ok(ScanOutcome { valid_bytes: position, stopped_by })
    }

    /// Updates the in-memory state for a batch written (or found) at `position`.
    fn record_batch(&mut self, header: &BatchHeader, position: u32) -> (Option<Bytes>, Option<Bytes>) {
        assert_eq!(position, self.size_bytes, "batches must tile the segment");
        assert_eq!(header.base_offset, self.next_offset, "offsets must be dense");
        let relative_offset =
            u32::try_from(header.base_offset.0 - self.base_offset.0).expect("relative offset fits u32");
        let mut offset_entry = None;
        let mut time_entry = None;
        if position == 0 || self.bytes_since_index_entry >= INDEX_INTERVAL_BYTES_DEFAULT {
            offset_entry = Some(self.offset_index.push(OffsetIndexEntry { relative_offset, position }));
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
        self.log.write_at(u64::from(position), batch).await?;
        let (offset_entry, time_entry) = self.record_batch(header, position);
        if let Some(entry) = offset_entry {
            let at = (self.offset_index.entries.len() as u64 - 1) * 8;
            self.offset_index_file.write_at(at, entry).await?;
        }
        if let Some(entry) = time_entry {
            let at = (self.time_index.entries.len() as u64 - 1) * 12;
            self.time_index_file.write_at(at, entry).await?;
        }
        Ok(())
    }

    /// The byte position of the batch containing `offset`, found from the index plus a scan of
    /// at most one index interval of headers.
    pub async fn position_of(&self, offset: Offset) -> Result<u32, StorageError> {
        assert!(offset >= self.base_offset && offset < self.next_offset);
        let relative_offset = u32::try_from(offset.0 - self.base_offset.0).expect("fits u32");
        let mut position = self.offset_index.lookup(relative_offset);
        loop {
            let header = self.header_at(position).await?;
            if header.next_offset() > offset {
                return Ok(position);
            }
            position += header.size_bytes();
            assert!(position < self.size_bytes, "offset {offset} not found in its segment");
        }
    }

    /// The position of the first batch that may hold a record with timestamp >= `timestamp_ms`.
    pub fn position_for_timestamp(&self, timestamp_ms: i64) -> u32 {
        let relative_offset = self.time_index.lookup(timestamp_ms);
        self.offset_index.lookup(relative_offset)
    }

    pub async fn header_at(&self, position: u32) -> Result<BatchHeader, StorageError> {
        assert!(position < self.size_bytes);
        let bytes = self.log.read_at(u64::from(position), BATCH_HEADER_BYTES).await?;
        BatchHeader::parse_header_only(&bytes).map_err(|error| StorageError::CorruptStoredBatch {
            offset: self.base_offset,
            reason: format!("header at position {position}: {error}"),
        })
    }

    /// Reads whole, CRC-verified batches starting at `position`: at least one batch (KIP-74),
    /// then more while they fit in `max_bytes`, stopping before any batch at or past
    /// `max_offset`.
    pub async fn read_batches(&self, position: u32, max_bytes: u32, max_offset: Offset) -> Result<Bytes, StorageError> {
        assert!(position <= self.size_bytes);
        let available = self.size_bytes - position;
        let mut want = available.min(max_bytes.max(BATCH_HEADER_BYTES));
        let mut chunk = self.log.read_at(u64::from(position), want).await?;
        let first = self.parse_stored(&chunk, position)?;
        if first.size_bytes() > want {
            want = first.size_bytes();
            chunk = self.log.read_at(u64::from(position), want).await?;
        }
        // The batches served are a prefix of `chunk`: verify them, then slice (no copy).
        let mut cursor = 0usize;
        while cursor < chunk.len() {
            let header = match BatchHeader::parse(&chunk[cursor..]) {
                Ok(header) => header,
                Err(sluice_types::BatchError::Truncated { .. }) if cursor > 0 => break,
                Err(error) => return Err(self.corrupt(position + cursor as u32, error.to_string())),
            };
            if header.base_offset >= max_offset {
                break;
            }
            let end = cursor + header.size_bytes() as usize;
            header
                .verify_crc(&chunk[cursor..end])
                .map_err(|error| self.corrupt(position + cursor as u32, error.to_string()))?;
            cursor = end;
        }
        Ok(chunk.slice(..cursor))
    }

    fn parse_stored(&self, chunk: &[u8], position: u32) -> Result<BatchHeader, StorageError> {
        BatchHeader::parse_header_only(chunk).map_err(|error| self.corrupt(position, error.to_string()))
    }

    fn corrupt(&self, position: u32, reason: String) -> StorageError {
        StorageError::CorruptStoredBatch {
            offset: self.base_offset,
            reason: format!("segment {} position {position}: {reason}", self.base_offset),
        }
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
