//! The admin HTTP endpoint: `/v1/status/live`, `/v1/status/ready`, `/metrics`.
//!
//! Shapes follow Redpanda's admin API (reference/style.md §B.4): live is 200 while the process
//! serves; ready is 200 `{"status":"ready"}` once recovery finished and the Kafka listener is
//! up, 503 `{"status":"booting"}` before. `/metrics` is Prometheus text.

use crate::state::BrokerState;
use axum::Router;
use axum::extract::State;
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
    metrics: PrometheusHandle,
}

pub(crate) async fn serve<D: Disk, C: Clock>(
    listener: TcpListener,
    broker: Arc<BrokerState<D, C>>,
    metrics: PrometheusHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    let state = Arc::new(AdminState { broker, metrics });
    let app = Router::new()
        .route("/v1/status/live", get(|| async { (StatusCode::OK, "{\"status\":\"live\"}\n") }))
        .route("/v1/status/ready", get(ready::<D, C>))
        .route("/metrics", get(render::<D, C>))
        .with_state(state);
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
        tracing::error!(%error, "admin HTTP server failed");
    }
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
    metrics::gauge!("sluice_partitions_leader").set(state.broker.topics.partition_count() as f64);
    state.metrics.render()
}
