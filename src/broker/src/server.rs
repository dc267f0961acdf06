//! Starting, running and stopping one broker.
//!
//! Start: open (recover) every partition, start the flusher, bind the Kafka and admin
//! listeners, then report ready. Stop (on the shutdown signal): stop accepting, let every
//! connection finish its in-flight requests (bounded by `SHUTDOWN_DRAIN_MS_MAX`), then flush
//! and checkpoint every partition so the next start recovers nothing, and return.

use crate::admin_http;
use crate::cluster::{self, Command, FlushReports, spawn_driver};
use crate::config::BrokerConfig;
use crate::connection::serve_connection;
use crate::flusher::{flush_queue, run_flusher};
use crate::limits::{CONNECTIONS_MAX, SHUTDOWN_DRAIN_MS_MAX};
use crate::maintenance;
use crate::state::BrokerState;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sluice_io::{Clock, Disk};
use sluice_types::NodeId;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

/// Latency buckets, in seconds, for every `*_seconds` histogram.
const LATENCY_BUCKETS_SECONDS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process-wide Prometheus recorder. Call once, from `main`.
pub fn install_metrics_recorder() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS_SECONDS)?
        .install_recorder()?;
    Ok(handle)
}

/// Runs a broker until `shutdown` turns true. Returns after a clean shutdown. `metrics` is the
/// installed recorder `/metrics` renders (`None`: no metrics export).
pub async fn run<D: Disk, C: Clock>(
    config: BrokerConfig,
    disk: D,
    clock: C,
    metrics: Option<PrometheusHandle>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (flush, flush_receiver) = flush_queue();
    let reports = Arc::new(FlushReports::default());
    let flusher = tokio::spawn(run_flusher(flush_receiver, clock.clone(), reports.clone()));
    let (handle, driver_parts) = match &config.cluster {
        Some(cluster) => {
            let (handle, commands, publish) = cluster::channel(NodeId(config.node_id), cluster.clone());
            (Some(handle), Some((commands, publish)))
        }
        None => (None, None),
    };
    let state = Arc::new(BrokerState::open(config.clone(), disk, clock, flush, handle).await?);
    let driver = match driver_parts {
        Some((commands, publish)) => Some(spawn_driver(state.clone(), commands, publish, reports).await?),
        None => None,
    };
    let kafka = TcpListener::bind(config.kafka_addr).await?;
    let admin = TcpListener::bind(config.admin_addr).await?;
    tracing::info!(node_id = config.node_id, kafka = %config.kafka_addr, admin = %config.admin_addr, data_dir = %config.data_dir.display(),
        topics = state.topics.all().len(), partitions = state.topics.partition_count(), "broker started");
    let admin_task = tokio::spawn(admin_http::serve(admin, state.clone(), metrics, shutdown.clone()));
    let maintenance_task = tokio::spawn(maintenance::run(state.clone(), shutdown.clone()));
    let groups_task = tokio::spawn(crate::consumer_groups::run_upkeep(state.clone(), shutdown.clone()));
    let cleaner_task = tokio::spawn(crate::compaction::run(state.clone(), shutdown.clone()));
    state.ready.store(true, Ordering::Release);
    let mut connections = Connections::default();
    accept_loop(&state, &kafka, &mut connections, shutdown.clone()).await;
    drop(kafka);
    if let Some(cluster) = &state.cluster {
        // Controlled shutdown: leaderships move first, so clients find new leaders while this
        // broker drains (Kafka's controlled shutdown; Raft thesis §3.10).
        let (reply, left) = tokio::sync::oneshot::channel();
        if cluster.send(Command::TransferAll { reply }).await {
            let wait = Duration::from_millis(cluster::limits::SHUTDOWN_TRANSFER_MS + 1000);
            let left = tokio::time::timeout(wait, left).await;
            tracing::info!(leaderships_left = ?left.ok().and_then(Result::ok), "leadership transfer finished");
        }
    }
    tracing::info!(connections = connections.tasks.len(), "shutting down: draining connections");
    let drain_deadline = tokio::time::Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS_MAX + 1000);
    for task in std::mem::take(&mut connections.tasks) {
        let abort = task.abort_handle();
        if sluice_io::timeout_at(drain_deadline, task).await.is_err() {
            abort.abort();
        }
    }
    let _ = maintenance_task.await;
    let _ = groups_task.await;
    let _ = cleaner_task.await;
    let _ = admin_task.await;
    if let (Some(cluster), Some(driver)) = (&state.cluster, driver) {
        let (reply, stopped) = tokio::sync::oneshot::channel();
        if cluster.send(Command::Stop { reply }).await {
            let _ = stopped.await;
        }
        let _ = driver.await;
    }
    close_partitions(&state).await?;
    drop(state);
    let _ = flusher.await;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn accept_loop<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    listener: &TcpListener,
    connections: &mut Connections,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, limit = CONNECTIONS_MAX, "connection limit reached; closing");
                    continue;
                };
                metrics::counter!("sluice_connections_accepted_total").increment(1);
                let state = state.clone();
                let shutdown = shutdown.clone();
                connections.tasks.retain(|task| !task.is_finished());
                connections.tasks.push(tokio::spawn(async move {
                    serve_connection(state, stream, peer, shutdown).await;
                    drop(slot);
                }));
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// The live connection tasks (at most `CONNECTIONS_MAX` unfinished ones: each holds a slot).
/// A plain list because madsim-tokio has no `JoinSet`; finished tasks are pruned on accept.
#[derive(Default)]
struct Connections {
    tasks: Vec<JoinHandle<()>>,
}

/// Flushes every partition and writes its checkpoint (recovery point = log end).
async fn close_partitions<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>) -> anyhow::Result<()> {
    for topic in state.topics.all() {
        for partition in &topic.partitions {
            let mut log = partition.lock().await;
            log.close(state.clock.wall_ms()).await?;
            partition.publish(&log);
        }
    }
    Ok(())
}
