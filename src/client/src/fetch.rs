//! Fetch and ListOffsets: read records from partition leaders, and find the offsets to read
//! from (earliest, latest, or the first at or after a timestamp).
//!
//! Reading rules (Kafka protocol: Fetch; KIP-74; KIP-98): a fetch returns whole batches, so the
//! first batch may start before the requested offset (records before it are dropped here) and
//! the last may be cut at the byte limit (skipped, re-read next time); control batches
//! (transaction markers, Sluice's Raft entries) take offsets but hold no user records, so they
//! advance the position and are never returned. This client reads uncommitted (isolation level
//! 0): it does not filter aborted transactions.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    FetchRequest, ListOffsetsRequest, TopicName,
    fetch_request::{FetchPartition, FetchTopic},
    fetch_response::PartitionData,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::records::decode_batches;
use sluice_types::{NodeId, Offset, PartitionId, TimestampType};

use crate::client::{Client, LEADER_NOT_AVAILABLE, Target, is_stale_layout};
use crate::error::{ClientError, KafkaError, Result};

/// Kafka's default `fetch.max.wait.ms`.
pub const FETCH_MAX_WAIT_DEFAULT: Duration = Duration::from_millis(500);
/// Kafka's default `fetch.max.bytes` (50 MiB); below the connection's response frame limit.
pub const FETCH_MAX_BYTES_DEFAULT: i32 = 50 * 1024 * 1024;
/// Kafka's default `max.partition.fetch.bytes` (1 MiB).
pub const FETCH_PARTITION_MAX_BYTES_DEFAULT: i32 = 1024 * 1024;
/// Most bytes one fetched batch may decompress to: a bound against decompression bombs.
pub const BATCH_RECORDS_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Kafka protocol: ListOffsets special timestamps.
const LIST_OFFSETS_LATEST: i64 = -1;
const LIST_OFFSETS_EARLIEST: i64 = -2;
/// Kafka protocol: a consumer's `replica_id` (not a follower broker).
const CONSUMER_REPLICA_ID: i32 = -1;

/// How to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    /// How long the broker may wait for `min_bytes` (long poll).
    pub max_wait: Duration,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_wait: FETCH_MAX_WAIT_DEFAULT,
            min_bytes: 1,
            max_bytes: FETCH_MAX_BYTES_DEFAULT,
            partition_max_bytes: FETCH_PARTITION_MAX_BYTES_DEFAULT,
        }
    }
}

/// One record as a consumer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub partition: PartitionId,
    pub offset: Offset,
    pub timestamp_ms: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// What one partition returned. Invariant: `records` are in offset order, all at or after the
/// requested offset and below `next_offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedPartition {
    pub partition: PartitionId,
    pub error: Option<KafkaError>,
    pub high_watermark: Offset,
    pub last_stable_offset: Offset,
    pub log_start_offset: Offset,
    pub records: Vec<ConsumerRecord>,
    /// Where the next fetch of this partition should start.
    pub next_offset: Offset,
}

/// Which offset ListOffsets should find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (the high watermark for consumers).
    Latest,
    /// The first offset whose timestamp is at or after this one (ms).
    Timestamp(i64),
}

/// A ListOffsets answer for one partition. `offset` is `None` when no record is at or after
/// the requested timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    pub partition: PartitionId,
    pub offset: Option<Offset>,
    pub timestamp_ms: i64,
    pub error: Option<KafkaError>,
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

impl Client {
    /// Fetches `topic` from each `(partition, offset)`, asking each partition's leader. Returns
    /// one result per requested partition, sorted by partition.
    pub async fn fetch(
        &mut self,
        topic: &str,
        positions: &[(PartitionId, Offset)],
        options: &FetchOptions,
    ) -> Result<Vec<FetchedPartition>> {
        let requested: BTreeMap<PartitionId, Offset> = positions.iter().copied().collect();
        let (by_leader, mut fetched) = self.group_by_leader(topic, &requested).await?;
        for (leader, partitions) in by_leader {
            let request = fetch_request(topic, &partitions, &requested, options);
            let (_, response) = self.call(Target::Node(leader), options.max_wait, |_| request).await?;
            if let Some(error) = KafkaError::from_code(response.error_code, None) {
                return Err(ClientError::Kafka { context: format!("Fetch {topic}"), error });
            }
            let answers = response.responses.iter().flat_map(|topic| &topic.partitions);
            for data in answers {
                let partition = PartitionId(data.partition_index);
                let Some(offset) = requested.get(&partition) else {
                    continue;
                };
                fetched.push(fetched_partition(topic, data, *offset)?);
            }
        }
        if fetched.iter().any(|part| part.error.as_ref().is_some_and(|e| is_stale_layout(e.code))) {
            self.invalidate_topic(topic);
        }
        fetched.sort_by_key(|part| part.partition);
        Ok(fetched)
    }

    /// Groups partitions by leader; partitions without a known leader get an error result.
    async fn group_by_leader(
        &mut self,
        topic: &str,
        partitions: &BTreeMap<PartitionId, Offset>,
    ) -> Result<(BTreeMap<NodeId, Vec<PartitionId>>, Vec<FetchedPartition>)> {
        let mut by_leader: BTreeMap<NodeId, Vec<PartitionId>> = BTreeMap::new();
        let mut leaderless = Vec::new();
        for (partition, offset) in partitions {
            match self.leader_of(topic, *partition).await {
                Ok(leader) => by_leader.entry(leader).or_default().push(*partition),
                Err(ClientError::Kafka { error, .. }) if error.code == LEADER_NOT_AVAILABLE => {
                    leaderless.push(FetchedPartition {
                        partition: *partition,
                        error: Some(error),
                        high_watermark: Offset(-1),
                        last_stable_offset: Offset(-1),
                        log_start_offset: Offset(-1),
                        records: Vec::new(),
                        next_offset: *offset,
                    });
                }
                Err(error) => return Err(error),
            }
        }
        Ok((by_leader, leaderless))
    }

    /// ListOffsets for `partitions` of `topic`, asking each partition's leader.
    pub async fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[PartitionId],
        spec: OffsetSpec,
    ) -> Result<Vec<ListedOffset>> {
        let timestamp = match spec {
            OffsetSpec::Earliest => LIST_OFFSETS_EARLIEST,
            OffsetSpec::Latest => LIST_OFFSETS_LATEST,
            OffsetSpec::Timestamp(timestamp_ms) => timestamp_ms,
        };
        let mut by_leader: BTreeMap<NodeId, Vec<PartitionId>> = BTreeMap::new();
        for partition in partitions {
            let leader = self.leader_of(topic, *partition).await?;
            by_leader.entry(leader).or_default().push(*partition);
        }
        let mut listed = Vec::new();
        for (leader, partitions) in by_leader {
            let request = list_offsets_request(topic, &partitions, timestamp);
            let (_, response) = self.call(Target::Node(leader), Duration::ZERO, |_| request).await?;
            let answers = response.topics.iter().flat_map(|topic| &topic.partitions);
            listed.extend(answers.map(|answer| ListedOffset {
                partition: PartitionId(answer.partition_index),
                offset: (answer.offset >= 0).then_some(Offset(answer.offset)),
                timestamp_ms: answer.timestamp,
                error: KafkaError::from_code(answer.error_code, None),
            }));
        }
        if listed.iter().any(|answer| answer.error.as_ref().is_some_and(|e| is_stale_layout(e.code))) {
            self.invalidate_topic(topic);
        }
        listed.sort_by_key(|answer| answer.partition);
        Ok(listed)
    }
}

fn fetch_request(
    topic: &str,
    partitions: &[PartitionId],
    offsets: &BTreeMap<PartitionId, Offset>,
    options: &FetchOptions,
) -> FetchRequest {
    let partitions = partitions
        .iter()
        .map(|partition| {
            FetchPartition::default()
                .with_partition(partition.0)
                .with_fetch_offset(offsets[partition].0)
                .with_partition_max_bytes(options.partition_max_bytes)
        })
        .collect();
    let topic = FetchTopic::default().with_topic(topic_name(topic)).with_partitions(partitions);
    FetchRequest::default()
        .with_replica_id(CONSUMER_REPLICA_ID.into())
        .with_max_wait_ms(options.max_wait.as_millis().min(i32::MAX as u128) as i32)
        .with_min_bytes(options.min_bytes)
        .with_max_bytes(options.max_bytes)
        .with_topics(vec![topic])
}

fn list_offsets_request(topic: &str, partitions: &[PartitionId], timestamp: i64) -> ListOffsetsRequest {
    let partitions = partitions
        .iter()
        .map(|partition| ListOffsetsPartition::default().with_partition_index(partition.0).with_timestamp(timestamp))
        .collect();
    let topic = ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(partitions);
    ListOffsetsRequest::default().with_replica_id(CONSUMER_REPLICA_ID.into()).with_topics(vec![topic])
}

/// Decodes one partition's answer, keeping records at or after `fetch_offset`.
fn fetched_partition(topic: &str, data: &PartitionData, fetch_offset: Offset) -> Result<FetchedPartition> {
    let partition = PartitionId(data.partition_index);
    let mut records = Vec::new();
    let mut next_offset = fetch_offset;
    let raw = data.records.clone().unwrap_or_default();
    let batches = decode_batches(&raw, BATCH_RECORDS_BYTES_MAX).map_err(|source| ClientError::Records {
        topic: topic.to_owned(),
        partition: partition.0,
        source,
    })?;
    for (header, batch_records) in batches {
        next_offset = next_offset.max(header.next_offset());
        if header.is_control() {
            continue;
        }
        for record in batch_records {
            let offset = record.offset(&header);
            if offset < fetch_offset {
                continue;
            }
            records.push(ConsumerRecord {
                partition,
                offset,
                timestamp_ms: record.timestamp(&header),
                timestamp_type: header.timestamp_type(),
                key: record.key,
                value: record.value,
                headers: record.headers,
            });
        }
    }
    Ok(FetchedPartition {
        partition,
        error: KafkaError::from_code(data.error_code, None),
        high_watermark: Offset(data.high_watermark),
        last_stable_offset: Offset(data.last_stable_offset),
        log_start_offset: Offset(data.log_start_offset),
        records,
        next_offset,
    })
}
