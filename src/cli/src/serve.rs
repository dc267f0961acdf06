//! `sluice serve`: flags, `sluice.toml` and `SLUICE_*` variables layered into a `BrokerConfig`.
//!
//! Precedence: flag, then environment variable, then the config file, then the embedded
//! default (`BrokerConfig::dev_defaults`). Every flag has a config-file key of the same
//! spelling (`--kafka-addr` is `kafka-addr = "..."`); unknown keys are an error, so typos
//! surface at start-up.

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use sluice_broker::BrokerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// This broker's node id.
    #[arg(long, env = "SLUICE_NODE_ID")]
    node_id: Option<i32>,
    /// Directory for partition logs and metadata [default: ./sluice-data].
    #[arg(long, env = "SLUICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Kafka API listener [default: 127.0.0.1:9092].
    #[arg(long, env = "SLUICE_KAFKA_ADDR")]
    kafka_addr: Option<SocketAddr>,
    /// host:port advertised to clients in Metadata [default: the Kafka listener].
    #[arg(long, env = "SLUICE_ADVERTISED_KAFKA_ADDR")]
    advertised_kafka_addr: Option<String>,
    /// Broker-to-broker RPC listener [default: this node's address in --peers].
    #[arg(long, env = "SLUICE_RPC_ADDR")]
    rpc_addr: Option<SocketAddr>,
    /// Admin HTTP listener: /metrics, /v1/status/live, /v1/status/ready [default: 127.0.0.1:9644].
    #[arg(long, env = "SLUICE_ADMIN_ADDR")]
    admin_addr: Option<SocketAddr>,
    /// Path of a sluice.toml config file.
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// The cluster's static initial voters, `id=host:port,...` (RPC addresses), this node
    /// included; every node gets the same list. Without it the broker serves a single node.
    #[arg(long, env = "SLUICE_PEERS")]
    peers: Option<String>,
    /// Create unknown topics on Metadata and Produce (auto.create.topics.enable) [default: true].
    #[arg(long, env = "SLUICE_AUTO_CREATE_TOPICS")]
    auto_create_topics: Option<bool>,
    /// Partitions of an auto-created topic (num.partitions) [default: 1].
    #[arg(long, env = "SLUICE_NUM_PARTITIONS")]
    num_partitions: Option<i32>,
    /// How often retention runs (log.retention.check.interval.ms) [default: 300000].
    #[arg(long, env = "SLUICE_RETENTION_CHECK_INTERVAL_MS")]
    retention_check_interval_ms: Option<u64>,
    /// Partitions of the internal __consumer_offsets topic (offsets.topic.num.partitions),
    /// fixed once the topic exists [default: 50].
    #[arg(long, env = "SLUICE_OFFSETS_TOPIC_NUM_PARTITIONS")]
    offsets_topic_num_partitions: Option<i32>,
    /// How long the first rebalance of an empty group waits for more members
    /// (group.initial.rebalance.delay.ms, KIP-134) [default: 3000].
    #[arg(long, env = "SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<i64>,
    /// Shortest session timeout a group member may ask for (group.min.session.timeout.ms)
    /// [default: 6000].
    #[arg(long, env = "SLUICE_GROUP_MIN_SESSION_TIMEOUT_MS")]
    group_min_session_timeout_ms: Option<i32>,
    /// How long a KIP-848 consumer group member may go without a heartbeat
    /// (group.consumer.session.timeout.ms) [default: 45000].
    #[arg(long, env = "SLUICE_GROUP_CONSUMER_SESSION_TIMEOUT_MS")]
    group_consumer_session_timeout_ms: Option<i32>,
    /// How often a KIP-848 consumer group member heartbeats (group.consumer.heartbeat.interval.ms)
    /// [default: 5000].
    #[arg(long, env = "SLUICE_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS")]
    group_consumer_heartbeat_interval_ms: Option<i32>,
    /// How long an empty group's committed offsets are kept (offsets.retention.minutes)
    /// [default: 10080, 7 days].
    #[arg(long, env = "SLUICE_OFFSETS_RETENTION_MINUTES")]
    offsets_retention_minutes: Option<i64>,
    /// Pause between the log cleaner's compaction passes (log.cleaner.backoff.ms) [default: 15000].
    #[arg(long, env = "SLUICE_LOG_CLEANER_BACKOFF_MS")]
    log_cleaner_backoff_ms: Option<u64>,
}

/// `sluice.toml`: the same settings as the flags.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    node_id: Option<i32>,
    data_dir: Option<PathBuf>,
    kafka_addr: Option<SocketAddr>,
    advertised_kafka_addr: Option<String>,
    rpc_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    peers: Option<String>,
    auto_create_topics: Option<bool>,
    num_partitions: Option<i32>,
    retention_check_interval_ms: Option<u64>,
    offsets_topic_num_partitions: Option<i32>,
    group_initial_rebalance_delay_ms: Option<i64>,
    group_min_session_timeout_ms: Option<i32>,
    group_consumer_session_timeout_ms: Option<i32>,
    group_consumer_heartbeat_interval_ms: Option<i32>,
    offsets_retention_minutes: Option<i64>,
    log_cleaner_backoff_ms: Option<u64>,
}

impl ServeArgs {
    /// Layers flags/env over the config file over the defaults.
    pub fn resolve(self) -> anyhow::Result<BrokerConfig> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<FileConfig>(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let mut config = BrokerConfig::dev_defaults();
        if let Some(v) = self.node_id.or(file.node_id) {
            config.node_id = v;
        }
        if let Some(v) = self.data_dir.or(file.data_dir) {
            config.data_dir = v;
        }
        if let Some(v) = self.kafka_addr.or(file.kafka_addr) {
            config.kafka_addr = v;
        }
        config.advertised_kafka_addr = self.advertised_kafka_addr.or(file.advertised_kafka_addr);
        if let Some(v) = self.admin_addr.or(file.admin_addr) {
            config.admin_addr = v;
        }
        if let Some(v) = self.auto_create_topics.or(file.auto_create_topics) {
            config.auto_create_topics = v;
        }
        if let Some(v) = self.num_partitions.or(file.num_partitions) {
            config.num_partitions = v;
        }
        if let Some(v) = self.retention_check_interval_ms.or(file.retention_check_interval_ms) {
            config.retention_check_interval_ms = v;
        }
        if let Some(v) = self.offsets_topic_num_partitions.or(file.offsets_topic_num_partitions) {
            anyhow::ensure!((1..=1000).contains(&v), "--offsets-topic-num-partitions must be in 1..=1000");
            config.offsets_topic_num_partitions = v;
        }
        if let Some(v) = self.group_initial_rebalance_delay_ms.or(file.group_initial_rebalance_delay_ms) {
            anyhow::ensure!(v >= 0, "--group-initial-rebalance-delay-ms must be >= 0");
            config.group.initial_rebalance_delay_ms = v;
        }
        if let Some(v) = self.group_min_session_timeout_ms.or(file.group_min_session_timeout_ms) {
            anyhow::ensure!(
                (1..=config.group.session_timeout_ms_max).contains(&v),
                "--group-min-session-timeout-ms must be in 1..=group.max.session.timeout.ms"
            );
            config.group.session_timeout_ms_min = v;
        }
        if let Some(v) = self.group_consumer_session_timeout_ms.or(file.group_consumer_session_timeout_ms) {
            config.group.consumer_session_timeout_ms = v;
        }
        if let Some(v) = self.group_consumer_heartbeat_interval_ms.or(file.group_consumer_heartbeat_interval_ms) {
            config.group.consumer_heartbeat_interval_ms = v;
        }
        // Kafka requires the heartbeat interval below the session timeout.
        anyhow::ensure!(
            config.group.consumer_heartbeat_interval_ms >= 1
                && config.group.consumer_heartbeat_interval_ms < config.group.consumer_session_timeout_ms,
            "--group-consumer-heartbeat-interval-ms must be in 1..--group-consumer-session-timeout-ms"
        );
        if let Some(v) = self.offsets_retention_minutes.or(file.offsets_retention_minutes) {
            anyhow::ensure!(v >= 1, "--offsets-retention-minutes must be >= 1");
            config.group.offsets_retention_ms = v.saturating_mul(60_000);
        }
        if let Some(v) = self.log_cleaner_backoff_ms.or(file.log_cleaner_backoff_ms) {
            anyhow::ensure!(v >= 1, "--log-cleaner-backoff-ms must be >= 1");
            config.log_cleaner_backoff_ms = v;
        }
        anyhow::ensure!(config.node_id >= 0, "--node-id must be >= 0");
        let rpc_addr = self.rpc_addr.or(file.rpc_addr);
        if let Some(peers) = self.peers.or(file.peers) {
            let peers = parse_peers(&peers)?;
            let me = sluice_types::NodeId(config.node_id);
            let rpc_addr = match rpc_addr.or_else(|| peers.get(&me).copied()) {
                Some(addr) => addr,
                None => anyhow::bail!("--peers does not name this node ({})", config.node_id),
            };
            config.cluster = Some(sluice_broker::ClusterConfig {
                rpc_addr,
                peers,
                tick_ms: sluice_broker::ClusterConfig::TICK_MS_DEFAULT,
                replica_lag_time_max_ms: sluice_broker::ClusterConfig::REPLICA_LAG_TIME_MAX_MS_DEFAULT,
                default_replication_factor: 1,
            });
        } else if rpc_addr.is_some() {
            tracing::warn!("--rpc-addr without --peers: serving a single node, the RPC listener is not used");
        }
        anyhow::ensure!(config.num_partitions >= 1, "--num-partitions must be >= 1");
        Ok(config)
    }
}

/// Parses `id=host:port,...` (the `--peers` value).
fn parse_peers(text: &str) -> anyhow::Result<std::collections::BTreeMap<sluice_types::NodeId, SocketAddr>> {
    let mut peers = std::collections::BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry.split_once('=').with_context(|| format!("--peers: '{entry}' is not id=host:port"))?;
        let id: i32 = id.trim().parse().with_context(|| format!("--peers: '{id}' is not a node id"))?;
        anyhow::ensure!(id >= 0, "--peers: node id {id} must be >= 0");
        let addr = std::net::ToSocketAddrs::to_socket_addrs(addr.trim())
            .with_context(|| format!("--peers: cannot resolve '{addr}'"))?
            .next()
            .with_context(|| format!("--peers: '{addr}' has no address"))?;
        anyhow::ensure!(peers.insert(sluice_types::NodeId(id), addr).is_none(), "--peers names node {id} twice");
    }
    anyhow::ensure!(!peers.is_empty(), "--peers is empty");
    Ok(peers)
}

/// Runs the broker until SIGINT or SIGTERM, then shuts it down cleanly.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let metrics = sluice_broker::install_metrics_recorder()?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; shutting down");
        let _ = shutdown_tx.send(true);
    });
    sluice_broker::run(config, sluice_io::StdDisk, sluice_io::SystemClock, Some(metrics), shutdown_rx).await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
