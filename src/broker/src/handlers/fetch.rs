//! Fetch (4-12): whole batches below the high watermark, with long-poll.
//!
//! - Reads return whole, CRC-verified batches from the batch containing the fetch offset; the
//!   client skips records below its offset (Kafka does the same).
//! - `partition_max_bytes` and the response `max_bytes` (capped at `FETCH_RESPONSE_BYTES_MAX`,
//!   Kafka's `fetch.max.bytes`) are soft limits: the first non-empty partition always gets at
//!   least one whole batch (KIP-74).
//! - When fewer than `min_bytes` are available, the request waits up to `max_wait_ms` and is
//!   woken by a change of any involved partition's watermarks, never by a polling timer.
//! - `isolation_level` read_committed reads below the last stable offset, which equals the high
//!   watermark while Sluice has no transactions; the aborted transaction list is then empty.
//! - Fetch sessions (KIP-227) are not kept: the response's session id 0 tells clients to send
//!   full requests, which is what a broker without session cache slots does.

use super::topic_name;
use crate::dispatch::Reply;
use crate::limits::{FETCH_RESPONSE_BYTES_MAX, FETCH_WAIT_MS_MAX};
use crate::partition::{Partition, Watermarks};
use crate::state::BrokerState;
use bytes::{Bytes, BytesMut};
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind};
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use sluice_storage::{ReadResult, StorageError};
use sluice_types::batch::batches;
use sluice_types::defect::{self, Defect};
use sluice_types::{NodeId, Offset};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One requested partition, resolved.
struct Wanted<D: Disk> {
    index: i32,
    fetch_offset: Offset,
    partition_max_bytes: u32,
    current_leader_epoch: i32,
    partition: Option<Arc<Partition<D>>>,
    /// This broker: only a partition's leader serves client fetches.
    me: NodeId,
}

struct Plan<D: Disk> {
    topics: Vec<(String, Vec<Wanted<D>>)>,
    max_bytes: u32,
    read_committed: bool,
    /// Fields newer than the request's version must keep their defaults.
    version: i16,
}

pub async fn handle<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>, request: FetchRequest, version: i16) -> Reply {
    let plan = Plan {
        topics: request
            .topics
            .iter()
            .map(|topic| {
                let name = topic.topic.0.to_string();
                let wanted = topic
                    .partitions
                    .iter()
                    .map(|p| Wanted {
                        index: p.partition,
                        fetch_offset: Offset(p.fetch_offset),
                        partition_max_bytes: p.partition_max_bytes.max(0) as u32,
                        current_leader_epoch: p.current_leader_epoch,
                        partition: state.topics.partition(&name, p.partition),
                        me: NodeId(state.config.node_id),
                    })
                    .collect();
                (name, wanted)
            })
            .collect(),
        max_bytes: (request.max_bytes.max(0) as u32).min(FETCH_RESPONSE_BYTES_MAX),
        read_committed: request.isolation_level == 1,
        version,
    };
    let (response, bytes, errors) = read_all(&plan).await;
    let wait_ms = (request.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MS_MAX);
    if bytes >= request.min_bytes.max(0) as u64 || errors || wait_ms == 0 {
        return Reply::Ready(Box::new(response));
    }
    let min_bytes = request.min_bytes.max(0) as u64;
    Reply::Deferred(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        let mut receivers: Vec<watch::Receiver<Watermarks>> = plan
            .topics
            .iter()
            .flat_map(|(_, w)| w.iter().filter_map(|w| w.partition.as_ref().map(|p| p.subscribe())))
            .collect();
        loop {
            if receivers.is_empty() || sluice_io::timeout_at(deadline, any_changed(&mut receivers)).await.is_err() {
                return read_all(&plan).await.0;
            }
            let (response, bytes, errors) = read_all(&plan).await;
            if bytes >= min_bytes || errors {
                return response;
            }
        }
    }))
}

/// Resolves when any receiver sees a change (or its partition is dropped).
async fn any_changed(receivers: &mut [watch::Receiver<Watermarks>]) {
    let changes = receivers.iter_mut().map(|r| Box::pin(r.changed()));
    let _ = select_all(changes).await;
}

/// Reads every partition once. Returns the response, its record bytes, and whether any
/// partition failed (errors are answered at once, as Kafka does).
async fn read_all<D: Disk>(plan: &Plan<D>) -> (ResponseKind, u64, bool) {
    let mut budget = plan.max_bytes;
    let mut total = 0u64;
    let mut errors = false;
    let mut response = FetchResponse::default();
    for (name, wanted) in &plan.topics {
        let mut partitions = Vec::with_capacity(wanted.len());
        for want in wanted {
            let first = total == 0;
            let data = read_partition(want, budget, first, plan.read_committed, plan.version).await;
            let bytes = data.records.as_ref().map_or(0, |r| r.len() as u64);
            errors |= data.error_code != error_code::NONE;
            total += bytes;
            budget = budget.saturating_sub(u32::try_from(bytes).unwrap_or(u32::MAX));
            partitions.push(data);
        }
        response
            .responses
            .push(FetchableTopicResponse::default().with_topic(topic_name(name)).with_partitions(partitions));
    }
    metrics::counter!("sluice_fetch_bytes_total").increment(total);
    (ResponseKind::Fetch(response), total, errors)
}

async fn read_partition<D: Disk>(
    want: &Wanted<D>,
    budget: u32,
    first: bool,
    read_committed: bool,
    version: i16,
) -> PartitionData {
    let mut data = PartitionData::default()
        .with_partition_index(want.index)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_aborted_transactions(read_committed.then(Vec::new))
        .with_records(Some(Bytes::new()));
    let Some(partition) = &want.partition else {
        return data.with_error_code(error_code::UNKNOWN_TOPIC_OR_PARTITION);
    };
    if let Some(code) = partition.serve_error(want.me, want.current_leader_epoch) {
        return data.with_error_code(code);
    }
    let marks = partition.watermarks();
    data = data
        .with_high_watermark(marks.high_watermark.0)
        .with_last_stable_offset(marks.high_watermark.0)
        .with_log_start_offset(if version >= 5 { marks.log_start_offset.0 } else { -1 });
    if want.fetch_offset < marks.log_start_offset || want.fetch_offset > marks.log_end_offset {
        return data.with_error_code(error_code::OFFSET_OUT_OF_RANGE);
    }
    // Consumers read below the high watermark only (DESIGN.md, Replication). The planted
    // defect `fetch-above-hw` (simulation only) serves to the log end.
    let read_end = if defect::active(Defect::FetchAboveHw) { marks.log_end_offset } else { marks.high_watermark };
    if want.fetch_offset >= read_end || (!first && budget == 0) {
        return data;
    }
    let max_bytes = want.partition_max_bytes.min(if first { u32::MAX } else { budget }).max(1);
    let read = read_past_empty_batches(partition, want.fetch_offset, max_bytes, read_end).await;
    match read {
        Ok(read) if !first && read.records.len() as u64 > u64::from(budget) => data,
        Ok(read) => data.with_records(Some(read.records)),
        Err(error) => {
            let code = crate::handlers::produce::storage_error_code(&error);
            if code == error_code::KAFKA_STORAGE_ERROR {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "fetch failed verification");
            }
            data.with_error_code(code)
        }
    }
}

/// Reads of one partition a Fetch makes at most while it has found only empty batches.
const EMPTY_BATCH_READS_MAX: usize = 64;

/// Reads from `offset`, and keeps reading while everything read so far is empty batches, the
/// ones compaction leaves behind (one storage read stops at a segment's end, and a compacted
/// segment may hold nothing else). librdkafka takes a response without a record or control
/// batch for a record larger than its buffer: it doubles its fetch size and, after ten such
/// responses, fails with MSG_SIZE_TOO_LARGE (`rd_kafka_msgset_reader_run`). Bounded by
/// `max_bytes`, `end` and `EMPTY_BATCH_READS_MAX`.
async fn read_past_empty_batches<D: Disk>(
    partition: &Partition<D>,
    offset: Offset,
    max_bytes: u32,
    end: Offset,
) -> Result<ReadResult, StorageError> {
    let first = partition.lock().await.read(offset, max_bytes, end).await?;
    let Some(mut next) = only_empty_batches(&first.records) else { return Ok(first) };
    let mut records = BytesMut::from(&first.records[..]);
    for _ in 1..EMPTY_BATCH_READS_MAX {
        let room = max_bytes.saturating_sub(u32::try_from(records.len()).unwrap_or(u32::MAX));
        if next >= end || room == 0 {
            break;
        }
        let read = partition.lock().await.read(next, room, end).await?;
        // A read returns at least one whole batch: keep it only if it fits.
        if read.records.is_empty() || read.records.len() > room as usize {
            break;
        }
        records.extend_from_slice(&read.records);
        match only_empty_batches(&read.records) {
            Some(after) => next = after,
            None => break,
        }
    }
    Ok(ReadResult { records: records.freeze() })
}

/// When `records` holds only empty data batches: the offset after the last one.
fn only_empty_batches(records: &[u8]) -> Option<Offset> {
    let mut next = None;
    for batch in batches(records) {
        let (header, _) = batch.ok()?;
        if header.record_count != 0 || header.is_control() {
            return None;
        }
        next = Some(header.next_offset());
    }
    next
}
