//! Bad input hurts only the request or connection that carries it.
//!
//! What is verified, for each kind of bad input a client (or an attacker) can send:
//! - framing and header errors (garbage, truncation, a frame over `socket.request.max.bytes`,
//!   an unknown API key, an unsupported version, an undecodable body) close that connection
//!   and send nothing, since the broker cannot answer a request it cannot parse (Kafka closes
//!   the connection too);
//! - record errors in a well-formed Produce (bad CRC, too large, unknown topic, two batches, an
//!   old message format, bad acks, idempotence violations) get the Kafka error code the
//!   protocol documents, append nothing, and leave the connection open;
//! - after every case the broker keeps serving: a connection opened before the bad input and a
//!   fresh one both do Metadata, Produce and Fetch, and every record acknowledged earlier reads
//!   back unchanged.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, ProducerId};
use std::process::Command;
use std::time::{Duration, Instant};

/// The topic whose acknowledged records must survive every bad input.
const LEDGER_TOPIC: &str = "ledger";
/// A topic with a small `max.message.bytes`, for MESSAGE_TOO_LARGE.
const SMALL_TOPIC: &str = "small";
const SMALL_MAX_MESSAGE_BYTES: usize = 1024;
/// The broker's `socket.request.max.bytes` in these tests.
const REQUEST_BYTES_MAX: u32 = 1024 * 1024;
/// Kafka error codes (Kafka protocol: "Error Codes").
const NONE: i16 = 0;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_REQUIRED_ACKS: i16 = 21;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_RECORD: i16 = 87;

/// A broker with a 1 MiB request limit and no auto-creation, holding a ledger of acknowledged
/// records that every check reads back.
struct Fixture {
    broker: TestBroker,
    /// Every record acknowledged in the ledger topic, in offset order.
    acknowledged: Vec<(i64, String)>,
    /// A connection opened before any bad input; it must keep working throughout.
    bystander: Client,
}

impl Fixture {
    fn start() -> Fixture {
        let broker = TestBroker::start(|config| {
            config.socket_request_max_bytes = REQUEST_BYTES_MAX;
            config.auto_create_topics = false;
        });
        let mut bystander = broker.client();
        bystander.create_topic_ok(LEDGER_TOPIC, 1, &[]);
        bystander.create_topic_ok(SMALL_TOPIC, 1, &[("max.message.bytes", &SMALL_MAX_MESSAGE_BYTES.to_string())]);
        let mut fixture = Fixture { broker, acknowledged: Vec::new(), bystander };
        fixture.assert_still_serving("set-up");
        fixture
    }

    /// The broker still serves after `case`: a fresh connection and the bystander each do
    /// Metadata + Produce (acks=all) + Fetch, and the ledger reads back exactly as acknowledged.
    fn assert_still_serving(&mut self, case: &str) {
        let mut fresh = self.broker.client();
        for (who, client) in [("fresh connection", &mut fresh), ("bystander", &mut self.bystander)] {
            let metadata = client.metadata(&[LEDGER_TOPIC]);
            assert_eq!(metadata.topics[0].error_code, NONE, "after {case}: {who}: Metadata");
            let value = format!("after {case} ({who})");
            let next = self.acknowledged.last().map_or(0, |(offset, _)| offset + 1);
            let offset = client.produce_ok(LEDGER_TOPIC, 0, &[&value]);
            assert_eq!(offset, next, "after {case}: {who}: the next offset");
            self.acknowledged.push((offset, value));
            let read = client.read_all(LEDGER_TOPIC, 0, 0);
            assert_eq!(read, self.acknowledged, "after {case}: {who}: acknowledged records changed");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Framing and decoding errors: the connection is closed, nothing else is affected.

/// A size prefix and whatever follows it.
fn sized(size: u32, rest: &[u8]) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_u32(size);
    frame.put_slice(rest);
    frame.freeze()
}

struct FramingCase {
    name: &'static str,
    bytes: Bytes,
    /// Half-close after sending (the client gave up mid-frame).
    half_close: bool,
}

fn framing_cases() -> Vec<FramingCase> {
    let case = |name, bytes| FramingCase { name, bytes, half_close: false };
    let metadata = ApiKey::Metadata as i16;
    let produce = ApiKey::Produce as i16;
    vec![
        // Kafka protocol: a request is a size, then a header of api_key, api_version,
        // correlation_id and client_id; none of these parses.
        case("size 8, header garbage", sized(8, &[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04])),
        case("size 8, header without its client id (Metadata v1)", sized(8, &[0, 3, 0, 1, 0, 0, 0, 7])),
        case("frame shorter than any header (size 3)", sized(3, &[1, 2, 3])),
        FramingCase {
            name: "truncated: size 1000, 10 bytes, then the client stops",
            bytes: sized(1000, &[0; 10]),
            half_close: true,
        },
        // Kafka: socket.request.max.bytes bounds the size before anything is read or allocated.
        case("size 2 MiB over a 1 MiB socket.request.max.bytes", sized(2 * 1024 * 1024, &[0; 64])),
        case("size 0xffffffff (negative as int32)", sized(u32::MAX, &[0; 64])),
        // Kafka protocol: an API key the broker does not have cannot be answered.
        case("unknown api key 9999", raw_frame(9999, 0, 1, false, &[])),
        // Outside ApiVersions (KIP-511) an unsupported version cannot be answered either: the
        // broker does not know the layout of the response header the client expects.
        case("Produce v99", raw_frame(produce, 99, 1, true, &[0; 32])),
        case("Produce v2 (below the supported range)", raw_frame(produce, 2, 1, false, &[0; 32])),
        case("Produce v9 header, random body", raw_frame(produce, 9, 1, true, &pseudo_random_bytes(7, 64))),
        case("Produce v3 header, random body", raw_frame(produce, 3, 1, false, &pseudo_random_bytes(8, 64))),
        case("Metadata v1 header, random body", raw_frame(metadata, 1, 1, false, &pseudo_random_bytes(9, 64))),
        // An array count no frame of this size can hold: must fail without allocating for it.
        case(
            "Metadata v1 header, topics array count i32::MAX, no topics",
            raw_frame(metadata, 1, 1, false, &i32::MAX.to_be_bytes()),
        ),
        case(
            "Metadata v9 header, compact topics array count 2^32 - 2, no topics",
            raw_frame(metadata, 9, 1, true, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ),
    ]
}

/// Selects the framing case a child process runs (see below).
const FRAMING_CASE_ENV: &str = "SLUICE_TEST_FRAMING_CASE";
/// How long one child process may take: start a broker, one case, the checks, stop.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// Each framing case runs in a child process of this test binary, because a decoder can fail
/// in a way no test can catch: an allocation the system refuses aborts the whole process, and
/// with it every other test in this binary. Isolated, such a case fails alone, with the
/// broker's last words (for example "memory allocation of N bytes failed") in the report.
#[test]
fn framing_and_decoding_errors_close_only_their_connection() {
    let cases = framing_cases();
    let failures: Vec<String> = cases
        .iter()
        .enumerate()
        .filter_map(|(index, case)| run_in_child(index).err().map(|report| format!("{}: {report}", case.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} framing cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
#[ignore = "runs as a child process of framing_and_decoding_errors_close_only_their_connection"]
fn framing_case_in_child_process() {
    let Ok(index) = std::env::var(FRAMING_CASE_ENV) else { return };
    let case = framing_cases().swap_remove(index.parse().expect("case index"));
    let mut fixture = Fixture::start();
    let mut client = fixture.broker.client();
    client.write_raw(&case.bytes);
    if case.half_close {
        client.shutdown_write();
    }
    client.expect_closed(case.name);
    fixture.assert_still_serving(case.name);
}

/// Runs framing case `index` in a child process; `Err` holds the reason and the child's output.
fn run_in_child(index: usize) -> Result<(), String> {
    let output = tempfile::NamedTempFile::new().expect("temporary output file");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["framing_case_in_child_process", "--exact", "--ignored", "--test-threads=1", "--nocapture"])
        .env(FRAMING_CASE_ENV, index.to_string())
        .stdout(output.reopen().expect("output file"))
        .stderr(output.reopen().expect("output file"))
        .spawn()
        .expect("spawn the test binary");
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(output.path()).unwrap_or_default();
    let passed = text.contains("test result: ok. 1 passed");
    match status {
        Some(status) if status.success() && passed => Ok(()),
        Some(status) => Err(format!("child {status}; its output ends:\n{}", tail(&text, 12))),
        None => Err(format!("child still running after {CHILD_TIMEOUT:?}; its output ends:\n{}", tail(&text, 12))),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].iter().map(|l| format!("    | {l}")).collect::<Vec<_>>().join("\n")
}

// ---------------------------------------------------------------------------------------------
// Record errors in a well-formed Produce: the documented error code, nothing appended.

/// A valid batch whose last byte is flipped: the CRC-32C no longer matches.
fn bad_crc_batch() -> Bytes {
    let mut bytes = batch(&["flipped"]).to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    Bytes::from(bytes)
}

/// One message in the magic v1 format (Kafka protocol: "Message sets", before KIP-98):
/// offset, size, CRC-32 of the rest, magic 1, attributes, timestamp, key, value.
fn magic_v1_message_set(value: &[u8]) -> Bytes {
    let mut message = BytesMut::new();
    message.put_i8(1); // magic
    message.put_i8(0); // attributes: no compression, CreateTime
    message.put_i64(now_ms());
    message.put_i32(-1); // null key
    message.put_i32(value.len() as i32);
    message.put_slice(value);
    let mut set = BytesMut::new();
    set.put_i64(0);
    set.put_i32(4 + message.len() as i32);
    set.put_u32(crc32fast::hash(&message));
    set.put_slice(&message);
    set.freeze()
}

struct ProduceCase {
    name: &'static str,
    topic: &'static str,
    records: Bytes,
    acks: i16,
    /// `None`: any non-zero error code.
    expected: Option<i16>,
}

fn produce_cases() -> Vec<ProduceCase> {
    let two_batches = [batch(&["first"]), batch(&["second"])].concat();
    let too_large = "x".repeat(2 * SMALL_MAX_MESSAGE_BYTES);
    vec![
        // Kafka: the broker verifies every batch's CRC before appending (LogValidator).
        ProduceCase {
            name: "bad CRC",
            topic: LEDGER_TOPIC,
            records: bad_crc_batch(),
            acks: -1,
            expected: Some(CORRUPT_MESSAGE),
        },
        // Kafka: a batch larger than the topic's max.message.bytes (RecordTooLargeException).
        ProduceCase {
            name: "batch over max.message.bytes",
            topic: SMALL_TOPIC,
            records: batch(&[&too_large]),
            acks: -1,
            expected: Some(MESSAGE_TOO_LARGE),
        },
        // auto.create.topics.enable=false: a produce does not create the topic.
        ProduceCase {
            name: "produce to a topic that does not exist",
            topic: MISSING_TOPIC,
            records: batch(&["nowhere"]),
            acks: -1,
            expected: Some(UNKNOWN_TOPIC_OR_PARTITION),
        },
        // Kafka protocol: Produce v3+ carries exactly one record batch per partition.
        ProduceCase {
            name: "two batches in one partition's records",
            topic: LEDGER_TOPIC,
            records: Bytes::from(two_batches),
            acks: -1,
            expected: Some(INVALID_RECORD),
        },
        // Produce v3+ requires magic 2 (KIP-98); Kafka 4.0 removed v0/v1 message sets (KIP-896).
        ProduceCase {
            name: "magic v1 message set",
            topic: LEDGER_TOPIC,
            records: magic_v1_message_set(&[b'v'; 100]),
            acks: -1,
            expected: None,
        },
        // Kafka protocol: acks must be 0, 1 or -1.
        ProduceCase {
            name: "acks=5",
            topic: LEDGER_TOPIC,
            records: batch(&["acks five"]),
            acks: 5,
            expected: Some(INVALID_REQUIRED_ACKS),
        },
    ]
}

#[test]
fn invalid_records_get_their_error_code_and_append_nothing() {
    let mut fixture = Fixture::start();
    for case in produce_cases() {
        let mut client = fixture.broker.client();
        let exists = case.topic != MISSING_TOPIC;
        let before = exists.then(|| client.latest_offset(case.topic, 0));
        let answer = client.produce(case.topic, 0, case.records, case.acks);
        match case.expected {
            Some(code) => assert_eq!(answer.error_code, code, "{}: {:?}", case.name, answer.error_message),
            None => assert_ne!(answer.error_code, NONE, "{}", case.name),
        }
        assert_eq!(answer.base_offset, -1, "{}: no offset for a refused batch", case.name);
        assert!(answer.error_message.is_some(), "{}: Produce v8+ explains the error", case.name);
        if let Some(before) = before {
            assert_eq!(client.latest_offset(case.topic, 0), before, "{}: nothing appended", case.name);
        } else {
            let metadata = client.metadata(&[case.topic]);
            assert_eq!(metadata.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION, "{}: not auto-created", case.name);
        }
        // The connection stays open and usable after an error response.
        assert_eq!(client.metadata(&[LEDGER_TOPIC]).topics[0].error_code, NONE, "{}", case.name);
        fixture.assert_still_serving(case.name);
    }
}

#[test]
fn fetch_from_a_topic_that_does_not_exist_is_unknown_topic_or_partition() {
    let mut fixture = Fixture::start();
    let mut client = fixture.broker.client();
    // Kafka protocol: Fetch answers per partition; an unknown one gets UNKNOWN_TOPIC_OR_PARTITION.
    assert_eq!(client.fetch(MISSING_TOPIC, 0, 0).error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(client.fetch(LEDGER_TOPIC, 5, 0).error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(client.metadata(&[MISSING_TOPIC]).topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    fixture.assert_still_serving("fetch from a missing topic");
}

// ---------------------------------------------------------------------------------------------
// Idempotent producers (KIP-98): sequence gaps, retries and fencing.

#[test]
fn idempotent_producer_sequences_retries_and_epochs_are_enforced() {
    const TOPIC: &str = "idempotent";
    const INIT_PRODUCER_ID_VERSION: i16 = 4;
    let mut fixture = Fixture::start();
    let mut client = fixture.broker.client();
    client.create_topic_ok(TOPIC, 1, &[]);
    let init = |client: &mut Client, producer_id: i64, epoch: i16| {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch);
        let answer = client.call(INIT_PRODUCER_ID_VERSION, request);
        assert_eq!(answer.error_code, NONE);
        (answer.producer_id.0, answer.producer_epoch)
    };
    let (producer_id, epoch) = init(&mut client, -1, -1);
    assert_eq!(epoch, 0, "a new producer starts at epoch 0");

    // Sequence 0..2 appends.
    let first = idempotent_batch(&["i0", "i1", "i2"], producer_id, 0, 0);
    let appended = client.produce(TOPIC, 0, first.clone(), -1);
    assert_eq!((appended.error_code, appended.base_offset), (NONE, 0));

    // A retry of the same batch (same producer, epoch, sequences) is a duplicate: the broker
    // answers with the original offsets and appends nothing (KIP-98).
    let retried = client.produce(TOPIC, 0, first, -1);
    assert_eq!((retried.error_code, retried.base_offset), (NONE, 0), "retry: same base offset");
    assert_eq!(client.latest_offset(TOPIC, 0), 3, "retry: no duplicate in the log");
    fixture.assert_still_serving("retry of an idempotent batch");

    // A gap: 5 where 3 is expected.
    let gap = client.produce(TOPIC, 0, idempotent_batch(&["gap"], producer_id, 0, 5), -1);
    assert_eq!(gap.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(client.latest_offset(TOPIC, 0), 3, "gap: nothing appended");
    fixture.assert_still_serving("idempotent sequence gap");

    // The expected sequence still appends after the refused one.
    let next = client.produce(TOPIC, 0, idempotent_batch(&["i3"], producer_id, 0, 3), -1);
    assert_eq!((next.error_code, next.base_offset), (NONE, 3));

    // KIP-360: bumping the epoch fences the old one; the new epoch restarts at sequence 0.
    let (same_id, bumped) = init(&mut client, producer_id, 0);
    assert_eq!((same_id, bumped), (producer_id, 1));
    let fresh = client.produce(TOPIC, 0, idempotent_batch(&["e1-0"], producer_id, 1, 0), -1);
    assert_eq!((fresh.error_code, fresh.base_offset), (NONE, 4));
    let stale = client.produce(TOPIC, 0, idempotent_batch(&["stale"], producer_id, 0, 4), -1);
    assert_eq!(stale.error_code, INVALID_PRODUCER_EPOCH);
    assert_eq!(client.latest_offset(TOPIC, 0), 5, "stale epoch: nothing appended");
    fixture.assert_still_serving("stale producer epoch");

    let stored: Vec<String> = client.read_all(TOPIC, 0, 0).into_iter().map(|(_, v)| v).collect();
    assert_eq!(stored, ["i0", "i1", "i2", "i3", "e1-0"], "each record exactly once, in order");
}
