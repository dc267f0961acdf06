//! Produce (3-11): validate, append in arrival order, then answer per `acks`.
//!
//! - acks=0: append and send no response at all (Kafka protocol: ProduceRequest `acks`).
//! - acks=1: answer once the leader appended.
//! - acks=-1 (all): answer once the batch is committed: below the high watermark, which on one
//!   node with the default `flush.messages=1` means fsynced (group commit, `flusher.rs`).
//!
//! Validation per partition, in Kafka's order: exactly one v2 batch (INVALID_RECORD otherwise),
//! size within `max.message.bytes` (MESSAGE_TOO_LARGE), CRC and every record well formed
//! (CORRUPT_MESSAGE), no producer-written control batch (INVALID_RECORD), idempotence checks in
//! storage (KIP-98). A topic whose `compression.type` names a codec gets the batch recompressed.

use super::topic_name;
use crate::dispatch::Reply;
use crate::handlers::metadata::auto_create;
use crate::limits::PRODUCE_TIMEOUT_MS_MAX;
use crate::partition::{Partition, SINGLE_NODE_LEADER_EPOCH, Watermarks};
use crate::state::BrokerState;
use crate::topics::Topic;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use sluice_protocol::records::{recompress, validate_records};
use sluice_storage::{AppendInfo, ProducerError, StorageError};
use sluice_types::{BatchError, BatchHeader, Offset, Term};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The most a producer batch may decompress to (decompression-bomb bound).
pub const RECORDS_DECOMPRESSED_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// Where one partition's answer stands after the append.
struct Outcome {
    response: PartitionProduceResponse,
    /// For acks=-1: what the answer waits for.
    wait: Option<Wait>,
}

struct Wait {
    /// The high watermark the batch needs.
    target: Offset,
    receiver: watch::Receiver<Watermarks>,
    /// Replicated: the leader epoch the batch was appended in.
    epoch: Option<Term>,
    appended_at: tokio::time::Instant,
}

pub async fn handle<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>, request: ProduceRequest, version: i16) -> Reply {
    let acks = request.acks;
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        let name = topic_data.name.0.to_string();
        let topic = match state.topics.get(&name) {
            Some(topic) => Some(topic),
            None if state.config.auto_create_topics => auto_create(state, &name).await.ok(),
            None => None,
        };
        let mut outcomes = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let outcome = if !matches!(acks, -1..=1) {
                failed(data.index, error_code::INVALID_REQUIRED_ACKS, "acks must be 0, 1 or -1", version)
            } else if request.transactional_id.is_some() {
                failed(data.index, error_code::INVALID_REQUEST, "transactions are not supported yet", version)
            } else {
                produce_partition(state, topic.as_deref(), data, acks, version).await
            };
            outcomes.push(outcome);
        }
        topics.push((name, outcomes));
    }
    if acks == 0 {
        // Kafka protocol: an acks=0 producer gets no response; on an error the broker closes
        // the connection so the producer notices and refreshes its metadata.
        let failed =
            topics.iter().any(|(_, outcomes)| outcomes.iter().any(|o| o.response.error_code != error_code::NONE));
        return if failed { Reply::Close } else { Reply::NoResponse };
    }
    let timeout = Duration::from_millis((request.timeout_ms.max(0) as u64).min(PRODUCE_TIMEOUT_MS_MAX));
    if topics.iter().all(|(_, outcomes)| outcomes.iter().all(|o| o.wait.is_none())) {
        return Reply::Ready(Box::new(respond(topics, version)));
    }
    Reply::Deferred(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        for (_, outcomes) in &mut topics {
            for outcome in outcomes.iter_mut() {
                let Some(wait) = outcome.wait.take() else { continue };
                let epoch = wait.epoch;
                let reached = wait_for_high_watermark(wait.receiver, wait.target, epoch);
                let committed = sluice_io::timeout_at(deadline, reached).await;
                if epoch.is_some() {
                    // Replication latency: the leader's append until a majority holds it.
                    metrics::histogram!("sluice_replication_commit_seconds")
                        .record(wait.appended_at.elapsed().as_secs_f64());
                }
                match committed {
                    Ok(true) => {}
                    // The leader changed before the batch committed: it may be lost, and the
                    // producer must retry against the new leader (Kafka answers the same).
                    Ok(false) if epoch.is_some() => outcome.response.error_code = error_code::NOT_LEADER_OR_FOLLOWER,
                    _ => outcome.response.error_code = error_code::REQUEST_TIMED_OUT,
                }
            }
        }
        respond(topics, version)
    }))
}

fn respond(topics: Vec<(String, Vec<Outcome>)>, _version: i16) -> ResponseKind {
    let mut response = ProduceResponse::default();
    response.responses = topics
        .into_iter()
        .map(|(name, outcomes)| {
            TopicProduceResponse::default()
                .with_name(topic_name(&name))
                .with_partition_responses(outcomes.into_iter().map(|o| o.response).collect())
        })
        .collect();
    ResponseKind::Produce(response)
}

/// Waits until the partition's high watermark reaches `target` (and, when `epoch` is given,
/// while the leader epoch stays `epoch`). False when the epoch moved first (a replicated
/// append may have been truncated) or the partition is gone.
pub(crate) async fn wait_for_high_watermark(
    mut receiver: watch::Receiver<Watermarks>,
    target: Offset,
    epoch: Option<Term>,
) -> bool {
    loop {
        let marks = *receiver.borrow_and_update();
        if epoch.is_some_and(|epoch| marks.leader_epoch != epoch) {
            return false;
        }
        if marks.high_watermark >= target {
            return true;
        }
        if receiver.changed().await.is_err() {
            return false;
        }
    }
}

fn failed(index: i32, code: i16, message: &str, version: i16) -> Outcome {
    let mut response = PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1);
    // error_message exists from v8 on; kafka-protocol refuses to encode it earlier.
    if version >= 8 {
        response.error_message = Some(StrBytes::from_string(message.to_string()));
    }
    Outcome { response, wait: None }
}

async fn produce_partition<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    topic: Option<&Topic<D>>,
    data: PartitionProduceData,
    acks: i16,
    version: i16,
) -> Outcome {
    let index = data.index;
    let Some(topic) = topic else {
        return failed(index, error_code::UNKNOWN_TOPIC_OR_PARTITION, "unknown topic", version);
    };
    let Some(partition) = usize::try_from(index).ok().and_then(|i| topic.partitions.get(i)) else {
        return failed(index, error_code::UNKNOWN_TOPIC_OR_PARTITION, "unknown partition", version);
    };
    // Kafka: only the group coordinator writes internal topics (InvalidTopicException).
    if topic.name == crate::consumer_groups::OFFSETS_TOPIC {
        return failed(index, error_code::INVALID_TOPIC_EXCEPTION, "cannot append to internal topic", version);
    }
    if let Some(code) = partition.serve_error(sluice_types::NodeId(state.config.node_id), -1) {
        return failed(index, code, "this broker does not lead the partition", version);
    }
    // Kafka: NotEnoughReplicasException when the ISR is smaller than min.insync.replicas. On a
    // single node the one replica is the ISR.
    let isr = partition.replica_view().map_or(1, |view| view.isr.len());
    if acks == -1 && (isr as i32) < topic.config.min_insync_replicas {
        let message =
            format!("min.insync.replicas {} exceeds the in-sync replicas ({isr})", topic.config.min_insync_replicas);
        return failed(index, error_code::NOT_ENOUGH_REPLICAS, &message, version);
    }
    let batch = match validate(topic, data.records) {
        Ok(batch) => batch,
        Err((code, message)) => {
            metrics::counter!("sluice_produce_rejected_total", "error" => error_code::name(code)).increment(1);
            tracing::debug!(topic = %topic.name, partition = index, %message, "produce rejected");
            return failed(index, code, &message, version);
        }
    };
    if partition.is_replicated() {
        return propose(state, partition, batch, acks, version).await;
    }
    append(state, topic, partition, batch, acks, version).await
}

/// Cluster mode: the batch goes through the partition's Raft group. acks=1 answers after the
/// leader's append, acks=-1 once the batch is committed (a majority holds it durably).
async fn propose<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    partition: &Arc<Partition<D>>,
    batch: BytesMut,
    acks: i16,
    version: i16,
) -> Outcome {
    let index = partition.index;
    let cluster = state.cluster.as_ref().expect("replicated partitions exist in cluster mode");
    let proposed = match cluster.propose(partition.clone(), batch).await {
        Ok(proposed) => proposed,
        Err(code) => return failed(index, code, error_code::name(code), version),
    };
    let log_start_offset = partition.watermarks().log_start_offset;
    accepted(partition, proposed.info, log_start_offset, (acks == -1).then_some(Some(proposed.leader_epoch)), version)
}

/// The answer to an appended (or duplicate) batch; acks=-1 waits for the high watermark past
/// it, in `epoch` when replicated.
fn accepted<D: Disk>(
    partition: &Arc<Partition<D>>,
    info: AppendInfo,
    log_start_offset: Offset,
    wait: Option<Option<Term>>,
    version: i16,
) -> Outcome {
    metrics::counter!("sluice_records_appended_total").increment((info.last_offset.0 - info.base_offset.0 + 1) as u64);
    let response = PartitionProduceResponse::default()
        .with_index(partition.index)
        .with_base_offset(info.base_offset.0)
        .with_log_append_time_ms(info.log_append_time_ms)
        .with_log_start_offset(if version >= 5 { log_start_offset.0 } else { -1 });
    let wait = wait.map(|epoch| Wait {
        target: info.last_offset.next(),
        receiver: partition.subscribe(),
        epoch,
        appended_at: tokio::time::Instant::now(),
    });
    Outcome { response, wait }
}

/// Checks one partition's records and returns the batch to append (maybe recompressed).
fn validate<D: Disk>(topic: &Topic<D>, records: Option<Bytes>) -> Result<BytesMut, (i16, String)> {
    let records = records.filter(|r| !r.is_empty()).ok_or((error_code::CORRUPT_MESSAGE, "no records".to_string()))?;
    let header = BatchHeader::parse(&records).map_err(|error| match error {
        // Kafka: Produce v3+ may only carry magic 2 batches (InvalidRecordException).
        BatchError::UnsupportedMagic(_) => (error_code::INVALID_RECORD, error.to_string()),
        other => (error_code::CORRUPT_MESSAGE, other.to_string()),
    })?;
    if header.size_bytes() as usize != records.len() {
        return Err((error_code::INVALID_RECORD, "exactly one record batch per partition is allowed".to_string()));
    }
    if header.size_bytes() > topic.config.log.max_message_bytes {
        let message = format!(
            "batch of {} bytes exceeds max.message.bytes {}",
            header.size_bytes(),
            topic.config.log.max_message_bytes
        );
        return Err((error_code::MESSAGE_TOO_LARGE, message));
    }
    if header.is_control() || header.is_transactional() {
        return Err((
            error_code::INVALID_RECORD,
            "control and transactional batches are not accepted from producers".to_string(),
        ));
    }
    validate_records(&records, RECORDS_DECOMPRESSED_BYTES_MAX)
        .map_err(|e| (error_code::CORRUPT_MESSAGE, e.to_string()))?;
    if topic.config.log.cleanup_policy.compacts() {
        // Kafka's LogValidator: compaction keeps the latest record per key, so every record
        // of a compacted topic needs one.
        let (_, decoded) = sluice_protocol::records::decode_batch(&records, RECORDS_DECOMPRESSED_BYTES_MAX)
            .map_err(|e| (error_code::CORRUPT_MESSAGE, e.to_string()))?;
        if decoded.iter().any(|r| r.key.is_none()) {
            return Err((error_code::INVALID_RECORD, "compacted topic cannot accept message without key".to_string()));
        }
    }
    // Which codec producers really send (tests use it to prove a codec reached the broker).
    let codec = header.compression().map_or("unknown", |c| c.name());
    metrics::counter!("sluice_produce_batches_total", "compression" => codec).increment(1);
    match topic.config.compression {
        Some(codec) if Some(codec) != header.compression() => {
            let recompressed = recompress(&records, codec, RECORDS_DECOMPRESSED_BYTES_MAX)
                .map_err(|e| (error_code::CORRUPT_MESSAGE, e.to_string()))?;
            Ok(BytesMut::from(&recompressed[..]))
        }
        _ => Ok(BytesMut::from(&records[..])),
    }
}

async fn append<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    topic: &Topic<D>,
    partition: &Arc<Partition<D>>,
    batch: BytesMut,
    acks: i16,
    version: i16,
) -> Outcome {
    let index = partition.index;
    let (info, log_start_offset) = match append_single_node(state, partition, batch).await {
        Ok(appended) => appended,
        Err(error) => {
            let code = storage_error_code(&error);
            if code == error_code::KAFKA_STORAGE_ERROR {
                tracing::error!(topic = %topic.name, partition = index, %error, "append failed");
            }
            return failed(index, code, &error.to_string(), version);
        }
    };
    accepted(partition, info, log_start_offset, (acks == -1).then_some(None), version)
}

/// Single node: appends one batch to the partition's log, publishes the watermarks and queues
/// the flush that makes it durable (the high watermark follows the flush). Returns where it
/// landed and the log start. Shared by Produce and the group coordinator's writes.
pub(crate) async fn append_single_node<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    partition: &Arc<Partition<D>>,
    batch: BytesMut,
) -> Result<(AppendInfo, Offset), StorageError> {
    let mut log = partition.lock().await;
    let appended = log.append(batch, SINGLE_NODE_LEADER_EPOCH, state.clock.wall_ms()).await;
    partition.publish(&log);
    let flush_due = log.flush_due(state.clock.wall_ms());
    let log_start_offset = log.log_start_offset();
    drop(log);
    let info = appended?.info();
    if flush_due {
        state.flush.enqueue(partition).await;
    }
    Ok((info, log_start_offset))
}

/// The Kafka error code for a storage outcome (shared by every handler).
pub(crate) fn storage_error_code(error: &StorageError) -> i16 {
    match error {
        StorageError::Producer(ProducerError::InvalidProducerEpoch { .. }) => error_code::INVALID_PRODUCER_EPOCH,
        StorageError::Producer(ProducerError::OutOfOrderSequence { .. }) => error_code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        StorageError::BatchTooLarge { .. } => error_code::MESSAGE_TOO_LARGE,
        StorageError::InvalidBatch(_) => error_code::CORRUPT_MESSAGE,
        StorageError::OffsetOutOfRange { .. } => error_code::OFFSET_OUT_OF_RANGE,
        // Replication-internal: a peer sent what does not fit the log; never a client's doing.
        StorageError::OffsetMismatch { .. } | StorageError::LeaderEpochRegression { .. } => {
            error_code::UNKNOWN_SERVER_ERROR
        }
        StorageError::Io(_)
        | StorageError::CorruptStoredBatch { .. }
        | StorageError::CorruptCheckpoint(_)
        | StorageError::CorruptHardState(_) => error_code::KAFKA_STORAGE_ERROR,
    }
}
