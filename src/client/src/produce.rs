//! Produce: assign records to partitions (explicit, Kafka's murmur2 key partitioner, or
//! round-robin for records without a key), pack each partition's records into RecordBatch v2
//! batches with `sluice_protocol::records`, and send them to each partition's leader.
//!
//! Kafka rule (Produce v3+): one batch per partition per request, so a partition with several
//! batches takes several rounds. A batch rejected because the layout changed (the broker is not
//! the leader, the partition is not known yet) was not appended, so it is retried after a
//! Metadata refresh, at most [`PRODUCE_ATTEMPTS_MAX`] times; any other error is reported.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::{
    ProduceRequest, ProduceResponse, TopicName,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::partitioner::partition_for_key;
use sluice_protocol::records::{BatchOptions, Record, encode_batch};
use sluice_types::{Compression, NodeId, Offset, PartitionId, ProducerEpoch, ProducerId, Sequence};

use crate::client::{Client, Target, is_stale_layout};
use crate::error::{ClientError, KafkaError, Result};
use crate::idempotent::ProducerIdentity;

/// Most records in one batch.
pub const PRODUCE_BATCH_RECORDS_MAX: usize = 10_000;
/// Most key, value and header bytes in one batch before compression: half of Kafka's default
/// `max.message.bytes` (1 MiB), leaving room for framing. A larger single record goes alone.
pub const PRODUCE_BATCH_BYTES_MAX: usize = 512 * 1024;
/// Attempts per batch when the partition layout is stale.
pub const PRODUCE_ATTEMPTS_MAX: u32 = 5;
/// Pause before retrying after a stale layout (a new leader may still be elected).
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// How long the broker may wait for acks=all replication (the request's `timeout_ms`).
const PRODUCE_BROKER_TIMEOUT: Duration = Duration::from_secs(30);

/// A record to produce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProduceRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// CreateTime in ms since the epoch; the wall clock when `None`.
    pub timestamp_ms: Option<i64>,
}

/// When the broker acknowledges (Kafka producer `acks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// 0: no response at all; offsets are unknown.
    None,
    /// 1: after the leader appends.
    Leader,
    /// -1 (`all`): after every in-sync replica has the batch.
    All,
}

impl Acks {
    pub fn code(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// How to produce. `Default`: acks=all, no compression, partition by key or round-robin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProduceOptions {
    pub acks: Acks,
    pub compression: Compression,
    /// Send every record to this partition instead of choosing one.
    pub partition: Option<PartitionId>,
}

impl Default for ProduceOptions {
    fn default() -> Self {
        ProduceOptions { acks: Acks::All, compression: Compression::None, partition: None }
    }
}

/// What happened to the records sent to one partition. Invariant: `base_offset` is the offset
/// of the first acknowledged batch, `None` with acks=0 or when the first batch failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionProduceResult {
    pub partition: PartitionId,
    pub record_count: u64,
    pub base_offset: Option<Offset>,
    /// The first error; batches after a failed one are not sent.
    pub error: Option<KafkaError>,
}

/// One encoded batch waiting to be sent.
pub(crate) struct PendingBatch {
    pub(crate) batch: Bytes,
    pub(crate) record_count: u64,
    pub(crate) attempts: u32,
}

impl Client {
    /// Produces `records` to `topic` and returns one result per partition written to, sorted by
    /// partition. Fails as a whole only for transport or encoding errors and unknown topics.
    pub async fn produce(
        &mut self,
        topic: &str,
        records: Vec<ProduceRecord>,
        options: &ProduceOptions,
    ) -> Result<Vec<PartitionProduceResult>> {
        let layout = self.topic_layout(topic).await?;
        let partition_count = i32::try_from(layout.partitions.len()).expect("partition count");
        if partition_count == 0 {
            return Err(ClientError::InvalidArgument(format!("topic {topic} has no partitions")));
        }
        if let Some(partition) = options.partition
            && !(0..partition_count).contains(&partition.0)
        {
            let detail = format!("partition {partition} out of range for {topic}");
            return Err(ClientError::InvalidArgument(detail));
        }
        let by_partition = self.assign_partitions(records, options.partition, partition_count);
        let mut queues: BTreeMap<PartitionId, VecDeque<PendingBatch>> = BTreeMap::new();
        let mut results: BTreeMap<PartitionId, PartitionProduceResult> = BTreeMap::new();
        for (partition, records) in by_partition {
            let batches = encode_batches(records, options.compression)?;
            let record_count = batches.iter().map(|batch| batch.record_count).sum();
            results
                .insert(partition, PartitionProduceResult { partition, record_count, base_offset: None, error: None });
            queues.insert(partition, batches);
        }
        // Bounded: every round removes a batch from some queue or counts an attempt against it.
        while queues.values().any(|queue| !queue.is_empty()) {
            self.produce_round(topic, options.acks, &mut queues, &mut results).await?;
        }
        Ok(results.into_values().collect())
    }

    fn assign_partitions(
        &mut self,
        records: Vec<ProduceRecord>,
        explicit: Option<PartitionId>,
        partition_count: i32,
    ) -> BTreeMap<PartitionId, Vec<ProduceRecord>> {
        let mut by_partition: BTreeMap<PartitionId, Vec<ProduceRecord>> = BTreeMap::new();
        for record in records {
            let partition = match (explicit, &record.key) {
                (Some(partition), _) => partition,
                (None, Some(key)) => partition_for_key(key, partition_count),
                (None, None) => {
                    let next = self.round_robin_next;
                    self.round_robin_next = next.wrapping_add(1);
                    PartitionId((next % partition_count as u32) as i32)
                }
            };
            by_partition.entry(partition).or_default().push(record);
        }
        by_partition
    }

    /// Sends the head batch of every non-empty queue, one request per leader, and records the
    /// outcomes: success pops the batch, a stale layout keeps it for a retry, any other error
    /// drops the partition's remaining batches.
    pub(crate) async fn produce_round(
        &mut self,
        topic: &str,
        acks: Acks,
        queues: &mut BTreeMap<PartitionId, VecDeque<PendingBatch>>,
        results: &mut BTreeMap<PartitionId, PartitionProduceResult>,
    ) -> Result<()> {
        let mut by_leader: BTreeMap<NodeId, Vec<(PartitionId, Bytes)>> = BTreeMap::new();
        let mut leaderless: Vec<(PartitionId, i16)> = Vec::new();
        for (partition, queue) in queues.iter() {
            let Some(head) = queue.front() else { continue };
            match self.leader_of(topic, *partition).await {
                Ok(leader) => {
                    by_leader.entry(leader).or_default().push((*partition, head.batch.clone()));
                }
                Err(ClientError::Kafka { error, .. }) if is_stale_layout(error.code) => {
                    leaderless.push((*partition, error.code));
                }
                Err(error) => return Err(error),
            }
        }
        let mut stale = false;
        for (partition, code) in leaderless {
            let queue = queues.get_mut(&partition).expect("queued");
            let result = results.get_mut(&partition).expect("a result per queue");
            stale |= apply_outcome(queue, result, code, -1, None);
        }
        for (leader, batches) in by_leader {
            let partitions: Vec<PartitionId> = batches.iter().map(|(p, _)| *p).collect();
            let request = produce_request(topic, acks, batches);
            if acks == Acks::None {
                self.send_only(Target::Node(leader), |_| request).await?;
                for partition in partitions {
                    queues.get_mut(&partition).expect("queued").pop_front();
                }
                continue;
            }
            let wait = PRODUCE_BROKER_TIMEOUT;
            let (_, response) = self.call(Target::Node(leader), wait, |_| request).await?;
            for (partition, code, base_offset, message) in partition_outcomes(&response) {
                let Some(queue) = queues.get_mut(&partition) else {
                    continue;
                };
                let result = results.get_mut(&partition).expect("a result per queue");
                stale |= apply_outcome(queue, result, code, base_offset, message);
            }
        }
        if stale {
            self.invalidate_topic(topic);
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
        Ok(())
    }
}

/// Applies one partition's answer to its queue and result; returns whether the layout is stale.
fn apply_outcome(
    queue: &mut VecDeque<PendingBatch>,
    result: &mut PartitionProduceResult,
    code: i16,
    base_offset: i64,
    message: Option<String>,
) -> bool {
    let Some(head) = queue.front_mut() else {
        return false;
    };
    head.attempts += 1;
    if code == 0 {
        queue.pop_front();
        result.base_offset.get_or_insert(Offset(base_offset));
        return false;
    }
    let error = KafkaError { code, message };
    if is_stale_layout(code) && head.attempts < PRODUCE_ATTEMPTS_MAX {
        tracing::debug!(%error, partition = %result.partition, "retrying batch");
        return true;
    }
    result.error = Some(error);
    queue.clear();
    false
}

fn produce_request(topic: &str, acks: Acks, batches: Vec<(PartitionId, Bytes)>) -> ProduceRequest {
    let partition_data = batches
        .into_iter()
        .map(|(partition, batch)| PartitionProduceData::default().with_index(partition.0).with_records(Some(batch)))
        .collect();
    let topic_data = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partition_data(partition_data);
    ProduceRequest::default()
        .with_acks(acks.code())
        .with_timeout_ms(PRODUCE_BROKER_TIMEOUT.as_millis() as i32)
        .with_topic_data(vec![topic_data])
}

/// `(partition, error code, base offset, error message)` for every partition in the answer.
fn partition_outcomes(response: &ProduceResponse) -> Vec<(PartitionId, i16, i64, Option<String>)> {
    let partitions = response.responses.iter().flat_map(|topic| &topic.partition_responses);
    partitions
        .map(|partition| {
            let message = partition.error_message.as_ref().map(ToString::to_string);
            (PartitionId(partition.index), partition.error_code, partition.base_offset, message)
        })
        .collect()
}

/// Splits one partition's records into batches within the batch limits.
fn encode_batches(records: Vec<ProduceRecord>, compression: Compression) -> Result<VecDeque<PendingBatch>> {
    let mut batches = VecDeque::new();
    let mut chunk: Vec<ProduceRecord> = Vec::new();
    let mut chunk_bytes = 0;
    for record in records {
        let record_bytes = record_size(&record);
        let full = chunk.len() >= PRODUCE_BATCH_RECORDS_MAX || chunk_bytes + record_bytes > PRODUCE_BATCH_BYTES_MAX;
        if full && !chunk.is_empty() {
            batches.push_back(encode_chunk(std::mem::take(&mut chunk), compression, None)?);
            chunk_bytes = 0;
        }
        chunk_bytes += record_bytes;
        chunk.push(record);
    }
    if !chunk.is_empty() {
        batches.push_back(encode_chunk(chunk, compression, None)?);
    }
    Ok(batches)
}

fn record_size(record: &ProduceRecord) -> usize {
    let headers: usize =
        record.headers.iter().map(|(key, value)| key.len() + value.as_ref().map_or(0, Bytes::len)).sum();
    record.key.as_ref().map_or(0, Bytes::len) + record.value.as_ref().map_or(0, Bytes::len) + headers
}

/// Encodes one batch; `sequenced` stamps an idempotent producer's identity and base sequence
/// (KIP-98), otherwise the batch carries none (producer id -1).
pub(crate) fn encode_chunk(
    chunk: Vec<ProduceRecord>,
    compression: Compression,
    sequenced: Option<(ProducerIdentity, i32)>,
) -> Result<PendingBatch> {
    let now_ms = wall_clock_ms();
    let base_timestamp = chunk[0].timestamp_ms.unwrap_or(now_ms);
    let record_count = chunk.len() as u64;
    let records: Vec<Record> = chunk
        .into_iter()
        .enumerate()
        .map(|(index, record)| Record {
            offset_delta: i32::try_from(index).expect("at most PRODUCE_BATCH_RECORDS_MAX"),
            timestamp_delta: record.timestamp_ms.unwrap_or(now_ms).wrapping_sub(base_timestamp),
            key: record.key,
            value: record.value,
            headers: record.headers,
        })
        .collect();
    let mut options = BatchOptions { base_timestamp, ..BatchOptions::default() };
    if let Some((identity, base_sequence)) = sequenced {
        options.producer_id = ProducerId(identity.producer_id);
        options.producer_epoch = ProducerEpoch(identity.producer_epoch);
        options.base_sequence = Sequence(base_sequence);
    }
    let batch = encode_batch(&records, compression, &options).map_err(ClientError::Encoding)?;
    Ok(PendingBatch { batch, record_count, attempts: 0 })
}

/// Wall-clock time to stamp records (CreateTime); never used for timeouts.
fn wall_clock_ms() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::records::decode_batch;

    fn record(value: &str) -> ProduceRecord {
        ProduceRecord { value: Some(Bytes::copy_from_slice(value.as_bytes())), ..Default::default() }
    }

    #[test]
    fn batches_split_at_the_byte_limit_and_number_records_from_zero() {
        let big = "x".repeat(PRODUCE_BATCH_BYTES_MAX / 2 + 1);
        let records = vec![record(&big), record(&big), record("small"), record(&big)];
        let batches = encode_batches(records, Compression::Lz4).unwrap();
        let counts: Vec<u64> = batches.iter().map(|batch| batch.record_count).collect();
        assert_eq!(counts, [1, 2, 1]);
        let (header, decoded) = decode_batch(&batches[1].batch, 1 << 24).unwrap();
        assert_eq!(header.record_count, 2);
        assert_eq!(decoded[1].offset_delta, 1);
        assert_eq!(decoded[1].value.as_deref(), Some(&b"small"[..]));
    }

    #[test]
    fn stale_layout_is_retried_then_reported() {
        let mut queue = encode_batches(vec![record("a")], Compression::None).unwrap();
        let mut result =
            PartitionProduceResult { partition: PartitionId(0), record_count: 1, base_offset: None, error: None };
        for _ in 1..PRODUCE_ATTEMPTS_MAX {
            assert!(apply_outcome(&mut queue, &mut result, 6, -1, None));
        }
        assert!(!apply_outcome(&mut queue, &mut result, 6, -1, None));
        assert!(queue.is_empty());
        assert_eq!(result.error.as_ref().map(KafkaError::name).as_deref(), Some("NOT_LEADER_OR_FOLLOWER"));
    }
}
