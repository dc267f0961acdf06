//! The multi-raft driver: one task that owns every Raft replica on this broker.
//!
//! Each turn handles one event, then drains the outbox to the peers:
//! - a tick: every group steps `Input::Tick` (one ticker for all groups, DESIGN.md
//!   Replication), leaders refresh their ISR, and the periodic duties run (registration with
//!   the controller, preferred-leader balance, forward timeouts, the shutdown transfer);
//! - an RPC from a peer: a `PeerBatch` is split into its groups' messages, each stepped into
//!   its replica; forwarded controller requests and their answers are matched up;
//! - a command from a handler (propose, controller request, retention, transfer);
//! - flush reports: `Input::Persisted` for each group the flusher made durable.
//!
//! Determinism: groups are visited in `GroupId` order, randomized election timeouts come from
//! one seeded ChaCha stream (the seed is logged at start), and nothing here spawns threads.

use super::controller::{ControllerReply, ControllerRequest, command_batch};
use super::flush_reports::FlushReports;
use super::groups::{Group, Now, Stepped};
use super::limits::{
    CONTROLLER_WAITERS_MAX, FORWARD_TIMEOUT_MS, FORWARDS_PENDING_MAX, LEADER_REPORT_MS, PREFERRED_LEADER_CHECK_MS,
    REASSIGN_CHECK_MS, REGISTER_RETRY_MS, SHUTDOWN_TRANSFER_MS,
};
use super::{ClusterConfig, ClusterSnapshot, Command, Proposed, stop_broker};
use crate::partition::{Partition, ReplicaView};
use crate::replication::Replica;
use crate::state::BrokerState;
use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_io::{Clock, Disk, TcpTransport, Transport};
use sluice_meta::MetaState;
use sluice_protocol::error_code;
use sluice_raft::{Config, Input, Membership, Role};
use sluice_rpc::{ForwardRequest, ForwardResponse, GroupId, Link, Outbox, Rpc, decode_rpc_from, encode_rpc};
use sluice_storage::{AppendInfo, LogConfig, PartitionLog};
use sluice_types::defect::{self, Defect};
use sluice_types::{BatchHeader, NodeId, Offset};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// The controller log's directory under the data dir (KRaft: `__cluster_metadata-0`; no `-N`
/// suffix here, so it is never mistaken for a topic partition).
pub const CONTROLLER_DIR: &str = "__cluster_metadata";

/// Who waits for a controller proposal's outcome.
pub(super) enum Origin {
    Local(oneshot::Sender<ControllerReply>),
    Remote {
        to: NodeId,
        correlation_id: u64,
    },
    /// The driver's own request (registration): nobody waits.
    Internal,
}

pub(super) struct Driver<D: Disk, C: Clock> {
    pub me: NodeId,
    pub state: Arc<BrokerState<D, C>>,
    pub config: ClusterConfig,
    pub transport: TcpTransport,
    pub outbox: Outbox,
    pub groups: BTreeMap<GroupId, Group<D>>,
    pub meta: MetaState,
    /// The controller log index applied to `meta` (control batches included).
    pub meta_applied: Offset,
    /// Controller leader: proposals by entry index, answered when applied.
    pub waiters: BTreeMap<Offset, Origin>,
    /// Requests forwarded to the controller leader: deadline (monotonic ms) and who waits.
    pub forwards: BTreeMap<u64, (i64, oneshot::Sender<ControllerReply>)>,
    pub next_correlation_id: u64,
    pub rng: ChaCha8Rng,
    pub commands: mpsc::Receiver<Command<D>>,
    pub reports: Arc<FlushReports>,
    pub publish: watch::Sender<Arc<ClusterSnapshot>>,
    /// When the driver started: `monotonic_ms` counts from here.
    pub started: Instant,
    /// Periodic upkeep, each last done at (monotonic ms): a wall clock that jumps back would
    /// stop it for the length of the jump (the simulator's seed 174 with a group workload:
    /// leader reports stopped for 67 s).
    pub last_register_ms: i64,
    pub last_preferred_check_ms: i64,
    /// A shutdown transfer in progress: its deadline (monotonic ms) and who waits for it.
    pub transfer: Option<(i64, oneshot::Sender<usize>)>,
    /// The controller's commit moved: apply at the end of the turn (not from inside a step,
    /// which would make stepping recursive).
    pub apply_pending: bool,
    /// Groups whose preferred replica is this broker, to campaign in at the end of the turn.
    pub campaigns: Vec<GroupId>,
    pub last_reassign_check_ms: i64,
    pub last_leader_report_ms: i64,
    /// Groups whose leader here reported a completed move, and when (monotonic ms, `reassign.rs`).
    pub completions: BTreeMap<GroupId, i64>,
}

pub(super) fn raft_config(me: NodeId) -> Config {
    Config::new(me)
}

/// Binds the peer transport, opens the controller replica and starts the driver task.
pub async fn spawn_driver<D: Disk, C: Clock>(
    state: Arc<BrokerState<D, C>>,
    commands: mpsc::Receiver<Command<D>>,
    publish: watch::Sender<Arc<ClusterSnapshot>>,
    reports: Arc<FlushReports>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let handle = state.cluster.as_ref().expect("the driver runs in cluster mode");
    let config = handle.config.clone();
    let me = handle.node_id;
    anyhow::ensure!(config.peers.contains_key(&me), "--peers must name this node ({})", me.0);
    let others = config.peers.iter().filter(|(id, _)| **id != me).map(|(id, addr)| (*id, *addr)).collect();
    let transport = TcpTransport::bind(me, config.rpc_addr, others).await?;
    let now_ms = state.clock.wall_ms();
    let dir = state.config.data_dir.join(CONTROLLER_DIR);
    let log = PartitionLog::open(state.disk.clone(), &dir, LogConfig::default(), now_ms).await?;
    let voters: BTreeSet<NodeId> = config.peers.keys().copied().collect();
    let membership = Membership { voters: voters.clone(), learners: BTreeSet::new() };
    let replica = Replica::open(raft_config(me), &state.disk, &dir, &log, membership).await?;
    let mut view = ReplicaView::new(GroupId::Controller, voters.into_iter().collect(), true);
    view.commit = replica.raft().committed();
    view.leader_epoch = replica.raft().term();
    let partition = Arc::new(Partition::replicated(CONTROLLER_DIR.to_string(), 0, log, view));
    let lag_max_ms = config.replica_lag_time_max_ms;
    let group = Group { id: GroupId::Controller, replica, partition, caught_up_ms: BTreeMap::new(), lag_max_ms };
    let seed = (me.0 as u64).rotate_left(32) ^ now_ms as u64;
    tracing::info!(node = me.0, rpc = %config.rpc_addr, peers = config.peers.len(), seed,
        "cluster driver started (election timeouts from ChaCha8 with this seed)");
    let driver = Driver {
        me,
        state: state.clone(),
        config,
        transport,
        outbox: Outbox::new(me),
        groups: BTreeMap::from([(GroupId::Controller, group)]),
        meta: MetaState::new(),
        meta_applied: Offset(-1),
        waiters: BTreeMap::new(),
        forwards: BTreeMap::new(),
        next_correlation_id: 1,
        rng: ChaCha8Rng::seed_from_u64(seed),
        commands,
        reports,
        publish,
        started: state.clock.now(),
        last_register_ms: i64::MIN / 2,
        last_preferred_check_ms: 0,
        transfer: None,
        apply_pending: false,
        campaigns: Vec::new(),
        last_reassign_check_ms: 0,
        last_leader_report_ms: 0,
        completions: BTreeMap::new(),
    };
    Ok(tokio::spawn(driver.run()))
}

impl<D: Disk, C: Clock> Driver<D, C> {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(Duration::from_millis(self.config.tick_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reports = self.reports.clone();
        let transport = self.transport.clone();
        loop {
            tokio::select! {
                _ = ticker.tick() => self.tick().await,
                _ = reports.wait() => self.flushed().await,
                received = transport.recv() => match received {
                    Some((from, bytes)) => self.receive(from, bytes).await,
                    None => break,
                },
                command = self.commands.recv() => match command {
                    Some(Command::Stop { reply }) => {
                        self.send_outbox();
                        let _ = reply.send(());
                        break;
                    }
                    Some(command) => self.command(command).await,
                    None => break,
                },
            }
            self.settle().await;
            self.send_outbox();
        }
        self.transport.close();
        tracing::info!("cluster driver stopped");
    }

    /// End of a turn: apply what the controller committed and run the campaigns it asked for,
    /// until neither is left (bounded: each pass applies the committed log to its end).
    async fn settle(&mut self) {
        while self.apply_pending || !self.campaigns.is_empty() {
            if self.apply_pending {
                self.apply_pending = false;
                self.apply_committed().await;
            }
            for id in std::mem::take(&mut self.campaigns) {
                self.step(id, Input::Campaign, &BTreeMap::new()).await;
            }
        }
    }

    /// Wall time: for timestamps and retention only, never for a timeout (it may jump).
    pub fn wall_ms(&self) -> i64 {
        self.state.clock.wall_ms()
    }

    /// Monotonic milliseconds since the driver started: for every timeout and interval.
    pub fn monotonic_ms(&self) -> i64 {
        let elapsed = self.state.clock.now().saturating_duration_since(self.started);
        i64::try_from(elapsed.as_millis()).expect("uptime fits i64 milliseconds")
    }

    pub fn now(&self) -> Now {
        Now { wall_ms: self.wall_ms(), monotonic_ms: self.monotonic_ms() }
    }

    fn send_outbox(&mut self) {
        for rpc in self.outbox.drain() {
            if let Err(error) = self.transport.send(rpc.to, rpc.payload) {
                tracing::debug!(to = rpc.to.0, %error, "peer send failed (Raft retries)");
            }
        }
    }

    /// Steps one group, then acts on what changed.
    pub async fn step(&mut self, id: GroupId, input: Input, received: &BTreeMap<Offset, Bytes>) {
        let now = self.now();
        let Some(group) = self.groups.get_mut(&id) else { return };
        let stepped = group.step(input, received, &self.state.disk, now, &mut self.outbox).await;
        self.after_step(id, stepped).await;
    }

    pub async fn after_step(&mut self, id: GroupId, stepped: Stepped) {
        if stepped.needs_flush
            && let Some(group) = self.groups.get(&id)
        {
            let partition = group.partition.clone();
            self.state.flush.enqueue(&partition).await;
        }
        if id == GroupId::Controller {
            if stepped.leader_changed {
                self.controller_leader_changed();
            }
            if stepped.committed {
                self.apply_pending = true;
            }
        }
    }

    async fn tick(&mut self) {
        let now_ms = self.monotonic_ms();
        let ids: Vec<GroupId> = self.groups.keys().copied().collect();
        for id in ids {
            let min = raft_config(self.me).election_timeout_ticks_min;
            let timeout = self.rng.gen_range(min..2 * min);
            self.step(id, Input::Tick { randomized_election_timeout_ticks: timeout }, &BTreeMap::new()).await;
            if let Some(group) = self.groups.get_mut(&id) {
                group.refresh_leader_view(now_ms);
            }
            self.buggify_step_down(id).await;
        }
        if now_ms - self.last_register_ms >= REGISTER_RETRY_MS && !self.registered() {
            self.last_register_ms = now_ms;
            let (host, port) = self.state.config.advertised();
            let request = ControllerRequest::RegisterBroker {
                node_id: self.me.0,
                kafka_host: host,
                kafka_port: port,
                rpc_addr: self.config.rpc_addr.to_string(),
            };
            self.controller_request(request, Origin::Internal).await;
        }
        if now_ms - self.last_reassign_check_ms >= REASSIGN_CHECK_MS {
            self.last_reassign_check_ms = now_ms;
            self.drive_reassignments().await;
            self.drive_decommission().await;
        }
        if now_ms - self.last_leader_report_ms >= LEADER_REPORT_MS {
            self.last_leader_report_ms = now_ms;
            self.send_leader_reports();
        }
        if now_ms - self.last_preferred_check_ms >= PREFERRED_LEADER_CHECK_MS {
            self.last_preferred_check_ms = now_ms;
            self.restore_preferred_leaders().await;
        }
        let expired: Vec<u64> =
            self.forwards.iter().filter(|(_, (deadline, _))| *deadline <= now_ms).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some((_, reply)) = self.forwards.remove(&id) {
                let _ = reply.send(ControllerReply::refused(error_code::NOT_CONTROLLER, "controller did not answer"));
            }
        }
        self.check_transfer(now_ms);
    }

    /// Buggify (simulation only, `sluice_types::buggify`): a partition leader hands leadership
    /// to a random voter, caught up or not, at the seed's rate per tick.
    async fn buggify_step_down(&mut self, id: GroupId) {
        let rate = sluice_types::buggify::get().step_down_per_tick;
        if rate <= 0.0 || id == GroupId::Controller || !self.rng.gen_bool(rate) {
            return;
        }
        let Some(group) = self.groups.get(&id) else { return };
        let raft = group.replica.raft();
        if raft.role() != Role::Leader {
            return;
        }
        let others: Vec<NodeId> = raft.voters().iter().copied().filter(|n| *n != self.me).collect();
        if others.is_empty() {
            return;
        }
        let to = others[self.rng.gen_range(0..others.len())];
        tracing::info!(group = ?id, to = to.0, "buggify: leader steps down");
        self.step(id, Input::TransferLeadership { to }, &BTreeMap::new()).await;
    }

    /// Whether the controller has this broker's current addresses.
    fn registered(&self) -> bool {
        let (host, port) = self.state.config.advertised();
        self.meta.broker(self.me).is_some_and(|b| {
            b.kafka_host == host && b.kafka_port == port && b.rpc_addr == self.config.rpc_addr.to_string()
        })
    }

    /// After a broker returns, leadership goes back to each partition's first replica once it
    /// has caught up (Kafka's `auto.leader.rebalance.enable`, preferred replica election).
    async fn restore_preferred_leaders(&mut self) {
        let mut transfers = Vec::new();
        for (id, group) in &self.groups {
            let raft = group.replica.raft();
            if *id == GroupId::Controller || raft.role() != Role::Leader {
                continue;
            }
            let Some(view) = group.partition.replica_view() else { continue };
            let Some(preferred) = view.replicas.first().copied() else { continue };
            let caught_up = raft.progress().get(&preferred).is_some_and(|p| p.matched >= raft.log().last().index);
            if preferred != self.me && caught_up && raft.voters().contains(&preferred) {
                transfers.push((*id, preferred));
            }
        }
        for (id, to) in transfers {
            tracing::info!(group = ?id, to = to.0, "moving leadership back to the preferred replica");
            self.step(id, Input::TransferLeadership { to }, &BTreeMap::new()).await;
        }
    }

    /// Shutdown: asks every group this broker leads to hand leadership to its most caught-up
    /// voter (Raft thesis §3.10). Returns how many transfers started.
    async fn transfer_all(&mut self) -> usize {
        let mut transfers = Vec::new();
        for (id, group) in &self.groups {
            let raft = group.replica.raft();
            if raft.role() != Role::Leader {
                continue;
            }
            let target = raft
                .progress()
                .iter()
                .filter(|(node, _)| raft.voters().contains(node))
                .max_by_key(|(node, progress)| (progress.matched, std::cmp::Reverse(**node)))
                .map(|(node, _)| *node);
            if let Some(to) = target {
                transfers.push((*id, to));
            }
        }
        let started = transfers.len();
        for (id, to) in transfers {
            self.step(id, Input::TransferLeadership { to }, &BTreeMap::new()).await;
        }
        started
    }

    fn leaderships(&self) -> usize {
        self.groups.values().filter(|g| g.replica.raft().role() == Role::Leader).count()
    }

    fn check_transfer(&mut self, now_ms: i64) {
        let left = self.leaderships();
        if let Some((deadline, _)) = &self.transfer
            && (left == 0 || now_ms >= *deadline)
        {
            let (_, reply) = self.transfer.take().expect("checked");
            let _ = reply.send(left);
        }
    }

    async fn flushed(&mut self) {
        let now = self.now();
        for (id, (end, last_term)) in self.reports.take() {
            let Some(group) = self.groups.get_mut(&id) else { continue };
            let stepped = group.flushed(end, last_term, &self.state.disk, now, &mut self.outbox).await;
            self.after_step(id, stepped).await;
        }
    }

    async fn receive(&mut self, from: NodeId, bytes: Bytes) {
        let rpc = match decode_rpc_from(bytes, Link { sender: from, receiver: self.me }) {
            Ok(rpc) => rpc,
            Err(error) => {
                tracing::warn!(from = from.0, %error, "dropping an undecodable RPC");
                metrics::counter!("sluice_rpc_rejected_total").increment(1);
                return;
            }
        };
        match rpc {
            Rpc::PeerBatch(batch) => {
                for (group, message) in batch.into_messages() {
                    let received: BTreeMap<Offset, Bytes> = message
                        .entries()
                        .iter()
                        .map(|entry| entry.index)
                        .zip(message.entry_batches.iter().cloned())
                        .collect();
                    // A group this broker does not have yet (its metadata lags) or no longer
                    // has: the message is lost, which Raft tolerates (the leader resends).
                    self.step(group, Input::Receive(message.envelope), &received).await;
                }
            }
            Rpc::ForwardRequest(ForwardRequest { correlation_id, payload }) => {
                let origin = Origin::Remote { to: from, correlation_id };
                match ControllerRequest::decode(&payload) {
                    Some(ControllerRequest::ElectPreferred { topic, partition }) => {
                        self.elect_preferred(topic, partition, origin).await
                    }
                    Some(ControllerRequest::LeaderReport { partitions }) => {
                        self.receive_leader_report(from, partitions)
                    }
                    Some(request) => self.controller_request(request, origin).await,
                    None => self.answer(origin, ControllerReply::refused(error_code::INVALID_REQUEST, "undecodable")),
                }
            }
            Rpc::ForwardResponse(ForwardResponse { correlation_id, payload, .. }) => {
                if let Some((_, reply)) = self.forwards.remove(&correlation_id) {
                    let answer = ControllerReply::decode(&payload)
                        .unwrap_or_else(|| ControllerReply::refused(error_code::UNKNOWN_SERVER_ERROR, "undecodable"));
                    let _ = reply.send(answer);
                }
            }
        }
    }

    async fn command(&mut self, command: Command<D>) {
        match command {
            Command::Propose { partition, batch, reply } => {
                let answer = self.propose(&partition, batch).await;
                let _ = reply.send(answer);
            }
            Command::Controller { request, reply } => self.controller_request(request, Origin::Local(reply)).await,
            Command::Retention { partition } => self.retention(&partition).await,
            Command::ElectPreferred { topic, partition, reply } => {
                self.elect_preferred(topic, partition, Origin::Local(reply)).await
            }
            Command::TransferAll { reply } => {
                let started = self.transfer_all().await;
                tracing::info!(leaderships = self.leaderships(), transfers = started, "handing leadership away");
                let deadline = self.monotonic_ms() + SHUTDOWN_TRANSFER_MS as i64;
                self.transfer = Some((deadline, reply));
                let now_ms = self.monotonic_ms();
                self.check_transfer(now_ms);
            }
            Command::Stop { .. } => unreachable!("handled by the loop"),
        }
    }

    async fn propose(&mut self, partition: &Arc<Partition<D>>, batch: bytes::BytesMut) -> Result<Proposed, i16> {
        let now = self.now();
        let view = partition.replica_view().ok_or(error_code::NOT_LEADER_OR_FOLLOWER)?;
        let group = self.groups.get_mut(&view.group).ok_or(error_code::NOT_LEADER_OR_FOLLOWER)?;
        let header = BatchHeader::parse(&batch).map_err(|_| error_code::CORRUPT_MESSAGE)?;
        let record_offsets = u32::try_from(header.last_offset().0 - header.base_offset.0 + 1)
            .map_err(|_| error_code::CORRUPT_MESSAGE)?;
        let check = |log: &PartitionLog<D>| {
            // KIP-98: the leader checks sequences against the producer state its log holds
            // (rebuilt from the replicated log on a new leader).
            match log.producers().check(&header) {
                Err(error) => Some(Err(crate::handlers::produce::storage_error_code(
                    &sluice_storage::StorageError::Producer(error),
                ))),
                // Planted defect `append-duplicate-retry` (simulation only): append the retry.
                Ok(sluice_storage::SequenceVerdict::Duplicate { .. })
                    if defect::active(Defect::AppendDuplicateRetry) =>
                {
                    None
                }
                Ok(sluice_storage::SequenceVerdict::Duplicate { first_offset, last_offset }) => {
                    Some(Ok((first_offset, last_offset)))
                }
                Ok(sluice_storage::SequenceVerdict::Append) => None,
            }
        };
        let (answer, stepped, log_append_time) =
            group.propose(batch, record_offsets, &self.state.disk, now, &mut self.outbox, check).await;
        let leader_epoch = group.replica.raft().term();
        let id = view.group;
        self.after_step(id, stepped).await;
        let (base_offset, last_offset) = answer?;
        let log_append_time_ms = if log_append_time { now.wall_ms } else { -1 };
        Ok(Proposed { info: AppendInfo { base_offset, last_offset, log_append_time_ms }, leader_epoch })
    }

    /// Retention on a replicated partition: only when the whole log is committed and durable
    /// (so every deleted segment is a committed prefix, as `LogStartMoved` requires), and the
    /// replica records the new start.
    async fn retention(&mut self, partition: &Arc<Partition<D>>) {
        let Some(view) = partition.replica_view() else { return };
        let now_ms = self.wall_ms();
        let Some(group) = self.groups.get_mut(&view.group) else { return };
        let mut log = partition.lock().await;
        let commit = group.replica.raft().committed();
        if commit.next() != log.log_end_offset() || log.flushed_offset() != log.log_end_offset() {
            return;
        }
        let before = log.log_start_offset();
        match log.enforce_retention(now_ms).await {
            Ok(0) => {}
            Ok(deleted) => {
                let start = log.log_start_offset();
                if start > before
                    && let Err(error) = group.replica.log_start_moved(&self.state.disk, start).await
                {
                    stop_broker(format_args!("recording the log start of {:?} failed: {error}", view.group));
                }
                tracing::info!(topic = %partition.topic, partition = partition.index, deleted, start = %start, "retention deleted segments");
                partition.publish(&log);
            }
            Err(error) => {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "retention failed")
            }
        }
        // The recovery point moves up too, so a crash re-verifies little (maintenance.rs).
        if let Err(error) = log.write_checkpoint().await {
            tracing::error!(topic = %partition.topic, partition = partition.index, %error, "checkpoint failed");
        }
    }

    /// ElectLeaders PREFERRED for one partition: transfer to the first replica when this broker
    /// leads and that replica has the whole log; forward to the leader otherwise.
    async fn elect_preferred(&mut self, topic: String, partition: i32, origin: Origin) {
        let reply = |code: i16, message: &str| ControllerReply::refused(code, message);
        let Some(view) = self.state.topics.partition(&topic, partition).and_then(|p| p.replica_view()) else {
            return self.answer(origin, reply(error_code::UNKNOWN_TOPIC_OR_PARTITION, "unknown partition"));
        };
        let Some(preferred) = view.replicas.first().copied() else {
            return self.answer(origin, reply(error_code::PREFERRED_LEADER_NOT_AVAILABLE, "no replicas"));
        };
        if view.leader == Some(preferred) {
            return self.answer(origin, reply(error_code::ELECTION_NOT_NEEDED, "the preferred replica leads"));
        }
        match (view.leader, origin) {
            (Some(leader), origin) if leader == self.me => {
                let Some(group) = self.groups.get(&view.group) else {
                    return self.answer(origin, reply(error_code::NOT_LEADER_OR_FOLLOWER, "no replica here"));
                };
                let raft = group.replica.raft();
                let caught_up = raft.progress().get(&preferred).is_some_and(|p| p.matched >= raft.log().last().index);
                if !caught_up {
                    let message = "the preferred replica is not caught up";
                    return self.answer(origin, reply(error_code::PREFERRED_LEADER_NOT_AVAILABLE, message));
                }
                self.step(view.group, Input::TransferLeadership { to: preferred }, &BTreeMap::new()).await;
                self.answer(
                    origin,
                    ControllerReply { error_code: error_code::NONE, message: String::new(), applied_index: -1 },
                );
            }
            (Some(leader), Origin::Local(sender)) => {
                self.forward(leader, &ControllerRequest::ElectPreferred { topic, partition }, sender)
            }
            (_, origin) => self.answer(origin, reply(error_code::NOT_LEADER_OR_FOLLOWER, "no leader to ask")),
        }
    }

    /// Proposes (controller leader), forwards (another broker leads), or refuses with
    /// NOT_CONTROLLER (no leader known; the handler retries).
    pub async fn controller_request(&mut self, request: ControllerRequest, origin: Origin) {
        let now = self.now();
        let group = self.groups.get_mut(&GroupId::Controller).expect("the controller group always exists");
        let raft = group.replica.raft();
        if raft.role() == Role::Leader {
            if self.waiters.len() >= CONTROLLER_WAITERS_MAX {
                return self.answer(origin, ControllerReply::refused(error_code::REQUEST_TIMED_OUT, "controller busy"));
            }
            let command = match request.to_command(&self.meta, raft.log().last().index.next(), raft.term()) {
                Ok(command) => command,
                Err(refused) => return self.answer(origin, refused),
            };
            let batch = match command_batch(&command, now.wall_ms) {
                Ok(batch) => batch,
                Err(error) => return self.answer(origin, ControllerReply::from_meta(&error, Offset(-1))),
            };
            let (answer, stepped, _) = group.propose(batch, 1, &self.state.disk, now, &mut self.outbox, |_| None).await;
            match answer {
                Ok((_, last)) => {
                    tracing::debug!(kind = command.kind(), index = %last, "controller proposed");
                    self.waiters.insert(last, origin);
                }
                Err(_) => {
                    self.answer(origin, ControllerReply::refused(error_code::NOT_CONTROLLER, "not the controller"))
                }
            }
            self.after_step(GroupId::Controller, stepped).await;
            return;
        }
        match (raft.leader(), origin) {
            (Some(leader), Origin::Local(reply)) if leader != self.me => self.forward(leader, &request, reply),
            (Some(leader), Origin::Internal) if leader != self.me => {
                let rpc = Rpc::ForwardRequest(ForwardRequest { correlation_id: 0, payload: request.encode() });
                let _ = self.transport.send(leader, encode_rpc(&rpc));
            }
            (_, origin) => self.answer(origin, ControllerReply::refused(error_code::NOT_CONTROLLER, "no controller")),
        }
    }

    /// Sends `request` to broker `to` and remembers who waits for its answer (bounded by
    /// `FORWARDS_PENDING_MAX`; unanswered ones expire after `FORWARD_TIMEOUT_MS`).
    fn forward(&mut self, to: NodeId, request: &ControllerRequest, reply: oneshot::Sender<ControllerReply>) {
        if self.forwards.len() >= FORWARDS_PENDING_MAX {
            let _ = reply.send(ControllerReply::refused(error_code::REQUEST_TIMED_OUT, "too many forwards"));
            return;
        }
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let rpc = Rpc::ForwardRequest(ForwardRequest { correlation_id, payload: request.encode() });
        if let Err(error) = self.transport.send(to, encode_rpc(&rpc)) {
            tracing::debug!(to = to.0, %error, "forward failed");
        }
        let deadline = self.monotonic_ms() + FORWARD_TIMEOUT_MS;
        self.forwards.insert(correlation_id, (deadline, reply));
    }

    pub fn answer(&self, origin: Origin, reply: ControllerReply) {
        match origin {
            Origin::Local(sender) => {
                let _ = sender.send(reply);
            }
            Origin::Remote { to, correlation_id } => {
                let rpc = Rpc::ForwardResponse(ForwardResponse {
                    correlation_id,
                    error_code: reply.error_code,
                    payload: reply.encode(),
                });
                if let Err(error) = self.transport.send(to, encode_rpc(&rpc)) {
                    tracing::debug!(to = to.0, %error, "forward response failed");
                }
            }
            Origin::Internal => {}
        }
    }

    /// The controller's leadership changed: publish it; a former leader's waiting proposals
    /// may never commit, so they are answered NOT_CONTROLLER (the client retries).
    fn controller_leader_changed(&mut self) {
        let raft = self.groups[&GroupId::Controller].replica.raft();
        tracing::info!(leader = ?raft.leader().map(|n| n.0), term = raft.term().0, "controller leadership changed");
        if raft.role() != Role::Leader {
            for (_, origin) in std::mem::take(&mut self.waiters) {
                self.answer(
                    origin,
                    ControllerReply::refused(error_code::NOT_CONTROLLER, "controller leadership moved"),
                );
            }
        }
        self.publish_snapshot();
    }

    pub fn publish_snapshot(&mut self) {
        let controller = self.groups[&GroupId::Controller].replica.raft().leader();
        let snapshot =
            ClusterSnapshot { controller, meta: Arc::new(self.meta.clone()), applied_index: self.meta_applied };
        self.publish.send_replace(Arc::new(snapshot));
    }
}
