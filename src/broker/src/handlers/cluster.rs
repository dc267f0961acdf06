//! DescribeCluster (0-1) and InitProducerId (0-4).
//!
//! InitProducerId for an idempotent producer (no transactional id) hands out a producer id that
//! was never used before (durably reserved in blocks, `state.rs`) at epoch 0. With a known id
//! and epoch (v3+, KIP-360) it bumps the epoch so the producer can reset its sequences; when
//! the epoch would overflow it starts a new id. Transactional ids are refused until the
//! transaction coordinator exists.

use super::str_bytes;
use crate::state::BrokerState;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, InitProducerIdRequest, InitProducerIdResponse,
    ProducerId, ResponseKind,
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
