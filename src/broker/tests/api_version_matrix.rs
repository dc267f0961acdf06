//! Every advertised API at every advertised version gets a response that decodes at that
//! version and says something sensible.
//!
//! Why: `kafka-protocol` refuses to *encode* a response that sets a field the requested version
//! does not have (for example ListOffsets v2 with `leader_epoch` set). The broker then logs
//! "response encoding failed" and sends nothing, and the client hangs until its own timeout. A
//! unit test of one handler at one version cannot catch that; this matrix drives each API in
//! `sluice_protocol::api_versions::SUPPORTED_APIS` over its whole range with requests that
//! carry content (a topic with data in several partitions, a topic that does not exist, an
//! unknown partition, invalid values), so every response path is encoded at every version.
//!
//! Each read has a deadline, so a missing response fails in seconds; failures are collected per
//! (API, version) and reported together. Also checked: ApiVersions v0-v4, and the KIP-511
//! fallback for an ApiVersions version the broker does not know.

mod common;
mod matrix_groups;

use common::*;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig as IncrementalConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterPartitionReassignmentsRequest, ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, ElectLeadersRequest, FetchRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest,
    ListOffsetsRequest, ListPartitionReassignmentsRequest, MetadataRequest, MetadataResponse,
    OffsetForLeaderEpochRequest, ProduceRequest, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::Decodable;
use sluice_protocol::api_versions::SUPPORTED_APIS;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The topic every read-side API looks at: `PARTITIONS` partitions, each holding records
/// `p{p}-0` .. `p{p}-3` at offsets 0-3 in two batches, with timestamps `T0 + 10 * offset`.
const DATA_TOPIC: &str = "matrix";
const PARTITIONS: i32 = 3;
const RECORDS_PER_PARTITION: i64 = 4;
/// A fixed base timestamp, so ListOffsets by timestamp has known answers.
const T0: i64 = 1_700_000_000_000;
/// A topic with overrides, for DescribeConfigs sources.
const CONFIGURED_TOPIC: &str = "configured";
const CONFIGURED_RETENTION_MS: &str = "3600000";
const NODE_ID: i32 = 1;
/// Kafka error codes (Kafka protocol: "Error Codes").
const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const UNSUPPORTED_VERSION: i16 = 35;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const UNKNOWN_TOPIC_ID: i16 = 100;

struct Matrix {
    broker: TestBroker,
    data_topic_id: uuid::Uuid,
    cluster_id: String,
}

fn set_up() -> Matrix {
    let broker = TestBroker::start(|config| {
        config.node_id = NODE_ID;
        // A missing topic must stay missing, whatever the request says.
        config.auto_create_topics = false;
        config.num_partitions = PARTITIONS;
        // Groups form at once, and __consumer_offsets loads quickly.
        config.group.initial_rebalance_delay_ms = 0;
        config.offsets_topic_num_partitions = 3;
    });
    let mut client = broker.client();
    let data_topic_id = client.create_topic_ok(DATA_TOPIC, PARTITIONS, &[]);
    for p in 0..PARTITIONS {
        let first = client.produce(DATA_TOPIC, p, batch_at(&[&format!("p{p}-0"), &format!("p{p}-1")], T0), -1);
        assert_eq!((first.error_code, first.base_offset), (NONE, 0));
        let second = client.produce(DATA_TOPIC, p, batch_at(&[&format!("p{p}-2"), &format!("p{p}-3")], T0 + 20), -1);
        assert_eq!((second.error_code, second.base_offset), (NONE, 2));
    }
    client.create_topic_ok(
        CONFIGURED_TOPIC,
        1,
        &[("retention.ms", CONFIGURED_RETENTION_MS), ("cleanup.policy", "compact")],
    );
    let cluster_id = client.metadata(&[]).cluster_id.expect("cluster id").to_string();
    matrix_groups::prepare(&broker);
    Matrix { broker, data_topic_id, cluster_id }
}

#[test]
fn every_supported_api_answers_at_every_version() {
    let matrix = set_up();
    let mut failures = Vec::new();
    let mut cases = 0;
    for api in SUPPORTED_APIS {
        for version in api.min_version..=api.max_version {
            cases += 1;
            let outcome = catch_unwind(AssertUnwindSafe(|| run_case(&matrix, api.api_key, version)));
            if let Err(panic) = outcome {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let case = format!("{:?} v{version}:", api.api_key);
                // The client's own messages already name the case.
                let message = message.strip_prefix(&case).map_or(message.as_str(), str::trim_start);
                failures.push(format!("{case} {message}"));
            }
        }
    }
    assert!(cases > 60, "the matrix covers {cases} (API, version) pairs");
    assert!(failures.is_empty(), "{} of {cases} (API, version) cases failed:\n{}", failures.len(), failures.join("\n"));
}

fn run_case(matrix: &Matrix, api_key: ApiKey, version: i16) {
    match api_key {
        ApiKey::Produce => produce(matrix, version),
        ApiKey::Fetch => fetch(matrix, version),
        ApiKey::ListOffsets => list_offsets(matrix, version),
        ApiKey::Metadata => metadata(matrix, version),
        ApiKey::ApiVersions => api_versions(matrix, version),
        ApiKey::CreateTopics => create_topics(matrix, version),
        ApiKey::DeleteTopics => delete_topics(matrix, version),
        ApiKey::DeleteRecords => delete_records(matrix, version),
        ApiKey::InitProducerId => init_producer_id(matrix, version),
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch(matrix, version),
        ApiKey::DescribeConfigs => describe_configs(matrix, version),
        ApiKey::AlterConfigs => alter_configs(matrix, version),
        ApiKey::CreatePartitions => create_partitions(matrix, version),
        ApiKey::IncrementalAlterConfigs => incremental_alter_configs(matrix, version),
        ApiKey::DescribeCluster => describe_cluster(matrix, version),
        ApiKey::ElectLeaders => elect_leaders(matrix, version),
        ApiKey::AlterPartitionReassignments => alter_partition_reassignments(matrix, version),
        ApiKey::ListPartitionReassignments => list_partition_reassignments(matrix, version),
        ApiKey::FindCoordinator => matrix_groups::find_coordinator(&matrix.broker, NODE_ID, version),
        ApiKey::JoinGroup => matrix_groups::join_group(&matrix.broker, version),
        ApiKey::SyncGroup => matrix_groups::sync_group(&matrix.broker, version),
        ApiKey::Heartbeat => matrix_groups::heartbeat(&matrix.broker, version),
        ApiKey::LeaveGroup => matrix_groups::leave_group(&matrix.broker, version),
        ApiKey::OffsetCommit => matrix_groups::offset_commit(&matrix.broker, DATA_TOPIC, version),
        ApiKey::OffsetFetch => matrix_groups::offset_fetch(&matrix.broker, DATA_TOPIC, version),
        ApiKey::OffsetDelete => matrix_groups::offset_delete(&matrix.broker, DATA_TOPIC, version),
        ApiKey::ListGroups => matrix_groups::list_groups(&matrix.broker, DATA_TOPIC, version),
        ApiKey::DescribeGroups => matrix_groups::describe_groups(&matrix.broker, version),
        ApiKey::DeleteGroups => matrix_groups::delete_groups(&matrix.broker, DATA_TOPIC, version),
        ApiKey::ConsumerGroupHeartbeat => matrix_groups::consumer_group_heartbeat(
            &matrix.broker,
            DATA_TOPIC,
            matrix.data_topic_id,
            PARTITIONS,
            version,
        ),
        ApiKey::ConsumerGroupDescribe => matrix_groups::consumer_group_describe(
            &matrix.broker,
            DATA_TOPIC,
            matrix.data_topic_id,
            PARTITIONS,
            version,
        ),
        other => panic!("no scenario for {other:?}: add one to this matrix"),
    }
}

// ---------------------------------------------------------------------------------------------
// Produce (3-11)

fn produce(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let name = format!("produce-v{version}");
    let log_append = format!("produce-v{version}-lat");
    client.create_topic_ok(&name, 3, &[]);
    client.create_topic_ok(&log_append, 1, &[("message.timestamp.type", "LogAppendTime")]);
    let mut corrupt = batch(&["corrupt"]).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff; // a record byte: covered by the CRC-32C, so the CRC no longer matches
    let partition = |index: i32, records: bytes::Bytes| {
        PartitionProduceData::default().with_index(index).with_records(Some(records))
    };
    let started_ms = now_ms();
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![
        TopicProduceData::default().with_name(topic(&name)).with_partition_data(vec![
            partition(0, batch(&["a", "b", "c"])),
            partition(1, batch(&["d", "e"])),
            partition(2, bytes::Bytes::from(corrupt)),
            partition(7, batch(&["no such partition"])),
        ]),
        TopicProduceData::default()
            .with_name(topic(&log_append))
            .with_partition_data(vec![partition(0, batch(&["stamped by the broker"]))]),
        TopicProduceData::default()
            .with_name(topic(MISSING_TOPIC))
            .with_partition_data(vec![partition(0, batch(&["nowhere"]))]),
    ]);
    let response = client.call(version, request);
    assert_eq!(response.responses.len(), 3, "one answer per topic");
    let answers = |topic_name: &str| -> Vec<PartitionProduceResponse> {
        let found = response.responses.iter().find(|t| t.name.0.as_str() == topic_name);
        found.unwrap_or_else(|| panic!("no answer for {topic_name}")).partition_responses.clone()
    };
    let main = answers(&name);
    assert_eq!(main.iter().map(|p| p.index).collect::<Vec<_>>(), vec![0, 1, 2, 7]);
    for ok in &main[0..2] {
        assert_eq!((ok.error_code, ok.base_offset), (NONE, 0), "partition {}", ok.index);
        assert_eq!(ok.log_append_time_ms, -1, "CreateTime topic: no log append time");
        // Kafka protocol: Produce v5 adds log_start_offset.
        assert_eq!(ok.log_start_offset, if version >= 5 { 0 } else { -1 });
        assert_eq!(ok.error_message, None);
    }
    for (failed, code) in [(&main[2], CORRUPT_MESSAGE), (&main[3], UNKNOWN_TOPIC_OR_PARTITION)] {
        assert_eq!(failed.error_code, code, "partition {}", failed.index);
        assert_eq!(failed.base_offset, -1);
        // Kafka protocol: Produce v8 adds error_message.
        assert_eq!(failed.error_message.is_some(), version >= 8, "error message at v{version}");
    }
    let stamped = &answers(&log_append)[0];
    assert_eq!((stamped.error_code, stamped.base_offset), (NONE, 0));
    assert!(
        stamped.log_append_time_ms >= started_ms,
        "LogAppendTime topic: broker time {}",
        stamped.log_append_time_ms
    );
    assert_eq!(answers(MISSING_TOPIC)[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);

    // acks=1 is answered once the leader appended; the acks=-1 batch after it is answered once
    // committed, and then both are below the high watermark. Nothing from the failures is there.
    for (acks, value, offset) in [(1, "f", 3), (-1, "g", 4)] {
        let again = client.call(version, Client::produce_request(&name, 0, batch(&[value]), acks));
        let again = &again.responses[0].partition_responses[0];
        assert_eq!((again.error_code, again.base_offset), (NONE, offset), "acks={acks}");
    }
    let stored: Vec<String> = client.read_all(&name, 0, 0).into_iter().map(|(_, v)| v).collect();
    assert_eq!(stored, ["a", "b", "c", "f", "g"]);
    assert!(client.read_all(&name, 2, 0).is_empty(), "the corrupt batch was not appended");
}

// ---------------------------------------------------------------------------------------------
// Fetch (4-12)

fn fetch(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let read_committed = version % 2 == 0;
    let wanted = |partition: i32, offset: i64| {
        let mut p = FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 20);
        if version >= 9 {
            p.current_leader_epoch = 0; // KIP-320: the epoch Metadata reports
        }
        p
    };
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(200)
        .with_min_bytes(1)
        .with_max_bytes(16 << 20)
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![
            FetchTopic::default().with_topic(topic(DATA_TOPIC)).with_partitions(vec![
                wanted(0, 0),
                wanted(1, 2),
                wanted(2, RECORDS_PER_PARTITION),
                wanted(9, 0),
            ]),
            FetchTopic::default().with_topic(topic(MISSING_TOPIC)).with_partitions(vec![wanted(0, 0)]),
        ]);
    let response = client.call(version, request);
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.session_id, 0, "no fetch sessions: full requests (KIP-227)");
    assert_eq!(response.responses.len(), 2);
    let data = &response.responses[0];
    assert_eq!(data.topic.0.as_str(), DATA_TOPIC);
    let partitions: Vec<&PartitionData> = data.partitions.iter().collect();
    assert_eq!(partitions.iter().map(|p| p.partition_index).collect::<Vec<_>>(), vec![0, 1, 2, 9]);
    for p in &partitions[0..3] {
        assert_eq!(p.error_code, NONE, "partition {}", p.partition_index);
        assert_eq!(p.high_watermark, RECORDS_PER_PARTITION);
        assert_eq!(p.last_stable_offset, RECORDS_PER_PARTITION, "no transactions: LSO = high watermark");
        // Kafka protocol: Fetch v5 adds log_start_offset.
        assert_eq!(p.log_start_offset, if version >= 5 { 0 } else { -1 });
        assert!(p.aborted_transactions.as_ref().is_none_or(|a| a.is_empty()));
    }
    let expected = |p: i32, from: i64| -> Vec<(i64, String)> {
        (from..RECORDS_PER_PARTITION).map(|o| (o, format!("p{p}-{o}"))).collect()
    };
    assert_eq!(values(&partitions[0].records), expected(0, 0));
    let from_two: Vec<_> = values(&partitions[1].records).into_iter().filter(|(o, _)| *o >= 2).collect();
    assert_eq!(from_two, expected(1, 2));
    assert_eq!(timestamps(&partitions[0].records), (0..4).map(|o| (o, T0 + 10 * o)).collect::<Vec<_>>());
    assert!(values(&partitions[2].records).is_empty(), "nothing at the high watermark");
    assert_eq!(partitions[3].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(response.responses[1].partitions[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);

    let beyond = client.call(version, Client::fetch_request(DATA_TOPIC, 0, 1000, 0));
    let beyond = single_fetch_partition(beyond.responses);
    assert_eq!(beyond.error_code, OFFSET_OUT_OF_RANGE);
    assert_eq!(beyond.high_watermark, RECORDS_PER_PARTITION);
}

// ---------------------------------------------------------------------------------------------
// ListOffsets (1-7)

fn list_offsets(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let wanted = |partition: i32, timestamp: i64| {
        let mut p = ListOffsetsPartition::default().with_partition_index(partition).with_timestamp(timestamp);
        if version >= 4 {
            p.current_leader_epoch = 0;
        }
        p
    };
    let request = |partitions: Vec<ListOffsetsPartition>, missing: bool| {
        let mut topics = vec![ListOffsetsTopic::default().with_name(topic(DATA_TOPIC)).with_partitions(partitions)];
        if missing {
            topics
                .push(ListOffsetsTopic::default().with_name(topic(MISSING_TOPIC)).with_partitions(vec![wanted(0, -1)]));
        }
        let mut request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(topics);
        if version >= 2 {
            request.isolation_level = 1; // read_committed: the LSO, which is the high watermark here
        }
        request
    };
    let response = client.call(
        version,
        request(
            vec![wanted(0, EARLIEST_TIMESTAMP), wanted(1, LATEST_TIMESTAMP), wanted(2, T0 + 15), wanted(9, -1)],
            true,
        ),
    );
    assert_eq!(response.topics.len(), 2);
    let answers: &[ListOffsetsPartitionResponse] = &response.topics[0].partitions;
    assert_eq!(answers.iter().map(|p| p.partition_index).collect::<Vec<_>>(), vec![0, 1, 2, 9]);
    let found = |a: &ListOffsetsPartitionResponse| (a.error_code, a.offset, a.timestamp);
    assert_eq!(found(&answers[0]), (NONE, 0, -1), "earliest");
    assert_eq!(found(&answers[1]), (NONE, RECORDS_PER_PARTITION, -1), "latest");
    // Kafka protocol: the first offset whose timestamp is >= the one asked for.
    assert_eq!(found(&answers[2]), (NONE, 2, T0 + 20), "by timestamp");
    for answer in &answers[0..3] {
        // Kafka protocol: ListOffsets v4 adds leader_epoch (KIP-320).
        assert_eq!(answer.leader_epoch, if version >= 4 { 0 } else { -1 });
    }
    assert_eq!(answers[3].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(response.topics[1].partitions[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);

    // After every record: no offset (-1), not an error.
    let mut special = vec![wanted(0, T0 + 1_000_000)];
    if version >= 7 {
        special.push(wanted(1, MAX_TIMESTAMP)); // KIP-734, ListOffsets v7
    }
    let response = client.call(version, request(special, false));
    let answers = &response.topics[0].partitions;
    assert_eq!(found(&answers[0]), (NONE, -1, -1), "timestamp after every record");
    if version >= 7 {
        assert_eq!(found(&answers[1]), (NONE, 3, T0 + 30), "max timestamp");
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata (0-12)

fn find_topic<'a>(response: &'a MetadataResponse, name: &str) -> &'a MetadataResponseTopic {
    let found = response.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name));
    found.unwrap_or_else(|| panic!("topic {name} missing from {:?}", response.topics))
}

fn metadata(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let named = |name: &str| MetadataRequestTopic::default().with_name(Some(topic(name)));
    let mut request = MetadataRequest::default().with_topics(Some(vec![named(DATA_TOPIC), named(MISSING_TOPIC)]));
    if version >= 4 {
        request.allow_auto_topic_creation = true; // the broker's auto.create.topics.enable=false wins
    }
    let response = client.call(version, request);
    check_brokers(matrix, &response, version);
    assert_eq!(response.topics.len(), 2);
    let data = find_topic(&response, DATA_TOPIC);
    assert_eq!(data.error_code, NONE);
    assert!(!data.is_internal);
    // Kafka protocol: Metadata v10 adds topic_id.
    assert_eq!(data.topic_id, if version >= 10 { matrix.data_topic_id } else { uuid::Uuid::nil() });
    assert_eq!(data.partitions.iter().map(|p| p.partition_index).collect::<Vec<_>>(), vec![0, 1, 2]);
    for p in &data.partitions {
        assert_eq!(p.error_code, NONE);
        assert_eq!(p.leader_id, BrokerId(NODE_ID));
        // Kafka protocol: Metadata v7 adds leader_epoch (KIP-320).
        assert_eq!(p.leader_epoch, if version >= 7 { 0 } else { -1 });
        assert_eq!(p.replica_nodes, vec![BrokerId(NODE_ID)]);
        assert_eq!(p.isr_nodes, vec![BrokerId(NODE_ID)]);
    }
    assert_eq!(find_topic(&response, MISSING_TOPIC).error_code, UNKNOWN_TOPIC_OR_PARTITION);

    // All topics: v0 says so with an empty list, v1+ with a null one.
    let all = MetadataRequest::default().with_topics(if version == 0 { Some(Vec::new()) } else { None });
    let response = client.call(version, all);
    check_brokers(matrix, &response, version);
    for name in [DATA_TOPIC, CONFIGURED_TOPIC] {
        assert_eq!(find_topic(&response, name).error_code, NONE);
    }
    assert!(!response.topics.iter().any(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == MISSING_TOPIC)));

    if version >= 10 {
        // KIP-516: topics by id; an unknown id is UNKNOWN_TOPIC_ID.
        let unknown_id = uuid::Uuid::from_u128(0x5eed);
        let by_id = |id| MetadataRequestTopic::default().with_topic_id(id).with_name(None);
        let request = MetadataRequest::default()
            .with_topics(Some(vec![by_id(matrix.data_topic_id), by_id(unknown_id)]))
            .with_allow_auto_topic_creation(false);
        let response = client.call(version, request);
        assert_eq!(response.topics.len(), 2);
        assert_eq!(response.topics[0].name.as_ref().map(|n| n.0.to_string()), Some(DATA_TOPIC.to_string()));
        assert_eq!(response.topics[0].partitions.len(), PARTITIONS as usize);
        assert_eq!((response.topics[1].error_code, response.topics[1].topic_id), (UNKNOWN_TOPIC_ID, unknown_id));
    }
}

fn check_brokers(matrix: &Matrix, response: &MetadataResponse, version: i16) {
    assert_eq!(response.brokers.len(), 1);
    let broker = &response.brokers[0];
    assert_eq!(broker.node_id, BrokerId(NODE_ID));
    assert_eq!(broker.host.as_str(), "127.0.0.1");
    assert_eq!(broker.port, i32::from(matrix.broker.addr().port()));
    // Kafka protocol: Metadata v1 adds controller_id, v2 cluster_id.
    assert_eq!(response.controller_id, BrokerId(if version >= 1 { NODE_ID } else { -1 }));
    let cluster_id = response.cluster_id.as_ref().map(|c| c.to_string());
    assert_eq!(cluster_id, (version >= 2).then(|| matrix.cluster_id.clone()));
}

// ---------------------------------------------------------------------------------------------
// ApiVersions (0-4)

fn check_api_keys(response: &ApiVersionsResponse) {
    let advertised: Vec<(i16, i16, i16)> =
        response.api_keys.iter().map(|k| (k.api_key, k.min_version, k.max_version)).collect();
    let table: Vec<(i16, i16, i16)> =
        SUPPORTED_APIS.iter().map(|a| (a.api_key as i16, a.min_version, a.max_version)).collect();
    assert_eq!(advertised, table, "ApiVersions advertises exactly SUPPORTED_APIS");
}

fn api_versions(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let mut request = ApiVersionsRequest::default();
    if version >= 3 {
        // KIP-511: v3 adds the client's software name and version.
        request.client_software_name = string("sluice-broker-tests");
        request.client_software_version = string("0.1.0");
    }
    let response = client.call(version, request);
    assert_eq!(response.error_code, NONE);
    check_api_keys(&response);
    assert_eq!(response.throttle_time_ms, 0);
}

// ---------------------------------------------------------------------------------------------
// CreateTopics (2-7)

fn create_topics(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let new_topic = |name: &str, partitions: i32, replication: i16| {
        CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication)
    };
    let config = |name: &str, value: &str| {
        CreatableTopicConfig::default().with_name(string(name)).with_value(Some(string(value)))
    };
    let created = format!("ct-v{version}");
    let defaulted = format!("ct-v{version}-defaults");
    let mut topics = vec![
        new_topic(&created, 2, 1).with_configs(vec![config("retention.ms", "3600000")]),
        new_topic(&format!("ct-v{version}-rf3"), 1, 3),
        new_topic(DATA_TOPIC, 1, 1),
        new_topic("bad/name", 1, 1),
        new_topic(&format!("ct-v{version}-bad-config"), 1, 1).with_configs(vec![config("retention.ms", "soon")]),
    ];
    if version >= 4 {
        // KIP-464 (v4): -1 takes the broker's num.partitions and default replication factor.
        topics.push(new_topic(&defaulted, -1, -1));
    }
    let response =
        client.call(version, CreateTopicsRequest::default().with_topics(topics.clone()).with_timeout_ms(5000));
    assert_eq!(response.topics.len(), topics.len());
    let codes: Vec<i16> = response.topics.iter().map(|t| t.error_code).collect();
    let mut expected =
        vec![NONE, INVALID_REPLICATION_FACTOR, TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION, INVALID_CONFIG];
    if version >= 4 {
        expected.push(NONE);
    }
    assert_eq!(codes, expected);
    for (result, wanted) in response.topics.iter().zip(&topics) {
        assert_eq!(result.name, wanted.name);
        let message = result.error_message.as_ref().map_or("", |m| m.as_str());
        assert_eq!(!message.is_empty(), result.error_code != NONE, "{:?}: error message {message:?}", result.name);
    }
    let ok = &response.topics[0];
    // Kafka protocol: CreateTopics v5 returns the partitions, replication factor and configs
    // (KIP-525); v7 the topic id (KIP-516).
    if version >= 5 {
        assert_eq!((ok.num_partitions, ok.replication_factor), (2, 1));
        let configs = ok.configs.as_ref().expect("configs at v5+");
        let retention = configs.iter().find(|c| c.name.as_str() == "retention.ms").expect("retention.ms listed");
        assert_eq!(retention.value.as_ref().map(|v| v.as_str()), Some("3600000"));
        assert_eq!(retention.config_source, SOURCE_TOPIC_CONFIG);
        let segment = configs.iter().find(|c| c.name.as_str() == "segment.bytes").expect("segment.bytes listed");
        assert_eq!(segment.config_source, SOURCE_DEFAULT_CONFIG);
    } else {
        let no_configs = ok.configs.as_ref().is_none_or(|c| c.is_empty());
        assert_eq!((ok.num_partitions, ok.replication_factor, no_configs), (-1, -1, true));
    }
    assert_eq!(ok.topic_id.is_nil(), version < 7);
    let metadata = client.metadata(&[&created]);
    assert_eq!(metadata.topics[0].partitions.len(), 2);
    if version >= 4 {
        assert_eq!(client.metadata(&[&defaulted]).topics[0].partitions.len(), PARTITIONS as usize);
    }

    // validate_only checks and creates nothing.
    let dry_run = format!("ct-v{version}-dry-run");
    let request = CreateTopicsRequest::default()
        .with_topics(vec![new_topic(&dry_run, 1, 1)])
        .with_timeout_ms(5000)
        .with_validate_only(true);
    assert_eq!(client.call(version, request).topics[0].error_code, NONE);
    assert_eq!(client.metadata(&[&dry_run]).topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
}

// ---------------------------------------------------------------------------------------------
// DeleteTopics (1-6)

fn delete_topics(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let by_name = format!("dt-v{version}-by-name");
    let by_id = format!("dt-v{version}-by-id");
    client.create_topic_ok(&by_name, 2, &[]);
    let id = client.create_topic_ok(&by_id, 1, &[]);
    client.produce_ok(&by_name, 1, &["doomed"]);
    let unknown_id = uuid::Uuid::from_u128(0xdead);
    let request = if version >= 6 {
        // KIP-516 (v6): topics by name or by id.
        let state = |name: Option<&str>, id: uuid::Uuid| {
            DeleteTopicState::default().with_name(name.map(topic)).with_topic_id(id)
        };
        DeleteTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
            state(Some(&by_name), uuid::Uuid::nil()),
            state(None, id),
            state(None, unknown_id),
            state(Some(MISSING_TOPIC), uuid::Uuid::nil()),
        ])
    } else {
        DeleteTopicsRequest::default().with_timeout_ms(5000).with_topic_names(vec![
            topic(&by_name),
            topic(&by_id),
            topic(MISSING_TOPIC),
        ])
    };
    let response = client.call(version, request);
    let results: Vec<(Option<String>, i16)> =
        response.responses.iter().map(|r| (r.name.as_ref().map(|n| n.0.to_string()), r.error_code)).collect();
    let mut expected = vec![(Some(by_name.clone()), NONE), (Some(by_id.clone()), NONE)];
    if version >= 6 {
        expected.push((None, UNKNOWN_TOPIC_ID));
        assert_eq!(response.responses[1].topic_id, id);
        assert_eq!(response.responses[2].topic_id, unknown_id);
    }
    expected.push((Some(MISSING_TOPIC.to_string()), UNKNOWN_TOPIC_OR_PARTITION));
    assert_eq!(results, expected);
    // Kafka protocol: DeleteTopics v5 adds error_message.
    let missing = response.responses.last().expect("missing topic answered");
    assert_eq!(missing.error_message.is_some(), version >= 5);
    for gone in [&by_name, &by_id] {
        assert_eq!(client.metadata(&[gone]).topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION, "{gone} deleted");
    }
}

// ---------------------------------------------------------------------------------------------
// DeleteRecords (0-2)

fn delete_records(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let name = format!("dr-v{version}");
    client.create_topic_ok(&name, 3, &[]);
    for p in 0..3 {
        client.produce_ok(&name, p, &["0", "1"]);
        client.produce_ok(&name, p, &["2", "3"]);
    }
    let at = |partition: i32, offset: i64| {
        DeleteRecordsPartition::default().with_partition_index(partition).with_offset(offset)
    };
    let request = DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![
        // Kafka protocol: offset -1 means "up to the high watermark".
        DeleteRecordsTopic::default().with_name(topic(&name)).with_partitions(vec![
            at(0, 2),
            at(1, -1),
            at(2, 100),
            at(5, 0),
        ]),
        DeleteRecordsTopic::default().with_name(topic(MISSING_TOPIC)).with_partitions(vec![at(0, 0)]),
    ]);
    let response = client.call(version, request);
    assert_eq!(response.topics.len(), 2);
    let results: Vec<(i32, i16, i64)> =
        response.topics[0].partitions.iter().map(|p| (p.partition_index, p.error_code, p.low_watermark)).collect();
    assert_eq!(
        results,
        vec![(0, NONE, 2), (1, NONE, 4), (2, OFFSET_OUT_OF_RANGE, -1), (5, UNKNOWN_TOPIC_OR_PARTITION, -1)]
    );
    assert_eq!(response.topics[1].partitions[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(client.list_offset(&name, 0, EARLIEST_TIMESTAMP).offset, 2);
    assert_eq!(client.read_all(&name, 0, 2), vec![(2, "2".to_string()), (3, "3".to_string())]);
}

// ---------------------------------------------------------------------------------------------
// InitProducerId (0-4)

fn init_producer_id(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    // KIP-98: a null transactional id asks for an idempotent producer id.
    let idempotent =
        || InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60_000);
    let first = client.call(version, idempotent());
    let second = client.call(version, idempotent());
    for answer in [&first, &second] {
        assert_eq!(answer.error_code, NONE);
        assert!(answer.producer_id.0 >= 0);
        assert_eq!(answer.producer_epoch, 0);
    }
    assert_ne!(first.producer_id, second.producer_id, "every producer gets its own id");
    if version >= 3 {
        // KIP-360 (v3): an existing producer bumps its epoch.
        let bump = idempotent().with_producer_id(first.producer_id).with_producer_epoch(0);
        let bumped = client.call(version, bump);
        assert_eq!((bumped.error_code, bumped.producer_id, bumped.producer_epoch), (NONE, first.producer_id, 1));
    }
    // Transactions are not served yet: an error, and no id.
    let transactional = idempotent().with_transactional_id(Some(TransactionalId(string("tx-1"))));
    let refused = client.call(version, transactional);
    assert_ne!(refused.error_code, NONE);
    assert_eq!((refused.producer_id, refused.producer_epoch), (ProducerId(-1), -1));
}

// ---------------------------------------------------------------------------------------------
// OffsetForLeaderEpoch (2-4)

fn offset_for_leader_epoch(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let wanted = |partition: i32, current: i32, epoch: i32| {
        OffsetForLeaderPartition::default()
            .with_partition(partition)
            .with_current_leader_epoch(current)
            .with_leader_epoch(epoch)
    };
    let mut request = OffsetForLeaderEpochRequest::default().with_topics(vec![
        OffsetForLeaderTopic::default().with_topic(topic(DATA_TOPIC)).with_partitions(vec![
            wanted(0, 0, 0),
            wanted(1, -1, 0),
            wanted(2, 5, 0),
            wanted(9, -1, 0),
        ]),
        OffsetForLeaderTopic::default().with_topic(topic(MISSING_TOPIC)).with_partitions(vec![wanted(0, -1, 0)]),
    ]);
    if version >= 3 {
        request.replica_id = BrokerId(-1); // a consumer (v3 adds replica_id)
    }
    let response = client.call(version, request);
    assert_eq!(response.topics.len(), 2);
    let results: Vec<(i32, i16, i32, i64)> = response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition, p.error_code, p.leader_epoch, p.end_offset))
        .collect();
    assert_eq!(
        results,
        vec![
            (0, NONE, 0, RECORDS_PER_PARTITION),
            (1, NONE, 0, RECORDS_PER_PARTITION),
            // KIP-320: a client that knows a newer epoch than the leader's.
            (2, UNKNOWN_LEADER_EPOCH, -1, -1),
            (9, UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
        ]
    );
    assert_eq!(response.topics[1].partitions[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
}

// ---------------------------------------------------------------------------------------------
// DescribeConfigs (1-4)

fn describe(client: &mut Client, version: i16, resources: Vec<DescribeConfigsResource>) -> Vec<DescribeConfigsResult> {
    let request = DescribeConfigsRequest::default()
        .with_resources(resources)
        .with_include_synonyms(true)
        .with_include_documentation(version >= 3);
    client.call(version, request).results
}

fn resource(resource_type: i8, name: &str, keys: Option<&[&str]>) -> DescribeConfigsResource {
    DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(string(name))
        .with_configuration_keys(keys.map(|keys| keys.iter().map(|k| string(k)).collect()))
}

/// (value, source) of one config in a DescribeConfigs result.
fn config_value(result: &DescribeConfigsResult, name: &str) -> (String, i8) {
    let entry = result.configs.iter().find(|c| c.name.as_str() == name);
    let entry = entry.unwrap_or_else(|| panic!("{name} not described for {}", result.resource_name.as_str()));
    (entry.value.as_ref().map(|v| v.to_string()).unwrap_or_default(), entry.config_source)
}

fn describe_configs(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let results = describe(
        &mut client,
        version,
        vec![
            resource(RESOURCE_TOPIC, DATA_TOPIC, None),
            resource(RESOURCE_TOPIC, CONFIGURED_TOPIC, Some(&["retention.ms", "cleanup.policy"])),
            resource(RESOURCE_TOPIC, MISSING_TOPIC, None),
            resource(RESOURCE_BROKER, &NODE_ID.to_string(), None),
        ],
    );
    assert_eq!(results.len(), 4);
    let data = &results[0];
    assert_eq!((data.error_code, data.resource_type, data.resource_name.as_str()), (NONE, RESOURCE_TOPIC, DATA_TOPIC));
    let names: Vec<&str> = data.configs.iter().map(|c| c.name.as_str()).collect();
    let covered: Vec<&str> = sluice_broker::TOPIC_CONFIG_KEYS.iter().map(|k| k.name).collect();
    assert_eq!(names, covered, "every covered key, in order");
    for (entry, key) in data.configs.iter().zip(sluice_broker::TOPIC_CONFIG_KEYS) {
        assert_eq!(entry.value.as_ref().map(|v| v.as_str()), Some(key.default), "{}", key.name);
        assert_eq!(entry.config_source, SOURCE_DEFAULT_CONFIG, "{}", key.name);
        assert!(!entry.read_only);
        assert_eq!(entry.synonyms.len(), 1, "include_synonyms: the value's own source");
        // Kafka protocol: DescribeConfigs v3 adds config_type and documentation.
        assert_eq!(entry.config_type != 0, version >= 3, "{} config_type", key.name);
        let documented = entry.documentation.as_ref().is_some_and(|d| !d.is_empty());
        assert_eq!(documented, version >= 3, "{} documentation", key.name);
    }
    let configured = &results[1];
    assert_eq!(configured.error_code, NONE);
    assert_eq!(configured.configs.len(), 2, "only the keys asked for");
    assert_eq!(config_value(configured, "retention.ms"), (CONFIGURED_RETENTION_MS.to_string(), SOURCE_TOPIC_CONFIG));
    assert_eq!(config_value(configured, "cleanup.policy"), ("compact".to_string(), SOURCE_TOPIC_CONFIG));
    assert_eq!(results[2].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert!(results[2].configs.is_empty());
    let broker = &results[3];
    assert_eq!(broker.error_code, NONE);
    assert_eq!(config_value(broker, "num.partitions"), (PARTITIONS.to_string(), SOURCE_STATIC_BROKER_CONFIG));
    assert!(broker.configs.iter().all(|c| c.read_only), "broker configs are static");
}

// ---------------------------------------------------------------------------------------------
// AlterConfigs (0-2)

fn alter_configs(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let altered = format!("ac-v{version}");
    let untouched = format!("ac-v{version}-untouched");
    client.create_topic_ok(&altered, 1, &[("segment.ms", "3600000")]);
    client.create_topic_ok(&untouched, 1, &[("retention.ms", "1000")]);
    let set = |resource_type: i8, name: &str, configs: &[(&str, &str)]| {
        AlterConfigsResource::default().with_resource_type(resource_type).with_resource_name(string(name)).with_configs(
            configs
                .iter()
                .map(|(k, v)| AlterableConfig::default().with_name(string(k)).with_value(Some(string(v))))
                .collect(),
        )
    };
    let request = AlterConfigsRequest::default().with_resources(vec![
        // Legacy AlterConfigs replaces the whole set of overrides: segment.ms goes back to default.
        set(RESOURCE_TOPIC, &altered, &[("retention.ms", "86400000"), ("cleanup.policy", "compact")]),
        set(RESOURCE_TOPIC, &untouched, &[("retention.ms", "soon")]),
        set(RESOURCE_TOPIC, MISSING_TOPIC, &[("retention.ms", "1")]),
        set(RESOURCE_BROKER, &NODE_ID.to_string(), &[("num.partitions", "7")]),
    ]);
    let response = client.call(version, request);
    let codes: Vec<(String, i16)> =
        response.responses.iter().map(|r| (r.resource_name.to_string(), r.error_code)).collect();
    assert_eq!(
        codes,
        vec![
            (altered.clone(), NONE),
            (untouched.clone(), INVALID_CONFIG),
            (MISSING_TOPIC.to_string(), UNKNOWN_TOPIC_OR_PARTITION),
            (NODE_ID.to_string(), INVALID_REQUEST),
        ]
    );
    assert!(response.responses[1..].iter().all(|r| r.error_message.is_some()));
    let results = describe(
        &mut client,
        4,
        vec![resource(RESOURCE_TOPIC, &altered, None), resource(RESOURCE_TOPIC, &untouched, None)],
    );
    assert_eq!(config_value(&results[0], "retention.ms"), ("86400000".to_string(), SOURCE_TOPIC_CONFIG));
    assert_eq!(config_value(&results[0], "cleanup.policy"), ("compact".to_string(), SOURCE_TOPIC_CONFIG));
    assert_eq!(config_value(&results[0], "segment.ms"), ("604800000".to_string(), SOURCE_DEFAULT_CONFIG));
    assert_eq!(config_value(&results[1], "retention.ms"), ("1000".to_string(), SOURCE_TOPIC_CONFIG), "unchanged");
}

// ---------------------------------------------------------------------------------------------
// CreatePartitions (0-3)

fn create_partitions(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let grown = format!("cp-v{version}");
    client.create_topic_ok(&grown, 1, &[]);
    let to = |name: &str, count: i32| CreatePartitionsTopic::default().with_name(topic(name)).with_count(count);
    let request = CreatePartitionsRequest::default().with_timeout_ms(5000).with_topics(vec![
        to(&grown, 3),
        to(MISSING_TOPIC, 2),
        to(DATA_TOPIC, PARTITIONS - 1),
    ]);
    let response = client.call(version, request);
    let codes: Vec<(String, i16, bool)> =
        response.results.iter().map(|r| (r.name.0.to_string(), r.error_code, r.error_message.is_some())).collect();
    assert_eq!(
        codes,
        vec![
            (grown.clone(), NONE, false),
            (MISSING_TOPIC.to_string(), UNKNOWN_TOPIC_OR_PARTITION, true),
            // Kafka refuses to shrink a topic.
            (DATA_TOPIC.to_string(), INVALID_PARTITIONS, true),
        ]
    );
    assert_eq!(client.metadata(&[&grown]).topics[0].partitions.len(), 3);
    assert_eq!(client.metadata(&[DATA_TOPIC]).topics[0].partitions.len(), PARTITIONS as usize);
    assert_eq!(client.produce_ok(&grown, 2, &["in a new partition"]), 0);
}

// ---------------------------------------------------------------------------------------------
// IncrementalAlterConfigs (0-1)

fn incremental_alter_configs(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let altered = format!("iac-v{version}");
    let untouched = format!("iac-v{version}-untouched");
    client.create_topic_ok(&altered, 1, &[("segment.ms", "3600000")]);
    client.create_topic_ok(&untouched, 1, &[]);
    // KIP-339 operations.
    const SET: i8 = 0;
    const APPEND: i8 = 2;
    let change = |resource_type: i8, name: &str, changes: &[(&str, i8, &str)]| {
        IncrementalResource::default().with_resource_type(resource_type).with_resource_name(string(name)).with_configs(
            changes
                .iter()
                .map(|(k, op, v)| {
                    IncrementalConfig::default()
                        .with_name(string(k))
                        .with_config_operation(*op)
                        .with_value(Some(string(v)))
                })
                .collect(),
        )
    };
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        change(RESOURCE_TOPIC, &altered, &[("retention.ms", SET, "7200000"), ("cleanup.policy", APPEND, "compact")]),
        change(RESOURCE_TOPIC, &untouched, &[("no.such.config", SET, "1")]),
        change(RESOURCE_TOPIC, MISSING_TOPIC, &[("retention.ms", SET, "1")]),
    ]);
    let response = client.call(version, request);
    let codes: Vec<(String, i16)> =
        response.responses.iter().map(|r| (r.resource_name.to_string(), r.error_code)).collect();
    assert_eq!(
        codes,
        vec![
            (altered.clone(), NONE),
            (untouched.clone(), INVALID_CONFIG),
            (MISSING_TOPIC.to_string(), UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
    let results = describe(&mut client, 4, vec![resource(RESOURCE_TOPIC, &altered, None)]);
    assert_eq!(config_value(&results[0], "retention.ms"), ("7200000".to_string(), SOURCE_TOPIC_CONFIG));
    assert_eq!(config_value(&results[0], "cleanup.policy"), ("delete,compact".to_string(), SOURCE_TOPIC_CONFIG));
    // Unlike AlterConfigs, the other overrides stay.
    assert_eq!(config_value(&results[0], "segment.ms"), ("3600000".to_string(), SOURCE_TOPIC_CONFIG));
}

// ---------------------------------------------------------------------------------------------
// DescribeCluster (0-1)

fn describe_cluster(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let mut request = DescribeClusterRequest::default();
    if version >= 1 {
        request.endpoint_type = 1; // KIP-919 (v1): brokers
    }
    let response = client.call(version, request);
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.cluster_id.as_str(), matrix.cluster_id, "the cluster id Metadata reports");
    assert_eq!(response.controller_id, BrokerId(NODE_ID));
    assert_eq!(response.endpoint_type, 1);
    let brokers: Vec<(i32, String, i32)> =
        response.brokers.iter().map(|b| (b.broker_id.0, b.host.to_string(), b.port)).collect();
    assert_eq!(brokers, vec![(NODE_ID, "127.0.0.1".to_string(), i32::from(matrix.broker.addr().port()))]);
}

// ---------------------------------------------------------------------------------------------
// ElectLeaders (0-2): on one node the only replica is the preferred one and leads.

fn elect_leaders(matrix: &Matrix, version: i16) {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    let mut client = matrix.broker.client();
    let wanted = vec![
        TopicPartitions::default().with_topic(topic(DATA_TOPIC)).with_partitions(vec![0, PARTITIONS]),
        TopicPartitions::default().with_topic(topic(MISSING_TOPIC)).with_partitions(vec![0]),
    ];
    let request = ElectLeadersRequest::default().with_topic_partitions(Some(wanted)).with_timeout_ms(5000);
    let response = client.call(version, request);
    assert_eq!(response.error_code, NONE);
    let codes: Vec<(String, i32, i16)> = response
        .replica_election_results
        .iter()
        .flat_map(|t| t.partition_result.iter().map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code)))
        .collect();
    assert_eq!(
        codes,
        vec![
            (DATA_TOPIC.to_string(), 0, 84), // ELECTION_NOT_NEEDED
            (DATA_TOPIC.to_string(), PARTITIONS, UNKNOWN_TOPIC_OR_PARTITION),
            (MISSING_TOPIC.to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// AlterPartitionReassignments (0-1) and ListPartitionReassignments (0): on one node the only
// replica set is this broker; nothing is ever in progress.

fn alter_partition_reassignments(matrix: &Matrix, version: i16) {
    use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
    let mut client = matrix.broker.client();
    let partitions = vec![
        ReassignablePartition::default().with_partition_index(0).with_replicas(Some(vec![BrokerId(NODE_ID)])),
        ReassignablePartition::default().with_partition_index(1).with_replicas(Some(vec![BrokerId(NODE_ID + 1)])),
        ReassignablePartition::default().with_partition_index(2).with_replicas(None),
        ReassignablePartition::default().with_partition_index(PARTITIONS).with_replicas(None),
    ];
    let topics = vec![ReassignableTopic::default().with_name(topic(DATA_TOPIC)).with_partitions(partitions)];
    let request = AlterPartitionReassignmentsRequest::default().with_topics(topics).with_timeout_ms(5000);
    let response = client.call(version, request);
    assert_eq!(response.error_code, NONE);
    let codes: Vec<(i32, i16)> = response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.error_code)))
        .collect();
    assert_eq!(
        codes,
        vec![
            (0, NONE),
            (1, 39), // INVALID_REPLICA_ASSIGNMENT
            (2, 85), // NO_REASSIGNMENT_IN_PROGRESS
            (PARTITIONS, UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
}

fn list_partition_reassignments(matrix: &Matrix, version: i16) {
    let mut client = matrix.broker.client();
    let response = client.call(version, ListPartitionReassignmentsRequest::default().with_timeout_ms(5000));
    assert_eq!(response.error_code, NONE);
    assert!(response.topics.is_empty(), "nothing moves on one node");
}

// ---------------------------------------------------------------------------------------------
// KIP-511: ApiVersions at a version the broker does not know.

/// A flexible ApiVersions request body (v3+ layout): client software name and version as
/// compact strings, then no tagged fields.
fn api_versions_body() -> Vec<u8> {
    let mut body = Vec::new();
    for text in ["sluice-broker-tests", "0.1.0"] {
        body.push(text.len() as u8 + 1); // compact string: varint length + 1
        body.extend_from_slice(text.as_bytes());
    }
    body.push(0); // no tagged fields
    body
}

#[test]
fn api_versions_at_an_unknown_version_falls_back_to_v0_with_unsupported_version() {
    let broker = TestBroker::start(|_| {});
    let mut client = broker.client();
    for (correlation_id, version) in [(41, 5i16), (42, 127)] {
        // KIP-511: the client does not know which header the broker expects, so it sends its
        // newest; the broker answers in the v0 format (header v0, body v0) with
        // UNSUPPORTED_VERSION and its own ranges, so the client can retry at a version both know.
        client.write_raw(&raw_frame(ApiKey::ApiVersions as i16, version, correlation_id, true, &api_versions_body()));
        let frame = client.read_frame(REQUEST_TIMEOUT).unwrap_or_else(|e| panic!("ApiVersions v{version}: {e}"));
        let mut buf = frame;
        let header = kafka_protocol::messages::ResponseHeader::decode(&mut buf, 0).expect("response header v0");
        assert_eq!(header.correlation_id, correlation_id);
        let response = ApiVersionsResponse::decode(&mut buf, 0).expect("ApiVersions v0 body");
        assert!(bytes::Buf::remaining(&buf) == 0, "nothing after the v0 body");
        assert_eq!(response.error_code, UNSUPPORTED_VERSION);
        check_api_keys(&response);
    }
    // The connection stays usable: the client retries at a version the broker advertised.
    let retried = client.call(3, ApiVersionsRequest::default());
    assert_eq!(retried.error_code, NONE);
    check_api_keys(&retried);
}
