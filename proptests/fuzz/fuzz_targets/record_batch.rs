//! Fuzz target: arbitrary bytes as RecordBatch v2 data, through every batch decoder we have:
//! `BatchHeader::parse`/`parse_header_only`/`parse_verified`, the `batches` iterator,
//! `validate_records` (the broker's produce check), `decode_batch`/`decode_batches` (the
//! client's fetch path) and `recompress`, all with a 1 MiB decompression limit.
//!
//! Why: these read bytes from producers, from fetch responses and from disk. They must never
//! panic nor allocate beyond the limit (libFuzzer's -malloc_limit_mb catches a bomb), and they
//! must agree with each other: a batch `validate_records` accepts decodes, with as many records
//! as its header declares.
//!
//! A raw-bytes target rarely gets past the CRC-32C; `record_batch_mutated` covers the code
//! behind it. The first input byte here optionally re-stamps the CRC to help with that too.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{CODECS, DECOMPRESSED_BYTES_LIMIT, check_accepted_batch, check_batch_iter, fix_crc};
use sluice_protocol::records::{decode_batch, decode_batches, recompress, validate_records};
use sluice_types::BatchHeader;

/// Bit of the first byte: re-stamp the CRC of the first batch before decoding.
const CONTROL_FIX_CRC: u8 = 0x01;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if control & CONTROL_FIX_CRC != 0
        && let Ok(header) = BatchHeader::parse(&bytes)
    {
        let end = header.size_bytes() as usize;
        fix_crc(&mut bytes[..end]);
    }
    let bytes = Bytes::from(bytes);

    let header_only = BatchHeader::parse_header_only(&bytes);
    let parsed = BatchHeader::parse(&bytes);
    if let Ok(header) = &parsed {
        assert_eq!(header_only.as_ref().ok(), Some(header), "parse and parse_header_only disagree");
        assert!(header.size_bytes() as usize <= bytes.len());
    }
    let verified = BatchHeader::parse_verified(&bytes);
    if let Ok(header) = &verified {
        assert_eq!(parsed.as_ref().ok(), Some(header));
    }
    check_batch_iter(&bytes);

    match validate_records(&bytes, DECOMPRESSED_BYTES_LIMIT) {
        Ok(summary) => {
            assert!(verified.is_ok(), "validate_records accepted a batch whose CRC fails");
            check_accepted_batch(&bytes, &summary);
        }
        Err(_) => {
            let _ = decode_batch(&bytes, DECOMPRESSED_BYTES_LIMIT);
        }
    }
    let _ = decode_batches(&bytes, DECOMPRESSED_BYTES_LIMIT);
    let target = CODECS[usize::from(control >> 1) % CODECS.len()];
    if let Ok(output) = recompress(&bytes, target, DECOMPRESSED_BYTES_LIMIT) {
        let original = BatchHeader::parse_verified(&bytes).expect("recompress accepted it");
        let header = BatchHeader::parse_verified(&output).expect("recompress output verifies");
        assert_eq!(header.record_count, original.record_count);
        assert_eq!(header.compression(), Some(target));
        // Same records, other codec: both decode, to equal records.
        let (_, before) = decode_batch(&bytes, DECOMPRESSED_BYTES_LIMIT).expect("recompress accepted it");
        let (_, after) = decode_batch(&Bytes::from(output), DECOMPRESSED_BYTES_LIMIT).expect("recompressed decodes");
        assert_eq!(before, after, "recompress changed the records");
    }
});
