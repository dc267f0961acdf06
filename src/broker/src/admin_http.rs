//! The admin HTTP endpoint: `/v1/status/live`, `/v1/status/ready`, `/metrics`, and in cluster
//! mode `/v1/cluster` (this node, the controller, the registered brokers) and
//! `/v1/partitions/{topic}/{partition}` (this node's replica: term, role, leader, commit, log
//! start and end, and on the leader each replica's acknowledged offset and lag), and
//! `PUT`/`GET /v1/brokers/{id}/decommission` (start draining a broker; its progress).
//!
//! Shapes follow Redpanda's admin API (reference/style.md §B.4): live is 200 while the process
//! serves; ready is 200 `{"status":"ready"}` once recovery finished and the Kafka listener is
//! up, 503 `{"status":"booting"}` before. `/metrics` is Prometheus text.

use crate::state::BrokerState;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use sluice_io::{Clock, Disk};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpListener;
use tokio::sync::watch;

struct AdminState<D: Disk, C: Clock> {
    broker: Arc<BrokerState<D, C>>,
    /// `None` when the process exports no metrics (the simulator: building a recorder
    /// calibrates a TSC clock, which spins forever on madsim's virtual time).
    metrics: Option<PrometheusHandle>,
}

pub(crate) async fn serve<D: Disk, C: Clock>(
    listener: TcpListener,
    broker: Arc<BrokerState<D, C>>,
    metrics: Option<PrometheusHandle>,
    mut shutdown: watch::Receiver<bool>,
) {
    let state = Arc::new(AdminState { broker, metrics });
    let app = Router::new()
        .route("/v1/status/live", get(|| async { (StatusCode::OK, "{\"status\":\"live\"}\n") }))
        .route("/v1/status/ready", get(ready::<D, C>))
        .route("/metrics", get(render::<D, C>))
        .route("/v1/cluster", get(cluster::<D, C>))
        .route("/v1/partitions/{topic}/{partition}", get(partition::<D, C>))
        .route("/v1/brokers/{node_id}/decommission", get(decommission_status::<D, C>).put(decommission::<D, C>))
        .with_state(state);
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    serve_app(listener, app, stop).await;
}

#[cfg(not(madsim))]
async fn serve_app(listener: TcpListener, app: Router, stop: impl Future<Output = ()> + Send + 'static) {
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
        tracing::error!(%error, "admin HTTP server failed");
    }
}

/// Under simulation the admin endpoint is not served: axum needs real tokio's listener, and the
/// simulator observes brokers through the Kafka API (reference/dst.md §4.3).
#[cfg(madsim)]
async fn serve_app(listener: TcpListener, app: Router, stop: impl Future<Output = ()> + Send + 'static) {
    drop((listener, app));
    stop.await;
}

async fn ready<D: Disk, C: Clock>(State(state): State<Arc<AdminState<D, C>>>) -> (StatusCode, &'static str) {
    if state.broker.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "{\"status\":\"ready\"}\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "{\"status\":\"booting\"}\n")
    }
}

async fn render<D: Disk, C: Clock>(State(state): State<Arc<AdminState<D, C>>>) -> String {
    let topics = state.broker.topics.all();
    metrics::gauge!("sluice_topics").set(topics.len() as f64);
    metrics::gauge!("sluice_partitions").set(state.broker.topics.partition_count() as f64);
    let health = partition_health(&state.broker);
    metrics::gauge!("sluice_partitions_leader").set(f64::from(health.led));
    metrics::gauge!("sluice_partitions_under_replicated").set(health.under_replicated.len() as f64);
    metrics::gauge!("sluice_partitions_leaderless").set(health.leaderless.len() as f64);
    state.metrics.as_ref().map(PrometheusHandle::render).unwrap_or_default()
}

/// This broker's share of partition health: what it leads (every partition on a single node),
/// which of those lack a full ISR, and which of its replicas know no leader.
struct PartitionHealth {
    led: u32,
    under_replicated: Vec<String>,
    leaderless: Vec<String>,
}

fn partition_health<D: Disk, C: Clock>(broker: &BrokerState<D, C>) -> PartitionHealth {
    let me = sluice_types::NodeId(broker.config.node_id);
    let mut health = PartitionHealth { led: 0, under_replicated: Vec::new(), leaderless: Vec::new() };
    for topic in broker.topics.all() {
        for p in &topic.partitions {
            let name = || format!("{}-{}", topic.name, p.index);
            match p.replica_view() {
                None => health.led += 1,
                Some(view) if view.leader == Some(me) => {
                    health.led += 1;
                    if view.isr.len() < view.replicas.len() {
                        health.under_replicated.push(name());
                    }
                }
                Some(view) if view.local && view.leader.is_none() => health.leaderless.push(name()),
                Some(_) => {}
            }
        }
    }
    health
}

async fn cluster<D: Disk, C: Clock>(State(state): State<Arc<AdminState<D, C>>>) -> (StatusCode, String) {
    let broker = &state.broker;
    let Some(cluster) = &broker.cluster else {
        return (StatusCode::NOT_FOUND, "{\"error\":\"not a cluster\"}\n".to_string());
    };
    let snapshot = cluster.snapshot();
    let brokers: Vec<serde_json::Value> = snapshot
        .meta
        .brokers()
        .values()
        .map(|b| {
            serde_json::json!({"node_id": b.node_id.0, "host": b.kafka_host, "port": b.kafka_port,
                "rpc_addr": b.rpc_addr, "decommissioning": b.decommissioning})
        })
        .collect();
    let health = partition_health(broker);
    let body = serde_json::json!({
        "node_id": cluster.node_id.0,
        "cluster_id": broker.cluster_id,
        "controller_id": snapshot.controller.map_or(-1, |n| n.0),
        "metadata_applied_index": snapshot.applied_index.0,
        "brokers": brokers,
        "partitions": broker.topics.partition_count(),
        "leader_partitions": health.led,
        "leaderless_partitions": health.leaderless,
        "under_replicated_partitions": health.under_replicated,
    });
    (StatusCode::OK, format!("{body}\n"))
}

/// `PUT /v1/brokers/{id}/decommission` (Redpanda's admin API): the broker takes no new
/// replicas, and the controller moves its replicas to the others (`cluster/reassign.rs`).
async fn decommission<D: Disk, C: Clock>(
    State(state): State<Arc<AdminState<D, C>>>,
    Path(node_id): Path<i32>,
) -> (StatusCode, String) {
    let Some(cluster) = &state.broker.cluster else {
        return (StatusCode::NOT_FOUND, "{\"error\":\"not a cluster\"}\n".to_string());
    };
    let request = crate::cluster::ControllerRequest::DecommissionBroker { node_id };
    let reply = cluster.controller(request, std::time::Duration::from_secs(10)).await;
    if reply.error_code != sluice_protocol::error_code::NONE {
        let body = serde_json::json!({"error": sluice_protocol::error_code::name(reply.error_code),
            "error_code": reply.error_code, "message": reply.message});
        return (StatusCode::BAD_REQUEST, format!("{body}\n"));
    }
    decommission_status(State(state.clone()), Path(node_id)).await
}

/// `GET /v1/brokers/{id}/decommission`: whether the broker is leaving, and how many partitions
/// still have a replica on it (`done` once none has).
async fn decommission_status<D: Disk, C: Clock>(
    State(state): State<Arc<AdminState<D, C>>>,
    Path(node_id): Path<i32>,
) -> (StatusCode, String) {
    let Some(cluster) = &state.broker.cluster else {
        return (StatusCode::NOT_FOUND, "{\"error\":\"not a cluster\"}\n".to_string());
    };
    let snapshot = cluster.snapshot();
    let Some(broker) = snapshot.meta.broker(sluice_types::NodeId(node_id)) else {
        return (StatusCode::NOT_FOUND, "{\"error\":\"no such broker\"}\n".to_string());
    };
    let remaining = crate::cluster::reassign::replicas_on(&snapshot.meta, broker.node_id);
    let body = serde_json::json!({"node_id": node_id, "decommissioning": broker.decommissioning,
        "replicas_remaining": remaining, "done": broker.decommissioning && remaining == 0});
    (StatusCode::OK, format!("{body}\n"))
}

async fn partition<D: Disk, C: Clock>(
    State(state): State<Arc<AdminState<D, C>>>,
    Path((topic, index)): Path<(String, i32)>,
) -> (StatusCode, String) {
    let broker = &state.broker;
    let Some(partition) = broker.topics.partition(&topic, index) else {
        return (StatusCode::NOT_FOUND, "{\"error\":\"unknown partition\"}\n".to_string());
    };
    let Some(view) = partition.replica_view().filter(|v| v.local) else {
        return (StatusCode::NOT_FOUND, "{\"error\":\"no replica of this partition here\"}\n".to_string());
    };
    let marks = partition.watermarks();
    let replicas: Vec<serde_json::Value> = view
        .replicas
        .iter()
        .map(|node| {
            let matched =
                if Some(*node) == view.leader && view.leader == Some(sluice_types::NodeId(broker.config.node_id)) {
                    Some(marks.log_end_offset.0 - 1)
                } else {
                    view.matched.iter().find(|(n, _)| n == node).map(|(_, m)| m.0)
                };
            let lag = matched.map_or(-1, |m| (marks.log_end_offset.0 - 1 - m).max(0));
            serde_json::json!({"node_id": node.0, "match_offset": matched.unwrap_or(-1), "lag": lag,
                "in_sync": view.isr.contains(node)})
        })
        .collect();
    let body = serde_json::json!({
        "topic": topic,
        "partition": index,
        "node_id": broker.config.node_id,
        "term": view.leader_epoch.0,
        "role": view.role,
        "leader": view.leader.map_or(-1, |n| n.0),
        "leader_epoch": view.leader_epoch.0,
        "commit": view.commit.0,
        "high_watermark": marks.high_watermark.0,
        "log_start_offset": marks.log_start_offset.0,
        "log_end_offset": marks.log_end_offset.0,
        "replicas": replicas,
    });
    (StatusCode::OK, format!("{body}\n"))
}
