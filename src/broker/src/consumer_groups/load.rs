//! Between a coordinator and its `__consumer_offsets` partition: loading the partition's
//! committed records into a new coordinator, and encoding a coordinator's write as one batch.
//!
//! Loading waits until the high watermark covers the whole log in the slot's leader epoch.
//! A new Raft leader's log may hold entries of earlier terms that are not known committed yet;
//! once its own no-op commits, they are (Raft §5.4.2), and nothing else appends to the
//! partition (clients may not produce to it), so the log read is exactly the committed state.

use super::slot::{Shell, Slot, SlotState};
use super::{GROUP_TICK_MS, LOAD_READ_BYTES};
use crate::state::BrokerState;
use bytes::BytesMut;
use sluice_group::{Coordinator, OffsetsRecord};
use sluice_io::{Clock, Disk};
use sluice_protocol::records::{BatchOptions, Record, RecordsError, decode_batches, encode_batch};
use sluice_types::Compression;
use sluice_types::NodeId;
use std::sync::Arc;
use std::time::Duration;

/// How long a load waits for the high watermark to cover the log before giving up (the upkeep
/// then tries again with a new slot).
const LOAD_WAIT_MS_MAX: u64 = 30_000;
/// Decompressed bytes one read of the log may expand to (our writes are uncompressed).
const LOAD_DECOMPRESSED_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// One write as one uncompressed batch: each record's key and value (no value: a tombstone).
pub(super) fn encode_write(records: &[OffsetsRecord], wall_ms: i64) -> Result<BytesMut, RecordsError> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let (key, value) = record.encode();
            Record {
                offset_delta: i32::try_from(i).expect("a write holds fewer than 2^31 records"),
                timestamp_delta: 0,
                key: Some(key),
                value,
                headers: Vec::new(),
            }
        })
        .collect();
    let options = BatchOptions { base_timestamp: wall_ms, ..BatchOptions::default() };
    let batch = encode_batch(&records, Compression::None, &options)?;
    Ok(BytesMut::from(&batch[..]))
}

/// Loads the slot's partition into a new coordinator and installs it, unless the slot lost its
/// epoch meanwhile (the upkeep then replaces it).
pub(super) async fn load<D: Disk, C: Clock>(state: Arc<BrokerState<D, C>>, slot: Arc<Slot<D>>) {
    let me = NodeId(state.config.node_id);
    let partition = &slot.partition;
    let waited_from = state.clock.now();
    let end = loop {
        if !slot.leads(me) {
            return;
        }
        let marks = partition.watermarks();
        if marks.high_watermark >= marks.log_end_offset {
            break marks.high_watermark;
        }
        if state.clock.now().saturating_duration_since(waited_from) > Duration::from_millis(LOAD_WAIT_MS_MAX) {
            tracing::warn!(
                partition = partition.index,
                "the offsets partition's high watermark did not reach its end; loading again later"
            );
            *slot.state.lock().await = SlotState::Unloaded;
            return;
        }
        state.clock.sleep(Duration::from_millis(GROUP_TICK_MS)).await;
    };
    let mut coordinator = Coordinator::new(state.groups.config.clone());
    let mut offset = partition.watermarks().log_start_offset;
    let mut records_loaded = 0u64;
    // Bounded: every pass moves `offset` forward by at least one batch, up to `end`.
    while offset < end {
        let read = partition.lock().await.read(offset, LOAD_READ_BYTES, end).await;
        let bytes = match read {
            Ok(read) => read.records,
            Err(error) => {
                tracing::error!(partition = partition.index, %error, "reading the offsets partition failed; loading again later");
                *slot.state.lock().await = SlotState::Unloaded;
                return;
            }
        };
        let batches = decode_batches(&bytes, LOAD_DECOMPRESSED_BYTES_MAX).unwrap_or_else(|e| {
            panic!("__consumer_offsets-{} holds a verified batch that does not decode: {e}", partition.index)
        });
        let next = batches.last().map(|(header, _)| header.next_offset()).expect("a read below the end holds a batch");
        assert!(next > offset, "loading did not move forward");
        for (header, records) in batches.iter().filter(|(header, _)| !header.is_control()) {
            for record in records {
                let Some(key) = &record.key else {
                    tracing::error!(partition = partition.index, offset = %record.offset(header), "offsets record without a key; skipped");
                    continue;
                };
                match OffsetsRecord::decode(key, record.value.as_deref()) {
                    Ok(decoded) => coordinator.replay(&decoded),
                    // A record version this broker does not know (a newer writer): skipped, as
                    // Kafka's loader skips unknown record types.
                    Err(error) => {
                        tracing::error!(partition = partition.index, offset = %record.offset(header), %error, "offsets record not understood; skipped")
                    }
                }
                records_loaded += 1;
            }
        }
        offset = next;
    }
    let mut guard = slot.state.lock().await;
    if !matches!(*guard, SlotState::Loading) || !slot.leads(me) {
        return;
    }
    coordinator.loaded(state.groups.time(&state.clock));
    let groups = coordinator.groups().count();
    if records_loaded > 0 {
        tracing::info!(partition = partition.index, epoch = %slot.leader_epoch, records = records_loaded, groups, "group coordinator loaded");
    } else {
        tracing::debug!(partition = partition.index, epoch = %slot.leader_epoch, "group coordinator loaded (empty)");
    }
    *guard = SlotState::Loaded(Box::new(Shell::start(coordinator, &state, &slot)));
}
