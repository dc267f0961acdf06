//! DescribeCluster (0-1), InitProducerId (0-4) and ElectLeaders (0-2).
//!
//! InitProducerId for an idempotent producer (no transactional id) hands out a producer id that
//! was never used before (durably reserved in blocks, `state.rs`) at epoch 0. With a known id
//! and epoch (v3+, KIP-360) it bumps the epoch so the producer can reset its sequences; when
//! the epoch would overflow it starts a new id. Transactional ids are refused until the
//! transaction coordinator exists.

use super::str_bytes;
use crate::state::BrokerState;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, ElectLeadersRequest, ElectLeadersResponse,
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use std::sync::Arc;

pub fn describe_cluster<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    _request: DescribeClusterRequest,
) -> ResponseKind {
    let (host, port) = state.config.advertised();
    let node_id = BrokerId(state.config.node_id);
    let mut response = DescribeClusterResponse::default();
    response.cluster_id = str_bytes(&state.cluster_id);
    response.controller_id = node_id;
    response.brokers =
        vec![DescribeClusterBroker::default().with_broker_id(node_id).with_host(str_bytes(&host)).with_port(port)];
    if let Some(cluster) = &state.cluster {
        // KIP-700: the registered brokers and the controller, as this broker applied them.
        let snapshot = cluster.snapshot();
        response.controller_id = BrokerId(snapshot.controller.map_or(-1, |n| n.0));
        response.brokers = snapshot
            .meta
            .brokers()
            .values()
            .map(|b| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.node_id.0))
                    .with_host(str_bytes(&b.kafka_host))
                    .with_port(b.kafka_port)
            })
            .collect();
    }
    ResponseKind::DescribeCluster(response)
}

pub async fn init_producer_id<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: InitProducerIdRequest,
) -> ResponseKind {
    let mut response = InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        response.error_code = error_code::INVALID_REQUEST;
        return ResponseKind::InitProducerId(response);
    }
    let known = request.producer_id.0 >= 0 && request.producer_epoch >= 0;
    if known && request.producer_epoch < i16::MAX - 1 {
        response.producer_id = request.producer_id;
        response.producer_epoch = request.producer_epoch + 1;
        return ResponseKind::InitProducerId(response);
    }
    match state.allocate_producer_id().await {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(error) => {
            tracing::error!(%error, "producer id allocation failed");
            response.error_code = error_code::KAFKA_STORAGE_ERROR;
        }
    }
    ResponseKind::InitProducerId(response)
}

/// ElectLeaders (0-2, KIP-183 and KIP-460). PREFERRED (0): each partition's leader hands
/// leadership to its first replica if that replica has the whole log (Raft thesis §3.10);
/// ELECTION_NOT_NEEDED when it leads already. UNCLEAN (1): Raft never elects a replica that
/// lacks committed entries, so an unclean election is never performed: ELECTION_NOT_NEEDED
/// with a leader, ELIGIBLE_LEADERS_NOT_AVAILABLE without one (a majority must return).
pub async fn elect_leaders<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: ElectLeadersRequest,
) -> ResponseKind {
    const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
    let wanted: Vec<(String, Vec<i32>)> = match request.topic_partitions {
        Some(topics) => topics.into_iter().map(|t| (t.topic.0.to_string(), t.partitions)).collect(),
        None => state
            .topics
            .all()
            .iter()
            .map(|t| (t.name.clone(), t.partitions.iter().map(|p| p.index).collect()))
            .collect(),
    };
    let timeout = std::time::Duration::from_millis(request.timeout_ms.clamp(1, 60_000) as u64);
    let mut response = ElectLeadersResponse::default();
    for (topic, partitions) in wanted {
        let mut results = Vec::with_capacity(partitions.len());
        for index in partitions {
            let partition = state.topics.partition(&topic, index);
            let (code, message) = match (partition.and_then(|p| p.replica_view()), &state.cluster) {
                _ if state.topics.partition(&topic, index).is_none() => {
                    (error_code::UNKNOWN_TOPIC_OR_PARTITION, "unknown partition".to_string())
                }
                // One node: the only replica is the preferred one and leads.
                (None, _) | (_, None) => (error_code::ELECTION_NOT_NEEDED, String::new()),
                (Some(view), Some(_)) if request.election_type == 1 => match view.leader {
                    Some(_) => (error_code::ELECTION_NOT_NEEDED, String::new()),
                    None => (ELIGIBLE_LEADERS_NOT_AVAILABLE, "no majority of replicas".to_string()),
                },
                (Some(_), Some(cluster)) => {
                    let reply = cluster.elect_preferred(topic.clone(), index, timeout).await;
                    (reply.error_code, reply.message)
                }
            };
            let message = (code != error_code::NONE && !message.is_empty()).then(|| str_bytes(&message));
            results.push(
                PartitionResult::default().with_partition_id(index).with_error_code(code).with_error_message(message),
            );
        }
        response.replica_election_results.push(
            ReplicaElectionResult::default().with_topic(super::topic_name(&topic)).with_partition_result(results),
        );
    }
    ResponseKind::ElectLeaders(response)
}
