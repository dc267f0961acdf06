//! ListOffsets (1-7) and OffsetForLeaderEpoch (2-4).
//!
//! ListOffsets timestamps (Kafka protocol: ListOffsetsRequest):
//! - `-2` EARLIEST: the log start offset;
//! - `-1` LATEST: the high watermark (read_committed: the last stable offset, equal here);
//! - `-3` MAX_TIMESTAMP (KIP-734): the record with the largest timestamp;
//! - `t >= 0`: the first record whose timestamp is >= t, found through the time index and then
//!   the records of the one batch that holds it; offset -1 when there is none.
//!
//! OffsetForLeaderEpoch answers from the log's epoch cache (KIP-101, KIP-279, KIP-320).

use super::topic_name;
use crate::partition::Partition;
use crate::state::BrokerState;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ResponseKind,
};
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use sluice_protocol::records::decode_batch;
use sluice_types::{NodeId, Offset, Term};
use std::sync::Arc;

const EARLIEST_TIMESTAMP: i64 = -2;
const LATEST_TIMESTAMP: i64 = -1;
const MAX_TIMESTAMP: i64 = -3;
/// Decompression bound when looking inside one batch for a timestamp.
const TIMESTAMP_BATCH_BYTES_MAX: u64 = 256 * 1024 * 1024;

pub async fn handle<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: ListOffsetsRequest,
    version: i16,
) -> ResponseKind {
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let base = ListOffsetsPartitionResponse::default()
                .with_partition_index(wanted.partition_index)
                .with_timestamp(-1)
                .with_offset(-1);
            let Some(partition) = state.topics.partition(&name, wanted.partition_index) else {
                partitions.push(base.with_error_code(error_code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            if let Some(code) = partition.serve_error(NodeId(state.config.node_id), wanted.current_leader_epoch) {
                partitions.push(base.with_error_code(code));
                continue;
            }
            let answer = match lookup(&partition, wanted.timestamp).await {
                Ok((timestamp, offset)) => {
                    let answer = base.with_timestamp(timestamp).with_offset(offset.0);
                    // leader_epoch exists from v4 on; kafka-protocol refuses to encode it earlier.
                    if version >= 4 { answer.with_leader_epoch(partition.leader_epoch().0) } else { answer }
                }
                Err(code) => base.with_error_code(code),
            };
            partitions.push(answer);
        }
        response
            .topics
            .push(ListOffsetsTopicResponse::default().with_name(topic_name(&name)).with_partitions(partitions));
    }
    ResponseKind::ListOffsets(response)
}

/// (timestamp, offset) for one partition; offset -1 when no record matches.
async fn lookup<D: Disk>(partition: &Partition<D>, timestamp: i64) -> Result<(i64, Offset), i16> {
    let marks = partition.watermarks();
    match timestamp {
        EARLIEST_TIMESTAMP => return Ok((-1, marks.log_start_offset)),
        LATEST_TIMESTAMP => return Ok((-1, marks.high_watermark)),
        MAX_TIMESTAMP | 0.. => {}
        _ => return Err(error_code::INVALID_REQUEST),
    }
    let log = partition.lock().await;
    let batch = if timestamp == MAX_TIMESTAMP {
        log.batch_with_max_timestamp(marks.high_watermark).await
    } else {
        log.batch_for_timestamp(timestamp, marks.high_watermark).await
    };
    drop(log);
    let batch = batch.map_err(|e| crate::handlers::produce::storage_error_code(&e))?;
    let Some(batch) = batch else { return Ok((-1, Offset(-1))) };
    let (header, records) =
        decode_batch(&batch, TIMESTAMP_BATCH_BYTES_MAX).map_err(|_| error_code::KAFKA_STORAGE_ERROR)?;
    let usable = records.iter().filter(|r| r.offset(&header) >= marks.log_start_offset);
    let found = if timestamp == MAX_TIMESTAMP {
        usable.max_by_key(|r| (r.timestamp(&header), std::cmp::Reverse(r.offset(&header))))
    } else {
        usable.into_iter().find(|r| r.timestamp(&header) >= timestamp)
    };
    Ok(found.map_or((-1, Offset(-1)), |r| (r.timestamp(&header), r.offset(&header))))
}

pub async fn offset_for_leader_epoch<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: OffsetForLeaderEpochRequest,
) -> ResponseKind {
    let mut response = OffsetForLeaderEpochResponse::default();
    for topic in request.topics {
        let name = topic.topic.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let base =
                EpochEndOffset::default().with_partition(wanted.partition).with_leader_epoch(-1).with_end_offset(-1);
            let Some(partition) = state.topics.partition(&name, wanted.partition) else {
                partitions.push(base.with_error_code(error_code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            if let Some(code) = partition.serve_error(NodeId(state.config.node_id), wanted.current_leader_epoch) {
                partitions.push(base.with_error_code(code));
                continue;
            }
            let current = partition.leader_epoch();
            let log = partition.lock().await;
            let found = log.end_offset_for_epoch(Term(wanted.leader_epoch));
            // An empty log has no epochs yet; the current epoch then ends at the log end.
            let found = found.or_else(|| {
                (log.latest_epoch().is_none() && wanted.leader_epoch >= current.0)
                    .then(|| (current, log.log_end_offset()))
            });
            drop(log);
            partitions.push(match found {
                Some((epoch, end)) => base.with_leader_epoch(epoch.0).with_end_offset(end.0),
                None => base,
            });
        }
        response
            .topics
            .push(OffsetForLeaderTopicResult::default().with_topic(topic_name(&name)).with_partitions(partitions));
    }
    ResponseKind::OffsetForLeaderEpoch(response)
}
