//! The log cleaner: compacts every partition whose `cleanup.policy` includes `compact` (Kafka's
//! LogCleaner), in the background, one segment at a time, at a bounded I/O rate
//! (`log.cleaner.io.max.bytes.per.second`). The storage side is `sluice_storage::compaction`.
//!
//! Only what is committed and durable is cleaned: segments wholly below the high watermark,
//! the flushed offset and the active segment (Kafka: the first uncleanable offset). Offsets
//! never move and every batch header stays, so consumers, followers and Raft see the same log.
//! The log lock is held only to read one chunk, to start a cleaned copy, and to install it.
//!
//! A partition is cleaned when at least `min.cleanable.dirty.ratio` of its cleanable bytes lie
//! above what the cleaner last covered (kept in memory: after a restart the first pass cleans
//! everything again, which is idempotent).

use crate::partition::Partition;
use crate::state::BrokerState;
use bytes::Bytes;
use sluice_io::{Clock, Disk};
use sluice_storage::{KeyMap, SegmentSpan, StorageError, clean_batch};
use sluice_types::Offset;
use sluice_types::batch::batches;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// `log.cleaner.backoff.ms` by default: the pause between passes over the compacted partitions.
pub const CLEANER_BACKOFF_MS: u64 = 15_000;
/// `log.cleaner.io.max.bytes.per.second`: bytes read plus written per second, at most.
pub const CLEANER_IO_BYTES_PER_SECOND: u64 = 32 * 1024 * 1024;
/// `log.cleaner.dedupe.buffer.size`: key bytes one pass's key map holds at most.
pub const CLEANER_KEY_MAP_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes read from the log per lock.
const CLEANER_READ_BYTES: u32 = 1024 * 1024;

/// What one pass over a partition did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_cleaned: u32,
    pub records_dropped: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Paces the cleaner's I/O: after each `CLEANER_IO_BYTES_PER_SECOND` worth of bytes, the
/// cleaner waits out the rest of that second.
pub struct Throttle {
    bytes_per_second: u64,
    window_start: tokio::time::Instant,
    window_bytes: u64,
}

impl Throttle {
    pub fn new<C: Clock>(clock: &C, bytes_per_second: u64) -> Throttle {
        assert!(bytes_per_second > 0);
        Throttle { bytes_per_second, window_start: clock.now(), window_bytes: 0 }
    }

    pub async fn consume<C: Clock>(&mut self, clock: &C, bytes: u64) {
        self.window_bytes += bytes;
        if self.window_bytes < self.bytes_per_second {
            return;
        }
        let elapsed = clock.now().saturating_duration_since(self.window_start);
        if let Some(rest) = Duration::from_secs(1).checked_sub(elapsed) {
            clock.sleep(rest).await;
        }
        self.window_start = clock.now();
        self.window_bytes = 0;
    }
}

pub async fn run<D: Disk, C: Clock>(state: Arc<BrokerState<D, C>>, mut shutdown: watch::Receiver<bool>) {
    let mut throttle = Throttle::new(&state.clock, CLEANER_IO_BYTES_PER_SECOND);
    let mut covered: BTreeMap<(String, i32), Offset> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = state.clock.sleep(Duration::from_millis(state.config.log_cleaner_backoff_ms.max(1))) => {}
            _ = shutdown.changed() => return,
        }
        for topic in state.topics.all() {
            if !topic.config.log.cleanup_policy.compacts() {
                continue;
            }
            for partition in &topic.partitions {
                if *shutdown.borrow() {
                    return;
                }
                let key = (topic.name.clone(), partition.index);
                let from = covered.get(&key).copied().unwrap_or(Offset(0));
                match clean_partition(&state, partition, from, &mut throttle).await {
                    Ok((stats, covered_end)) => {
                        covered.insert(key, covered_end);
                        if stats.segments_cleaned > 0 {
                            tracing::info!(topic = %topic.name, partition = partition.index, segments = stats.segments_cleaned,
                                records_dropped = stats.records_dropped, bytes_before = stats.bytes_before,
                                bytes_after = stats.bytes_after, "compacted");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(topic = %topic.name, partition = partition.index, %error, "compaction failed; retrying next pass")
                    }
                }
            }
        }
    }
}

/// One pass over one partition. `covered_from` is where the previous pass's key map ended.
/// Returns what it did and where this pass's map ended.
pub async fn clean_partition<D: Disk, C: Clock>(
    state: &BrokerState<D, C>,
    partition: &Arc<Partition<D>>,
    covered_from: Offset,
    throttle: &mut Throttle,
) -> Result<(CleanStats, Offset), StorageError> {
    let (spans, ratio, delete_retention_ms) = {
        let log = partition.lock().await;
        let end = partition.watermarks().high_watermark.min(log.flushed_offset());
        let log_start = log.log_start_offset();
        // A segment holding the log start is left whole: reads below the start are refused.
        let spans: Vec<SegmentSpan> =
            log.sealed_segments_below(end).into_iter().filter(|s| s.base_offset >= log_start).collect();
        (spans, log.config().min_cleanable_dirty_ratio, log.config().delete_retention_ms)
    };
    let mut stats = CleanStats::default();
    let (Some(first), Some(last)) = (spans.first().copied(), spans.last().copied()) else {
        return Ok((stats, covered_from));
    };
    let total_bytes: u64 = spans.iter().map(|s| u64::from(s.size_bytes)).sum();
    let dirty_bytes: u64 = spans.iter().filter(|s| s.next_offset > covered_from).map(|s| u64::from(s.size_bytes)).sum();
    if (dirty_bytes as f64) < ratio * total_bytes as f64 || dirty_bytes == 0 {
        return Ok((stats, covered_from));
    }
    // 1. The latest offset of every key, over the cleanable segments (or as far as the map holds).
    let mut map = KeyMap::new(CLEANER_KEY_MAP_BYTES_MAX, first.base_offset);
    let mut offset = first.base_offset;
    'map: while offset < last.next_offset {
        let records = read_chunk(partition, offset, last.next_offset).await?;
        throttle.consume(&state.clock, records.len() as u64).await;
        for batch in batches(&records) {
            let (header, range) = batch?;
            if !map.add_batch(&records.slice(range)).unwrap_or_else(|e| undecodable(partition, e)) {
                break 'map;
            }
            offset = header.next_offset();
        }
    }
    let horizon_ms = state.clock.wall_ms().saturating_sub(delete_retention_ms);
    // 2. Each segment the map wholly covers, rewritten and swapped in.
    for span in spans.iter().filter(|s| s.next_offset <= map.covered_end()) {
        let mut cleaned = partition.lock().await.begin_clean(*span).await?;
        let mut dropped = 0u64;
        let mut offset = span.base_offset;
        while offset < span.next_offset {
            let records = read_chunk(partition, offset, span.next_offset).await?;
            for batch in batches(&records) {
                let (header, range) = batch?;
                let (kept, cleaning) =
                    clean_batch(&records.slice(range), &map, horizon_ms).unwrap_or_else(|e| undecodable(partition, e));
                dropped += u64::from(cleaning.records_dropped);
                throttle.consume(&state.clock, kept.len() as u64).await;
                cleaned.write(kept).await?;
                offset = header.next_offset();
            }
            throttle.consume(&state.clock, records.len() as u64).await;
        }
        if dropped == 0 {
            // Nothing to drop: the original stays.
            partition.lock().await.discard_cleaned(cleaned).await?;
            continue;
        }
        let written = cleaned.written_bytes();
        if partition.lock().await.install_cleaned(cleaned, state.clock.wall_ms()).await? {
            stats.segments_cleaned += 1;
            stats.records_dropped += dropped;
            stats.bytes_before += u64::from(span.size_bytes);
            stats.bytes_after += written;
            metrics::counter!("sluice_compaction_segments_cleaned_total").increment(1);
            metrics::counter!("sluice_compaction_records_dropped_total").increment(dropped);
        }
    }
    Ok((stats, map.covered_end()))
}

async fn read_chunk<D: Disk>(partition: &Partition<D>, offset: Offset, end: Offset) -> Result<Bytes, StorageError> {
    let log = partition.lock().await;
    Ok(log.read(offset, CLEANER_READ_BYTES, end).await?.records)
}

/// A batch the log served (its CRC verified) that does not decode: stored data is corrupt.
fn undecodable<D: Disk>(partition: &Partition<D>, error: sluice_protocol::records::RecordsError) -> ! {
    panic!("{}-{}: a verified stored batch does not decode: {error}", partition.topic, partition.index)
}
