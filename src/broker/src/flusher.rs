//! Group commit: one task fsyncs every partition that has unflushed appends.
//!
//! Producers append, then queue their partition here. The flusher takes everything queued,
//! asks each log for its [`FlushPlan`](sluice_storage::FlushPlan) under the log's lock, fsyncs
//! all the files concurrently without any lock, then records the flush and publishes the new
//! high watermark, which wakes the acks=all waiters and the fetch long-polls. While one round
//! syncs, appends keep arriving and are synced together in the next round, so concurrent
//! producers share fsyncs.
//!
//! A failed fsync is fatal (fsyncgate: the kernel may have dropped the dirty pages), so the
//! broker panics rather than acknowledge data that may be gone.

use crate::cluster::FlushReports;
use crate::limits::{FLUSH_PARTITIONS_PER_ROUND_MAX, FLUSH_QUEUE_MAX};
use crate::partition::Partition;
use futures::future::join_all;
use sluice_io::{Clock, Disk, File};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Extra flush passes for partitions truncated while their files synced.
const FLUSH_STALE_RETRIES_MAX: u32 = 2;

#[derive(Clone)]
pub struct FlushQueue<D: Disk> {
    sender: mpsc::Sender<Arc<Partition<D>>>,
}

impl<D: Disk> FlushQueue<D> {
    /// Queues a partition unless it is queued already. Waits if the queue is full.
    pub async fn enqueue(&self, partition: &Arc<Partition<D>>) {
        if partition.mark_flush_queued() && self.sender.send(partition.clone()).await.is_err() {
            tracing::debug!("flusher stopped; partition {}-{} not queued", partition.topic, partition.index);
        }
    }
}

pub fn flush_queue<D: Disk>() -> (FlushQueue<D>, mpsc::Receiver<Arc<Partition<D>>>) {
    let (sender, receiver) = mpsc::channel(FLUSH_QUEUE_MAX);
    (FlushQueue { sender }, receiver)
}

/// Runs until every `FlushQueue` is dropped and the queue is drained. A replicated partition's
/// completed flush is reported to the multi-raft driver through `reports`.
pub async fn run_flusher<D: Disk, C: Clock>(
    mut queue: mpsc::Receiver<Arc<Partition<D>>>,
    clock: C,
    reports: Arc<FlushReports>,
) {
    while let Some(first) = queue.recv().await {
        let mut round = vec![first];
        while round.len() < FLUSH_PARTITIONS_PER_ROUND_MAX {
            match queue.try_recv() {
                Ok(partition) => round.push(partition),
                Err(_) => break,
            }
        }
        flush_round(round, &clock, &reports).await;
    }
}

/// One pass: plan, sync, record. Returns the partitions whose plans went stale.
async fn flush_pass<D: Disk, C: Clock>(
    round: Vec<Arc<Partition<D>>>,
    clock: &C,
    reports: &FlushReports,
) -> Vec<Arc<Partition<D>>> {
    let mut plans = Vec::with_capacity(round.len());
    for partition in round {
        partition.clear_flush_queued();
        let log = partition.lock().await;
        let plan = log.flush_plan();
        // The last batch's epoch as of the plan: with the plan's end it names the entry the
        // flush makes durable (`Input::Persisted`).
        let last_term = log.latest_epoch().unwrap_or(sluice_types::Term(-1));
        let view = partition.replica_view();
        let log_end = log.log_end_offset();
        drop(log);
        match (plan, view) {
            (Some(plan), view) => plans.push((partition, plan, last_term, view.map(|v| v.group))),
            // Already durable (an earlier round synced it): the driver still needs the report.
            (None, Some(view)) => reports.report(view.group, log_end, last_term),
            (None, None) => {}
        }
    }
    let started = clock.now();
    let syncs = plans.iter().flat_map(|(_, plan, _, _)| plan.files.iter().map(|file| file.sync_data()));
    for result in join_all(syncs).await {
        if let Err(error) = result {
            panic!("fsync failed, data may be lost; stopping the broker (fsyncgate): {error}");
        }
    }
    metrics::histogram!("sluice_fsync_seconds").record(started.elapsed().as_secs_f64());
    let mut stale = Vec::new();
    for (partition, plan, last_term, group) in plans {
        let mut log = partition.lock().await;
        match log.complete_flush_plan(&plan, clock.wall_ms()).await {
            Ok(true) => {
                if let Some(group) = group {
                    reports.report(group, plan.end_offset, last_term);
                }
            }
            // A truncation or reset happened while the files synced: nothing is recorded, and
            // the partition is flushed again from its new state.
            Ok(false) => stale.push(partition.clone()),
            Err(error) => panic!("index sync failed after a flush (fsyncgate): {error}"),
        }
        partition.publish(&log);
    }
    stale
}

/// Flushes `round`, then once more any partition whose plan a truncation made stale (bounded:
/// `FLUSH_STALE_RETRIES_MAX` passes; after that the partition waits for its next append).
async fn flush_round<D: Disk, C: Clock>(round: Vec<Arc<Partition<D>>>, clock: &C, reports: &FlushReports) {
    let mut round = round;
    for _ in 0..=FLUSH_STALE_RETRIES_MAX {
        round = flush_pass(round, clock, reports).await;
        if round.is_empty() {
            return;
        }
    }
}
