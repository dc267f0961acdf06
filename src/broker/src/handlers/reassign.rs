//! AlterPartitionReassignments (0-1) and ListPartitionReassignments (0), KIP-455.
//!
//! A reassignment becomes a `ControllerRequest` (forwarded to the controller leader like every
//! topic operation); the answer comes once the target is recorded, and the move itself runs
//! afterwards, driven by the partition's group leader (`cluster/reassign.rs`). Null replicas
//! cancel a reassignment (NO_REASSIGNMENT_IN_PROGRESS when there is none). v1's
//! `allow_replication_factor_change = false` refuses a target of another size (KIP-860).
//! ListPartitionReassignments answers from this broker's applied metadata: replicas (target
//! first, then the leaving ones), adding (target minus replicas), removing (replicas minus
//! target).
//!
//! On a single node the only replica set is this broker: reassigning to it is a no-op, and
//! nothing is ever in progress.

use super::{str_bytes, topic_name};
use crate::cluster::ControllerRequest;
use crate::state::BrokerState;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ResponseKind,
};
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use std::sync::Arc;
use std::time::Duration;

/// The longest one reassignment request waits for the controller, whatever its timeout says.
const REASSIGN_TIMEOUT_MS_MAX: i32 = 60_000;

pub async fn alter<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> ResponseKind {
    let timeout = Duration::from_millis(request.timeout_ms.clamp(1, REASSIGN_TIMEOUT_MS_MAX) as u64);
    let allow_rf_change = version < 1 || request.allow_replication_factor_change;
    let mut response = AlterPartitionReassignmentsResponse::default();
    response.allow_replication_factor_change = allow_rf_change;
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let index = wanted.partition_index;
            let replicas: Option<Vec<i32>> = wanted.replicas.map(|ids| ids.iter().map(|id| id.0).collect());
            let (code, message) = match state.topics.partition(&name, index) {
                None => (error_code::UNKNOWN_TOPIC_OR_PARTITION, "unknown partition".to_string()),
                Some(partition) => match (&state.cluster, replicas) {
                    (None, None) => (error_code::NO_REASSIGNMENT_IN_PROGRESS, "single node".to_string()),
                    (None, Some(ids)) if ids == [state.config.node_id] => (error_code::NONE, String::new()),
                    (None, Some(_)) => (error_code::INVALID_REPLICA_ASSIGNMENT, "single node".to_string()),
                    (Some(cluster), replicas) => {
                        let current = partition.replica_view().map(|v| v.replicas.len()).unwrap_or_default();
                        let request = match replicas {
                            Some(ids) if !allow_rf_change && ids.len() != current => {
                                let message = format!("{} replicas where the partition has {current}", ids.len());
                                partitions.push(result(index, error_code::INVALID_REPLICATION_FACTOR, &message));
                                continue;
                            }
                            Some(replicas) => {
                                ControllerRequest::ReassignPartition { topic: name.clone(), partition: index, replicas }
                            }
                            None => ControllerRequest::CancelReassignment { topic: name.clone(), partition: index },
                        };
                        let reply = cluster.controller(request, timeout).await;
                        (reply.error_code, reply.message)
                    }
                },
            };
            partitions.push(result(index, code, &message));
        }
        response
            .responses
            .push(ReassignableTopicResponse::default().with_name(topic_name(&name)).with_partitions(partitions));
    }
    ResponseKind::AlterPartitionReassignments(response)
}

fn result(index: i32, code: i16, message: &str) -> ReassignablePartitionResponse {
    let message = (code != error_code::NONE && !message.is_empty()).then(|| str_bytes(message));
    ReassignablePartitionResponse::default()
        .with_partition_index(index)
        .with_error_code(code)
        .with_error_message(message)
}

pub fn list<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: ListPartitionReassignmentsRequest,
) -> ResponseKind {
    let mut response = ListPartitionReassignmentsResponse::default();
    let Some(cluster) = &state.cluster else { return ResponseKind::ListPartitionReassignments(response) };
    let snapshot = cluster.snapshot();
    let wanted: Option<Vec<(String, Vec<i32>)>> =
        request.topics.map(|topics| topics.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
    let ids = |nodes: Vec<sluice_types::NodeId>| nodes.into_iter().map(|n| BrokerId(n.0)).collect::<Vec<_>>();
    for topic in snapshot.meta.topics().values() {
        let filter = match &wanted {
            None => None,
            Some(wanted) => match wanted.iter().find(|(name, _)| *name == topic.name) {
                Some((_, indexes)) => Some(indexes),
                None => continue,
            },
        };
        let mut partitions = Vec::new();
        for (index, placement) in topic.partitions.iter().enumerate() {
            let index = i32::try_from(index).expect("bounded");
            let Some(target) = &placement.target_replicas else { continue };
            if filter.is_some_and(|indexes| !indexes.contains(&index)) {
                continue;
            }
            let adding = target.iter().copied().filter(|n| !placement.replicas.contains(n)).collect();
            let removing = placement.replicas.iter().copied().filter(|n| !target.contains(n)).collect();
            partitions.push(
                OngoingPartitionReassignment::default()
                    .with_partition_index(index)
                    .with_replicas(ids(crate::cluster::reassign::reported_replicas(placement)))
                    .with_adding_replicas(ids(adding))
                    .with_removing_replicas(ids(removing)),
            );
        }
        if !partitions.is_empty() {
            response.topics.push(
                OngoingTopicReassignment::default().with_name(topic_name(&topic.name)).with_partitions(partitions),
            );
        }
    }
    ResponseKind::ListPartitionReassignments(response)
}
