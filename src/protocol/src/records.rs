//! The records *inside* a RecordBatch v2: encode a batch from records, decode one back, check
//! that a producer's batch is well formed, and recompress a batch with another codec.
//!
//! Why here and not in `sluice-types`: the broker's hot path keeps batches opaque (DESIGN.md,
//! "one log format end to end") and needs only the header view in `sluice_types::batch`. The
//! inner records matter only at the edges: the client builds and reads them, the broker checks
//! them once on produce (`validate_records`, answering CORRUPT_MESSAGE) and rewrites them only
//! when a topic's `compression.type` differs from the producer's codec (`recompress`).
//!
//! Record layout (Kafka protocol: "Record", inside the batch body after the 61-byte header,
//! compressed as a whole when the batch's codec is not `none`):
//!
//! ```text
//!  field               type                notes
//!  length              varint              bytes after this field
//!  attributes          int8                unused, 0
//!  timestampDelta      varlong             from the batch's baseTimestamp
//!  offsetDelta         varint              from the batch's baseOffset
//!  keyLength           varint              -1 = null key
//!  key                 keyLength bytes
//!  valueLength         varint              -1 = null value
//!  value               valueLength bytes
//!  headerCount         varint              >= 0
//!    headerKeyLength   varint              >= 0
//!    headerKey         UTF-8
//!    headerValueLength varint              -1 = null value
//!    headerValue       bytes
//! ```
//!
//! varint/varlong are zigzag-encoded base-128 varints of 32/64 bits (as protobuf's sint32/sint64).
//!
//! Invariants: decoding never panics on any input, never allocates more than the limit the
//! caller passes plus a bounded slack, and accepts exactly what [`encode_batch`] writes.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use sluice_types::batch::{BATCH_HEADER_BYTES, BatchError, BatchHeader, build_batch};
use sluice_types::{Compression, Offset, ProducerEpoch, ProducerId, Sequence, Term, TimestampType};

use crate::compression::{self, CompressionError};
use crate::varint::{self, VarintError, put_varint, put_varlong, varint_size, varlong_size};

/// The smallest possible record: length, attributes, timestamp delta, offset delta, key length,
/// value length and header count, one byte each. Caps pre-allocation from a declared count.
const RECORD_BYTES_MIN: usize = 7;
/// Attribute bits sluice-types keeps private (Kafka protocol: Record Batch attributes).
const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
const ATTRIBUTE_TIMESTAMP_TYPE: i16 = 0x08;
const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
const ATTRIBUTE_CONTROL: i16 = 0x20;

/// One record of a batch. Offsets and timestamps are deltas from the batch header's base
/// values, as on the wire; see [`Record::offset`] and [`Record::timestamp`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Invariant (producer batches, KIP-98 and Kafka's LogValidator): the i-th record has 0-based
    /// offset delta i. Compacted batches may have gaps, never decreasing deltas.
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// In wire order; Kafka allows repeated keys.
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl Record {
    /// The record's absolute offset in its partition.
    pub fn offset(&self, header: &BatchHeader) -> Offset {
        Offset(header.base_offset.0 + i64::from(self.offset_delta))
    }

    /// The record's timestamp in ms: the batch's max timestamp under LogAppendTime (the broker
    /// stamps one time for the whole batch), else the base timestamp plus the delta.
    pub fn timestamp(&self, header: &BatchHeader) -> i64 {
        match header.timestamp_type() {
            TimestampType::LogAppendTime => header.max_timestamp,
            TimestampType::CreateTime => header.base_timestamp.wrapping_add(self.timestamp_delta),
        }
    }
}

/// The header fields of a batch to encode. `Default` is a plain producer batch: no idempotent
/// producer (-1 ids), CreateTime, base offset 0, leader epoch -1, base timestamp 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOptions {
    pub base_offset: Offset,
    pub partition_leader_epoch: Term,
    /// Milliseconds since the epoch; the records' timestamp deltas are relative to it.
    pub base_timestamp: i64,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub base_sequence: Sequence,
    pub timestamp_type: TimestampType,
    pub is_transactional: bool,
    pub is_control: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            base_offset: Offset(0),
            partition_leader_epoch: Term(-1),
            base_timestamp: 0,
            producer_id: ProducerId(-1),
            producer_epoch: ProducerEpoch(-1),
            base_sequence: Sequence(-1),
            timestamp_type: TimestampType::CreateTime,
            is_transactional: false,
            is_control: false,
        }
    }
}

/// What [`validate_records`] learned about a well-formed producer batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSummary {
    pub header: BatchHeader,
    /// The largest record timestamp (CreateTime), which Kafka expects in `maxTimestamp`.
    pub timestamp_max: i64,
    /// Size of the records once decompressed.
    pub records_bytes: u64,
}

/// Why a batch's records could not be encoded or decoded. Every decoding variant means Kafka's
/// CORRUPT_MESSAGE (error code 2) to a producer.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("invalid batch header: {0}")]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error("record {index}: {reason}")]
    CorruptRecord { index: u32, reason: &'static str },
    #[error("batch declares {declared} records but its body holds more or fewer")]
    RecordCountMismatch { declared: i32 },
    #[error("{trailing_bytes} bytes follow the batch's last record")]
    TrailingBytes { trailing_bytes: u64 },
    #[error("record {index} has offset delta {offset_delta}; producer batches number records 0..n")]
    OffsetDeltaNotSequential { index: u32, offset_delta: i32 },
    #[error("a producer batch must hold at least one record")]
    Empty,
    #[error("cannot encode: {0}")]
    TooLarge(&'static str),
}

/// Encodes `records` into one complete RecordBatch v2 with a valid CRC-32C.
///
/// Panics if `records` is empty or its offset deltas are negative or not increasing: those are
/// caller bugs. Fails only when a length does not fit Kafka's int32 fields.
pub fn encode_batch(records: &[Record], codec: Compression, options: &BatchOptions) -> Result<Bytes, RecordsError> {
    assert!(!records.is_empty(), "encode_batch needs at least one record");
    let mut offset_delta_previous = -1;
    let mut timestamp_delta_max = i64::MIN;
    for record in records {
        assert!(record.offset_delta > offset_delta_previous, "offset deltas must increase");
        offset_delta_previous = record.offset_delta;
        timestamp_delta_max = timestamp_delta_max.max(record.timestamp_delta);
    }
    let record_count = i32::try_from(records.len()).map_err(|_| RecordsError::TooLarge("record count"))?;
    let mut raw = Vec::new();
    for record in records {
        encode_record(record, &mut raw)?;
    }
    let body = compression::compress(codec, &raw);
    if body.len() > (i32::MAX as usize) - BATCH_HEADER_BYTES as usize {
        return Err(RecordsError::TooLarge("batch length"));
    }
    let header = BatchHeader {
        base_offset: options.base_offset,
        batch_length: 0, // build_batch computes it
        partition_leader_epoch: options.partition_leader_epoch,
        crc: 0, // build_batch computes it
        attributes: attributes_for(codec, options),
        last_offset_delta: offset_delta_previous,
        base_timestamp: options.base_timestamp,
        max_timestamp: options.base_timestamp.wrapping_add(timestamp_delta_max),
        producer_id: options.producer_id,
        producer_epoch: options.producer_epoch,
        base_sequence: options.base_sequence,
        record_count,
    };
    let batch = build_batch(&header, &body);
    // Paired assertion (debug builds): what we write must parse and verify.
    debug_assert!(BatchHeader::parse_verified(&batch).is_ok());
    Ok(Bytes::from(batch))
}

/// Re-encodes a stored batch with only `kept` of its records (log compaction): every header
/// field stays (base offset, leader epoch, last offset delta, timestamps, producer identity,
/// attributes), so offsets never move and the batch still covers its whole offset range;
/// only the record count, length and CRC change. A batch left with no records is written
/// uncompressed and empty, as Kafka's cleaner writes empty batches. `kept` are records of the
/// batch, in order.
pub fn rewrite_batch(header: &BatchHeader, kept: &[Record]) -> Result<Bytes, RecordsError> {
    let mut offset_delta_previous = -1;
    for record in kept {
        assert!(record.offset_delta > offset_delta_previous, "kept records stay in order");
        assert!(record.offset_delta <= header.last_offset_delta, "kept records lie inside the batch");
        offset_delta_previous = record.offset_delta;
    }
    let codec = header.compression().expect("a stored batch has a known codec");
    let mut raw = Vec::new();
    for record in kept {
        encode_record(record, &mut raw)?;
    }
    let (codec, body) =
        if kept.is_empty() { (Compression::None, Vec::new()) } else { (codec, compression::compress(codec, &raw)) };
    if body.len() > (i32::MAX as usize) - BATCH_HEADER_BYTES as usize {
        return Err(RecordsError::TooLarge("batch length"));
    }
    let rewritten = BatchHeader {
        batch_length: 0,
        crc: 0,
        attributes: (header.attributes & !ATTRIBUTE_COMPRESSION_MASK) | codec as i16,
        record_count: i32::try_from(kept.len()).map_err(|_| RecordsError::TooLarge("record count"))?,
        ..*header
    };
    let batch = build_batch(&rewritten, &body);
    debug_assert!(BatchHeader::parse_verified(&batch).is_ok());
    Ok(Bytes::from(batch))
}

fn attributes_for(codec: Compression, options: &BatchOptions) -> i16 {
    let mut attributes = codec as i16;
    if options.timestamp_type == TimestampType::LogAppendTime {
        attributes |= ATTRIBUTE_TIMESTAMP_TYPE;
    }
    if options.is_transactional {
        attributes |= ATTRIBUTE_TRANSACTIONAL;
    }
    if options.is_control {
        attributes |= ATTRIBUTE_CONTROL;
    }
    attributes
}

/// Decodes the batch at the start of `batch`: verifies the header and CRC, decompresses into at
/// most `limit_bytes`, and decodes every record. Uncompressed batches are not copied: keys and
/// values are slices of `batch`.
pub fn decode_batch(batch: &Bytes, limit_bytes: u64) -> Result<(BatchHeader, Vec<Record>), RecordsError> {
    let header = BatchHeader::parse_verified(batch)?;
    let raw = records_shared(&header, batch, limit_bytes)?;
    let capacity = (header.record_count as usize).min(raw.len() / RECORD_BYTES_MIN);
    let mut records = Vec::with_capacity(capacity);
    walk_records(&header, &raw, |ranges| {
        records.push(ranges.to_record(&raw)?);
        Ok(())
    })?;
    Ok((header, records))
}

/// Decodes every whole batch in `buffer` (a Fetch response's records), each bounded by
/// `limit_bytes`. A truncated batch at the end is skipped, as Kafka clients do: a broker may cut
/// the last batch at the fetch's byte limit.
pub fn decode_batches(buffer: &Bytes, limit_bytes: u64) -> Result<Vec<(BatchHeader, Vec<Record>)>, RecordsError> {
    let mut batches = Vec::new();
    let mut position = 0;
    // Bounded: every iteration consumes at least one 61-byte header or stops.
    while position < buffer.len() {
        let rest = buffer.slice(position..);
        match BatchHeader::parse(&rest) {
            Ok(header) => {
                position += header.size_bytes() as usize;
                batches.push(decode_batch(&rest, limit_bytes)?);
            }
            Err(BatchError::Truncated { .. }) => break,
            Err(error) => return Err(error.into()),
        }
    }
    Ok(batches)
}

/// Fully checks a producer's batch the way Kafka's LogValidator does before appending it: the
/// header and CRC, `recordCount == lastOffsetDelta + 1 > 0`, and every record decodes with
/// consistent lengths, valid UTF-8 header keys, and offset deltas 0, 1, 2, ... . Allocates only
/// the decompressed records (at most `limit_bytes`).
pub fn validate_records(batch: &[u8], limit_bytes: u64) -> Result<BatchSummary, RecordsError> {
    let header = BatchHeader::parse_verified(batch)?;
    if header.record_count == 0 {
        return Err(RecordsError::Empty);
    }
    header.validate_for_append()?;
    let raw = records_raw(&header, batch, limit_bytes)?;
    let mut timestamp_max = i64::MIN;
    let mut index = 0u32;
    walk_records(&header, &raw, |ranges| {
        if i64::from(ranges.offset_delta) != i64::from(index) {
            let offset_delta = ranges.offset_delta;
            return Err(RecordsError::OffsetDeltaNotSequential { index, offset_delta });
        }
        let timestamp = header.base_timestamp.wrapping_add(ranges.timestamp_delta);
        timestamp_max = timestamp_max.max(timestamp);
        index += 1;
        Ok(())
    })?;
    Ok(BatchSummary { header, timestamp_max, records_bytes: raw.len() as u64 })
}

/// Re-encodes the batch at the start of `batch` with the `target` codec, keeping every header
/// field (base offset, leader epoch, producer identity, sequence, timestamps, other attribute
/// bits) and the exact record bytes: the records are checked, then their decompressed bytes are
/// compressed again, which is what decoding and re-encoding them would produce.
pub fn recompress(batch: &[u8], target: Compression, limit_bytes: u64) -> Result<Vec<u8>, RecordsError> {
    let header = BatchHeader::parse_verified(batch)?;
    let raw = records_raw(&header, batch, limit_bytes)?;
    walk_records(&header, &raw, |_| Ok(()))?;
    let mut target_header = header;
    target_header.attributes = (header.attributes & !ATTRIBUTE_COMPRESSION_MASK) | target as i16;
    let output = build_batch(&target_header, &compression::compress(target, &raw));
    // Paired assertion (debug builds): the output verifies and keeps the record count.
    debug_assert_eq!(BatchHeader::parse_verified(&output).map(|h| h.record_count), Ok(header.record_count));
    Ok(output)
}

/// The batch body's records, decompressed. Borrowed when the batch is uncompressed.
fn records_raw<'a>(header: &BatchHeader, batch: &'a [u8], limit_bytes: u64) -> Result<Cow<'a, [u8]>, RecordsError> {
    let body = &batch[BATCH_HEADER_BYTES as usize..header.size_bytes() as usize];
    let codec = header.compression().expect("BatchHeader::parse rejects unknown codecs");
    if codec == Compression::None && body.len() as u64 <= limit_bytes {
        return Ok(Cow::Borrowed(body));
    }
    Ok(Cow::Owned(compression::decompress(codec, body, limit_bytes)?))
}

/// As [`records_raw`], as `Bytes` that share `batch` when it is uncompressed.
fn records_shared(header: &BatchHeader, batch: &Bytes, limit_bytes: u64) -> Result<Bytes, RecordsError> {
    match records_raw(header, batch, limit_bytes)? {
        Cow::Borrowed(body) => Ok(batch.slice_ref(body)),
        Cow::Owned(raw) => Ok(Bytes::from(raw)),
    }
}

/// Walks exactly `header.record_count` records over `raw`, calling `visit` on each, and checks
/// that no bytes remain.
fn walk_records(
    header: &BatchHeader,
    raw: &[u8],
    mut visit: impl FnMut(RecordRanges) -> Result<(), RecordsError>,
) -> Result<(), RecordsError> {
    let mut reader = Reader { buf: raw, position: 0 };
    let record_count = u32::try_from(header.record_count).expect("parse rejects negative counts");
    for index in 0..record_count {
        if reader.position == raw.len() {
            return Err(RecordsError::RecordCountMismatch { declared: header.record_count });
        }
        let ranges = read_record(&mut reader).map_err(|reason| RecordsError::CorruptRecord { index, reason })?;
        visit(ranges)?;
    }
    if reader.position != raw.len() {
        let trailing_bytes = (raw.len() - reader.position) as u64;
        return Err(RecordsError::TrailingBytes { trailing_bytes });
    }
    Ok(())
}

/// Appends one record in the wire layout (see the module docs) to `output`.
fn encode_record(record: &Record, output: &mut Vec<u8>) -> Result<(), RecordsError> {
    let mut body_bytes = 1 // attributes
        + varlong_size(record.timestamp_delta)
        + varint_size(record.offset_delta)
        + nullable_size(record.key.as_deref())?
        + nullable_size(record.value.as_deref())?;
    let header_count = i32::try_from(record.headers.len()).map_err(|_| RecordsError::TooLarge("header count"))?;
    body_bytes += varint_size(header_count);
    for (key, value) in &record.headers {
        body_bytes += nullable_size(Some(key.as_bytes()))? + nullable_size(value.as_deref())?;
    }
    let body_length = i32::try_from(body_bytes).map_err(|_| RecordsError::TooLarge("record length"))?;
    let start = output.len();
    put_varint(output, body_length);
    output.push(0); // attributes
    put_varlong(output, record.timestamp_delta);
    put_varint(output, record.offset_delta);
    put_nullable(output, record.key.as_deref());
    put_nullable(output, record.value.as_deref());
    put_varint(output, header_count);
    for (key, value) in &record.headers {
        put_nullable(output, Some(key.as_bytes()));
        put_nullable(output, value.as_deref());
    }
    assert_eq!(output.len() - start, varint_size(body_length) + body_bytes);
    Ok(())
}

fn nullable_size(bytes: Option<&[u8]>) -> Result<usize, RecordsError> {
    match bytes {
        None => Ok(varint_size(-1)),
        Some(bytes) => {
            let length = i32::try_from(bytes.len()).map_err(|_| RecordsError::TooLarge("field length"))?;
            Ok(varint_size(length) + bytes.len())
        }
    }
}

fn put_nullable(output: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(output, -1),
        Some(bytes) => {
            put_varint(output, i32::try_from(bytes.len()).expect("checked by nullable_size"));
            output.extend_from_slice(bytes);
        }
    }
}

/// Where one record's fields lie in the decompressed records buffer.
struct RecordRanges {
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    headers: Range<usize>,
    header_count: u32,
}

impl RecordRanges {
    /// Materializes the record, slicing `raw` (no copies but the header keys).
    fn to_record(&self, raw: &Bytes) -> Result<Record, RecordsError> {
        let mut headers = Vec::with_capacity(self.header_count as usize);
        let mut reader = Reader { buf: &raw[..self.headers.end], position: self.headers.start };
        for _ in 0..self.header_count {
            let (key, value) = read_header(&mut reader).expect("validated by read_record");
            let key = std::str::from_utf8(&raw[key]).expect("validated by read_record");
            headers.push((key.to_owned(), value.map(|range| raw.slice(range))));
        }
        Ok(Record {
            offset_delta: self.offset_delta,
            timestamp_delta: self.timestamp_delta,
            key: self.key.clone().map(|range| raw.slice(range)),
            value: self.value.clone().map(|range| raw.slice(range)),
            headers,
        })
    }
}

/// Reads one length-delimited record, checking every field lies within its length and that the
/// fields use up the length exactly (Kafka's DefaultRecord.readFrom does the same).
fn read_record(reader: &mut Reader<'_>) -> Result<RecordRanges, &'static str> {
    let length = reader.varint()?;
    let length = usize::try_from(length).map_err(|_| "negative record length")?;
    let end = reader.position.checked_add(length).ok_or("record length overflows")?;
    if end > reader.buf.len() {
        return Err("record extends past the batch");
    }
    let mut inner = Reader { buf: &reader.buf[..end], position: reader.position };
    let _attributes = inner.take(1)?;
    let timestamp_delta = inner.varlong()?;
    let offset_delta = inner.varint()?;
    let key = inner.nullable()?;
    let value = inner.nullable()?;
    let header_count = inner.varint()?;
    let header_count = u32::try_from(header_count).map_err(|_| "negative header count")?;
    let headers_start = inner.position;
    // Bounded: each header consumes at least two bytes of a finite record, or fails.
    for _ in 0..header_count {
        let (key, _value) = read_header(&mut inner)?;
        std::str::from_utf8(&inner.buf[key]).map_err(|_| "header key is not UTF-8")?;
    }
    if inner.position != end {
        return Err("record length does not match its fields");
    }
    reader.position = end;
    let headers = headers_start..end;
    Ok(RecordRanges { offset_delta, timestamp_delta, key, value, headers, header_count })
}

type HeaderRanges = (Range<usize>, Option<Range<usize>>);

fn read_header(reader: &mut Reader<'_>) -> Result<HeaderRanges, &'static str> {
    let key = reader.nullable()?.ok_or("null header key")?;
    let value = reader.nullable()?;
    Ok((key, value))
}

/// A bounds-checked cursor; positions are absolute indexes into `buf`.
struct Reader<'a> {
    buf: &'a [u8],
    position: usize,
}

impl Reader<'_> {
    fn take(&mut self, length: usize) -> Result<Range<usize>, &'static str> {
        let end = self.position.checked_add(length).ok_or("length overflows")?;
        if end > self.buf.len() {
            return Err("field extends past the record");
        }
        let range = self.position..end;
        self.position = end;
        Ok(range)
    }

    fn varint(&mut self) -> Result<i32, &'static str> {
        varint::read_varint(self.buf, &mut self.position).map_err(varint_reason)
    }

    fn varlong(&mut self) -> Result<i64, &'static str> {
        varint::read_varlong(self.buf, &mut self.position).map_err(varint_reason)
    }

    /// A varint length (-1 = null) followed by that many bytes.
    fn nullable(&mut self) -> Result<Option<Range<usize>>, &'static str> {
        match self.varint()? {
            -1 => Ok(None),
            length if length < -1 => Err("negative length"),
            length => Ok(Some(self.take(length as usize)?)),
        }
    }
}

fn varint_reason(error: VarintError) -> &'static str {
    match error {
        VarintError::Truncated => "varint extends past the record",
        VarintError::TooLong => "varint too long",
        VarintError::Overflow => "varint overflows its width",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_types::batch::set_base_offset;

    const LIMIT_BYTES: u64 = 1024 * 1024;
    const CODECS: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    fn record(offset_delta: i32, key: Option<&str>, value: Option<&str>) -> Record {
        Record {
            offset_delta,
            timestamp_delta: i64::from(offset_delta) * 3,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Vec::new(),
        }
    }

    /// Null and empty keys and values, headers with null and repeated keys, a large value.
    fn sample_records() -> Vec<Record> {
        let mut records = vec![
            record(0, Some("alice"), Some("paid 200 to bob")),
            record(1, None, Some("no key")),
            record(2, Some(""), None),
            record(3, Some("k"), Some(&"x".repeat(100_000))),
        ];
        records[1].headers = vec![
            ("trace".to_owned(), Some(Bytes::from_static(b"abc"))),
            ("trace".to_owned(), None),
            ("ünïcode".to_owned(), Some(Bytes::new())),
        ];
        records[3].timestamp_delta = -5;
        records
    }

    fn producer_options() -> BatchOptions {
        BatchOptions {
            base_timestamp: 1_700_000_000_000,
            producer_id: ProducerId(4242),
            producer_epoch: ProducerEpoch(3),
            base_sequence: Sequence(17),
            ..BatchOptions::default()
        }
    }

    #[test]
    fn every_codec_round_trips_records_and_header_fields() {
        let records = sample_records();
        for codec in CODECS {
            let batch = encode_batch(&records, codec, &producer_options()).unwrap();
            let (header, decoded) = decode_batch(&batch, LIMIT_BYTES).unwrap();
            assert_eq!(decoded, records, "{}", codec.name());
            assert_eq!(header.compression(), Some(codec));
            assert_eq!(header.record_count, 4);
            assert_eq!(header.last_offset_delta, 3);
            assert_eq!(header.producer_id, ProducerId(4242));
            assert_eq!(header.base_sequence, Sequence(17));
            assert_eq!(header.max_timestamp, 1_700_000_000_000 + 6);
            assert_eq!(header.size_bytes() as usize, batch.len());
        }
    }

    #[test]
    fn offsets_and_timestamps_are_absolute_after_the_broker_assigns_a_base_offset() {
        let mut batch = encode_batch(&sample_records(), Compression::None, &producer_options()).unwrap().to_vec();
        set_base_offset(&mut batch, Offset(100));
        let (header, records) = decode_batch(&Bytes::from(batch), LIMIT_BYTES).unwrap();
        assert_eq!(records[2].offset(&header), Offset(102));
        assert_eq!(records[3].timestamp(&header), 1_700_000_000_000 - 5);
    }

    #[test]
    fn uncompressed_decode_shares_the_input_buffer() {
        let batch = encode_batch(&sample_records(), Compression::None, &producer_options()).unwrap();
        let (_, records) = decode_batch(&batch, LIMIT_BYTES).unwrap();
        let value = records[3].value.as_ref().unwrap();
        let inside = batch.as_ptr_range().contains(&value.as_ptr());
        assert!(inside, "value should be a slice of the batch, not a copy");
    }

    #[test]
    fn decoding_is_bounded_by_the_limit() {
        let batch = encode_batch(&sample_records(), Compression::Zstd, &producer_options()).unwrap();
        let verdict = decode_batch(&batch, 50_000);
        assert!(matches!(verdict, Err(RecordsError::Compression(CompressionError::LimitExceeded { .. }))));
    }

    #[test]
    fn decode_batches_skips_a_truncated_last_batch() {
        let first = encode_batch(&sample_records(), Compression::Lz4, &producer_options()).unwrap();
        let second = encode_batch(&[record(0, Some("a"), Some("b"))], Compression::None, &producer_options()).unwrap();
        let mut buffer = first.to_vec();
        buffer.extend_from_slice(&second[..second.len() - 3]);
        let batches = decode_batches(&Bytes::from(buffer), LIMIT_BYTES).unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].1.len(), 4);
    }

    #[test]
    fn validate_accepts_what_encode_batch_writes() {
        for codec in CODECS {
            let batch = encode_batch(&sample_records(), codec, &producer_options()).unwrap();
            let summary = validate_records(&batch, LIMIT_BYTES).unwrap();
            assert_eq!(summary.header.record_count, 4);
            assert_eq!(summary.timestamp_max, 1_700_000_000_000 + 6);
        }
    }

    #[test]
    fn validate_rejects_gaps_in_offset_deltas() {
        let records = [record(0, None, Some("a")), record(2, None, Some("b"))];
        let batch = encode_batch(&records, Compression::None, &producer_options()).unwrap();
        // lastOffsetDelta 2 with 2 records fails the header rule before the records are read.
        let verdict = validate_records(&batch, LIMIT_BYTES);
        assert!(matches!(verdict, Err(RecordsError::Batch(BatchError::InvalidRecordCount { .. }))));
        // A batch whose header is consistent but whose records skip a delta.
        let raw = raw_records(&[record(0, None, Some("a")), record(2, None, Some("b"))]);
        let mut header = BatchHeader::template(2, 0);
        header.last_offset_delta = 1;
        let verdict = validate_records(&build_batch(&header, &raw), LIMIT_BYTES);
        assert!(matches!(verdict, Err(RecordsError::OffsetDeltaNotSequential { index: 1, .. })));
    }

    fn raw_records(records: &[Record]) -> Vec<u8> {
        let mut raw = Vec::new();
        for record in records {
            encode_record(record, &mut raw).unwrap();
        }
        raw
    }

    /// Builds a batch with a valid header and CRC around arbitrary record bytes.
    fn batch_around(raw: &[u8], record_count: i32) -> Vec<u8> {
        build_batch(&BatchHeader::template(record_count, 0), raw)
    }

    #[test]
    fn count_mismatch_and_trailing_bytes_are_corrupt() {
        let raw = raw_records(&[record(0, None, Some("a")), record(1, None, Some("b"))]);
        let too_many = validate_records(&batch_around(&raw, 3), LIMIT_BYTES);
        assert!(matches!(too_many, Err(RecordsError::RecordCountMismatch { declared: 3 })));
        let too_few = validate_records(&batch_around(&raw, 1), LIMIT_BYTES);
        assert!(matches!(too_few, Err(RecordsError::TrailingBytes { .. })));
    }

    #[test]
    fn inconsistent_record_lengths_are_corrupt() {
        let mut raw = raw_records(&[record(0, Some("key"), Some("value"))]);
        raw[0] += 2; // the record claims two bytes more than its fields use
        raw.extend_from_slice(&[0, 0]);
        let verdict = validate_records(&batch_around(&raw, 1), LIMIT_BYTES);
        let reason = "record length does not match its fields";
        assert!(matches!(verdict, Err(RecordsError::CorruptRecord { index: 0, reason: r }) if r == reason));
        let mut raw = raw_records(&[record(0, Some("key"), Some("value"))]);
        raw[4] = 0x7e; // key length 63: past the record's end
        assert!(validate_records(&batch_around(&raw, 1), LIMIT_BYTES).is_err());
    }

    #[test]
    fn non_utf8_header_key_is_corrupt() {
        let mut bad = record(0, None, None);
        bad.headers = vec![("ab".to_owned(), None)];
        let mut raw = raw_records(&[bad]);
        let key_at = raw.iter().position(|&b| b == b'a').unwrap();
        raw[key_at] = 0xff;
        let verdict = decode_batch(&Bytes::from(batch_around(&raw, 1)), LIMIT_BYTES);
        assert!(matches!(verdict, Err(RecordsError::CorruptRecord { .. })));
    }

    #[test]
    fn every_truncation_and_single_byte_corruption_is_an_error_not_a_panic() {
        let batch = encode_batch(&sample_records()[..3], Compression::None, &producer_options()).unwrap();
        for length in 0..batch.len() {
            assert!(decode_batch(&batch.slice(..length), LIMIT_BYTES).is_err());
        }
        // Record bytes re-wrapped with a fresh CRC: the record parser itself must cope.
        let raw = raw_records(&sample_records()[..3]);
        for at in 0..raw.len() {
            for flip in [0x01, 0x40, 0x80, 0xff] {
                let mut garbled = raw.clone();
                garbled[at] ^= flip;
                let _ = decode_batch(&Bytes::from(batch_around(&garbled, 3)), LIMIT_BYTES);
                let _ = validate_records(&batch_around(&garbled, 3), LIMIT_BYTES);
            }
        }
    }

    #[test]
    fn recompress_keeps_header_fields_and_records() {
        let mut source = encode_batch(&sample_records(), Compression::Snappy, &producer_options()).unwrap().to_vec();
        set_base_offset(&mut source, Offset(77));
        let (source_header, source_records) = decode_batch(&Bytes::copy_from_slice(&source), LIMIT_BYTES).unwrap();
        for target in CODECS {
            let output = recompress(&source, target, LIMIT_BYTES).unwrap();
            let (header, records) = decode_batch(&Bytes::from(output), LIMIT_BYTES).unwrap();
            assert_eq!(records, source_records);
            assert_eq!(header.compression(), Some(target));
            let expected = BatchHeader {
                attributes: target as i16,
                crc: header.crc,
                batch_length: header.batch_length,
                ..source_header
            };
            assert_eq!(header, expected);
        }
    }

    #[test]
    fn control_and_transactional_bits_survive_encoding() {
        let options = BatchOptions {
            is_control: true,
            is_transactional: true,
            timestamp_type: TimestampType::LogAppendTime,
            ..producer_options()
        };
        let batch = encode_batch(&[record(0, Some("\0\0\0\0"), None)], Compression::None, &options).unwrap();
        let header = BatchHeader::parse_verified(&batch).unwrap();
        assert!(header.is_control() && header.is_transactional());
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    }

    mod oracle {
        //! kafka-protocol's own record codec as a reference: each side decodes the other's output.
        use super::*;
        use bytes::BytesMut;
        use kafka_protocol::records as kp;

        fn to_kp_codec(codec: Compression) -> kp::Compression {
            match codec {
                Compression::None => kp::Compression::None,
                Compression::Gzip => kp::Compression::Gzip,
                Compression::Snappy => kp::Compression::Snappy,
                Compression::Lz4 => kp::Compression::Lz4,
                Compression::Zstd => kp::Compression::Zstd,
            }
        }

        fn from_kp_codec(codec: kp::Compression) -> Compression {
            match codec {
                kp::Compression::None => Compression::None,
                kp::Compression::Gzip => Compression::Gzip,
                kp::Compression::Snappy => Compression::Snappy,
                kp::Compression::Lz4 => Compression::Lz4,
                kp::Compression::Zstd => Compression::Zstd,
            }
        }

        fn to_kp_record(record: &Record, options: &BatchOptions) -> kp::Record {
            kp::Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: options.producer_id.0,
                producer_epoch: options.producer_epoch.0,
                timestamp_type: kp::TimestampType::Creation,
                offset: i64::from(record.offset_delta),
                sequence: options.base_sequence.0 + record.offset_delta,
                timestamp: options.base_timestamp + record.timestamp_delta,
                key: record.key.clone(),
                value: record.value.clone(),
                headers: record.headers.iter().map(|(k, v)| (k.clone().into(), v.clone())).collect(),
            }
        }

        fn kp_compress(raw: &mut BytesMut, out: &mut BytesMut, codec: kp::Compression) -> anyhow::Result<()> {
            out.extend_from_slice(&compression::compress(from_kp_codec(codec), raw));
            Ok(())
        }

        fn kp_decompress(body: &mut Bytes, codec: kp::Compression) -> anyhow::Result<Bytes> {
            Ok(compression::decompress(from_kp_codec(codec), body, LIMIT_BYTES)?.into())
        }

        #[test]
        fn kafka_protocol_reads_what_we_write_and_we_read_what_it_writes() {
            // Distinct header keys: kafka-protocol keeps headers in a map.
            let mut records = sample_records();
            records[1].headers.remove(1);
            records[3].timestamp_delta = 9; // kafka-protocol takes the first timestamp as base
            let options = producer_options();
            for codec in CODECS {
                let ours = encode_batch(&records, codec, &options).unwrap();
                let mut theirs_view = ours.clone();
                let decoded =
                    kp::RecordBatchDecoder::decode_with_custom_compression(&mut theirs_view, Some(kp_decompress))
                        .unwrap();
                let expected: Vec<_> = records.iter().map(|r| to_kp_record(r, &options)).collect();
                assert_eq!(decoded.records, expected, "{}", codec.name());

                let mut theirs = BytesMut::new();
                let kp_options = kp::RecordEncodeOptions { version: 2, compression: to_kp_codec(codec) };
                kp::RecordBatchEncoder::encode_with_custom_compression(
                    &mut theirs,
                    &expected,
                    &kp_options,
                    Some(kp_compress),
                )
                .unwrap();
                let theirs = theirs.freeze();
                validate_records(&theirs, LIMIT_BYTES).unwrap();
                let (_, decoded) = decode_batch(&theirs, LIMIT_BYTES).unwrap();
                assert_eq!(decoded, records, "{}", codec.name());
            }
        }
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_record_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..300), count in 0i32..8) {
                let batch = build_batch(&BatchHeader::template(count.max(1), 0), &raw);
                let _ = decode_batch(&Bytes::from(batch.clone()), LIMIT_BYTES);
                let _ = validate_records(&batch, LIMIT_BYTES);
                let _ = recompress(&batch, Compression::Gzip, LIMIT_BYTES);
            }

            #[test]
            fn arbitrary_records_round_trip(
                values in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)), 1..20),
                timestamp_deltas in proptest::collection::vec(any::<i64>(), 20),
                codec_index in 0usize..5,
            ) {
                let records: Vec<Record> = values.iter().enumerate().map(|(i, v)| Record {
                    offset_delta: i as i32,
                    timestamp_delta: timestamp_deltas[i],
                    key: v.as_ref().map(|v| Bytes::from(v.iter().rev().copied().collect::<Vec<u8>>())),
                    value: v.clone().map(Bytes::from),
                    headers: vec![(format!("h{i}"), v.clone().map(Bytes::from))],
                }).collect();
                let batch = encode_batch(&records, CODECS[codec_index], &BatchOptions::default()).unwrap();
                validate_records(&batch, LIMIT_BYTES).unwrap();
                let (_, decoded) = decode_batch(&batch, LIMIT_BYTES).unwrap();
                prop_assert_eq!(decoded, records);
            }
        }
    }
}
