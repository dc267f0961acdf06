//! Replica movement: reassignments driven by each partition's group leader, and decommission
//! driven by the controller leader.
//!
//! A reassignment (AlterPartitionReassignments, KIP-455) is recorded by the controller as a
//! target replica set; every broker in `PartitionPlacement::members` hosts a replica. The
//! group's leader then moves the Raft configuration toward the target one server at a time
//! (Raft thesis §4.1), re-deciding from scratch every check so a new leader simply carries on:
//! 1. add each missing target broker as a learner (it copies the log without voting, §4.2.1);
//! 2. promote a learner once it holds everything committed (the core refuses it earlier);
//! 3. remove learners the target no longer names (a changed or cancelled reassignment);
//! 4. remove each voter outside the target; the leader itself goes last, after handing
//!    leadership to a target voter (§3.10: a leader does not remove itself);
//! 5. once the voters are exactly the target, with no learner and the change committed, report
//!    `CompleteReassignment`; the controller makes the target the replicas, and brokers outside
//!    them delete their replica.
//!
//! Stale leaders: every membership entry records the epoch of the reassignment that drove it
//! (the controller index of its `ReassignPartition`). A leader whose applied metadata is older
//! than the newest epoch in its group's log does not drive, so it cannot undo a newer move;
//! and a completion names its epoch, so the controller refuses one a newer reassignment
//! replaced. Together these keep a broker from deleting a replica its group still counts.
//!
//! Decommission: the controller leader replaces the leaving broker in each partition's desired
//! replicas with the least-loaded broker that takes replicas (Redpanda's decommission; Kafka
//! leaves this to the operator), a bounded number of partitions per check.

use super::controller::ControllerRequest;
use super::driver::{Driver, Origin};
use super::limits::{COMPLETION_RESEND_MS, DECOMMISSION_MOVES_PER_CHECK};
use sluice_io::{Clock, Disk};
use sluice_meta::{MetaState, PartitionPlacement};
use sluice_raft::{Input, MembershipChange, Raft, Role};
use sluice_rpc::GroupId;
use sluice_types::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// The next step of one group's move toward `desired`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum MoveStep {
    Change(MembershipChange),
    /// The leader is outside the target: hand leadership to this target voter first.
    Transfer(NodeId),
    /// The voters are the target: report it.
    Complete,
    /// Waiting (a change is uncommitted, a learner is catching up) or nothing to do.
    Wait,
}

/// Decides the next step for a leader `raft` moving its group to `desired` (pure).
pub(super) fn next_step(raft: &Raft, desired: &[NodeId], moving: bool) -> MoveStep {
    assert_eq!(raft.role(), Role::Leader, "only a leader moves its group");
    if !raft.membership_committed() {
        return MoveStep::Wait; // Raft thesis §4.1: one change at a time.
    }
    let me = raft.id();
    let membership = raft.membership();
    let desired_set: BTreeSet<NodeId> = desired.iter().copied().collect();
    let committed = raft.committed();
    let holds_committed = |n: &NodeId| raft.progress().get(n).is_some_and(|p| p.matched >= committed);
    if let Some(n) = desired.iter().find(|n| !membership.voters.contains(n) && !membership.learners.contains(n)) {
        return MoveStep::Change(MembershipChange::AddLearner(*n));
    }
    if let Some(n) = membership.learners.iter().find(|n| desired_set.contains(n) && holds_committed(n)) {
        return MoveStep::Change(MembershipChange::PromoteLearner(*n));
    }
    if let Some(n) = membership.learners.iter().find(|n| !desired_set.contains(n)) {
        return MoveStep::Change(MembershipChange::Remove(*n));
    }
    if !membership.learners.is_empty() {
        return MoveStep::Wait;
    }
    if let Some(n) = membership.voters.iter().find(|n| **n != me && !desired_set.contains(n)) {
        return MoveStep::Change(MembershipChange::Remove(*n));
    }
    if !desired_set.contains(&me) {
        // The most caught-up target voter, the preferred one first among equals.
        let last = raft.log().last().index;
        let ready = desired.iter().find(|n| raft.progress().get(n).is_some_and(|p| p.matched >= last));
        return ready.map_or(MoveStep::Wait, |n| MoveStep::Transfer(*n));
    }
    assert_eq!(membership.voters, desired_set, "every other case is handled above");
    if moving { MoveStep::Complete } else { MoveStep::Wait }
}

/// Decommission: for partitions whose desired replicas include a decommissioning broker, the
/// target with it replaced by the least-loaded broker that takes replicas (at most `limit`).
pub(super) fn decommission_moves(meta: &MetaState, limit: usize) -> Vec<(String, i32, Vec<NodeId>)> {
    let leaving: BTreeSet<NodeId> = meta.brokers().values().filter(|b| b.decommissioning).map(|b| b.node_id).collect();
    if leaving.is_empty() {
        return Vec::new();
    }
    let mut loads: BTreeMap<NodeId, u32> = meta
        .broker_loads()
        .into_iter()
        .filter(|(n, _)| !leaving.contains(n))
        .map(|(n, load)| (n, load.replicas))
        .collect();
    let mut moves = Vec::new();
    for topic in meta.topics().values() {
        for (index, placement) in topic.partitions.iter().enumerate() {
            if moves.len() >= limit {
                return moves;
            }
            let desired = placement.desired();
            if !desired.iter().any(|n| leaving.contains(n)) {
                continue;
            }
            let mut target = Vec::with_capacity(desired.len());
            let mut chosen = Vec::new();
            for node in desired {
                if !leaving.contains(node) {
                    target.push(*node);
                    continue;
                }
                let candidate = loads
                    .iter()
                    .filter(|(n, _)| !desired.contains(n) && !target.contains(*n))
                    .min_by_key(|(n, load)| (**load, **n))
                    .map(|(n, _)| *n);
                let Some(replacement) = candidate else { break };
                target.push(replacement);
                chosen.push(replacement);
            }
            // The replication factor is kept: without a broker to take every leaving replica
            // the partition stays (decommission status shows it) until one registers.
            if target.len() == desired.len() {
                for node in chosen {
                    *loads.get_mut(&node).expect("a candidate has a load") += 1;
                }
                moves.push((topic.name.clone(), i32::try_from(index).expect("bounded"), target));
            }
        }
    }
    moves
}

/// How many partitions still place a replica on `node` (its `members`).
pub fn replicas_on(meta: &MetaState, node: NodeId) -> usize {
    meta.topics().values().flat_map(|t| &t.partitions).filter(|p| p.members.contains(&node)).count()
}

/// The order brokers report a partition's replicas in during a move: the desired set first
/// (its first is the preferred leader), then the members that are leaving (KIP-455).
pub fn reported_replicas(placement: &PartitionPlacement) -> Vec<NodeId> {
    let desired = placement.desired();
    let mut replicas = desired.to_vec();
    replicas.extend(placement.members.iter().filter(|n| !desired.contains(n)));
    replicas
}

impl<D: Disk, C: Clock> Driver<D, C> {
    /// Every group this broker leads takes its next step toward its desired replicas.
    pub(super) async fn drive_reassignments(&mut self) {
        let now = self.now();
        let mut steps = Vec::new();
        for (id, group) in &self.groups {
            let GroupId::Partition { topic_id, partition } = *id else { continue };
            let raft = group.replica.raft();
            if raft.role() != Role::Leader {
                continue;
            }
            let Some(topic) = self.meta.topic_by_id(topic_id) else { continue };
            let Some(placement) = topic.partition(partition.0) else { continue };
            if group.replica.membership_epoch() > placement.reassignment_epoch {
                // Our metadata is older than a move this group has seen: wait for it.
                continue;
            }
            let step = next_step(raft, placement.desired(), placement.is_moving());
            // The completion report is only built for the step that sends it.
            let report = (step == MoveStep::Complete).then(|| ControllerRequest::CompleteReassignment {
                topic: topic.name.clone(),
                topic_id: topic_id.to_string(),
                partition: partition.0,
                epoch: placement.reassignment_epoch.0,
                replicas: placement.desired().iter().map(|n| n.0).collect(),
            });
            if step != MoveStep::Wait {
                steps.push((*id, step, placement.reassignment_epoch, report));
            }
        }
        for (id, step, epoch, report) in steps {
            match step {
                MoveStep::Change(change) => {
                    let Some(group) = self.groups.get_mut(&id) else { continue };
                    let (result, stepped) =
                        group.propose_membership(change, epoch, &self.state.disk, now, &mut self.outbox).await;
                    tracing::info!(group = ?id, ?change, epoch = %epoch, ?result, "reassignment step");
                    self.after_step(id, stepped).await;
                }
                MoveStep::Transfer(to) => {
                    tracing::info!(group = ?id, to = to.0, "reassignment: handing leadership to a target replica");
                    self.step(id, Input::TransferLeadership { to }, &BTreeMap::new()).await;
                }
                MoveStep::Complete => {
                    let last = self.completions.get(&id).copied().unwrap_or(i64::MIN / 2);
                    if now.monotonic_ms - last >= COMPLETION_RESEND_MS {
                        self.completions.insert(id, now.monotonic_ms);
                        tracing::info!(group = ?id, epoch = %epoch, "reassignment: the group has its target");
                        let report = report.expect("built for a completion");
                        self.controller_request(report, Origin::Internal).await;
                    }
                }
                MoveStep::Wait => unreachable!("filtered above"),
            }
        }
        self.completions.retain(|id, _| self.groups.contains_key(id));
    }

    /// Controller leader: proposes the moves that drain decommissioning brokers.
    pub(super) async fn drive_decommission(&mut self) {
        let raft = self.groups[&GroupId::Controller].replica.raft();
        if raft.role() != Role::Leader {
            return;
        }
        for (topic, partition, replicas) in decommission_moves(&self.meta, DECOMMISSION_MOVES_PER_CHECK) {
            tracing::info!(%topic, partition, ?replicas, "decommission: moving a replica");
            let replicas = replicas.iter().map(|n| n.0).collect();
            self.controller_request(
                ControllerRequest::ReassignPartition { topic, partition, replicas },
                Origin::Internal,
            )
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_meta::{MetaCommand, TopicId};
    use sluice_types::Offset;

    fn state(brokers: &[i32], assignment: &[&[i32]]) -> MetaState {
        let mut meta = MetaState::new();
        let mut index = 0;
        let mut apply = |meta: &mut MetaState, command: MetaCommand| {
            meta.apply(Offset(index), &command).expect("valid");
            index += 1;
        };
        for id in brokers {
            let register = MetaCommand::RegisterBroker {
                node_id: NodeId(*id),
                kafka_host: "h".to_string(),
                kafka_port: 9092,
                rpc_addr: "h:1".to_string(),
                rack: None,
            };
            apply(&mut meta, register);
        }
        let assignment = assignment.iter().map(|r| r.iter().copied().map(NodeId).collect()).collect();
        let create = MetaCommand::CreateTopic {
            name: "t".to_string(),
            topic_id: TopicId([7; 16]),
            assignment,
            configs: BTreeMap::new(),
        };
        apply(&mut meta, create);
        apply(&mut meta, MetaCommand::DecommissionBroker { node_id: NodeId(3) });
        meta
    }

    fn ids(ids: &[i32]) -> Vec<NodeId> {
        ids.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn decommission_replaces_the_leaving_broker_with_the_least_loaded_one() {
        let meta = state(&[1, 2, 3, 4], &[&[3, 1], &[1, 2], &[2, 3], &[3, 4]]);
        let moves = decommission_moves(&meta, 16);
        // Loads before: 1 -> 2, 2 -> 2, 4 -> 1, and each choice counts toward the next; each move
        // takes the least-loaded broker (lowest id on ties) not in
        // the partition, keeping the leaving broker's position (its preferred-leader role too).
        assert_eq!(
            moves,
            vec![
                ("t".to_string(), 0, ids(&[4, 1])),
                ("t".to_string(), 2, ids(&[2, 1])),
                ("t".to_string(), 3, ids(&[2, 4])),
            ]
        );
        assert_eq!(decommission_moves(&meta, 1).len(), 1, "bounded per check");
        assert_eq!(replicas_on(&meta, NodeId(3)), 3);
    }

    #[test]
    fn decommission_keeps_the_replication_factor_or_waits() {
        // RF 3 on three brokers: nowhere to move broker 3's replicas.
        let meta = state(&[1, 2, 3], &[&[1, 2, 3]]);
        assert!(decommission_moves(&meta, 16).is_empty());
    }

    #[test]
    fn replicas_report_the_target_first_then_the_leaving_ones() {
        let mut meta = state(&[1, 2, 3, 4], &[&[1, 2]]);
        let reassign = MetaCommand::ReassignPartition { topic: "t".to_string(), partition: 0, replicas: ids(&[4, 2]) };
        meta.apply(Offset(100), &reassign).expect("valid");
        let placement = meta.topic("t").expect("exists").partitions[0].clone();
        assert_eq!(reported_replicas(&placement), ids(&[4, 2, 1]));
    }
}
