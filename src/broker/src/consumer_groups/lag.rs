//! Consumer lag on `/metrics`, per group and partition, for the groups this broker coordinates:
//! - `sluice_group_lag_records`: the partition's high watermark minus the committed offset;
//! - `sluice_group_lag_seconds`: how old the oldest unconsumed record is (now minus the
//!   timestamp of the first record at or after the committed offset; 0 when caught up).
//!
//! Lag in time is what an operator alerts on (a slow partition with few records can be hours
//! behind); Kafka and Redpanda report only records. Computed every `LAG_INTERVAL_MS` from the
//! partitions this broker leads (where the high watermark is its own); a committed partition
//! led by another broker is skipped here and reported by none (a cluster-wide view is the
//! CLI's `sluice group describe`).

use super::OFFSETS_TOPIC;
use super::slot::SlotState;
use crate::state::BrokerState;
use sluice_group::TopicPartition;
use sluice_io::{Clock, Disk};
use sluice_protocol::records::decode_batch;
use sluice_types::{NodeId, Offset};
use std::sync::Arc;

/// How often lag is recomputed.
pub const LAG_INTERVAL_MS: u64 = 5_000;
/// (group, partition) series computed per pass at most (each may read one batch).
pub const LAG_SERIES_MAX: usize = 10_000;
/// Bytes read to find the oldest unconsumed record's timestamp.
const LAG_READ_BYTES: u32 = 64 * 1024;
/// Decompressed bytes that batch may expand to.
const LAG_DECOMPRESSED_BYTES_MAX: u64 = 64 * 1024 * 1024;

pub(super) async fn publish<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>) {
    let me = NodeId(state.config.node_id);
    let mut committed: Vec<(String, TopicPartition, i64)> = Vec::new();
    for slot in state.groups.slots() {
        let guard = slot.state.lock().await;
        let SlotState::Loaded(shell) = &*guard else { continue };
        for group in shell.coordinator.groups() {
            for (partition, offset) in &group.offsets {
                if committed.len() < LAG_SERIES_MAX && partition.topic != OFFSETS_TOPIC {
                    committed.push((group.group_id.clone(), partition.clone(), offset.offset));
                }
            }
        }
    }
    let now_ms = state.clock.wall_ms();
    for (group, partition, offset) in committed {
        let Some(local) = state.topics.partition(&partition.topic, partition.partition) else { continue };
        if local.serve_error(me, -1).is_some() {
            continue;
        }
        let high_watermark = local.watermarks().high_watermark;
        let lag_records = (high_watermark.0 - offset).max(0);
        let lag_seconds = if lag_records == 0 {
            0.0
        } else {
            let from = Offset(offset.max(local.watermarks().log_start_offset.0));
            let read = local.lock().await.read(from, LAG_READ_BYTES, high_watermark).await;
            let timestamp_ms = read.ok().and_then(|read| {
                let (header, records) = decode_batch(&read.records, LAG_DECOMPRESSED_BYTES_MAX).ok()?;
                records.iter().find(|r| r.offset(&header) >= from).map(|r| r.timestamp(&header))
            });
            timestamp_ms.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0)
        };
        let labels =
            [("group", group), ("topic", partition.topic.clone()), ("partition", partition.partition.to_string())];
        metrics::gauge!("sluice_group_lag_records", &labels).set(lag_records as f64);
        metrics::gauge!("sluice_group_lag_seconds", &labels).set(lag_seconds);
    }
}
