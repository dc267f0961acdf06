//! Background upkeep of every partition: time-based flushes (`flush.ms`), retention
//! (`retention.ms`, `retention.bytes`, every `log.retention.check.interval.ms`), and periodic
//! checkpoints of the recovery point so a crash re-verifies little.
//!
//! Bounded: one pass visits each partition once; passes are paced by the clock.

use crate::state::BrokerState;
use sluice_io::{Clock, Disk};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often flush.ms deadlines are checked.
const FLUSH_CHECK_INTERVAL_MS: u64 = 1000;

pub async fn run<D: Disk, C: Clock>(state: Arc<BrokerState<D, C>>, mut shutdown: watch::Receiver<bool>) {
    let retention_every = state.config.retention_check_interval_ms.max(1);
    let tick_ms = retention_every.min(FLUSH_CHECK_INTERVAL_MS);
    let mut since_retention_ms = 0u64;
    loop {
        tokio::select! {
            _ = state.clock.sleep(Duration::from_millis(tick_ms)) => {}
            _ = shutdown.changed() => return,
        }
        since_retention_ms += tick_ms;
        let retention_due = since_retention_ms >= retention_every;
        if retention_due {
            since_retention_ms = 0;
        }
        pass(&state, retention_due).await;
    }
}

async fn pass<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>, retention_due: bool) {
    for topic in state.topics.all() {
        for partition in &topic.partitions {
            if let (Some(cluster), true) = (&state.cluster, partition.is_replicated()) {
                // The driver runs retention on replicated logs (the replica records the start).
                if retention_due {
                    let command = crate::cluster::Command::Retention { partition: partition.clone() };
                    if !cluster.try_send(command) {
                        tracing::debug!(topic = %topic.name, partition = partition.index, "driver busy; retention skipped");
                    }
                }
                continue;
            }
            let now_ms = state.clock.wall_ms();
            let mut log = partition.lock().await;
            let flush_due = log.flush_due(now_ms);
            if retention_due {
                match log.enforce_retention(now_ms).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::info!(topic = %topic.name, partition = partition.index, deleted, start = %log.log_start_offset(), "retention deleted segments");
                        partition.publish(&log);
                    }
                    Err(error) => {
                        tracing::error!(topic = %topic.name, partition = partition.index, %error, "retention failed")
                    }
                }
                if let Err(error) = log.write_checkpoint().await {
                    tracing::error!(topic = %topic.name, partition = partition.index, %error, "checkpoint failed");
                }
            }
            drop(log);
            if flush_due {
                state.flush.enqueue(partition).await;
            }
        }
    }
}
