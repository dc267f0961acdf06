//! A view of the Kafka RecordBatch v2 header: parse, validate, and rewrite in place.
//!
//! Sluice keeps record batches opaque (DESIGN.md, "one log format end to end"): it reads the
//! 61-byte header, checks the CRC-32C, and rewrites only the fields the broker owns (base offset,
//! partition leader epoch, LogAppendTime). The records inside are never decoded on the hot path.
//!
//! Layout (Kafka protocol: "Record Batch", magic 2; all integers big-endian):
//!
//! ```text
//!  offset  size  field
//!       0     8  baseOffset             (rewritten by the broker; not covered by the CRC)
//!       8     4  batchLength            (bytes after this field)
//!      12     4  partitionLeaderEpoch   (rewritten by the broker; not covered by the CRC)
//!      16     1  magic                  (= 2)
//!      17     4  crc                    (CRC-32C of bytes 21..end)
//!      21     2  attributes             (bits 0-2 codec, 3 timestamp type, 4 transactional,
//!                                        5 control, 6 delete horizon)
//!      23     4  lastOffsetDelta
//!      27     8  baseTimestamp
//!      35     8  maxTimestamp
//!      43     8  producerId
//!      51     2  producerEpoch
//!      53     4  baseSequence
//!      57     4  recordCount
//!      61     .. records
//! ```

use crate::{Offset, ProducerEpoch, ProducerId, Sequence, Term};

/// Size of the fixed RecordBatch v2 header.
pub const BATCH_HEADER_BYTES: u32 = 61;
/// Bytes before `batchLength`'s counted region: baseOffset (8) + batchLength (4).
pub const BATCH_LOG_OVERHEAD_BYTES: u32 = 12;
/// The only magic Sluice accepts (Kafka 4.0 removed v0 and v1 message sets, KIP-896).
pub const MAGIC_V2: i8 = 2;

const OFFSET_BASE_OFFSET: usize = 0;
const OFFSET_BATCH_LENGTH: usize = 8;
const OFFSET_LEADER_EPOCH: usize = 12;
const OFFSET_MAGIC: usize = 16;
const OFFSET_CRC: usize = 17;
const OFFSET_ATTRIBUTES: usize = 21;
const OFFSET_LAST_OFFSET_DELTA: usize = 23;
const OFFSET_BASE_TIMESTAMP: usize = 27;
const OFFSET_MAX_TIMESTAMP: usize = 35;
const OFFSET_PRODUCER_ID: usize = 43;
const OFFSET_PRODUCER_EPOCH: usize = 51;
const OFFSET_BASE_SEQUENCE: usize = 53;
const OFFSET_RECORD_COUNT: usize = 57;

const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
const ATTRIBUTE_TIMESTAMP_TYPE: i16 = 0x08;
const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
const ATTRIBUTE_CONTROL: i16 = 0x20;

/// A record batch codec (Kafka protocol: attributes bits 0-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    /// The codec for an attributes value, or `None` for the reserved codes 5-7.
    pub fn from_attributes(attributes: i16) -> Option<Compression> {
        match attributes & ATTRIBUTE_COMPRESSION_MASK {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Kafka's name for the codec, as used by `compression.type`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses Kafka's codec names (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn from_name(name: &str) -> Option<Compression> {
        match name {
            "none" | "uncompressed" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Which clock a batch's timestamps come from (Kafka protocol: attributes bit 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// Why a byte range is not a valid RecordBatch v2.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: u64, available: u64 },
    #[error("unsupported magic {0} (only v2 record batches are accepted)")]
    UnsupportedMagic(i8),
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("invalid record count {record_count} for last offset delta {last_offset_delta}")]
    InvalidRecordCount { record_count: i32, last_offset_delta: i32 },
    #[error("unknown compression codec in attributes {0:#06x}")]
    UnknownCompression(i16),
}

/// The decoded fixed header of one batch. Invariant: produced only by [`BatchHeader::parse`],
/// so `batch_length` covers a whole batch present in the buffer that was parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: Offset,
    pub batch_length: i32,
    pub partition_leader_epoch: Term,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub base_sequence: Sequence,
    pub record_count: i32,
}

fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Parses the header of the batch at the start of `buf` and checks that the whole batch is
    /// present. Does not check the CRC: call [`BatchHeader::verify_crc`] for that.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let header = BatchHeader::parse_header_only(buf)?;
        let needed = u64::from(header.size_bytes());
        let available = buf.len() as u64;
        if available < needed {
            return Err(BatchError::Truncated { needed, available });
        }
        Ok(header)
    }

    /// Parses and validates the 61-byte fixed header alone; the batch body may lie beyond `buf`
    /// (used to learn a batch's size before reading all of it).
    pub fn parse_header_only(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let available = buf.len() as u64;
        if available < u64::from(BATCH_HEADER_BYTES) {
            return Err(BatchError::Truncated { needed: u64::from(BATCH_HEADER_BYTES), available });
        }
        let magic = buf[OFFSET_MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let batch_length = read_i32(buf, OFFSET_BATCH_LENGTH);
        let batch_length_min = (BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD_BYTES) as i32;
        if batch_length < batch_length_min {
            return Err(BatchError::InvalidLength(batch_length));
        }
        let header = BatchHeader {
            base_offset: Offset(read_i64(buf, OFFSET_BASE_OFFSET)),
            batch_length,
            partition_leader_epoch: Term(read_i32(buf, OFFSET_LEADER_EPOCH)),
            crc: read_i32(buf, OFFSET_CRC) as u32,
            attributes: read_i16(buf, OFFSET_ATTRIBUTES),
            last_offset_delta: read_i32(buf, OFFSET_LAST_OFFSET_DELTA),
            base_timestamp: read_i64(buf, OFFSET_BASE_TIMESTAMP),
            max_timestamp: read_i64(buf, OFFSET_MAX_TIMESTAMP),
            producer_id: ProducerId(read_i64(buf, OFFSET_PRODUCER_ID)),
            producer_epoch: ProducerEpoch(read_i16(buf, OFFSET_PRODUCER_EPOCH)),
            base_sequence: Sequence(read_i32(buf, OFFSET_BASE_SEQUENCE)),
            record_count: read_i32(buf, OFFSET_RECORD_COUNT),
        };
        if header.last_offset_delta < 0 || header.record_count < 0 {
            return Err(BatchError::InvalidRecordCount {
                record_count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            });
        }
        if header.compression().is_none() {
            return Err(BatchError::UnknownCompression(header.attributes));
        }
        Ok(header)
    }

    /// Parses and also checks the CRC-32C over `attributes..end` (Kafka protocol: Record Batch).
    pub fn parse_verified(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let header = BatchHeader::parse(buf)?;
        header.verify_crc(buf)?;
        Ok(header)
    }

    /// Checks this header's CRC against the batch bytes at the start of `buf`.
    pub fn verify_crc(&self, buf: &[u8]) -> Result<(), BatchError> {
        let end = self.size_bytes() as usize;
        assert!(buf.len() >= end, "verify_crc on a buffer shorter than the parsed batch");
        let computed = crc32c::crc32c(&buf[OFFSET_ATTRIBUTES..end]);
        if computed != self.crc {
            return Err(BatchError::CrcMismatch { stored: self.crc, computed });
        }
        Ok(())
    }

    /// The producer-supplied validity rule for batches the broker assigns offsets to: the inner
    /// records are numbered 0..n-1, so `recordCount == lastOffsetDelta + 1` (Kafka LogValidator).
    pub fn validate_for_append(&self) -> Result<(), BatchError> {
        if self.record_count != self.last_offset_delta.saturating_add(1) {
            return Err(BatchError::InvalidRecordCount {
                record_count: self.record_count,
                last_offset_delta: self.last_offset_delta,
            });
        }
        Ok(())
    }

    /// Total bytes of this batch: the 12-byte log overhead plus `batchLength`.
    pub fn size_bytes(&self) -> u32 {
        assert!(self.batch_length >= 0);
        BATCH_LOG_OVERHEAD_BYTES + self.batch_length as u32
    }

    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> Offset {
        Offset(self.base_offset.0 + i64::from(self.last_offset_delta))
    }

    /// The offset just past this batch.
    pub fn next_offset(&self) -> Offset {
        self.last_offset().next()
    }

    pub fn compression(&self) -> Option<Compression> {
        Compression::from_attributes(self.attributes)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTRIBUTE_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTRIBUTE_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTRIBUTE_CONTROL != 0
    }

    /// Whether the batch carries an idempotent producer's identity (KIP-98).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id.0 >= 0
    }

    /// The sequence number of the batch's last record, wrapping at i32::MAX as Kafka does.
    pub fn last_sequence(&self) -> Sequence {
        let base = i64::from(self.base_sequence.0);
        let last = (base + i64::from(self.last_offset_delta)) % (i64::from(i32::MAX) + 1);
        Sequence(last as i32)
    }
}

/// Rewrites the base offset in place. The field is outside the CRC, so the CRC stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: Offset) {
    assert!(batch.len() >= BATCH_HEADER_BYTES as usize);
    assert!(base_offset.0 >= 0, "negative base offset");
    batch[OFFSET_BASE_OFFSET..OFFSET_BASE_OFFSET + 8].copy_from_slice(&base_offset.0.to_be_bytes());
}

/// Stamps the partition leader epoch (the Raft term) in place; outside the CRC.
pub fn set_partition_leader_epoch(batch: &mut [u8], term: Term) {
    assert!(batch.len() >= BATCH_HEADER_BYTES as usize);
    batch[OFFSET_LEADER_EPOCH..OFFSET_LEADER_EPOCH + 4].copy_from_slice(&term.0.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `timestamp_ms` as its max timestamp and recomputes the
/// CRC, as Kafka's LogValidator does for `message.timestamp.type=LogAppendTime`.
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) {
    let header = BatchHeader::parse(batch).expect("set_log_append_time on a parsed batch");
    let attributes = header.attributes | ATTRIBUTE_TIMESTAMP_TYPE;
    batch[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    let end = header.size_bytes() as usize;
    let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..end]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    // Paired assertion: the rewritten batch must verify.
    debug_assert!(BatchHeader::parse_verified(batch).is_ok());
}

/// Iterates the batches in a buffer of concatenated batches, yielding each header and its byte
/// range. Stops at the first error, which it yields once.
pub fn batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter { buf, position: 0, failed: false }
}

pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    failed: bool,
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, std::ops::Range<usize>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        match BatchHeader::parse(&self.buf[self.position..]) {
            Ok(header) => {
                let start = self.position;
                self.position += header.size_bytes() as usize;
                Some(Ok((header, start..self.position)))
            }
            Err(error) => {
                self.failed = true;
                Some(Err(error))
            }
        }
    }
}

/// Builds a minimal valid batch for tests and for control batches: `record_count` records
/// encoded by the caller in `records`. Used by storage and broker tests; production batches
/// come from producers.
pub fn build_batch(header: &BatchHeader, records: &[u8]) -> Vec<u8> {
    let batch_length = (BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD_BYTES) as usize + records.len();
    let mut buf = Vec::with_capacity(BATCH_LOG_OVERHEAD_BYTES as usize + batch_length);
    buf.extend_from_slice(&header.base_offset.0.to_be_bytes());
    buf.extend_from_slice(&(batch_length as i32).to_be_bytes());
    buf.extend_from_slice(&header.partition_leader_epoch.0.to_be_bytes());
    buf.push(MAGIC_V2 as u8);
    buf.extend_from_slice(&0u32.to_be_bytes());
    buf.extend_from_slice(&header.attributes.to_be_bytes());
    buf.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    buf.extend_from_slice(&header.base_timestamp.to_be_bytes());
    buf.extend_from_slice(&header.max_timestamp.to_be_bytes());
    buf.extend_from_slice(&header.producer_id.0.to_be_bytes());
    buf.extend_from_slice(&header.producer_epoch.0.to_be_bytes());
    buf.extend_from_slice(&header.base_sequence.0.to_be_bytes());
    buf.extend_from_slice(&header.record_count.to_be_bytes());
    buf.extend_from_slice(records);
    let crc = crc32c::crc32c(&buf[OFFSET_ATTRIBUTES..]);
    buf[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    buf
}

impl BatchHeader {
    /// A header template for [`build_batch`]: `record_count` records, no producer, CreateTime.
    pub fn template(record_count: i32, timestamp_ms: i64) -> BatchHeader {
        assert!(record_count > 0);
        BatchHeader {
            base_offset: Offset(0),
            batch_length: 0,
            partition_leader_epoch: Term(-1),
            crc: 0,
            attributes: 0,
            last_offset_delta: record_count - 1,
            base_timestamp: timestamp_ms,
            max_timestamp: timestamp_ms,
            producer_id: ProducerId(-1),
            producer_epoch: ProducerEpoch(-1),
            base_sequence: Sequence(-1),
            record_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(record_count: i32) -> Vec<u8> {
        build_batch(&BatchHeader::template(record_count, 1_700_000_000_000), b"opaque-records")
    }

    #[test]
    fn built_batch_parses_and_verifies() {
        let batch = sample(3);
        let header = BatchHeader::parse_verified(&batch).unwrap();
        assert_eq!(header.record_count, 3);
        assert_eq!(header.size_bytes() as usize, batch.len());
        assert_eq!(header.last_offset(), Offset(2));
        header.validate_for_append().unwrap();
    }

    #[test]
    fn base_offset_and_epoch_rewrite_keep_crc() {
        let mut batch = sample(2);
        set_base_offset(&mut batch, Offset(41));
        set_partition_leader_epoch(&mut batch, Term(7));
        let header = BatchHeader::parse_verified(&batch).unwrap();
        assert_eq!(header.base_offset, Offset(41));
        assert_eq!(header.next_offset(), Offset(43));
        assert_eq!(header.partition_leader_epoch, Term(7));
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut batch = sample(1);
        set_log_append_time(&mut batch, 99);
        let header = BatchHeader::parse_verified(&batch).unwrap();
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(header.max_timestamp, 99);
    }

    #[test]
    fn any_flipped_bit_in_crc_region_is_detected() {
        let batch = sample(2);
        for byte in OFFSET_ATTRIBUTES..batch.len() {
            let mut corrupted = batch.clone();
            corrupted[byte] ^= 0x10;
            let verdict = BatchHeader::parse(&corrupted).and_then(|h| h.verify_crc(&corrupted));
            assert!(verdict.is_err(), "flip at byte {byte} not detected");
        }
    }

    #[test]
    fn truncation_is_reported() {
        let batch = sample(1);
        for len in 0..batch.len() {
            assert!(BatchHeader::parse(&batch[..len]).is_err());
        }
    }

    #[test]
    fn iterator_splits_concatenated_batches() {
        let mut buf = sample(1);
        buf.extend_from_slice(&sample(4));
        let ranges: Vec<_> = batches(&buf).map(|r| r.unwrap().1).collect();
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[1].end, buf.len());
    }
}
