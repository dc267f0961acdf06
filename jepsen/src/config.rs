//! The run's configuration and every bound the harness keeps, as named constants.
//!
//! Why one place: a Jepsen run is only as good as its timeouts. Every wait, queue and loop in
//! the harness is bounded by one of these, and the configuration is written to the run's store
//! directory (`config.json`) so a run can be read, and its nemesis schedule replayed, later.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The network namespace holding the bridge that joins every host (its own namespace, so the
/// partitions' nftables rules can see every packet between hosts: jepsen_tla.md §2.3).
pub const SWITCH_NS: &str = "sj-sw";
/// The namespace the harness's clients (and the harness itself, re-executed) run in.
pub const CLIENT_NS: &str = "sj-c";
/// The prefix of a host namespace: `sj-n1`, `sj-n2`, ...
pub const NODE_NS_PREFIX: &str = "sj-n";
/// The /24 all hosts share: node i is `.i`, the client namespace is `.CLIENT_HOST`.
pub const SUBNET: &str = "10.77.0";
pub const CLIENT_HOST: u32 = 100;
pub const KAFKA_PORT: u16 = 9092;
pub const ADMIN_PORT: u16 = 9644;
pub const RPC_PORT: u16 = 33145;
/// Hosts a run may have (Jepsen uses 3 or 5; the addresses leave room up to 9).
pub const NODES_MAX: u32 = 9;

/// libfaketime's multi-threaded build: the broker runs tokio's worker threads.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Jepsen kafka workload: keys map to (topic "t{k/2}", partition k % 2) (Redpanda's mapping).
pub const KEY_COUNT: u32 = 8;
pub const PARTITIONS_PER_TOPIC: u32 = 2;
/// Every topic has three replicas, as in Jepsen's Redpanda test, whatever the node count.
pub const REPLICATION_FACTOR: u32 = 3;

/// How long one worker may take to answer one request before it is killed and the op is
/// recorded as indeterminate (Jepsen's client deadline is 10 s; the send flush waits 12 s).
pub const WORKER_REPLY_TIMEOUT_MS: u64 = 15_000;
/// How long a new worker process may take to start (import confluent_kafka, connect).
pub const WORKER_START_TIMEOUT_MS: u64 = 10_000;
/// One poll op waits at most this long for records (Jepsen: poll-ms 100 during the run).
pub const POLL_MS: u64 = 100;
/// A poll op in the final phase (Jepsen: poll-ms 1000).
pub const FINAL_POLL_MS: u64 = 1_000;
/// Probability (1 in N) that an op is an assign / subscribe instead (Jepsen sub-p 1/64).
pub const SUB_ONE_IN: u32 = 64;
/// Mean seconds between crashes of one worker (Jepsen crash-client-interval 30 s).
pub const CRASH_INTERVAL_S: u64 = 30;

/// How long a broker may take to serve after it starts (a restart recovers its logs first).
pub const BROKER_READY_TIMEOUT_MS: u64 = 60_000;
/// How long the cluster may take to elect a controller and lead every created partition.
pub const CLUSTER_READY_TIMEOUT_MS: u64 = 90_000;
/// How long a SIGTERMed broker may take to exit before it is SIGKILLed.
pub const BROKER_STOP_TIMEOUT_MS: u64 = 20_000;
/// One external command (ip, nft, mount, sluice topic create) may take this long.
pub const COMMAND_TIMEOUT_MS: u64 = 30_000;
/// One admin HTTP request.
pub const ADMIN_TIMEOUT_MS: u64 = 3_000;
/// Setup time the supervisor allows beyond the run's own limits before it gives up.
pub const SUPERVISOR_SLACK_S: u64 = 240;
/// After healing, Jepsen sleeps 10 s before the final reads.
pub const HEAL_SETTLE_MS: u64 = 10_000;

/// Nemesis schedule (Jepsen `nemesis.combined`: interval 10 s).
pub const NEMESIS_INTERVAL_MS: u64 = 10_000;
/// The longest one fault stays on.
pub const FAULT_DURATION_MAX_MS: u64 = 20_000;
/// The shortest one fault stays on.
pub const FAULT_DURATION_MIN_MS: u64 = 3_000;
/// Clock bumps are ±2^k ms with k ≤ this (Jepsen: bumps up to 2^18 ms ≈ 262 s).
pub const CLOCK_BUMP_EXPONENT_MAX: u32 = 18;
/// Clock strobe: flip between two times every period for the fault's duration.
pub const CLOCK_STROBE_PERIOD_MS: u64 = 50;
/// Random packet loss, percent of packets between brokers.
pub const LOSS_PERCENT_MIN: u32 = 10;
pub const LOSS_PERCENT_MAX: u32 = 50;
/// Each host's data directory lives on a tmpfs of this size (the disk-full nemesis fills it).
pub const DISK_MB: u32 = 256;

/// The faults a run can inject.
pub const NEMESES: [&str; 6] = ["partition", "kill", "pause", "clock", "loss", "disk"];

/// How many workers a run uses by default: two per node.
pub fn default_concurrency(nodes: u32) -> u32 {
    2 * nodes
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Idempotence {
    On,
    Off,
    /// Even processes idempotent, odd ones not.
    Mixed,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SubVia {
    Assign,
    Subscribe,
}

/// Everything one run needs; the supervisor writes it, the inner run reads it.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct RunConfig {
    pub nodes: u32,
    pub nemesis: Vec<String>,
    /// Partition shapes the partition nemesis draws from (Jepsen names).
    pub partition_shapes: Vec<String>,
    pub time_limit_s: u64,
    pub final_time_limit_s: u64,
    pub seed: u64,
    /// Operations per second across all workers (Jepsen: 100).
    pub rate: u32,
    pub concurrency: u32,
    pub idempotence: Idempotence,
    pub sub_via: SubVia,
    pub store: PathBuf,
    pub sluice: PathBuf,
    pub python: PathBuf,
    pub worker_script: PathBuf,
}

impl RunConfig {
    pub fn node_ns(node: u32) -> String {
        format!("{NODE_NS_PREFIX}{node}")
    }

    pub fn host(node: u32) -> String {
        format!("{SUBNET}.{node}")
    }

    pub fn kafka_addr(node: u32) -> String {
        format!("{}:{KAFKA_PORT}", Self::host(node))
    }

    pub fn admin_addr(node: u32) -> String {
        format!("{}:{ADMIN_PORT}", Self::host(node))
    }

    pub fn bootstrap(&self) -> String {
        (1..=self.nodes).map(Self::kafka_addr).collect::<Vec<_>>().join(",")
    }

    pub fn node_dir(&self, node: u32) -> PathBuf {
        self.store.join(format!("n{node}"))
    }

    /// The tmpfs mount point of a node; its data directory is `disk/data`.
    pub fn disk_dir(&self, node: u32) -> PathBuf {
        self.node_dir(node).join("disk")
    }

    pub fn data_dir(&self, node: u32) -> PathBuf {
        self.disk_dir(node).join("data")
    }

    pub fn faketime_file(&self, node: u32) -> PathBuf {
        self.node_dir(node).join("faketime")
    }

    pub fn topics(&self) -> Vec<String> {
        (0..KEY_COUNT / PARTITIONS_PER_TOPIC).map(|t| format!("t{t}")).collect()
    }

    pub fn idempotent(&self, process: u64) -> bool {
        match self.idempotence {
            Idempotence::On => true,
            Idempotence::Off => false,
            Idempotence::Mixed => process.is_multiple_of(2),
        }
    }
}

/// Every (topic, partition) of the workload, in key order.
pub fn all_partitions() -> Vec<(String, i32)> {
    (0..KEY_COUNT).map(key_partition).collect()
}

/// Key → (topic, partition), Jepsen's Redpanda mapping.
pub fn key_partition(key: u32) -> (String, i32) {
    assert!(key < KEY_COUNT, "key {key} out of range");
    (format!("t{}", key / PARTITIONS_PER_TOPIC), (key % PARTITIONS_PER_TOPIC) as i32)
}
