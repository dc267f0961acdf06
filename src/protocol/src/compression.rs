//! The record batch compression codecs Kafka defines (attributes bits 0-2): gzip, snappy, lz4
//! and zstd, implemented on pure-Rust or well-kept crates instead of kafka-protocol's own (which
//! pulls in the C `lz4` binding and returns `anyhow` errors).
//!
//! Why a module of its own: the client compresses what it produces, the broker decompresses to
//! validate (`validate_records`) and recompresses when a topic's `compression.type` differs from
//! the producer's codec, and fuzz targets feed it hostile bytes.
//!
//! Wire formats (what each codec's bytes look like inside a RecordBatch v2):
//!
//! - gzip: RFC 1952, one or more members (Java's `GZIPInputStream` accepts concatenations).
//! - snappy: snappy-java's "xerial" stream framing, which is what Kafka's Java client writes:
//!
//!   ```text
//!    offset  size  field
//!         0     8  magic  = 0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00
//!         8     4  version             (i32 big-endian, 1)
//!        12     4  compatible version  (i32 big-endian, 1)
//!        16     4  block length        (u32 big-endian) \ repeated until the end of input;
//!        20     n  raw snappy block    (<= 32 KiB raw)  / each block decodes on its own
//!   ```
//!
//!   librdkafka writes *unframed* raw snappy instead, and Kafka's broker accepts both (snappy-java's
//!   `SnappyInputStream` falls back to raw when the magic is absent), so [`decompress`] does too.
//! - lz4: the standard LZ4 frame format (magic 0x184D2204) with independent 64 KiB blocks; the
//!   broken header checksum of Kafka's pre-v2 message sets does not apply to v2 batches.
//! - zstd: a standard zstd frame.
//!
//! Invariant: [`decompress`] never holds more than `limit_bytes` of output (plus one read
//! buffer), whatever the input declares, so a decompression bomb is an error and never an OOM.

use std::io::{Read, Write};

use sluice_types::Compression;

/// snappy-java's stream magic (Kafka writes it first in every snappy-compressed batch).
pub const SNAPPY_XERIAL_MAGIC: [u8; 8] = *b"\x82SNAPPY\x00";
/// The xerial version and compatible-version fields snappy-java writes (both 1).
const SNAPPY_XERIAL_VERSION: i32 = 1;
/// Magic (8) + version (4) + compatible version (4).
const SNAPPY_XERIAL_HEADER_BYTES: usize = 16;
/// The big-endian u32 length in front of every xerial block.
const SNAPPY_XERIAL_BLOCK_LENGTH_BYTES: usize = 4;
/// Raw bytes per xerial block, as snappy-java's `SnappyOutputStream` default block size.
pub const SNAPPY_XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// Kafka's default `compression.gzip.level` (-1, i.e. zlib's default of 6).
const GZIP_LEVEL: u32 = 6;
/// Kafka's default `compression.zstd.level` (3, zstd's own default).
const ZSTD_LEVEL: i32 = 3;
/// zstd windows a decoder always accepts: 8 MiB covers streaming compression at level 19.
const ZSTD_WINDOW_LOG_MIN: u32 = 23;
/// zstd's default decoder maximum (128 MiB); a frame needing more is rejected.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// LZ4 frame format constants (lz4 Frame Format Description 1.6.x, all little-endian).
const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;
const LZ4_SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
const LZ4_SKIPPABLE_MAGIC_MASK: u32 = 0xFFFF_FFF0;
const LZ4_FLAG_BLOCK_CHECKSUM: u8 = 0x10;
const LZ4_FLAG_CONTENT_SIZE: u8 = 0x08;
const LZ4_FLAG_CONTENT_CHECKSUM: u8 = 0x04;
const LZ4_FLAG_DICTIONARY_ID: u8 = 0x01;
/// The high bit of a block size flags an uncompressed block.
const LZ4_BLOCK_SIZE_MASK: u32 = 0x7FFF_FFFF;
/// How much output to reserve up front, as a multiple of the compressed size (then capped by
/// the limit). A guess only: the buffer grows as needed up to the limit.
const RESERVE_RATIO: usize = 4;

/// Why compressed bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    /// The output would exceed the caller's limit (a decompression bomb, or a too-small limit).
    #[error("{codec} output exceeds the limit of {limit_bytes} bytes")]
    LimitExceeded { codec: &'static str, limit_bytes: u64 },
    /// The input is not valid for its codec.
    #[error("corrupt {codec} data: {detail}")]
    Corrupt { codec: &'static str, detail: String },
}

fn corrupt(codec: Compression, detail: impl ToString) -> CompressionError {
    CompressionError::Corrupt { codec: codec.name(), detail: detail.to_string() }
}

fn limit_exceeded(codec: Compression, limit_bytes: u64) -> CompressionError {
    CompressionError::LimitExceeded { codec: codec.name(), limit_bytes }
}

/// Compresses `input` with `codec` in the format Kafka expects inside a RecordBatch v2.
/// `Compression::None` returns a copy. Compressing into memory cannot fail, so this panics only
/// on a codec library bug.
pub fn compress(codec: Compression, input: &[u8]) -> Vec<u8> {
    let output = match codec {
        Compression::None => input.to_vec(),
        Compression::Gzip => {
            let level = flate2::Compression::new(GZIP_LEVEL);
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(input).expect("gzip into memory");
            encoder.finish().expect("gzip into memory")
        }
        Compression::Snappy => snappy_xerial_compress(input),
        Compression::Lz4 => {
            let frame_info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(frame_info, Vec::new());
            encoder.write_all(input).expect("lz4 into memory");
            encoder.finish().expect("lz4 into memory")
        }
        Compression::Zstd => zstd::bulk::compress(input, ZSTD_LEVEL).expect("zstd into memory"),
    };
    // Paired assertion (debug builds): what we write must read back.
    debug_assert_eq!(decompress(codec, &output, input.len() as u64).expect("own output decodes"), input);
    output
}

/// Decompresses `input`, which `codec` produced, into at most `limit_bytes` bytes.
pub fn decompress(codec: Compression, input: &[u8], limit_bytes: u64) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => {
            if input.len() as u64 > limit_bytes {
                return Err(limit_exceeded(codec, limit_bytes));
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(input), input, limit_bytes),
        Compression::Snappy => snappy_decompress(input, limit_bytes),
        Compression::Lz4 => {
            // lz4_flex takes a clean end of input between blocks as the end of the frame, so a
            // frame cut before its end mark would decode short: check the structure first.
            lz4_frames_complete(input).map_err(|detail| corrupt(codec, detail))?;
            read_bounded(codec, lz4_flex::frame::FrameDecoder::new(input), input, limit_bytes)
        }
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(input).map_err(|e| corrupt(codec, e))?;
            decoder.window_log_max(zstd_window_log_max(limit_bytes)).map_err(|e| corrupt(codec, e))?;
            read_bounded(codec, decoder, input, limit_bytes)
        }
    }
}

/// The largest zstd window to accept: enough for any frame whose output fits the limit, at
/// least [`ZSTD_WINDOW_LOG_MIN`] (streaming encoders declare windows by level, not by size),
/// at most zstd's default maximum. This bounds the decoder's own allocation.
fn zstd_window_log_max(limit_bytes: u64) -> u32 {
    let limit_log = u64::BITS - limit_bytes.saturating_sub(1).leading_zeros();
    limit_log.clamp(ZSTD_WINDOW_LOG_MIN, ZSTD_WINDOW_LOG_MAX)
}

/// Reads a streaming decoder to its end, failing as soon as the output passes `limit_bytes`.
fn read_bounded(
    codec: Compression,
    decoder: impl Read,
    input: &[u8],
    limit_bytes: u64,
) -> Result<Vec<u8>, CompressionError> {
    let reserve_bytes = input.len().saturating_mul(RESERVE_RATIO) as u64;
    let mut output = Vec::with_capacity(reserve_bytes.min(limit_bytes) as usize);
    // One byte past the limit tells "exactly at the limit" from "over it".
    let mut bounded = decoder.take(limit_bytes.saturating_add(1));
    bounded.read_to_end(&mut output).map_err(|e| corrupt(codec, e))?;
    if output.len() as u64 > limit_bytes {
        return Err(limit_exceeded(codec, limit_bytes));
    }
    Ok(output)
}

/// Walks the LZ4 frames in `input` (LZ4 Frame Format 1.6.x: magic, FLG, BD, optional content
/// size and dictionary id, header checksum, blocks until the 0 end mark, optional content
/// checksum) without decoding them, and checks each frame ends with its end mark.
fn lz4_frames_complete(input: &[u8]) -> Result<(), &'static str> {
    let mut position = 0;
    // Bounded: each frame consumes at least its 7-byte header.
    while position < input.len() {
        let magic = read_u32_le(input, position).ok_or("truncated lz4 magic")?;
        if magic & LZ4_SKIPPABLE_MAGIC_MASK == LZ4_SKIPPABLE_MAGIC {
            let length = read_u32_le(input, position + 4).ok_or("truncated skippable frame")?;
            position += 8 + length as usize;
            continue;
        }
        if magic != LZ4_FRAME_MAGIC {
            return Err("not an lz4 frame");
        }
        let flags = *input.get(position + 4).ok_or("truncated lz4 frame header")?;
        let block_checksum_bytes = if flags & LZ4_FLAG_BLOCK_CHECKSUM != 0 { 4 } else { 0 };
        let content_checksum_bytes = if flags & LZ4_FLAG_CONTENT_CHECKSUM != 0 { 4 } else { 0 };
        let content_size_bytes = if flags & LZ4_FLAG_CONTENT_SIZE != 0 { 8 } else { 0 };
        let dictionary_id_bytes = if flags & LZ4_FLAG_DICTIONARY_ID != 0 { 4 } else { 0 };
        // magic (4) + FLG (1) + BD (1) + optional fields + header checksum (1).
        position += 4 + 2 + content_size_bytes + dictionary_id_bytes + 1;
        // Bounded: each block consumes at least its 4-byte size.
        loop {
            let block = read_u32_le(input, position).ok_or("lz4 frame ends without end mark")?;
            position += 4;
            if block == 0 {
                break;
            }
            position += (block & LZ4_BLOCK_SIZE_MASK) as usize + block_checksum_bytes;
        }
        position += content_checksum_bytes;
    }
    if position > input.len() {
        return Err("lz4 frame longer than its input");
    }
    Ok(())
}

fn read_u32_le(input: &[u8], position: usize) -> Option<u32> {
    let bytes = input.get(position..position.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
}

/// Writes snappy-java's stream format (see the module docs).
fn snappy_xerial_compress(input: &[u8]) -> Vec<u8> {
    let block_count = input.len().div_ceil(SNAPPY_XERIAL_BLOCK_BYTES);
    let mut output = Vec::with_capacity(
        SNAPPY_XERIAL_HEADER_BYTES
            + block_count * SNAPPY_XERIAL_BLOCK_LENGTH_BYTES
            + snap::raw::max_compress_len(input.len()),
    );
    output.extend_from_slice(&SNAPPY_XERIAL_MAGIC);
    output.extend_from_slice(&SNAPPY_XERIAL_VERSION.to_be_bytes());
    output.extend_from_slice(&SNAPPY_XERIAL_VERSION.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for block in input.chunks(SNAPPY_XERIAL_BLOCK_BYTES) {
        let compressed = encoder.compress_vec(block).expect("snappy block into memory");
        let length = u32::try_from(compressed.len()).expect("a 32 KiB block compresses below 4 GiB");
        output.extend_from_slice(&length.to_be_bytes());
        output.extend_from_slice(&compressed);
    }
    output
}

/// Decodes xerial-framed snappy, or unframed raw snappy when the magic is absent (librdkafka).
fn snappy_decompress(input: &[u8], limit_bytes: u64) -> Result<Vec<u8>, CompressionError> {
    let codec = Compression::Snappy;
    if !input.starts_with(&SNAPPY_XERIAL_MAGIC) {
        let mut output = Vec::new();
        snappy_raw_append(input, limit_bytes, &mut output)?;
        return Ok(output);
    }
    if input.len() < SNAPPY_XERIAL_HEADER_BYTES {
        return Err(corrupt(codec, "truncated xerial header"));
    }
    let mut output = Vec::new();
    let mut rest = &input[SNAPPY_XERIAL_HEADER_BYTES..];
    // Bounded: every iteration consumes at least the 4-byte length.
    while !rest.is_empty() {
        let Some((length, after)) = rest.split_first_chunk::<SNAPPY_XERIAL_BLOCK_LENGTH_BYTES>() else {
            return Err(corrupt(codec, "truncated xerial block length"));
        };
        let length = u32::from_be_bytes(*length) as usize;
        if length > after.len() {
            return Err(corrupt(codec, "xerial block longer than the input"));
        }
        let (block, after_block) = after.split_at(length);
        let room_bytes = limit_bytes - output.len() as u64;
        snappy_raw_append(block, room_bytes, &mut output)?;
        rest = after_block;
    }
    Ok(output)
}

/// Decodes one raw snappy block onto the end of `output`. The block declares its decoded length
/// up front, so the limit is checked before anything is allocated.
fn snappy_raw_append(block: &[u8], room_bytes: u64, output: &mut Vec<u8>) -> Result<(), CompressionError> {
    let codec = Compression::Snappy;
    let decoded_bytes = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
    if decoded_bytes as u64 > room_bytes {
        return Err(limit_exceeded(codec, room_bytes));
    }
    let start = output.len();
    output.resize(start + decoded_bytes, 0);
    let written = snap::raw::Decoder::new().decompress(block, &mut output[start..]).map_err(|e| corrupt(codec, e))?;
    if written != decoded_bytes {
        return Err(corrupt(codec, "block shorter than its declared length"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    const LIMIT_BYTES: u64 = 16 * 1024 * 1024;

    /// Compressible but not trivial: text with a counter, spanning several snappy blocks.
    fn sample(length: usize) -> Vec<u8> {
        let mut text = Vec::with_capacity(length);
        let mut line = 0u64;
        while text.len() < length {
            text.extend_from_slice(format!("line {line}: the quick brown fox\n").as_bytes());
            line = line.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        }
        text.truncate(length);
        text
    }

    #[test]
    fn every_codec_round_trips_empty_small_and_multi_block_inputs() {
        let lengths = [0, 1, 100, SNAPPY_XERIAL_BLOCK_BYTES, 3 * SNAPPY_XERIAL_BLOCK_BYTES + 17];
        for codec in CODECS {
            for length in lengths {
                let input = sample(length);
                let compressed = compress(codec, &input);
                let output = decompress(codec, &compressed, LIMIT_BYTES).unwrap();
                assert_eq!(output, input, "{} at {length} bytes", codec.name());
            }
        }
    }

    #[test]
    fn decompression_is_bounded_by_the_limit_for_every_codec() {
        let input = vec![0u8; 1024 * 1024]; // compresses to a few KiB: a small bomb
        for codec in CODECS {
            let compressed = compress(codec, &input);
            let exact = decompress(codec, &compressed, input.len() as u64).unwrap();
            assert_eq!(exact.len(), input.len());
            let verdict = decompress(codec, &compressed, input.len() as u64 - 1);
            assert!(matches!(verdict, Err(CompressionError::LimitExceeded { .. })), "{}: {verdict:?}", codec.name());
        }
    }

    /// snappy-java's output for "PLAINDATA" (one literal block), as published with the
    /// go-xerial-snappy test suite: the magic, versions 1/1, an 11-byte block.
    const XERIAL_PLAINDATA: [u8; 31] = [
        0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 11, 9, 32, b'P', b'L', b'A',
        b'I', b'N', b'D', b'A', b'T', b'A',
    ];

    /// The text both Java fixtures below compress.
    const JAVA_FIXTURE_TEXT: &[u8] = b"sluice: a Kafka record batch, a Kafka record batch, a Kafka record batch.";

    /// snappy-java 1.1.1.7's `SnappyOutputStream` (what Kafka's SnappyCompression wraps) over
    /// [`JAVA_FIXTURE_TEXT`], captured from the jar Kafka 4.3.0's client ships with: one block
    /// with a literal and a copy.
    const SNAPPY_JAVA_BLOB: [u8; 56] = [
        0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x24, 0x49, 0x70, 0x73, 0x6c, 0x75, 0x69, 0x63, 0x65, 0x3a, 0x20, 0x61, 0x20, 0x4b, 0x61, 0x66, 0x6b,
        0x61, 0x20, 0x72, 0x65, 0x63, 0x6f, 0x72, 0x64, 0x20, 0x62, 0x61, 0x74, 0x63, 0x68, 0x2c, 0xaa, 0x16, 0x00,
        0x00, 0x2e,
    ];

    /// Kafka 4.3.0's `Lz4BlockOutputStream(out, BLOCKSIZE_64KB, 9, false, false)` (what
    /// Lz4Compression uses for v2 batches) over [`JAVA_FIXTURE_TEXT`].
    const KAFKA_LZ4_FRAME: [u8; 55] = [
        0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, 0x28, 0x00, 0x00, 0x00, 0xff, 0x0e, 0x73, 0x6c, 0x75, 0x69, 0x63,
        0x65, 0x3a, 0x20, 0x61, 0x20, 0x4b, 0x61, 0x66, 0x6b, 0x61, 0x20, 0x72, 0x65, 0x63, 0x6f, 0x72, 0x64, 0x20,
        0x62, 0x61, 0x74, 0x63, 0x68, 0x2c, 0x16, 0x00, 0x14, 0x50, 0x61, 0x74, 0x63, 0x68, 0x2e, 0x00, 0x00, 0x00,
        0x00,
    ];

    #[test]
    fn snappy_java_output_decodes() {
        let output = decompress(Compression::Snappy, &SNAPPY_JAVA_BLOB, LIMIT_BYTES).unwrap();
        assert_eq!(output, JAVA_FIXTURE_TEXT);
    }

    #[test]
    fn kafka_java_lz4_frame_decodes() {
        let output = decompress(Compression::Lz4, &KAFKA_LZ4_FRAME, LIMIT_BYTES).unwrap();
        assert_eq!(output, JAVA_FIXTURE_TEXT);
        let truncated = &KAFKA_LZ4_FRAME[..KAFKA_LZ4_FRAME.len() - 4]; // no end mark
        assert!(decompress(Compression::Lz4, truncated, LIMIT_BYTES).is_err());
    }

    #[test]
    fn lz4_frames_with_checksums_decode() {
        use lz4_flex::frame::{FrameEncoder, FrameInfo};
        let info = FrameInfo::new().block_checksums(true).content_checksum(true);
        let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
        encoder.write_all(&sample(200_000)).unwrap();
        let frame = encoder.finish().unwrap();
        let output = decompress(Compression::Lz4, &frame, LIMIT_BYTES).unwrap();
        assert_eq!(output, sample(200_000));
    }

    #[test]
    fn real_xerial_blob_decodes() {
        let output = decompress(Compression::Snappy, &XERIAL_PLAINDATA, LIMIT_BYTES).unwrap();
        assert_eq!(output, b"PLAINDATA");
    }

    #[test]
    fn our_xerial_header_matches_snappy_java() {
        let compressed = compress(Compression::Snappy, b"PLAINDATA");
        assert_eq!(compressed[..SNAPPY_XERIAL_HEADER_BYTES], XERIAL_PLAINDATA[..16]);
        assert_eq!(compressed, XERIAL_PLAINDATA);
    }

    #[test]
    fn xerial_empty_trailing_block_is_accepted() {
        // snappy-java may end a stream with a block that decodes to nothing.
        let mut blob = XERIAL_PLAINDATA.to_vec();
        blob.extend_from_slice(&[0, 0, 0, 1, 0]);
        let output = decompress(Compression::Snappy, &blob, LIMIT_BYTES).unwrap();
        assert_eq!(output, b"PLAINDATA");
    }

    #[test]
    fn unframed_raw_snappy_is_accepted_as_librdkafka_writes_it() {
        let input = sample(100_000);
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw, LIMIT_BYTES).unwrap(), input);
    }

    #[test]
    fn truncated_or_garbled_input_is_an_error_not_a_panic() {
        for codec in CODECS.into_iter().skip(1) {
            let compressed = compress(codec, &sample(70_000));
            for cut in [1, 5, 12, 17, 20, compressed.len() / 2, compressed.len() - 1] {
                let verdict = decompress(codec, &compressed[..cut], LIMIT_BYTES);
                assert!(verdict.is_err(), "{} cut at {cut}", codec.name());
            }
            let mut garbled = compressed.clone();
            for byte in garbled.iter_mut().skip(20).step_by(7) {
                *byte ^= 0x5a;
            }
            // Garbled input may fail or decode to junk, but must never panic.
            let _ = decompress(codec, &garbled, LIMIT_BYTES);
        }
    }

    #[test]
    fn xerial_block_length_past_the_end_is_corrupt() {
        let mut blob = XERIAL_PLAINDATA.to_vec();
        blob[19] = 200;
        let verdict = decompress(Compression::Snappy, &blob, LIMIT_BYTES);
        assert!(matches!(verdict, Err(CompressionError::Corrupt { .. })));
    }

    #[test]
    fn zstd_window_limit_follows_the_output_limit() {
        assert_eq!(zstd_window_log_max(1), ZSTD_WINDOW_LOG_MIN);
        assert_eq!(zstd_window_log_max(1 << 25), 25);
        assert_eq!(zstd_window_log_max((1 << 25) + 1), 26);
        assert_eq!(zstd_window_log_max(u64::MAX), ZSTD_WINDOW_LOG_MAX);
    }
}
