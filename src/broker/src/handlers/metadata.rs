//! Metadata (0-12): brokers, controller, and every requested topic with its partitions.
//!
//! On one node this broker leads every partition at leader epoch 0, with itself as the only
//! replica and ISR member. A missing topic is auto-created when both the request (v4+) and
//! `auto.create.topics.enable` allow it (Kafka protocol: MetadataRequest
//! `allow_auto_topic_creation`).

use super::{str_bytes, topic_name};
use crate::partition::SINGLE_NODE_LEADER_EPOCH;
use crate::state::BrokerState;
use crate::topic_config::TopicConfig;
use crate::topics::{Topic, TopicError, validate_topic_name};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, ResponseKind};
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use std::sync::Arc;

pub async fn handle<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: MetadataRequest,
    version: i16,
) -> ResponseKind {
    let (host, port) = state.config.advertised();
    let node_id = BrokerId(state.config.node_id);
    let mut response = MetadataResponse::default();
    response.brokers =
        vec![MetadataResponseBroker::default().with_node_id(node_id).with_host(str_bytes(&host)).with_port(port)];
    response.cluster_id = Some(str_bytes(&state.cluster_id));
    response.controller_id = node_id;
    if let Some(cluster) = &state.cluster {
        // The brokers the controller has registered, as this broker applied them.
        let snapshot = cluster.snapshot();
        response.brokers = snapshot
            .meta
            .brokers()
            .values()
            .map(|b| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.node_id.0))
                    .with_host(str_bytes(&b.kafka_host))
                    .with_port(b.kafka_port)
            })
            .collect();
        response.controller_id = BrokerId(snapshot.controller.map_or(-1, |n| n.0));
        // Until the controller has registered this broker, it still names itself, so a client
        // that bootstrapped here has a broker to ask again (librdkafka otherwise waits a full
        // request timeout on an empty list).
        if !response.brokers.iter().any(|b| b.node_id == node_id) {
            response.brokers.push(
                MetadataResponseBroker::default().with_node_id(node_id).with_host(str_bytes(&host)).with_port(port),
            );
        }
    }
    // v0: an empty list means all topics; v1+: null means all topics.
    let requested = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(topics),
    };
    let Some(requested) = requested else {
        response.topics = state.topics.all().iter().map(|t| describe_topic(state, t, version)).collect();
        return ResponseKind::Metadata(response);
    };
    let allow_create = (version < 4 || request.allow_auto_topic_creation) && state.config.auto_create_topics;
    for wanted in requested {
        let entry = match (wanted.name.as_ref(), state.topics.get_by_id(wanted.topic_id)) {
            (Some(name), _) => topic_entry(state, name.as_str(), allow_create, version).await,
            (None, Some(topic)) => describe_topic(state, &topic, version),
            (None, None) => MetadataResponseTopic::default()
                .with_topic_id(wanted.topic_id)
                .with_error_code(error_code::UNKNOWN_TOPIC_ID),
        };
        response.topics.push(entry);
    }
    ResponseKind::Metadata(response)
}

async fn topic_entry<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    name: &str,
    allow_create: bool,
    version: i16,
) -> MetadataResponseTopic {
    let unknown = |code| MetadataResponseTopic::default().with_name(Some(topic_name(name))).with_error_code(code);
    if let Some(topic) = state.topics.get(name) {
        return describe_topic(state, &topic, version);
    }
    if validate_topic_name(name).is_err() {
        return unknown(error_code::INVALID_TOPIC_EXCEPTION);
    }
    if !allow_create {
        return unknown(error_code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    match auto_create(state, name).await {
        Ok(topic) => describe_topic(state, &topic, version),
        Err(error) => {
            tracing::warn!(topic = name, %error, "auto-create failed");
            unknown(error_code::LEADER_NOT_AVAILABLE)
        }
    }
}

/// Creates a topic with the broker's default partition count (`num.partitions`).
pub async fn auto_create<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    name: &str,
) -> Result<Arc<Topic<D>>, TopicError> {
    if let Some(cluster) = &state.config.cluster {
        let request = crate::cluster::ControllerRequest::CreateTopic {
            name: name.to_string(),
            partitions: state.config.num_partitions,
            replication_factor: cluster.default_replication_factor,
            assignment: None,
            configs: Default::default(),
        };
        return match crate::handlers::topics_admin::forward(state, request).await {
            Ok(()) => state.topics.get(name).ok_or(TopicError::Unknown),
            Err((error_code::TOPIC_ALREADY_EXISTS, _)) => state.topics.get(name).ok_or(TopicError::Unknown),
            Err((_, message)) => Err(TopicError::Storage(message)),
        };
    }
    let created =
        state.topics.create(name, state.config.num_partitions, TopicConfig::default(), false, &state.clock).await;
    match created {
        Ok(topic) => {
            tracing::info!(topic = name, partitions = state.config.num_partitions, "auto-created topic");
            Ok(topic)
        }
        // Another request created it first.
        Err(TopicError::AlreadyExists) => state.topics.get(name).ok_or(TopicError::Unknown),
        Err(error) => Err(error),
    }
}

pub fn describe_topic<D: Disk, C: Clock>(
    state: &BrokerState<D, C>,
    topic: &Topic<D>,
    version: i16,
) -> MetadataResponseTopic {
    let node_id = BrokerId(state.config.node_id);
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            if let Some(view) = p.replica_view() {
                let ids = |nodes: &[sluice_types::NodeId]| nodes.iter().map(|n| BrokerId(n.0)).collect::<Vec<_>>();
                let me = sluice_types::NodeId(state.config.node_id);
                let stale_ms = crate::cluster::limits::LEADER_REPORT_STALE_MS;
                let (leader, leader_epoch, isr) = view.leadership(me, state.clock.now(), stale_ms);
                let code = if leader.is_some() { error_code::NONE } else { error_code::LEADER_NOT_AVAILABLE };
                return MetadataResponsePartition::default()
                    .with_error_code(code)
                    .with_partition_index(p.index)
                    .with_leader_id(leader.map_or(BrokerId(-1), |n| BrokerId(n.0)))
                    .with_leader_epoch(if version >= 7 { leader_epoch.0 } else { -1 })
                    .with_replica_nodes(ids(&view.replicas))
                    .with_isr_nodes(ids(&isr));
            }
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node_id)
                .with_leader_epoch(if version >= 7 { SINGLE_NODE_LEADER_EPOCH.0 } else { -1 })
                .with_replica_nodes(vec![node_id])
                .with_isr_nodes(vec![node_id])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_is_internal(version >= 1 && topic.name == crate::consumer_groups::OFFSETS_TOPIC)
        .with_topic_id(if version >= 10 { topic.topic_id } else { uuid::Uuid::nil() })
        .with_partitions(partitions)
}
