//! Fuzz target (structure-aware): a valid batch built by `sluice_protocol::records::encode_batch`
//! from fuzzer-chosen records, codec and producer fields, then damaged by fuzzer-chosen byte
//! mutations, optionally with the length and CRC-32C re-stamped so the damage reaches the record
//! and decompression code behind the CRC.
//!
//! Checks: the unmutated batch validates and decodes back to exactly the records encoded (the
//! encoder and decoder are inverses); a mutated batch never panics any decoder; and a mutated
//! batch that still passes `validate_records` decodes to records consistent with its header
//! (record count, sequential offset deltas, max timestamp).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{DECOMPRESSED_BYTES_LIMIT, MutatedBatch, check_accepted_batch, fix_batch_length, fix_crc, mutate};
use sluice_protocol::records::{decode_batch, decode_batches, encode_batch, validate_records};

fuzz_target!(|input: MutatedBatch| {
    let records = input.records();
    let codec = input.codec();
    let encoded = encode_batch(&records, codec, &input.options()).expect("small batches encode");

    // Round trip of the unmutated batch.
    let summary = validate_records(&encoded, DECOMPRESSED_BYTES_LIMIT)
        .unwrap_or_else(|error| panic!("encode_batch output fails validate_records: {error}"));
    check_accepted_batch(&encoded, &summary);
    let (header, decoded) = decode_batch(&encoded, DECOMPRESSED_BYTES_LIMIT).expect("own batch decodes");
    assert_eq!(header.compression(), Some(codec));
    assert_eq!(decoded, records, "decode(encode(records)) != records");

    // Damage, then every decoder.
    let mut bytes = encoded.to_vec();
    mutate(&mut bytes, &input.mutations);
    if input.fix_length {
        fix_batch_length(&mut bytes);
    }
    if input.fix_crc {
        fix_crc(&mut bytes);
    }
    let bytes = Bytes::from(bytes);
    if let Ok(summary) = validate_records(&bytes, DECOMPRESSED_BYTES_LIMIT) {
        check_accepted_batch(&bytes, &summary);
    } else {
        let _ = decode_batch(&bytes, DECOMPRESSED_BYTES_LIMIT);
    }
    let _ = decode_batches(&bytes, DECOMPRESSED_BYTES_LIMIT);
});
