//! CreateTopics (2-7), DeleteTopics (1-6), CreatePartitions (0-3), DeleteRecords (0-2).
//!
//! On one broker a replication factor above 1 cannot be placed: INVALID_REPLICATION_FACTOR,
//! as Kafka answers when the factor exceeds the live brokers. Manual assignments are accepted
//! only when they name this broker alone (INVALID_REPLICA_ASSIGNMENT otherwise).

use super::{str_bytes, topic_name};
use crate::cluster::{ClusterConfig, ControllerRequest};
use crate::state::BrokerState;
use crate::topic_config::{CONFIG_SOURCE_DEFAULT, CONFIG_SOURCE_TOPIC, TOPIC_CONFIG_KEYS, TopicConfig};
use crate::topics::{TopicError, validate_topic_name};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest,
    DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse, ResponseKind,
};
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use sluice_types::Offset;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Maps a registry error to (code, message).
pub fn topic_error_code(error: &TopicError) -> i16 {
    match error {
        TopicError::AlreadyExists => error_code::TOPIC_ALREADY_EXISTS,
        TopicError::Unknown => error_code::UNKNOWN_TOPIC_OR_PARTITION,
        TopicError::InvalidName(_) => error_code::INVALID_TOPIC_EXCEPTION,
        TopicError::InvalidPartitions(_) => error_code::INVALID_PARTITIONS,
        TopicError::Storage(_) => error_code::KAFKA_STORAGE_ERROR,
    }
}

pub async fn create_topics<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: CreateTopicsRequest,
    version: i16,
) -> ResponseKind {
    let mut response = CreateTopicsResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = match create_one(state, &topic, request.validate_only).await {
            Ok((partitions, replication_factor, config, topic_id)) => {
                let mut result = CreatableTopicResult::default().with_name(topic_name(&name)).with_error_message(None);
                // Fields newer than the request's version must keep their defaults.
                if version >= 5 {
                    result.num_partitions = partitions;
                    result.replication_factor = replication_factor;
                    result.configs = Some(describe_created(&config));
                }
                if version >= 7 {
                    result.topic_id = topic_id;
                }
                result
            }
            Err((code, message)) => {
                tracing::debug!(topic = %name, code = error_code::name(code), %message, "CreateTopics refused");
                CreatableTopicResult::default()
                    .with_name(topic_name(&name))
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&message)))
            }
        };
        response.topics.push(result);
    }
    ResponseKind::CreateTopics(response)
}

/// How long a topic operation may wait for the controller (and for this broker to apply it).
const CONTROLLER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Cluster mode: sends a topic operation to the controller and waits until this broker has
/// applied its outcome.
pub(crate) async fn forward<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: ControllerRequest,
) -> Result<(), (i16, String)> {
    let cluster = state.cluster.as_ref().expect("forwarding happens in cluster mode");
    let reply = cluster.controller(request, CONTROLLER_REQUEST_TIMEOUT).await;
    if reply.error_code == error_code::NONE { Ok(()) } else { Err((reply.error_code, reply.message)) }
}

fn overrides_of(topic: &CreatableTopic) -> BTreeMap<String, String> {
    let mut overrides = BTreeMap::new();
    for config in &topic.configs {
        if let Some(value) = &config.value {
            overrides.insert(config.name.to_string(), value.to_string());
        }
    }
    overrides
}

/// Cluster mode: the controller places the replicas (or takes the request's assignment).
async fn create_in_cluster<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    topic: &CreatableTopic,
    validate_only: bool,
    cluster: &ClusterConfig,
) -> Result<(i32, i16, TopicConfig, uuid::Uuid), (i16, String)> {
    let name = topic.name.0.to_string();
    let overrides = overrides_of(topic);
    let config =
        TopicConfig::from_overrides(overrides.clone()).map_err(|message| (error_code::INVALID_CONFIG, message))?;
    let (partitions, replication_factor, assignment) = if topic.assignments.is_empty() {
        let partitions = if topic.num_partitions == -1 { state.config.num_partitions } else { topic.num_partitions };
        let rf =
            if topic.replication_factor == -1 { cluster.default_replication_factor } else { topic.replication_factor };
        (partitions, rf, None)
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            let message = "assignments exclude num_partitions and replication_factor";
            return Err((error_code::INVALID_REQUEST, message.to_string()));
        }
        let assignment: Vec<Vec<i32>> =
            topic.assignments.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect();
        let rf = assignment.first().map_or(0, |replicas| replicas.len() as i16);
        (assignment.len() as i32, rf, Some(assignment))
    };
    validate_topic_name(&name).map_err(|error| (topic_error_code(&error), error.to_string()))?;
    if validate_only {
        return Ok((partitions, replication_factor, config, uuid::Uuid::nil()));
    }
    let request = ControllerRequest::CreateTopic {
        name: name.clone(),
        partitions,
        replication_factor,
        assignment,
        configs: overrides,
    };
    forward(state, request).await?;
    let topic_id = state.topics.get(&name).map_or(uuid::Uuid::nil(), |t| t.topic_id);
    tracing::info!(topic = %name, partitions, replication_factor, "created topic");
    Ok((partitions, replication_factor, config, topic_id))
}

async fn create_one<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    topic: &CreatableTopic,
    validate_only: bool,
) -> Result<(i32, i16, TopicConfig, uuid::Uuid), (i16, String)> {
    if let Some(cluster) = &state.config.cluster {
        return create_in_cluster(state, topic, validate_only, cluster).await;
    }
    let node_id = state.config.node_id;
    let mut partitions = if topic.num_partitions == -1 { state.config.num_partitions } else { topic.num_partitions };
    if !topic.assignments.is_empty() {
        let only_here =
            topic.assignments.iter().all(|a| a.broker_ids.iter().all(|b| b.0 == node_id) && a.broker_ids.len() == 1);
        if !only_here || topic.num_partitions != -1 || topic.replication_factor != -1 {
            let message = "assignments must name only this broker, without num_partitions or replication_factor";
            return Err((error_code::INVALID_REPLICA_ASSIGNMENT, message.to_string()));
        }
        partitions = topic.assignments.len() as i32;
    }
    if !matches!(topic.replication_factor, -1 | 1) {
        let message = format!("replication factor {} is larger than the 1 available broker", topic.replication_factor);
        return Err((error_code::INVALID_REPLICATION_FACTOR, message));
    }
    let config =
        TopicConfig::from_overrides(overrides_of(topic)).map_err(|message| (error_code::INVALID_CONFIG, message))?;
    let name = topic.name.0.as_str();
    let created = state.topics.create(name, partitions, config.clone(), validate_only, &state.clock).await;
    let created = created.map_err(|error| (topic_error_code(&error), error.to_string()))?;
    if !validate_only {
        tracing::info!(topic = name, partitions, "created topic");
    }
    Ok((partitions, 1, config, created.topic_id))
}

fn describe_created(config: &TopicConfig) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIG_KEYS
        .iter()
        .map(|key| {
            let (value, is_default) = config.value_of(key);
            CreatableTopicConfigs::default()
                .with_name(str_bytes(key.name))
                .with_value(Some(str_bytes(&value)))
                .with_config_source(if is_default { CONFIG_SOURCE_DEFAULT } else { CONFIG_SOURCE_TOPIC })
        })
        .collect()
}

pub async fn delete_topics<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: DeleteTopicsRequest,
    version: i16,
) -> ResponseKind {
    let mut response = DeleteTopicsResponse::default();
    let mut targets: Vec<(Option<String>, uuid::Uuid)> =
        request.topic_names.iter().map(|n| (Some(n.0.to_string()), uuid::Uuid::nil())).collect();
    for topic in &request.topics {
        targets.push((topic.name.as_ref().map(|n| n.0.to_string()), topic.topic_id));
    }
    for (name, topic_id) in targets {
        let resolved = name.clone().or_else(|| state.topics.get_by_id(topic_id).map(|t| t.name.clone()));
        let mut result =
            DeletableTopicResult::default().with_name(name.as_deref().map(topic_name)).with_topic_id(topic_id);
        match resolved {
            None => result.error_code = error_code::UNKNOWN_TOPIC_ID,
            Some(name) if state.cluster.is_some() => {
                match forward(state, ControllerRequest::DeleteTopic { name: name.clone() }).await {
                    Ok(()) => result.name = Some(topic_name(&name)),
                    Err((code, message)) => {
                        result.error_code = code;
                        if version >= 5 {
                            result.error_message = Some(str_bytes(&message));
                        }
                    }
                }
            }
            Some(name) => {
                if let Err(error) = state.topics.delete(&name).await {
                    result.error_code = topic_error_code(&error);
                    if version >= 5 {
                        result.error_message = Some(str_bytes(&error.to_string()));
                    }
                } else {
                    tracing::info!(topic = %name, "deleted topic");
                    result.name = Some(topic_name(&name));
                }
            }
        }
        response.responses.push(result);
    }
    ResponseKind::DeleteTopics(response)
}

pub async fn create_partitions<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: CreatePartitionsRequest,
) -> ResponseKind {
    let mut response = CreatePartitionsResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut result = CreatePartitionsTopicResult::default().with_name(topic_name(&name));
        let placed_elsewhere = topic
            .assignments
            .as_ref()
            .is_some_and(|a| a.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != state.config.node_id)));
        let outcome = if state.cluster.is_some() {
            if topic.assignments.is_some() {
                Err((error_code::INVALID_REPLICA_ASSIGNMENT, "explicit assignments are not supported yet".to_string()))
            } else if request.validate_only {
                Ok(())
            } else {
                forward(state, ControllerRequest::CreatePartitions { name: name.clone(), count: topic.count }).await
            }
        } else if placed_elsewhere {
            Err((error_code::INVALID_REPLICA_ASSIGNMENT, "assignments must name only this broker".to_string()))
        } else {
            state
                .topics
                .add_partitions(&name, topic.count, request.validate_only, &state.clock)
                .await
                .map_err(|e| (topic_error_code(&e), e.to_string()))
        };
        if let Err((code, message)) = outcome {
            result.error_code = code;
            result.error_message = Some(str_bytes(&message));
        }
        response.results.push(result);
    }
    ResponseKind::CreatePartitions(response)
}

pub async fn delete_records<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: DeleteRecordsRequest,
) -> ResponseKind {
    let mut response = DeleteRecordsResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut results = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let mut result = DeleteRecordsPartitionResult::default()
                .with_partition_index(wanted.partition_index)
                .with_low_watermark(-1);
            let Some(partition) = state.topics.partition(&name, wanted.partition_index) else {
                results.push(result.with_error_code(error_code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            if partition.is_replicated() {
                // The new log start would have to be replicated (and recorded by each replica);
                // until that lands, refuse rather than move only the leader's start.
                results.push(result.with_error_code(error_code::INVALID_REQUEST));
                continue;
            }
            let high_watermark = partition.watermarks().high_watermark;
            // Kafka protocol: DeleteRecordsRequest offset -1 means the high watermark.
            let target = if wanted.offset == -1 { high_watermark } else { Offset(wanted.offset) };
            if target < Offset(0) || target > high_watermark {
                results.push(result.with_error_code(error_code::OFFSET_OUT_OF_RANGE));
                continue;
            }
            let mut log = partition.lock().await;
            match log.delete_records(target).await {
                Ok(low_watermark) => result.low_watermark = low_watermark.0,
                Err(error) => result.error_code = crate::handlers::produce::storage_error_code(&error),
            }
            partition.publish(&log);
            results.push(result);
        }
        response.topics.push(DeleteRecordsTopicResult::default().with_name(topic_name(&name)).with_partitions(results));
    }
    ResponseKind::DeleteRecords(response)
}
