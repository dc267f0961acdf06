//! The simulated cluster: one madsim node per broker, each running the real `sluice_broker::run`
//! on its own `SimDisk` and `SimClock`, plus the process faults the nemesis applies to them.
//!
//! A broker's disk and clock live outside its node, so they survive the node: a kill (process
//! crash) keeps the disk as the page cache left it, a power loss also calls `SimDisk::crash`
//! (unsynced writes lost or torn). A broker that hits a fatal error (a failed fsync, a replica
//! that cannot write) panics by design; its node restarts, as a process supervisor would.
//! Any other panic fails the seed.

use crate::clock::SimClock;
use madsim::runtime::Handle;
use sluice_broker::{BrokerConfig, ClusterConfig};
use sluice_io::sim_disk::{SimDisk, SimDiskConfig};
use sluice_types::NodeId;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// The Kafka port every broker listens on.
pub const KAFKA_PORT: u16 = 9092;
/// The peer RPC port.
pub const RPC_PORT: u16 = 33145;
/// `offsets.topic.num.partitions` in the simulation: Kafka's 50 would add 50 Raft groups per
/// broker to every seed with a group, for no more coverage than a few.
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 4;
/// Panic messages of fatal-by-design errors: the node restarts instead of failing the seed.
/// Such a stop on a broker whose disk injects no faults is still a bug (power loss alone must
/// never stop a broker): `run.rs` reports it as `FatalOnHealthyDisk`.
pub const FATAL_BY_DESIGN: [&str; 3] = ["fsyncgate", "stopping the broker", "stopping rather than"];

/// One broker of the cluster.
pub struct Broker {
    /// Sluice's node id (1-based).
    pub id: u32,
    /// madsim's id of the node.
    pub node: madsim::task::NodeId,
    pub disk: SimDisk,
    pub clock: SimClock,
    pub up: bool,
    pub paused: bool,
}

pub struct Cluster {
    pub brokers: Vec<Broker>,
    handle: Handle,
}

pub fn broker_ip(id: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, u8::try_from(id).expect("broker id fits an octet")))
}

pub fn kafka_addr(id: u32) -> SocketAddr {
    SocketAddr::new(broker_ip(id), KAFKA_PORT)
}

impl Cluster {
    /// Starts `count` brokers. `disk_config(id)` gives each broker's disk its fault rates.
    pub fn start(count: u32, seed: u64, disk_config: impl Fn(u32) -> SimDiskConfig) -> Cluster {
        let handle = Handle::current();
        let peers: BTreeMap<NodeId, SocketAddr> =
            (1..=count).map(|id| (NodeId(id as i32), SocketAddr::new(broker_ip(id), RPC_PORT))).collect();
        let mut brokers = Vec::new();
        for id in 1..=count {
            let disk = SimDisk::new(seed.rotate_left(id) ^ u64::from(id), disk_config(id));
            disk.set_faults_enabled(false); // On once the cluster formed (nemesis phase).
            let clock = SimClock::default();
            let config = broker_config(id, &peers);
            let (node_disk, node_clock) = (disk.clone(), clock.clone());
            let mut builder = handle.create_node().name(format!("broker-{id}")).ip(broker_ip(id)).init(move || {
                let (config, disk, clock) = (config.clone(), node_disk.clone(), node_clock.clone());
                async move { serve(config, disk, clock).await }
            });
            for message in FATAL_BY_DESIGN {
                builder = builder.restart_on_panic_matching(message);
            }
            let node = builder.build().id();
            brokers.push(Broker { id, node, disk, clock, up: true, paused: false });
        }
        Cluster { brokers, handle }
    }

    pub fn broker(&mut self, id: u32) -> &mut Broker {
        &mut self.brokers[(id - 1) as usize]
    }

    /// kill -9: the process dies; with `power_loss` the disk also loses what was not synced.
    pub fn kill(&mut self, id: u32, power_loss: bool) {
        let handle = self.handle.clone();
        let broker = self.broker(id);
        if broker.paused {
            handle.resume(broker.node);
            broker.paused = false;
        }
        handle.kill(broker.node);
        if power_loss {
            broker.disk.crash();
        }
        broker.up = false;
    }

    pub fn restart(&mut self, id: u32) {
        let handle = self.handle.clone();
        let broker = self.broker(id);
        handle.restart(broker.node);
        broker.up = true;
    }

    pub fn pause(&mut self, id: u32) {
        let handle = self.handle.clone();
        let broker = self.broker(id);
        if broker.up && !broker.paused {
            handle.pause(broker.node);
            broker.paused = true;
        }
    }

    pub fn resume(&mut self, id: u32) {
        let handle = self.handle.clone();
        let broker = self.broker(id);
        if broker.paused {
            handle.resume(broker.node);
            broker.paused = false;
        }
    }

    /// Heal: every paused broker resumes and every dead one restarts; disks stop faulting.
    pub fn heal(&mut self) {
        for id in 1..=self.brokers.len() as u32 {
            self.resume(id);
            self.broker(id).disk.set_faults_enabled(false);
            if !self.broker(id).up {
                self.restart(id);
            }
        }
    }

    /// Stops every broker (kill without power loss: the page cache stays readable).
    pub fn stop_all(&mut self) {
        for id in 1..=self.brokers.len() as u32 {
            self.kill(id, false);
        }
    }
}

fn broker_config(id: u32, peers: &BTreeMap<NodeId, SocketAddr>) -> BrokerConfig {
    let ip = broker_ip(id);
    let mut config = BrokerConfig::dev_defaults();
    config.node_id = id as i32;
    config.data_dir = PathBuf::from("/data");
    config.kafka_addr = SocketAddr::new(ip, KAFKA_PORT);
    config.admin_addr = SocketAddr::new(ip, 9644);
    config.auto_create_topics = false;
    config.retention_check_interval_ms = 5_000;
    config.offsets_topic_num_partitions = OFFSETS_TOPIC_PARTITIONS;
    // KIP-848 members: the broker sets their session and heartbeat, as the classic members ask.
    config.group.consumer_session_timeout_ms = crate::group_workload::SESSION_TIMEOUT_MS;
    config.group.consumer_heartbeat_interval_ms =
        i32::try_from(crate::group_workload::HEARTBEAT_INTERVAL.as_millis()).expect("fits");
    config.cluster = Some(ClusterConfig {
        rpc_addr: SocketAddr::new(ip, RPC_PORT),
        peers: peers.clone(),
        tick_ms: ClusterConfig::TICK_MS_DEFAULT,
        replica_lag_time_max_ms: ClusterConfig::REPLICA_LAG_TIME_MAX_MS_DEFAULT,
        default_replication_factor: 3,
    });
    config
}

/// One broker process: runs until killed. A broker that cannot start panics (restarted).
async fn serve(config: BrokerConfig, disk: SimDisk, clock: SimClock) {
    let (_shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    if let Err(error) = sluice_broker::run(config, disk, clock, None, shutdown_rx).await {
        panic!("broker failed: {error:#}; stopping the broker");
    }
}
