//! The broker's own settings (not per-topic ones), with the embedded defaults of dev mode.
//!
//! The CLI fills this from flags, `sluice.toml` and `SLUICE_*` variables; the broker only reads
//! it. Per-topic settings live in `topic_config.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Kafka's default `offsets.topic.num.partitions`.
pub const OFFSETS_TOPIC_NUM_PARTITIONS_DEFAULT: i32 = 50;

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// `node.id`: this broker's id.
    pub node_id: i32,
    /// Where partition logs and metadata live.
    pub data_dir: PathBuf,
    /// The Kafka API listener.
    pub kafka_addr: SocketAddr,
    /// The host:port clients are told to connect to (Metadata). Defaults to `kafka_addr`.
    pub advertised_kafka_addr: Option<String>,
    /// The admin HTTP listener (`/metrics`, `/v1/status/*`).
    pub admin_addr: SocketAddr,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of an auto-created topic or a CreateTopics with -1.
    pub num_partitions: i32,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: u32,
    /// `queued.max.request.bytes`: request bytes held in memory broker-wide. Invariant:
    /// `>= socket_request_max_bytes` (any single allowed frame fits).
    pub queued_max_request_bytes: u32,
    /// `Some` when the broker runs in a cluster (`--peers`); `None` serves a single node.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`.
    pub offsets_topic_num_partitions: i32,
    /// The group coordinator's settings (`group.*`, `offsets.retention.minutes`).
    pub group: sluice_group::GroupConfig,
    /// `log.cleaner.backoff.ms`: the pause between the log cleaner's passes.
    pub log_cleaner_backoff_ms: u64,
}

impl BrokerConfig {
    /// Embedded defaults: one node, data in `./sluice-data`, Kafka on 9092, admin on 9644.
    pub fn dev_defaults() -> BrokerConfig {
        BrokerConfig {
            node_id: 1,
            data_dir: PathBuf::from("./sluice-data"),
            kafka_addr: "127.0.0.1:9092".parse().expect("valid address"),
            advertised_kafka_addr: None,
            admin_addr: "127.0.0.1:9644".parse().expect("valid address"),
            auto_create_topics: true,
            num_partitions: 1,
            retention_check_interval_ms: 300_000,
            socket_request_max_bytes: sluice_protocol::frame::REQUEST_FRAME_BYTES_MAX,
            queued_max_request_bytes: crate::limits::REQUEST_BYTES_BUFFERED_MAX,
            cluster: None,
            offsets_topic_num_partitions: OFFSETS_TOPIC_NUM_PARTITIONS_DEFAULT,
            group: sluice_group::GroupConfig::default(),
            log_cleaner_backoff_ms: crate::compaction::CLEANER_BACKOFF_MS,
        }
    }

    /// (host, port) advertised to clients.
    pub fn advertised(&self) -> (String, i32) {
        let advertised = self.advertised_kafka_addr.clone().unwrap_or_else(|| self.kafka_addr.to_string());
        match advertised.rsplit_once(':') {
            Some((host, port)) => (host.trim_matches(['[', ']']).to_string(), port.parse().unwrap_or(9092)),
            None => (advertised, i32::from(self.kafka_addr.port())),
        }
    }
}
