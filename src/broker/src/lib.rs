//! The async shell of a Sluice broker: listeners, request dispatch, partitions, group commit,
//! retention, and the admin HTTP endpoint.
//!
//! Everything here is generic over the seams (`sluice_io::Disk`, `sluice_io::Clock`), so the
//! same code runs on the real file system and inside the simulator. Network I/O uses the
//! workspace `tokio`, which is madsim-tokio: the simulator swaps it under `--cfg madsim`.
//!
//! Request path: `connection` (framing, ordering) -> `dispatch` -> `handlers::*` -> `topics` /
//! `partition` -> `sluice_storage::PartitionLog`; durability through `flusher` (group commit).

pub mod admin_http;
pub mod allocator;
pub mod cluster;
mod compaction;
pub mod config;
mod connection;
mod consumer_groups;
mod dispatch;
mod flusher;
mod handlers;
pub mod limits;
mod maintenance;
mod partition;
pub mod replication;
mod server;
mod state;
mod topic_config;
mod topics;

pub use cluster::ClusterConfig;
pub use config::BrokerConfig;
pub use server::{install_metrics_recorder, run};
pub use topic_config::TOPIC_CONFIG_KEYS;
