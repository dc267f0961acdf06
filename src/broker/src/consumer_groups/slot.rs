//! One `__consumer_offsets` partition this broker leads: its coordinator (once loaded), the
//! requests waiting for answers, and the writes waiting to become durable.
//!
//! Every step of the coordinator happens under the slot's lock, and the writes a step emits are
//! appended before the lock is released, so the log holds writes in the order the coordinator
//! emitted them. A completion task per loaded coordinator reports them durable in that order.

use super::load::encode_write;
use super::{GroupCoordinators, GroupListing, NotServed, WRITE_TIMEOUT_MS, WRITES_IN_FLIGHT_MAX};
use crate::partition::{Partition, Watermarks};
use crate::state::BrokerState;
use sluice_group::{Coordinator, Group, Input, Output, Request, Response, Token, WriteId};
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use sluice_types::defect::{self, Defect};
use sluice_types::{NodeId, Offset, Term};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Outputs one request's or completion's run handles at most, failed writes' completions
/// included (a coordinator step emits one answer per waiting request and a few writes).
const OUTPUTS_PER_RUN_MAX: usize = 1_000_000;

pub(super) struct Slot<D: Disk> {
    pub(super) partition: Arc<Partition<D>>,
    /// The leader epoch this slot serves; a new epoch means a new slot (and a new load).
    pub(super) leader_epoch: Term,
    pub(super) incarnation: u64,
    pub(super) state: tokio::sync::Mutex<SlotState>,
}

pub(super) enum SlotState {
    Loading,
    Loaded(Box<Shell>),
    /// A write failed or leadership left: nothing is served; the upkeep replaces the slot.
    Unloaded,
}

/// A loaded coordinator and what waits on it.
pub(super) struct Shell {
    pub(super) coordinator: Coordinator,
    waiting: BTreeMap<Token, oneshot::Sender<Response>>,
    next_token: u64,
    /// Appended writes, in log order, for the completion task.
    completions: mpsc::Sender<Appended>,
    /// A write failed: the coordinator's memory may be ahead of the log; load again.
    failed: bool,
}

/// A write in the log, waiting for the high watermark.
struct Appended {
    write: WriteId,
    /// The high watermark that makes it durable (its last offset + 1).
    target: Offset,
    /// Replicated: the leader epoch it was appended in.
    epoch: Option<Term>,
    receiver: watch::Receiver<Watermarks>,
}

/// A request given to a coordinator; its answer arrives when the coordinator gives it.
pub struct Submitted(oneshot::Receiver<Response>);

impl Submitted {
    /// The answer, or NOT_COORDINATOR if the coordinator was dropped first (leadership moved or
    /// a write failed): the client finds the coordinator again and retries.
    pub async fn answer(self) -> Result<Response, NotServed> {
        self.0.await.map_err(|_| NotServed::NotCoordinator)
    }
}

impl<D: Disk> Slot<D> {
    pub(super) fn new(partition: Arc<Partition<D>>, incarnation: u64) -> Slot<D> {
        let leader_epoch = partition.leader_epoch();
        Slot { partition, leader_epoch, incarnation, state: tokio::sync::Mutex::new(SlotState::Loading) }
    }

    /// Whether this broker still leads the partition in the slot's epoch.
    pub(super) fn leads(&self, me: NodeId) -> bool {
        self.partition.serve_error(me, -1).is_none() && self.partition.leader_epoch() == self.leader_epoch
    }
}

impl Shell {
    /// A loaded coordinator, and the task that completes its writes in order.
    pub(super) fn start<D: Disk, C: Clock>(
        coordinator: Coordinator,
        state: &Arc<BrokerState<D, C>>,
        slot: &Arc<Slot<D>>,
    ) -> Shell {
        let (completions, receiver) = mpsc::channel(WRITES_IN_FLIGHT_MAX);
        tokio::spawn(complete_writes(state.clone(), slot.clone(), receiver));
        Shell { coordinator, waiting: BTreeMap::new(), next_token: 0, completions, failed: false }
    }

    /// Runs a step's outputs in order: answers go to their waiters, writes are appended (a
    /// write that cannot be appended fails at once, which marks the shell failed). True when
    /// the shell has failed: the caller unloads it.
    pub(super) async fn run<D: Disk, C: Clock>(
        &mut self,
        state: &Arc<BrokerState<D, C>>,
        slot: &Slot<D>,
        outputs: Vec<Output>,
    ) -> bool {
        let mut queue: VecDeque<Output> = outputs.into();
        let mut handled = 0usize;
        while let Some(output) = queue.pop_front() {
            handled += 1;
            assert!(handled <= OUTPUTS_PER_RUN_MAX, "a coordinator step cascaded past {OUTPUTS_PER_RUN_MAX} outputs");
            match output {
                Output::Respond(token, response) => {
                    if let Some(waiter) = self.waiting.remove(&token) {
                        // The client may have gone; its answer is then dropped.
                        let _ = waiter.send(response);
                    }
                }
                Output::Persist { write, records } => {
                    let appended = if self.failed {
                        Err(error_code::NOT_COORDINATOR)
                    } else {
                        append(state, &slot.partition, &records).await
                    };
                    let queued = appended.and_then(|(target, epoch)| {
                        let receiver = slot.partition.subscribe();
                        self.completions
                            .try_send(Appended { write, target, epoch, receiver })
                            .map_err(|_| error_code::COORDINATOR_NOT_AVAILABLE)
                    });
                    if let Err(code) = queued {
                        tracing::warn!(
                            partition = slot.partition.index,
                            code = error_code::name(code),
                            "group write failed; the coordinator will be loaded again"
                        );
                        self.failed = true;
                        let time = state_time(state);
                        let error = Some(coordinator_error(code));
                        queue.extend(self.coordinator.step(Input::Persisted { write, error }, time));
                    }
                }
            }
        }
        self.failed
    }
}

fn state_time<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>) -> sluice_group::Time {
    state.groups.time(&state.clock)
}

/// The code a coordinator answers for a write that failed with `code` (Kafka's
/// `GroupMetadataManager` maps append errors so clients retry in the right place).
fn coordinator_error(code: i16) -> i16 {
    match code {
        error_code::UNKNOWN_TOPIC_OR_PARTITION
        | error_code::NOT_ENOUGH_REPLICAS
        | error_code::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | error_code::REQUEST_TIMED_OUT => error_code::COORDINATOR_NOT_AVAILABLE,
        error_code::NOT_LEADER_OR_FOLLOWER | error_code::KAFKA_STORAGE_ERROR => error_code::NOT_COORDINATOR,
        error_code::MESSAGE_TOO_LARGE | error_code::RECORD_LIST_TOO_LARGE => error_code::INVALID_COMMIT_OFFSET_SIZE,
        other => other,
    }
}

/// Appends one write's records as one batch through the partition's produce path. Returns the
/// high watermark that makes it durable and, replicated, the epoch it must stay in.
async fn append<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    partition: &Arc<Partition<D>>,
    records: &[sluice_group::OffsetsRecord],
) -> Result<(Offset, Option<Term>), i16> {
    let batch = encode_write(records, state.clock.wall_ms()).map_err(|_| error_code::MESSAGE_TOO_LARGE)?;
    if partition.is_replicated() {
        let cluster = state.cluster.as_ref().expect("replicated partitions exist in cluster mode");
        let proposed = cluster.propose(partition.clone(), batch).await?;
        return Ok((proposed.info.last_offset.next(), Some(proposed.leader_epoch)));
    }
    let (info, _) = crate::handlers::produce::append_single_node(state, partition, batch)
        .await
        .map_err(|e| crate::handlers::produce::storage_error_code(&e))?;
    Ok((info.last_offset.next(), None))
}

/// Reports a loaded coordinator's writes durable (or failed), in log order. Ends when the shell
/// is dropped.
async fn complete_writes<D: Disk, C: Clock>(
    state: Arc<BrokerState<D, C>>,
    slot: Arc<Slot<D>>,
    mut receiver: mpsc::Receiver<Appended>,
) {
    while let Some(appended) = receiver.recv().await {
        let wait =
            crate::handlers::produce::wait_for_high_watermark(appended.receiver, appended.target, appended.epoch);
        let error = if defect::active(Defect::GroupCommitBeforeDurable) {
            None
        } else {
            match tokio::time::timeout(Duration::from_millis(WRITE_TIMEOUT_MS), wait).await {
                Ok(true) => None,
                // The epoch moved: the write may be truncated.
                Ok(false) => Some(error_code::NOT_COORDINATOR),
                Err(_) => Some(error_code::COORDINATOR_NOT_AVAILABLE),
            }
        };
        let mut guard = slot.state.lock().await;
        let SlotState::Loaded(shell) = &mut *guard else { return };
        if error.is_some() {
            shell.failed = true;
        }
        let outputs = shell.coordinator.step(Input::Persisted { write: appended.write, error }, state_time(&state));
        if shell.run(&state, &slot, outputs).await {
            *guard = SlotState::Unloaded;
            return;
        }
    }
}

impl<D: Disk> GroupCoordinators<D> {
    /// Gives a request to the coordinator of `group_id` and returns the handle of its answer.
    /// The request has been stepped (and its writes appended) when this returns, so requests
    /// of one connection take effect in arrival order.
    pub async fn submit<C: Clock>(
        &self,
        state: &Arc<BrokerState<D, C>>,
        group_id: &str,
        request: Request,
    ) -> Result<Submitted, NotServed> {
        let slot = self.slot_for(group_id, &state.topics, NodeId(state.config.node_id))?;
        if !slot.leads(NodeId(state.config.node_id)) {
            return Err(NotServed::NotCoordinator);
        }
        let mut guard = slot.state.lock().await;
        let shell = match &mut *guard {
            SlotState::Loaded(shell) => shell,
            SlotState::Loading => return Err(NotServed::Loading),
            SlotState::Unloaded => return Err(NotServed::NotCoordinator),
        };
        let token = Token(shell.next_token);
        shell.next_token += 1;
        let (sender, receiver) = oneshot::channel();
        shell.waiting.insert(token, sender);
        let outputs = shell.coordinator.step(Input::Request(token, request), state_time(state));
        if shell.run(state, &slot, outputs).await {
            *guard = SlotState::Unloaded;
        }
        Ok(Submitted(receiver))
    }

    /// Reads the loaded coordinator of `group_id`.
    pub async fn read<C: Clock, T>(
        &self,
        state: &Arc<BrokerState<D, C>>,
        group_id: &str,
        read: impl FnOnce(&Coordinator) -> T,
    ) -> Result<T, NotServed> {
        let slot = self.slot_for(group_id, &state.topics, NodeId(state.config.node_id))?;
        if !slot.leads(NodeId(state.config.node_id)) {
            return Err(NotServed::NotCoordinator);
        }
        let guard = slot.state.lock().await;
        match &*guard {
            SlotState::Loaded(shell) => Ok(read(&shell.coordinator)),
            SlotState::Loading => Err(NotServed::Loading),
            SlotState::Unloaded => Err(NotServed::NotCoordinator),
        }
    }

    /// A copy of one group, if its coordinator has it.
    pub async fn describe<C: Clock>(
        &self,
        state: &Arc<BrokerState<D, C>>,
        group_id: &str,
    ) -> Result<Option<Group>, NotServed> {
        self.read(state, group_id, |c| c.group(group_id).cloned()).await
    }

    /// Every group this broker coordinates, and whether some partition is still loading
    /// (ListGroups then says COORDINATOR_LOAD_IN_PROGRESS with what it has).
    pub async fn list<C: Clock>(&self, state: &Arc<BrokerState<D, C>>) -> (Vec<GroupListing>, bool) {
        let me = NodeId(state.config.node_id);
        let mut groups = Vec::new();
        let mut loading = false;
        for slot in self.slots() {
            if !slot.leads(me) {
                continue;
            }
            let guard = slot.state.lock().await;
            match &*guard {
                SlotState::Loaded(shell) => groups.extend(shell.coordinator.groups().map(|g| GroupListing {
                    group_id: g.group_id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state_name(),
                    group_type: g.group_type(),
                })),
                SlotState::Loading => loading = true,
                SlotState::Unloaded => {}
            }
        }
        (groups, loading)
    }
}
