//! Shared pieces of the Sluice fuzz targets: the structured inputs (derived with `arbitrary`)
//! that the structure-aware targets decode from libFuzzer's bytes, the checks every target
//! applies to a batch that our decoders accepted, and a tiny executor for the async storage API.
//!
//! Why structured inputs: a random byte string almost never carries a valid CRC-32C, so a
//! raw-bytes target spends its time in the CRC check. The structured targets build valid
//! batches first (with the production encoders) and then damage them on purpose, optionally
//! re-stamping the CRC, so the record, compression and recovery code behind the CRC gets
//! fuzzed too.
//!
//! Invariant: everything here is bounded by the named constants below, so that one fuzz input
//! costs a bounded amount of time and memory whatever its bytes say.

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use sluice_protocol::records::{self, BatchOptions, Record};
use sluice_types::batch::{BATCH_HEADER_BYTES, BatchHeader, build_batch};
use sluice_types::{Compression, Offset, ProducerEpoch, ProducerId, Sequence, Term, TimestampType};

/// The decompression limit the targets pass to the decoders: small, so a decompression bomb
/// is caught by the limit rather than by libFuzzer's RSS limit.
pub const DECOMPRESSED_BYTES_LIMIT: u64 = 1024 * 1024;
/// Records in one structured batch.
pub const RECORDS_MAX: usize = 32;
/// Headers in one structured record.
pub const RECORD_HEADERS_MAX: usize = 4;
/// Byte mutations applied to one structured batch.
pub const MUTATIONS_MAX: usize = 16;
/// Batches the checks walk in one buffer (each is at least 61 bytes, so this is far above
/// what libFuzzer's input size allows; it only makes the loop visibly bounded).
pub const BATCHES_PER_BUFFER_MAX: usize = 1 << 16;

/// Offset of the CRC-32C field and of the first byte it covers (Kafka protocol: RecordBatch).
const OFFSET_CRC: usize = 17;
const OFFSET_ATTRIBUTES: usize = 21;

/// The codecs, in Kafka's attribute order, for picking one from a fuzzer byte.
pub const CODECS: [Compression; 5] =
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

/// Runs a future that never waits on a timer or socket (the storage API over `SimDisk`).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

/// One record chosen by the fuzzer; its offset delta is its index, as producers write them.
#[derive(Arbitrary, Debug)]
pub struct RecordSpec {
    pub timestamp_delta: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What to do to the encoded bytes.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Mutation {
    /// XOR one byte (position taken modulo the length).
    Xor { position: u32, mask: u8 },
    /// Overwrite a big-endian i32 at a position (lengths, counts, deltas).
    SetI32 { position: u32, value: i32 },
    /// Cut the batch to a length (modulo the length + 1).
    Truncate { length: u32 },
    /// Insert bytes at a position.
    Insert { position: u32, byte: u8, count: u8 },
}

/// A structured `record_batch_mutated` input: a valid batch, then damage.
#[derive(Arbitrary, Debug)]
pub struct MutatedBatch {
    pub records: Vec<RecordSpec>,
    pub codec: u8,
    pub base_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub log_append_time: bool,
    pub transactional: bool,
    pub mutations: Vec<Mutation>,
    /// Re-stamp the CRC-32C after mutating, so that damage behind the CRC reaches the decoders.
    pub fix_crc: bool,
    /// Also fix `batchLength` to the mutated length (as a forger would).
    pub fix_length: bool,
}

impl MutatedBatch {
    /// The records to encode: at least one, at most [`RECORDS_MAX`].
    pub fn records(&self) -> Vec<Record> {
        let mut out: Vec<Record> = self
            .records
            .iter()
            .take(RECORDS_MAX)
            .enumerate()
            .map(|(index, spec)| Record {
                offset_delta: index as i32,
                timestamp_delta: spec.timestamp_delta,
                key: spec.key.clone().map(Bytes::from),
                value: spec.value.clone().map(Bytes::from),
                headers: spec
                    .headers
                    .iter()
                    .take(RECORD_HEADERS_MAX)
                    .map(|(k, v)| (k.clone(), v.clone().map(Bytes::from)))
                    .collect(),
            })
            .collect();
        if out.is_empty() {
            out.push(Record { value: Some(Bytes::from_static(b"v")), ..Record::default() });
        }
        out
    }

    pub fn codec(&self) -> Compression {
        CODECS[usize::from(self.codec) % CODECS.len()]
    }

    pub fn options(&self) -> BatchOptions {
        BatchOptions {
            base_timestamp: self.base_timestamp,
            producer_id: ProducerId(self.producer_id),
            producer_epoch: ProducerEpoch(self.producer_epoch),
            base_sequence: Sequence(self.base_sequence),
            timestamp_type: if self.log_append_time { TimestampType::LogAppendTime } else { TimestampType::CreateTime },
            is_transactional: self.transactional,
            ..BatchOptions::default()
        }
    }
}

/// Applies `mutations` (at most [`MUTATIONS_MAX`]) to `bytes`.
pub fn mutate(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for mutation in mutations.iter().take(MUTATIONS_MAX) {
        let length = bytes.len();
        match *mutation {
            Mutation::Xor { position, mask } => {
                if length > 0 {
                    bytes[position as usize % length] ^= mask;
                }
            }
            Mutation::SetI32 { position, value } => {
                if length >= 4 {
                    let at = position as usize % (length - 3);
                    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
                }
            }
            Mutation::Truncate { length: to } => bytes.truncate(to as usize % (length + 1)),
            Mutation::Insert { position, byte, count } => {
                let at = position as usize % (length + 1);
                bytes.splice(at..at, std::iter::repeat_n(byte, usize::from(count)));
            }
        }
    }
}

/// Rewrites `batchLength` to cover the whole buffer (if it has a header).
pub fn fix_batch_length(bytes: &mut [u8]) {
    if bytes.len() >= BATCH_HEADER_BYTES as usize {
        let batch_length = (bytes.len() - 12) as i32;
        bytes[8..12].copy_from_slice(&batch_length.to_be_bytes());
    }
}

/// Re-stamps the CRC-32C of the batch at the start of `bytes` over `attributes..end of buffer`.
pub fn fix_crc(bytes: &mut [u8]) {
    if bytes.len() >= BATCH_HEADER_BYTES as usize {
        let crc = crc32c::crc32c(&bytes[OFFSET_ATTRIBUTES..]);
        bytes[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// The paired checks for one batch our validator accepted: it decodes, the decoded header is
/// the validated one, the record count matches the header, and offset deltas are 0..n.
pub fn check_accepted_batch(batch: &Bytes, summary: &records::BatchSummary) {
    let (header, decoded) = records::decode_batch(batch, DECOMPRESSED_BYTES_LIMIT)
        .unwrap_or_else(|error| panic!("validate_records accepted a batch decode_batch rejects: {error}"));
    assert_eq!(header, summary.header, "validated and decoded headers differ");
    assert_eq!(decoded.len() as i64, i64::from(header.record_count), "record count != header recordCount");
    assert_eq!(i64::from(header.last_offset_delta) + 1, i64::from(header.record_count));
    assert!(summary.records_bytes <= DECOMPRESSED_BYTES_LIMIT, "decompressed past the limit");
    let mut timestamp_max = i64::MIN;
    for (index, record) in decoded.iter().enumerate() {
        assert_eq!(record.offset_delta as usize, index, "validated batch has a non-sequential offset delta");
        timestamp_max = timestamp_max.max(header.base_timestamp.wrapping_add(record.timestamp_delta));
    }
    assert_eq!(timestamp_max, summary.timestamp_max, "validator and decoder disagree on the max timestamp");
}

/// Walks a buffer of concatenated batches with `sluice_types::batch::batches` and checks that
/// the ranges tile the buffer and agree with `BatchHeader::parse`.
pub fn check_batch_iter(buffer: &[u8]) {
    let mut position = 0usize;
    for item in sluice_types::batch::batches(buffer).take(BATCHES_PER_BUFFER_MAX) {
        let Ok((header, range)) = item else { break };
        assert_eq!(range.start, position, "batches do not tile the buffer");
        assert_eq!(range.len() as u64, u64::from(header.size_bytes()));
        assert!(range.end <= buffer.len(), "batch range past the buffer");
        assert_eq!(BatchHeader::parse(&buffer[range.clone()]), Ok(header));
        position = range.end;
    }
}

/// A batch header chosen by the fuzzer, for building segment files.
#[derive(Arbitrary, Debug, Clone)]
pub struct BatchSpec {
    /// `None`: the next dense offset; `Some(d)`: the dense offset plus `d` (a gap or overlap).
    pub base_offset_skew: Option<i8>,
    pub last_offset_delta: u16,
    /// Added to `last_offset_delta + 1` for the record count (0 = a consistent count).
    pub record_count_skew: i8,
    pub attributes: u8,
    pub partition_leader_epoch: i8,
    pub max_timestamp: i64,
    pub producer_id: i8,
    pub producer_epoch: i8,
    pub base_sequence: i16,
    pub body: Vec<u8>,
    /// Stamp a valid CRC-32C (usually true; false tests the CRC check itself).
    pub valid_crc: bool,
}

impl BatchSpec {
    /// Encodes the batch with `next_offset` as the dense base offset. Returns the bytes and the
    /// offset after it (saturating, so skews cannot overflow).
    pub fn build(&self, next_offset: i64) -> (Vec<u8>, i64) {
        let base_offset = next_offset.saturating_add(i64::from(self.base_offset_skew.unwrap_or(0))).max(0);
        let record_count = (i32::from(self.last_offset_delta) + 1 + i32::from(self.record_count_skew)).max(0);
        let header = BatchHeader {
            base_offset: Offset(base_offset),
            batch_length: 0,
            partition_leader_epoch: Term(i32::from(self.partition_leader_epoch)),
            crc: 0,
            attributes: i16::from(self.attributes),
            last_offset_delta: i32::from(self.last_offset_delta),
            base_timestamp: self.max_timestamp.saturating_sub(1),
            max_timestamp: self.max_timestamp,
            producer_id: ProducerId(i64::from(self.producer_id)),
            producer_epoch: ProducerEpoch(i16::from(self.producer_epoch)),
            base_sequence: Sequence(i32::from(self.base_sequence)),
            record_count,
        };
        let mut bytes = build_batch(&header, &self.body);
        if !self.valid_crc {
            bytes[OFFSET_CRC] ^= 1;
        }
        (bytes, base_offset.saturating_add(i64::from(self.last_offset_delta)).saturating_add(1))
    }
}

/// One piece of a segment file.
#[derive(Arbitrary, Debug, Clone)]
pub enum SegmentPiece {
    Batch(BatchSpec),
    Raw(Vec<u8>),
}

/// A segment file: its base offset (small, so segments can line up) and its pieces.
#[derive(Arbitrary, Debug, Clone)]
pub struct SegmentSpec {
    pub base_offset: u8,
    pub pieces: Vec<SegmentPiece>,
    pub flips: Vec<(u16, u8)>,
}

/// The checkpoint file (see sluice-storage's checkpoint.rs / docs/format.md): absent, raw
/// bytes, or a well-formed one with small offsets.
#[derive(Arbitrary, Debug, Clone)]
pub enum CheckpointSpec {
    Absent,
    Raw(Vec<u8>),
    Valid { log_start_offset: u8, recovery_point: u8 },
}

/// The `segment_recovery` input: up to a few segment files and a checkpoint.
#[derive(Arbitrary, Debug)]
pub struct PartitionDirSpec {
    pub segments: Vec<SegmentSpec>,
    pub checkpoint: CheckpointSpec,
    /// Also write stale index files of these bytes next to each segment.
    pub stale_index: Option<Vec<u8>>,
}

/// Checkpoint layout constants (sluice-storage checkpoint.rs).
const CHECKPOINT_MAGIC: u32 = 0x5043_4c53;
const CHECKPOINT_VERSION: u16 = 1;
const CHECKPOINT_BYTES: usize = 32;

/// Encodes a well-formed checkpoint file (little-endian, CRC-32 IEEE over bytes 0..28).
pub fn encode_checkpoint(log_start_offset: i64, recovery_point: i64) -> Vec<u8> {
    let mut buf = vec![0u8; CHECKPOINT_BYTES];
    buf[0..4].copy_from_slice(&CHECKPOINT_MAGIC.to_le_bytes());
    buf[4..6].copy_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    buf[8..16].copy_from_slice(&log_start_offset.to_le_bytes());
    buf[16..24].copy_from_slice(&recovery_point.to_le_bytes());
    let crc = crc32fast::hash(&buf[0..28]);
    buf[28..32].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// Builds a segment file's bytes from its spec, starting at its base offset.
pub fn segment_bytes(spec: &SegmentSpec, pieces_max: usize, flips_max: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut next_offset = i64::from(spec.base_offset);
    for piece in spec.pieces.iter().take(pieces_max) {
        match piece {
            SegmentPiece::Batch(batch) => {
                let (encoded, next) = batch.build(next_offset);
                bytes.extend_from_slice(&encoded);
                next_offset = next;
            }
            SegmentPiece::Raw(raw) => bytes.extend_from_slice(raw),
        }
    }
    for &(position, mask) in spec.flips.iter().take(flips_max) {
        if !bytes.is_empty() {
            let at = usize::from(position) % bytes.len();
            bytes[at] ^= mask;
        }
    }
    bytes
}

/// Reads an `Arbitrary` value, or `None` when the input is too short.
pub fn parse<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}
