//! What the broker's answers mean, checked end to end over the Kafka wire protocol.
//!
//! Verified here, each against the Kafka protocol guide or the KIP that defines it:
//! - Produce `acks`: 0 is never answered, 1 and -1 (all) get the assigned offsets;
//! - Fetch long-poll: a waiting Fetch returns as soon as data arrives, not at `max_wait_ms`, and
//!   returns empty when `max_wait_ms` passes with nothing new;
//! - ListOffsets: earliest, latest, by timestamp, max timestamp (KIP-734);
//! - DeleteRecords moves the log start offset; a Fetch below it is OFFSET_OUT_OF_RANGE;
//! - admin APIs: CreateTopics replication factor on one broker, DescribeConfigs values and
//!   sources, IncrementalAlterConfigs and AlterConfigs, CreatePartitions grow-only;
//! - durability across a clean restart: topics, configs, records, offsets and ids survive.
//!
//! Why end to end: these are the promises clients build on (a consumer's position, a
//! producer's retries, an admin tool's view), so they are checked where clients see them.

mod common;

use common::*;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig as IncrementalConfig,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DescribeConfigsRequest,
    FetchRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, MetadataRequest,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Kafka error codes (Kafka protocol: "Error Codes").
const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
/// A fixed base timestamp, so lookups by time have known answers.
const T0: i64 = 1_700_000_000_000;

// ---------------------------------------------------------------------------------------------
// Produce acks

#[test]
fn acks_zero_is_never_answered_and_acks_one_and_all_get_offsets() {
    let broker = TestBroker::start(|_| {});
    let mut client = broker.client();
    client.create_topic_ok("acks", 1, &[]);

    // Kafka protocol (ProduceRequest acks): "0: the server will not send any response". The
    // next request's response is the next frame on the connection, with its own correlation id.
    client.send(PRODUCE_VERSION, Client::produce_request("acks", 0, batch(&["zero"]), 0));
    let metadata_id = client.send(METADATA_VERSION, MetadataRequest::default().with_topics(None));
    let metadata = client.receive::<MetadataRequest>(METADATA_VERSION, metadata_id);
    assert!(metadata.topics.iter().any(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "acks")));

    // acks=1: answered once the leader appended; acks=-1: once committed. Both say where.
    let one = client.produce("acks", 0, batch(&["one"]), 1);
    assert_eq!((one.error_code, one.base_offset), (NONE, 1), "acks=1 after the acks=0 record");
    let all = client.produce("acks", 0, batch(&["all-a", "all-b"]), -1);
    assert_eq!((all.error_code, all.base_offset), (NONE, 2), "acks=-1");
    let stored = client.read_all("acks", 0, 0);
    let expected: Vec<(i64, String)> =
        ["zero", "one", "all-a", "all-b"].iter().enumerate().map(|(o, v)| (o as i64, v.to_string())).collect();
    assert_eq!(stored, expected);

    // No late answer to the acks=0 request is waiting on the connection.
    let stray = client.read_frame(Duration::from_millis(200));
    assert!(stray.is_err(), "unexpected frame after all answers: {stray:?}");
}

// ---------------------------------------------------------------------------------------------
// Fetch long-poll (Kafka protocol: FetchRequest max_wait_ms, min_bytes)

#[test]
fn a_waiting_fetch_returns_as_soon_as_a_record_arrives() {
    const MAX_WAIT_MS: i32 = 5000;
    let broker = TestBroker::start(|_| {});
    let mut producer = broker.client();
    producer.create_topic_ok("poll", 1, &[]);
    let mut consumer = broker.client();

    let sent = Instant::now();
    let fetch_id = consumer.send(FETCH_VERSION, Client::fetch_request("poll", 0, 0, MAX_WAIT_MS));
    // The partition is empty and min_bytes is 1: the fetch waits.
    let early = consumer.read_frame(Duration::from_millis(300));
    assert!(early.is_err(), "the fetch returned before any data: {early:?}");

    let offset = producer.produce_ok("poll", 0, &["wake up"]);
    let produced = Instant::now();
    let response = consumer.receive::<FetchRequest>(FETCH_VERSION, fetch_id);
    let after_produce = produced.elapsed();
    let total = sent.elapsed();
    assert!(after_produce < Duration::from_secs(2), "returned {after_produce:?} after the produce");
    assert!(total < Duration::from_millis(MAX_WAIT_MS as u64), "returned after {total:?}: at max_wait_ms, not on data");
    let data = single_fetch_partition(response.responses);
    assert_eq!(data.error_code, NONE);
    assert_eq!(values(&data.records), vec![(offset, "wake up".to_string())]);
    assert_eq!(data.high_watermark, offset + 1);
}

#[test]
fn a_waiting_fetch_returns_empty_when_max_wait_ms_passes() {
    const MAX_WAIT_MS: i32 = 400;
    let broker = TestBroker::start(|_| {});
    let mut client = broker.client();
    client.create_topic_ok("quiet", 1, &[]);
    let started = Instant::now();
    let response = client.call(FETCH_VERSION, Client::fetch_request("quiet", 0, 0, MAX_WAIT_MS));
    let waited = started.elapsed();
    // Timer granularity allows a little slack below; the upper bound catches a missed wake-up.
    assert!(waited >= Duration::from_millis(MAX_WAIT_MS as u64 - 50), "returned after {waited:?}, before max_wait_ms");
    assert!(waited < Duration::from_millis(MAX_WAIT_MS as u64 + 2000), "returned after {waited:?}");
    let data = single_fetch_partition(response.responses);
    assert_eq!((data.error_code, data.high_watermark), (NONE, 0));
    assert!(values(&data.records).is_empty());
}

// ---------------------------------------------------------------------------------------------
// ListOffsets

#[test]
fn list_offsets_finds_earliest_latest_and_by_timestamp() {
    let broker = TestBroker::start(|_| {});
    let mut client = broker.client();
    client.create_topic_ok("times", 1, &[]);
    // Offsets 0-5; record i of batch b has timestamp T0 + 100 b + 10 i.
    for b in 0..3 {
        let answer = client.produce("times", 0, batch_at(&["x", "y"], T0 + 100 * b), -1);
        assert_eq!((answer.error_code, answer.base_offset), (NONE, 2 * b));
    }
    let lookup = |client: &mut Client, timestamp: i64| {
        let answer = client.list_offset("times", 0, timestamp);
        assert_eq!(answer.error_code, NONE, "timestamp {timestamp}");
        (answer.offset, answer.timestamp)
    };
    assert_eq!(lookup(&mut client, EARLIEST_TIMESTAMP), (0, -1), "earliest: the log start offset");
    assert_eq!(lookup(&mut client, LATEST_TIMESTAMP), (6, -1), "latest: the high watermark");
    // Kafka protocol: the earliest offset whose timestamp is >= the given one.
    assert_eq!(lookup(&mut client, T0), (0, T0));
    assert_eq!(lookup(&mut client, T0 + 105), (3, T0 + 110));
    assert_eq!(lookup(&mut client, T0 + 110), (3, T0 + 110));
    assert_eq!(lookup(&mut client, T0 + 111), (4, T0 + 200));
    assert_eq!(lookup(&mut client, T0 + 10_000), (-1, -1), "after every record: no offset");
    // KIP-734: the record with the largest timestamp.
    assert_eq!(lookup(&mut client, MAX_TIMESTAMP), (5, T0 + 210));
}

// ---------------------------------------------------------------------------------------------
// DeleteRecords

fn delete_records(client: &mut Client, topic_name: &str, partition: i32, offset: i64) -> (i16, i64) {
    let request = DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![
        DeleteRecordsTopic::default().with_name(topic(topic_name)).with_partitions(vec![
            DeleteRecordsPartition::default().with_partition_index(partition).with_offset(offset),
        ]),
    ]);
    let response = client.call(2, request);
    let answer = &response.topics[0].partitions[0];
    (answer.error_code, answer.low_watermark)
}

#[test]
fn delete_records_moves_the_log_start_and_a_fetch_below_it_is_out_of_range() {
    let broker = TestBroker::start(|_| {});
    let mut client = broker.client();
    client.create_topic_ok("trim", 1, &[]);
    for value in ["r0", "r1", "r2", "r3", "r4"] {
        client.produce_ok("trim", 0, &[value]);
    }
    // Kafka protocol (DeleteRecords): records below the offset go; low_watermark is the new
    // log start offset.
    assert_eq!(delete_records(&mut client, "trim", 0, 3), (NONE, 3));
    assert_eq!(client.list_offset("trim", 0, EARLIEST_TIMESTAMP).offset, 3);
    assert_eq!(client.list_offset("trim", 0, LATEST_TIMESTAMP).offset, 5, "the end does not move");
    let below = client.fetch("trim", 0, 1);
    assert_eq!(below.error_code, OFFSET_OUT_OF_RANGE, "fetch below the log start offset");
    let from_start = client.fetch("trim", 0, 3);
    assert_eq!(from_start.error_code, NONE);
    assert_eq!(from_start.log_start_offset, 3);
    assert_eq!(client.read_all("trim", 0, 3), vec![(3, "r3".to_string()), (4, "r4".to_string())]);
    // Beyond the high watermark is refused, and moving backwards changes nothing.
    assert_eq!(delete_records(&mut client, "trim", 0, 6).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(delete_records(&mut client, "trim", 0, 1), (NONE, 3));
    // Appends continue at the end.
    assert_eq!(client.produce_ok("trim", 0, &["r5"]), 5);
}

// ---------------------------------------------------------------------------------------------
// Admin

#[test]
fn create_topics_with_replication_factor_3_on_one_broker_is_refused() {
    let broker = TestBroker::start(|config| config.auto_create_topics = false);
    let mut client = broker.client();
    let topic_request =
        CreatableTopic::default().with_name(topic("replicated")).with_num_partitions(1).with_replication_factor(3);
    let response = client.call(
        CREATE_TOPICS_VERSION,
        CreateTopicsRequest::default().with_topics(vec![topic_request]).with_timeout_ms(5000),
    );
    // Kafka: a replication factor larger than the live brokers is INVALID_REPLICATION_FACTOR.
    assert_eq!(response.topics[0].error_code, INVALID_REPLICATION_FACTOR);
    assert_eq!(client.metadata(&["replicated"]).topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION, "not created");
}

fn describe_topic_configs(client: &mut Client, topic_name: &str) -> DescribeConfigsResult {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(string(topic_name))
            .with_configuration_keys(None),
    ]);
    let mut response = client.call(4, request);
    assert_eq!(response.results.len(), 1);
    let result = response.results.remove(0);
    assert_eq!(result.error_code, NONE, "DescribeConfigs {topic_name}");
    result
}

/// name -> (value, config_source) of every described config.
fn configs_of(result: &DescribeConfigsResult) -> BTreeMap<String, (String, i8)> {
    result
        .configs
        .iter()
        .map(|c| (c.name.to_string(), (c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(), c.config_source)))
        .collect()
}

#[test]
fn describe_configs_lists_every_covered_key_with_its_default_and_source() {
    let broker = TestBroker::start(|_| {});
    let mut client = broker.client();
    client.create_topic_ok("plain", 1, &[]);
    client.create_topic_ok("tuned", 1, &[("retention.ms", "1000")]);
    // Kafka protocol: DescribeConfigs v1+ config_source, DEFAULT_CONFIG (5) for a value nobody
    // set, TOPIC_CONFIG (1) for a topic override.
    let plain = describe_topic_configs(&mut client, "plain");
    let expected: BTreeMap<String, (String, i8)> = sluice_broker::TOPIC_CONFIG_KEYS
        .iter()
        .map(|k| (k.name.to_string(), (k.default.to_string(), SOURCE_DEFAULT_CONFIG)))
        .collect();
    assert_eq!(configs_of(&plain), expected);
    assert!(plain.configs.iter().all(|c| !c.read_only && !c.is_sensitive));
    assert!(expected.contains_key("retention.ms") && expected.contains_key("cleanup.policy"));

    let mut tuned_expected = expected.clone();
    tuned_expected.insert("retention.ms".to_string(), ("1000".to_string(), SOURCE_TOPIC_CONFIG));
    assert_eq!(configs_of(&describe_topic_configs(&mut client, "tuned")), tuned_expected);
}

#[test]
fn alter_configs_change_retention_ms_and_describe_configs_shows_the_override() {
    // KIP-339 IncrementalAlterConfigs operations.
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    let broker = TestBroker::start(|_| {});
    let mut client = broker.client();
    client.create_topic_ok("retained", 1, &[]);
    let retention =
        |client: &mut Client| configs_of(&describe_topic_configs(client, "retained"))["retention.ms"].clone();
    assert_eq!(retention(&mut client), ("604800000".to_string(), SOURCE_DEFAULT_CONFIG));

    let incremental = |client: &mut Client, operation: i8, value: Option<&str>, validate_only: bool| {
        let request = IncrementalAlterConfigsRequest::default().with_validate_only(validate_only).with_resources(vec![
            IncrementalResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(string("retained"))
                .with_configs(vec![
                    IncrementalConfig::default()
                        .with_name(string("retention.ms"))
                        .with_config_operation(operation)
                        .with_value(value.map(string)),
                ]),
        ]);
        let response = client.call(1, request);
        assert_eq!(response.responses[0].error_code, NONE);
    };
    incremental(&mut client, SET, Some("3600000"), false);
    assert_eq!(retention(&mut client), ("3600000".to_string(), SOURCE_TOPIC_CONFIG));
    incremental(&mut client, SET, Some("1"), true);
    assert_eq!(retention(&mut client), ("3600000".to_string(), SOURCE_TOPIC_CONFIG), "validate_only changes nothing");
    incremental(&mut client, DELETE, None, false);
    assert_eq!(retention(&mut client), ("604800000".to_string(), SOURCE_DEFAULT_CONFIG), "DELETE restores the default");

    // The legacy AlterConfigs sets the whole override set.
    let request = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(string("retained"))
            .with_configs(vec![
                AlterableConfig::default().with_name(string("retention.ms")).with_value(Some(string("7200000"))),
            ]),
    ]);
    assert_eq!(client.call(2, request).responses[0].error_code, NONE);
    assert_eq!(retention(&mut client), ("7200000".to_string(), SOURCE_TOPIC_CONFIG));
}

#[test]
fn create_partitions_grows_a_topic_and_refuses_to_shrink_it() {
    let broker = TestBroker::start(|_| {});
    let mut client = broker.client();
    client.create_topic_ok("growing", 2, &[]);
    client.produce_ok("growing", 0, &["before"]);
    let resize = |client: &mut Client, count: i32| {
        let request = CreatePartitionsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![CreatePartitionsTopic::default().with_name(topic("growing")).with_count(count)]);
        client.call(3, request).results[0].error_code
    };
    assert_eq!(resize(&mut client, 4), NONE);
    assert_eq!(client.metadata(&["growing"]).topics[0].partitions.len(), 4);
    assert_eq!(client.produce_ok("growing", 3, &["in partition 3"]), 0, "a new partition starts empty");
    // Kafka: the partition count can only grow (InvalidPartitionsException).
    assert_eq!(resize(&mut client, 3), INVALID_PARTITIONS, "shrink");
    assert_eq!(resize(&mut client, 4), INVALID_PARTITIONS, "same count");
    assert_eq!(client.metadata(&["growing"]).topics[0].partitions.len(), 4);
    assert_eq!(client.read_all("growing", 0, 0), vec![(0, "before".to_string())], "existing data untouched");
}

// ---------------------------------------------------------------------------------------------
// Durability across a clean restart

#[test]
fn topics_configs_and_records_survive_a_clean_restart() {
    let mut broker = TestBroker::start(|_| {});
    let mut client = broker.client();
    let topic_id = client.create_topic_ok("durable", 2, &[("retention.ms", "3600000")]);
    for i in 0..4 {
        client.produce_ok("durable", 0, &[&format!("p0-{i}")]);
    }
    // acks=1 is acknowledged before the fsync; a clean shutdown still flushes it.
    let one = client.produce("durable", 1, batch(&["p1-0", "p1-1"]), 1);
    assert_eq!((one.error_code, one.base_offset), (NONE, 0));
    assert_eq!(delete_records(&mut client, "durable", 0, 1), (NONE, 1));
    let init = || InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000);
    let producer_before = client.call(4, init()).producer_id;
    let cluster_before = client.metadata(&[]).cluster_id;
    drop(client);

    broker.stop();
    broker.restart();

    let mut client = broker.client();
    let metadata = client.metadata(&["durable"]);
    assert_eq!(metadata.cluster_id, cluster_before, "same cluster id");
    let durable = &metadata.topics[0];
    assert_eq!((durable.error_code, durable.topic_id, durable.partitions.len()), (NONE, topic_id, 2));
    let configs = configs_of(&describe_topic_configs(&mut client, "durable"));
    assert_eq!(configs["retention.ms"], ("3600000".to_string(), SOURCE_TOPIC_CONFIG));
    assert_eq!(client.list_offset("durable", 0, EARLIEST_TIMESTAMP).offset, 1, "log start offset kept");
    let p0: Vec<(i64, String)> = (1..4).map(|i| (i, format!("p0-{i}"))).collect();
    assert_eq!(client.read_all("durable", 0, 1), p0);
    assert_eq!(client.read_all("durable", 1, 0), vec![(0, "p1-0".to_string()), (1, "p1-1".to_string())]);
    assert_eq!(client.produce_ok("durable", 0, &["after restart"]), 4, "offsets continue");
    // KIP-98: a producer id is never handed out twice, restarts included.
    let producer_after = client.call(4, init()).producer_id;
    assert!(producer_after.0 > producer_before.0, "{producer_after:?} after {producer_before:?}");
}

/// `queued.max.request.bytes` (Kafka) bounds the request bytes the broker holds at once: with
/// room for only two large frames, eight connections each sending large produces all complete
/// (the reader waits for budget instead of failing), no permit leaks (later requests still
/// go through), and every acknowledged record is there.
#[test]
fn request_byte_budget_applies_backpressure_without_losing_or_deadlocking() {
    const FRAME_BYTES_MAX: u32 = 600 * 1024;
    const PRODUCERS: usize = 8;
    const ROUNDS: usize = 4;
    let broker = TestBroker::start(|config| {
        config.socket_request_max_bytes = FRAME_BYTES_MAX;
        config.queued_max_request_bytes = 2 * FRAME_BYTES_MAX;
    });
    let mut admin = broker.client();
    admin.create_topic_ok("budget", 1, &[]);
    let value = "v".repeat(250 * 1024);
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let addr = broker.addr();
            let value = value.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                (0..ROUNDS).map(|_| client.produce_ok("budget", 0, &[&value, &value])).count()
            })
        })
        .collect();
    let acknowledged: usize = threads.into_iter().map(|t| t.join().expect("producer thread")).sum();
    assert_eq!(acknowledged, PRODUCERS * ROUNDS);
    // The budget was fully returned: another full-size round trip still works.
    admin.produce_ok("budget", 0, &[&value]);
    let end = admin.list_offset("budget", 0, -1);
    assert_eq!(end.error_code, 0);
    assert_eq!(end.offset, (PRODUCERS * ROUNDS * 2 + 1) as i64, "every acknowledged record is in the log");
}

/// Compaction leaves empty batches (every record of the batch superseded), and one storage read
/// stops at a segment's end. A Fetch must still reach a record: librdkafka takes a response of
/// only empty batches for a record too large for its buffer, and after ten such responses
/// fails with MSG_SIZE_TOO_LARGE (found by tests/system/compaction_test.py).
#[test]
fn a_fetch_reads_past_segments_that_compaction_emptied() {
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::PartitionData;
    use sluice_protocol::records::{BatchOptions, encode_batch};
    use sluice_types::Compression;
    const TOPIC: &str = "emptied";
    const ROUNDS: usize = 200;
    let broker = TestBroker::start(|config| config.log_cleaner_backoff_ms = 50);
    let mut client = broker.client();
    client.create_topic_ok(TOPIC, 1, &[("cleanup.policy", "compact"), ("segment.bytes", "1024")]);
    // One key, many batches: every sealed segment ends up holding only empty batches.
    for round in 0..ROUNDS {
        let mut records = records(&[&format!("value-{round}-{}", "x".repeat(40))]);
        records[0].key = Some(Bytes::from_static(b"the-key"));
        let options = BatchOptions { base_timestamp: now_ms(), ..BatchOptions::default() };
        let batch = encode_batch(&records, Compression::None, &options).expect("encode batch");
        assert_eq!(client.produce(TOPIC, 0, batch, -1).error_code, 0);
    }
    let batch_records = |data: &PartitionData| -> Vec<i32> {
        let bytes = data.records.clone().unwrap_or_default();
        sluice_types::batch::batches(&bytes).map(|b| b.expect("whole batches").0.record_count).collect()
    };
    // Wait (bounded) until the cleaner has emptied the first segment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let data = client.fetch(TOPIC, 0, 0);
        if batch_records(&data).first() == Some(&0) {
            break data;
        }
        assert!(Instant::now() < deadline, "the cleaner did not compact within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let counts = batch_records(&first);
    assert!(counts.iter().any(|c| *c > 0), "a Fetch from 0 served only empty batches: {} of them", counts.len());
}
