//! Cluster mode: the multi-raft driver and what request handlers use to reach it.
//!
//! A broker started with `--peers` runs one driver task ([`driver`]) that owns every Raft
//! replica on this broker: the controller group (the `sluice-meta` state machine over the
//! `__cluster_metadata` log) and one group per hosted partition. Handlers never touch a
//! replica; they send a [`Command`] and await its answer, so every Raft step happens on one
//! task in a deterministic order (DESIGN.md, Replication: "one ticker for all replicas").
//!
//! Map: `driver.rs` (the loop: ticks, RPCs, commands, flush reports), `groups.rs` (one group's
//! step and what it publishes), `metadata.rs` (applying the controller log and reconciling the
//! local partitions with it), `controller.rs` (forwarded topic operations), `flush_reports.rs`
//! (flusher -> driver), `limits.rs`.

mod controller;
mod driver;
mod flush_reports;
mod groups;
mod leader_reports;
pub mod limits;
mod metadata;
pub mod reassign;

pub use controller::{ControllerReply, ControllerRequest};
pub use driver::spawn_driver;
pub use flush_reports::FlushReports;

use crate::partition::Partition;
use bytes::BytesMut;
use sluice_io::Disk;
use sluice_meta::MetaState;
use sluice_storage::AppendInfo;
use sluice_types::{NodeId, Offset, Term};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Cluster settings (`--peers`, `--rpc-addr`).
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Where this broker listens for peers.
    pub rpc_addr: SocketAddr,
    /// The static initial voters of the controller group, this broker included.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// One Raft tick. Heartbeats go every tick; elections time out after 10 to 20 ticks.
    pub tick_ms: u64,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `default.replication.factor` for auto-created topics and CreateTopics with -1.
    pub default_replication_factor: i16,
}

impl ClusterConfig {
    pub const TICK_MS_DEFAULT: u64 = 100;
    /// Kafka's default (KIP-537).
    pub const REPLICA_LAG_TIME_MAX_MS_DEFAULT: i64 = 30_000;
}

/// Where a leader's propose landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposed {
    pub info: AppendInfo,
    /// The leader epoch it was appended in: an acks=-1 answer waits for the high watermark
    /// only while the epoch stays the same.
    pub leader_epoch: Term,
}

/// What a handler asks of the driver.
pub enum Command<D: Disk> {
    /// Append a validated producer batch through the partition's group (leader only).
    Propose { partition: Arc<Partition<D>>, batch: BytesMut, reply: oneshot::Sender<Result<Proposed, i16>> },
    /// A topic operation for the controller (proposed here or forwarded to its leader).
    Controller { request: ControllerRequest, reply: oneshot::Sender<ControllerReply> },
    /// Run retention on a replicated partition (its log start may only move over committed
    /// data, and the replica must record the new start).
    Retention { partition: Arc<Partition<D>> },
    /// Hand every leadership away (shutdown, Raft thesis §3.10); answers when none is left or
    /// the driver gave up.
    TransferAll { reply: oneshot::Sender<usize> },
    /// Elect the preferred replica of a partition (ElectLeaders): done here when this broker
    /// leads it, otherwise forwarded to its leader.
    ElectPreferred { topic: String, partition: i32, reply: oneshot::Sender<ControllerReply> },
    /// Stop the driver after this turn (shutdown, after the transfer and the drain).
    Stop { reply: oneshot::Sender<()> },
}

/// What every handler can read about the cluster without asking the driver.
#[derive(Clone, Debug, Default)]
pub struct ClusterSnapshot {
    /// The controller group's leader, if known.
    pub controller: Option<NodeId>,
    /// The metadata state as applied by this broker.
    pub meta: Arc<MetaState>,
    /// The controller log index applied so far (-1 before the first).
    pub applied_index: Offset,
}

/// The handlers' side of the driver.
#[derive(Clone)]
pub struct ClusterHandle<D: Disk> {
    pub node_id: NodeId,
    pub config: ClusterConfig,
    commands: mpsc::Sender<Command<D>>,
    snapshot: watch::Receiver<Arc<ClusterSnapshot>>,
}

/// Why the driver could not be asked.
pub const DRIVER_GONE: i16 = sluice_protocol::error_code::REQUEST_TIMED_OUT;

impl<D: Disk> ClusterHandle<D> {
    pub fn snapshot(&self) -> Arc<ClusterSnapshot> {
        self.snapshot.borrow().clone()
    }

    pub async fn propose(&self, partition: Arc<Partition<D>>, batch: BytesMut) -> Result<Proposed, i16> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Propose { partition, batch, reply }).await.is_err() {
            return Err(DRIVER_GONE);
        }
        answer.await.unwrap_or(Err(DRIVER_GONE))
    }

    /// Sends a topic operation to the controller, retrying NOT_CONTROLLER (no leader yet, or
    /// it moved) until `timeout`, then waits until this broker applied the result.
    pub async fn controller(&self, request: ControllerRequest, timeout: Duration) -> ControllerReply {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (reply, answer) = oneshot::channel();
            let command = Command::Controller { request: request.clone(), reply };
            if self.commands.send(command).await.is_err() {
                return ControllerReply::refused(DRIVER_GONE, "broker is shutting down");
            }
            let answer = sluice_io::timeout_at(deadline, answer).await;
            let reply = match answer {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => ControllerReply::refused(DRIVER_GONE, "broker is shutting down"),
                Err(_) => return ControllerReply::refused(sluice_protocol::error_code::REQUEST_TIMED_OUT, "timed out"),
            };
            if reply.error_code == sluice_protocol::error_code::NOT_CONTROLLER && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(limits::CONTROLLER_RETRY_MS)).await;
                continue;
            }
            if reply.applied_index >= 0 {
                self.wait_applied(Offset(reply.applied_index), deadline).await;
            }
            return reply;
        }
    }

    /// Waits (until `deadline`) for this broker to apply the controller log through `index`.
    pub async fn wait_applied(&self, index: Offset, deadline: tokio::time::Instant) -> bool {
        let mut snapshot = self.snapshot.clone();
        let reached = async {
            loop {
                if snapshot.borrow_and_update().applied_index >= index {
                    return true;
                }
                if snapshot.changed().await.is_err() {
                    return false;
                }
            }
        };
        sluice_io::timeout_at(deadline, reached).await.unwrap_or(false)
    }

    /// ElectLeaders PREFERRED for one partition: the Kafka error code (NONE once the transfer
    /// started, ELECTION_NOT_NEEDED when the preferred replica leads already).
    pub async fn elect_preferred(&self, topic: String, partition: i32, timeout: Duration) -> ControllerReply {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::ElectPreferred { topic, partition, reply }).await.is_err() {
            return ControllerReply::refused(DRIVER_GONE, "broker is shutting down");
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(reply)) => reply,
            _ => ControllerReply::refused(sluice_protocol::error_code::REQUEST_TIMED_OUT, "timed out"),
        }
    }

    pub async fn send(&self, command: Command<D>) -> bool {
        self.commands.send(command).await.is_ok()
    }

    pub fn try_send(&self, command: Command<D>) -> bool {
        self.commands.try_send(command).is_ok()
    }
}

/// The channel pair between handlers and the driver.
pub fn channel<D: Disk>(
    node_id: NodeId,
    config: ClusterConfig,
) -> (ClusterHandle<D>, mpsc::Receiver<Command<D>>, watch::Sender<Arc<ClusterSnapshot>>) {
    let (commands, receiver) = mpsc::channel(limits::COMMANDS_QUEUED_MAX);
    let (publish, snapshot) =
        watch::channel(Arc::new(ClusterSnapshot { applied_index: Offset(-1), ..Default::default() }));
    (ClusterHandle { node_id, config, commands, snapshot }, receiver, publish)
}

/// A storage failure the broker cannot carry on from: it stops, and its supervisor restarts it,
/// rather than risk an acknowledged record. One wording for every such stop, which the
/// simulator recognises (`sim/src/cluster.rs`, `FATAL_BY_DESIGN`).
pub(crate) fn stop_broker(failed: std::fmt::Arguments<'_>) -> ! {
    panic!("{failed}; stopping the broker")
}
