//! DescribeConfigs (1-4), AlterConfigs (0-2) and IncrementalAlterConfigs (0-1).
//!
//! - DescribeConfigs of a topic lists every covered key with its value, whether it is a
//!   default, and its source (TOPIC_CONFIG or DEFAULT_CONFIG), with synonyms and documentation
//!   when asked (Kafka protocol: DescribeConfigs v1 `include_synonyms`, v3 documentation).
//! - Broker configs are static (flags, `sluice.toml`): they can be described, not altered.
//! - AlterConfigs replaces the topic's whole set of overrides (Kafka's legacy semantics).
//! - IncrementalAlterConfigs applies SET, DELETE, APPEND and SUBTRACT (KIP-339); APPEND and
//!   SUBTRACT apply to list configs (`cleanup.policy`).

use super::str_bytes;
use crate::handlers::topics_admin::topic_error_code;
use crate::state::BrokerState;
use crate::topic_config::{
    CONFIG_SOURCE_DEFAULT, CONFIG_SOURCE_STATIC_BROKER, CONFIG_SOURCE_TOPIC, CONFIG_TYPE_INT, CONFIG_TYPE_LIST,
    TOPIC_CONFIG_KEYS, TopicConfig, config_key,
};
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ResponseKind,
};
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Kafka `ConfigResource.Type`.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const OPERATION_SET: i8 = 0;
const OPERATION_DELETE: i8 = 1;
const OPERATION_APPEND: i8 = 2;
const OPERATION_SUBTRACT: i8 = 3;

pub fn describe<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: DescribeConfigsRequest,
    version: i16,
) -> ResponseKind {
    let mut response = DescribeConfigsResponse::default();
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let wanted =
            |key: &str| resource.configuration_keys.as_ref().is_none_or(|keys| keys.iter().any(|k| k.as_str() == key));
        match resource.resource_type {
            RESOURCE_TOPIC => match state.topics.get(&name) {
                Some(topic) => {
                    result.configs = TOPIC_CONFIG_KEYS
                        .iter()
                        .filter(|key| wanted(key.name))
                        .map(|key| {
                            let (value, is_default) = topic.config.value_of(key);
                            let source = if is_default { CONFIG_SOURCE_DEFAULT } else { CONFIG_SOURCE_TOPIC };
                            let mut entry = entry(key.name, &value, source, false, key.config_type, version);
                            if request.include_synonyms && version >= 1 {
                                entry.synonyms = vec![
                                    DescribeConfigsSynonym::default()
                                        .with_name(str_bytes(key.name))
                                        .with_value(Some(str_bytes(&value)))
                                        .with_source(source),
                                ];
                            }
                            if request.include_documentation && version >= 3 {
                                entry.documentation = Some(str_bytes(key.documentation));
                            }
                            entry
                        })
                        .collect();
                }
                None => {
                    result.error_code = error_code::UNKNOWN_TOPIC_OR_PARTITION;
                    result.error_message = Some(str_bytes("unknown topic"));
                }
            },
            RESOURCE_BROKER => {
                result.configs = broker_configs(state)
                    .into_iter()
                    .filter(|(k, _, _)| wanted(k))
                    .map(|(k, v, t)| entry(k, &v, CONFIG_SOURCE_STATIC_BROKER, true, t, version))
                    .collect();
            }
            _ => {
                result.error_code = error_code::INVALID_REQUEST;
                result.error_message = Some(str_bytes("only topic and broker resources are supported"));
            }
        }
        response.results.push(result);
    }
    ResponseKind::DescribeConfigs(response)
}

fn entry(
    name: &str,
    value: &str,
    source: i8,
    read_only: bool,
    config_type: i8,
    version: i16,
) -> DescribeConfigsResourceResult {
    // config_type exists from v3 on; kafka-protocol refuses to encode it earlier.
    let config_type = if version >= 3 { config_type } else { 0 };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_config_type(config_type)
}

fn broker_configs<D: Disk, C: Clock>(state: &BrokerState<D, C>) -> Vec<(&'static str, String, i8)> {
    let config = &state.config;
    vec![
        ("auto.create.topics.enable", config.auto_create_topics.to_string(), 1),
        ("broker.id", config.node_id.to_string(), CONFIG_TYPE_INT),
        ("log.dirs", config.data_dir.display().to_string(), CONFIG_TYPE_LIST),
        ("log.retention.check.interval.ms", config.retention_check_interval_ms.to_string(), 5),
        ("node.id", config.node_id.to_string(), CONFIG_TYPE_INT),
        ("num.partitions", config.num_partitions.to_string(), CONFIG_TYPE_INT),
        ("socket.request.max.bytes", config.socket_request_max_bytes.to_string(), CONFIG_TYPE_INT),
    ]
}

/// Validates and applies new overrides for a topic resource; `(code, message)` on failure.
async fn apply<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    resource_type: i8,
    name: &str,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    if resource_type == RESOURCE_BROKER {
        return Err((
            error_code::INVALID_REQUEST,
            "broker configs are static: set them with flags or sluice.toml".to_string(),
        ));
    }
    if resource_type != RESOURCE_TOPIC {
        return Err((error_code::INVALID_REQUEST, "only topic configs can be altered".to_string()));
    }
    let topic = state.topics.get(name).ok_or((error_code::UNKNOWN_TOPIC_OR_PARTITION, "unknown topic".to_string()))?;
    let mut overrides = topic.config.overrides.clone();
    change(&mut overrides).map_err(|m| (error_code::INVALID_CONFIG, m))?;
    let config = TopicConfig::from_overrides(overrides.clone()).map_err(|m| (error_code::INVALID_CONFIG, m))?;
    if state.cluster.is_some() {
        if validate_only {
            return Ok(());
        }
        // The controller replicates the change; every broker applies it (cluster/metadata.rs).
        let delete = topic.config.overrides.keys().filter(|k| !overrides.contains_key(*k)).cloned().collect();
        let request =
            crate::cluster::ControllerRequest::AlterTopicConfigs { name: name.to_string(), set: overrides, delete };
        crate::handlers::topics_admin::forward(state, request).await?;
        tracing::info!(topic = name, "altered topic config");
        return Ok(());
    }
    state.topics.set_config(name, config, validate_only).await.map_err(|e| (topic_error_code(&e), e.to_string()))?;
    if !validate_only {
        tracing::info!(topic = name, "altered topic config");
    }
    Ok(())
}

pub async fn alter<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>, request: AlterConfigsRequest) -> ResponseKind {
    let mut response = AlterConfigsResponse::default();
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let replacement: BTreeMap<String, String> = resource
            .configs
            .iter()
            .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
            .collect();
        let outcome = apply(
            state,
            resource.resource_type,
            &name,
            |overrides| {
                *overrides = replacement;
                Ok(())
            },
            request.validate_only,
        )
        .await;
        let mut result = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        if let Err((code, message)) = outcome {
            result.error_code = code;
            result.error_message = Some(str_bytes(&message));
        }
        response.responses.push(result);
    }
    ResponseKind::AlterConfigs(response)
}

pub async fn incremental_alter<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: IncrementalAlterConfigsRequest,
) -> ResponseKind {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let changes: Vec<(String, i8, Option<String>)> = resource
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.config_operation, c.value.as_ref().map(|v| v.to_string())))
            .collect();
        let outcome = apply(
            state,
            resource.resource_type,
            &name,
            |overrides| incremental_change(overrides, changes),
            request.validate_only,
        )
        .await;
        let mut result = IncrementalResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name);
        if let Err((code, message)) = outcome {
            result.error_code = code;
            result.error_message = Some(str_bytes(&message));
        }
        response.responses.push(result);
    }
    ResponseKind::IncrementalAlterConfigs(response)
}

fn incremental_change(
    overrides: &mut BTreeMap<String, String>,
    changes: Vec<(String, i8, Option<String>)>,
) -> Result<(), String> {
    for (name, operation, value) in changes {
        let key = config_key(&name).ok_or_else(|| format!("unknown topic config '{name}'"))?;
        let current = overrides.get(&name).cloned().unwrap_or_else(|| key.default.to_string());
        match operation {
            OPERATION_SET => {
                overrides.insert(name, value.ok_or("SET needs a value")?);
            }
            OPERATION_DELETE => {
                overrides.remove(&name);
            }
            OPERATION_APPEND | OPERATION_SUBTRACT if key.config_type == CONFIG_TYPE_LIST => {
                let mut items: Vec<String> =
                    current.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                for item in value.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if operation == OPERATION_APPEND && !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    } else if operation == OPERATION_SUBTRACT {
                        items.retain(|i| i != item);
                    }
                }
                overrides.insert(name, items.join(","));
            }
            OPERATION_APPEND | OPERATION_SUBTRACT => return Err(format!("{name} is not a list config")),
            other => return Err(format!("unknown config operation {other}")),
        }
    }
    Ok(())
}
