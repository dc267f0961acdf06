//! Fuzz target: a Kafka request frame (without its 4-byte size prefix) from an untrusted
//! client, through the broker's own decoder `sluice_protocol::frame::decode_request` with the
//! broker's ApiVersions table.
//!
//! Why: this is the first code every byte from the network reaches. It must never panic, never
//! allocate without bound (libFuzzer's malloc limit catches that), and whatever it accepts must
//! be something the codec can write back: re-encoding a decoded request must not panic, and when
//! the request has no unknown tagged fields the re-encoded frame must decode to the same request.
//! Record batches inside a decoded Produce request are walked and validated as the broker's
//! produce path does.
//!
//! The target installs the `sluice` binary's global allocator (`sluice_broker::allocator`):
//! kafka-protocol 0.18 sizes a `Vec` from a wire array count before decoding any element, so a
//! 14-byte Metadata v0 frame claiming 2^31-1 topics asks for ~154 GB. Under the system (or
//! ASan's) allocator that aborts the process; the broker's allocator maps such blocks lazily.
//! Fuzzing with it tests what production runs; without it this target stops at that one input
//! in about a second (as its first run, without it, did).

#![no_main]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{BATCHES_PER_BUFFER_MAX, DECOMPRESSED_BYTES_LIMIT, check_accepted_batch, check_batch_iter};
use sluice_protocol::api_versions::is_supported;
use sluice_protocol::frame::{decode_request, encode_request};
use sluice_protocol::records::validate_records;

#[global_allocator]
static ALLOCATOR: sluice_broker::allocator::LazyHugeAllocator = sluice_broker::allocator::LazyHugeAllocator;

/// The size prefix `encode_request` writes before the header.
const SIZE_PREFIX_BYTES: usize = 4;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = decode_request(Bytes::copy_from_slice(data), is_supported) else {
        return;
    };
    assert!(request.trailing_bytes as usize <= data.len(), "more trailing bytes than the frame holds");
    let version = request.header.request_api_version;
    // The codec's own re-encoding must not panic (Err is fine: e.g. a field the version lacks).
    let mut body_only = BytesMut::new();
    let _ = request.body.encode(&mut body_only, version);
    // Our client's framing of the same header and body: must not panic; if it encodes, the
    // frame must decode back to an equal request (see `has_unknown_tagged_fields`).
    if let Ok(frame) = encode_request(&request.header, &request.body) {
        match decode_request(frame.slice(SIZE_PREFIX_BYTES..), is_supported) {
            Ok(again) => {
                if !has_unknown_tagged_fields(&request) {
                    assert_eq!(again.trailing_bytes, 0, "our own encoding has trailing bytes");
                    assert_eq!(again.header, request.header, "header changed by a round trip");
                    assert_eq!(again.body, request.body, "body changed by a round trip");
                }
            }
            // kafka-protocol 0.18 accepts unknown tagged fields it cannot write back (a tag of
            // 2^32-1 decodes as -1, and the re-encoded frame then fails to decode).
            Err(error) => assert!(
                has_unknown_tagged_fields(&request),
                "re-encoded {:?} v{version} does not decode: {error}",
                request.api_key
            ),
        }
    }
    if let RequestKind::Produce(produce) = &request.body {
        for topic in &produce.topic_data {
            for partition in &topic.partition_data {
                if let Some(records) = &partition.records {
                    check_produce_records(records);
                }
            }
        }
    }
});

/// Whether any struct in the request kept unknown tagged fields (KIP-482). Those are written
/// back in tag order, not wire order, so a round trip is byte-exact only without them. Read off
/// the `Debug` form: the codec has no generic visitor, and an empty map prints as `{}`.
fn has_unknown_tagged_fields(request: &sluice_protocol::frame::Request) -> bool {
    const FIELD: &str = "unknown_tagged_fields: {";
    const EMPTY: &str = "unknown_tagged_fields: {}";
    let debug = format!("{:?}{:?}", request.header, request.body);
    debug.matches(FIELD).count() != debug.matches(EMPTY).count()
}

/// What the broker does with a partition's records: walk the batches, validate each.
fn check_produce_records(records: &Bytes) {
    check_batch_iter(records);
    for item in sluice_types::batch::batches(records).take(BATCHES_PER_BUFFER_MAX) {
        let Ok((_, range)) = item else { break };
        let batch = records.slice(range);
        if let Ok(summary) = validate_records(&batch, DECOMPRESSED_BYTES_LIMIT) {
            check_accepted_batch(&batch, &summary);
        }
    }
}
