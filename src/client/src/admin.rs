//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs and
//! IncrementalAlterConfigs. Each call returns one outcome per topic, since Kafka reports errors
//! per topic (one topic existing already does not fail the others).
//!
//! Requests go to any broker: KRaft brokers forward admin requests to the controller (KIP-590).

use std::time::Duration;

use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, TopicName,
    create_partitions_request::CreatePartitionsTopic,
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    delete_topics_request::DeleteTopicState,
    describe_configs_request::DescribeConfigsResource,
    incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{Client, Target};
use crate::error::{ClientError, KafkaError, Result};

/// How long the broker may take to apply an admin change before answering (the request's own
/// `timeout_ms`, as kafka-topics' default).
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Kafka protocol: ConfigResource type TOPIC.
const RESOURCE_TYPE_TOPIC: i8 = 2;

/// A topic to create. `partition_count` -1 and `replication_factor` -1 ask for the broker's
/// defaults (CreateTopics v4+, KIP-464).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partition_count: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// The outcome for one topic of an admin call.
pub type TopicOutcome = (String, std::result::Result<(), KafkaError>);

/// Where a config value comes from (Kafka protocol: DescribeConfigs v1+ `config_source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    Unknown,
    DynamicTopicConfig,
    DynamicBrokerConfig,
    DynamicDefaultBrokerConfig,
    StaticBrokerConfig,
    DefaultConfig,
    DynamicBrokerLoggerConfig,
    Other(i8),
}

impl ConfigSource {
    pub fn from_code(code: i8) -> ConfigSource {
        match code {
            0 => ConfigSource::Unknown,
            1 => ConfigSource::DynamicTopicConfig,
            2 => ConfigSource::DynamicBrokerConfig,
            3 => ConfigSource::DynamicDefaultBrokerConfig,
            4 => ConfigSource::StaticBrokerConfig,
            5 => ConfigSource::DefaultConfig,
            6 => ConfigSource::DynamicBrokerLoggerConfig,
            other => ConfigSource::Other(other),
        }
    }

    /// The name Kafka's Admin API and kafka-configs print.
    pub fn name(self) -> &'static str {
        match self {
            ConfigSource::Unknown | ConfigSource::Other(_) => "UNKNOWN",
            ConfigSource::DynamicTopicConfig => "DYNAMIC_TOPIC_CONFIG",
            ConfigSource::DynamicBrokerConfig => "DYNAMIC_BROKER_CONFIG",
            ConfigSource::DynamicDefaultBrokerConfig => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ConfigSource::StaticBrokerConfig => "STATIC_BROKER_CONFIG",
            ConfigSource::DefaultConfig => "DEFAULT_CONFIG",
            ConfigSource::DynamicBrokerLoggerConfig => "DYNAMIC_BROKER_LOGGER_CONFIG",
        }
    }
}

/// One config of a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` when unset or sensitive.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub is_sensitive: bool,
}

/// A topic's configs, or why the broker could not describe them.
pub type TopicConfigs = (String, std::result::Result<Vec<ConfigEntry>, KafkaError>);

/// One change of an IncrementalAlterConfigs call (KIP-339).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    Set { name: String, value: String },
    Delete { name: String },
}

impl ConfigChange {
    fn to_alterable(&self) -> AlterableConfig {
        // Kafka protocol: config_operation SET = 0, DELETE = 1.
        let (name, operation, value) = match self {
            ConfigChange::Set { name, value } => (name, 0, Some(str_bytes(value))),
            ConfigChange::Delete { name } => (name, 1, None),
        };
        AlterableConfig::default().with_name(str_bytes(name)).with_config_operation(operation).with_value(value)
    }
}

fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

fn topic_name(value: &str) -> TopicName {
    TopicName(str_bytes(value))
}

fn timeout_ms() -> i32 {
    ADMIN_TIMEOUT.as_millis() as i32
}

impl Client {
    /// CreateTopics; one outcome per requested topic, in the broker's order.
    pub async fn create_topics(&mut self, topics: &[NewTopic]) -> Result<Vec<TopicOutcome>> {
        let creatable: Vec<CreatableTopic> = topics
            .iter()
            .map(|topic| {
                let configs = topic
                    .configs
                    .iter()
                    .map(|(name, value)| {
                        CreatableTopicConfig::default().with_name(str_bytes(name)).with_value(Some(str_bytes(value)))
                    })
                    .collect();
                CreatableTopic::default()
                    .with_name(topic_name(&topic.name))
                    .with_num_partitions(topic.partition_count)
                    .with_replication_factor(topic.replication_factor)
                    .with_configs(configs)
            })
            .collect();
        let build = |_version| CreateTopicsRequest::default().with_topics(creatable).with_timeout_ms(timeout_ms());
        let (_, response) = self.call(Target::Any, ADMIN_TIMEOUT, build).await?;
        for topic in topics {
            self.invalidate_topic(&topic.name);
        }
        let outcomes = response.topics.iter().map(|result| {
            let message = result.error_message.as_deref();
            (result.name.0.to_string(), outcome(result.error_code, message))
        });
        Ok(outcomes.collect())
    }

    /// DeleteTopics by name; one outcome per topic.
    pub async fn delete_topics(&mut self, names: &[&str]) -> Result<Vec<TopicOutcome>> {
        let build = |version: i16| {
            let request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms());
            if version >= 6 {
                let states =
                    names.iter().map(|name| DeleteTopicState::default().with_name(Some(topic_name(name)))).collect();
                request.with_topics(states)
            } else {
                request.with_topic_names(names.iter().map(|name| topic_name(name)).collect())
            }
        };
        let (_, response) = self.call(Target::Any, ADMIN_TIMEOUT, build).await?;
        for name in names {
            self.invalidate_topic(name);
        }
        let outcomes = response.responses.iter().map(|result| {
            let name = result.name.as_ref().map(|name| name.0.to_string()).unwrap_or_default();
            (name, outcome(result.error_code, result.error_message.as_deref()))
        });
        Ok(outcomes.collect())
    }

    /// CreatePartitions: raises each topic's partition count to the given total.
    pub async fn create_partitions(&mut self, totals: &[(&str, i32)]) -> Result<Vec<TopicOutcome>> {
        let requested: Vec<CreatePartitionsTopic> = totals
            .iter()
            .map(|(name, count)| CreatePartitionsTopic::default().with_name(topic_name(name)).with_count(*count))
            .collect();
        let build = |_version| CreatePartitionsRequest::default().with_topics(requested).with_timeout_ms(timeout_ms());
        let (_, response) = self.call(Target::Any, ADMIN_TIMEOUT, build).await?;
        for (name, _) in totals {
            self.invalidate_topic(name);
        }
        let outcomes = response.results.iter().map(|result| {
            let message = result.error_message.as_deref();
            (result.name.0.to_string(), outcome(result.error_code, message))
        });
        Ok(outcomes.collect())
    }

    /// DescribeConfigs for topics: every config, with its source.
    pub async fn describe_topic_configs(&mut self, names: &[&str]) -> Result<Vec<TopicConfigs>> {
        let resources = names
            .iter()
            .map(|name| {
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TYPE_TOPIC)
                    .with_resource_name(str_bytes(name))
                    .with_configuration_keys(None)
            })
            .collect();
        let build = |_version| DescribeConfigsRequest::default().with_resources(resources);
        let (_, response) = self.call(Target::Any, Duration::ZERO, build).await?;
        let results = response.results.iter().map(|result| {
            let message = result.error_message.as_deref();
            let entries = outcome(result.error_code, message).map(|()| {
                let mut entries: Vec<ConfigEntry> = result
                    .configs
                    .iter()
                    .map(|config| ConfigEntry {
                        name: config.name.to_string(),
                        value: config.value.as_ref().map(ToString::to_string),
                        source: ConfigSource::from_code(config.config_source),
                        read_only: config.read_only,
                        is_sensitive: config.is_sensitive,
                    })
                    .collect();
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                entries
            });
            (result.resource_name.to_string(), entries)
        });
        Ok(results.collect())
    }

    /// IncrementalAlterConfigs (KIP-339) on one topic. A broker error becomes
    /// [`ClientError::Kafka`].
    pub async fn alter_topic_configs(&mut self, name: &str, changes: &[ConfigChange]) -> Result<()> {
        let resource = AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TYPE_TOPIC)
            .with_resource_name(str_bytes(name))
            .with_configs(changes.iter().map(ConfigChange::to_alterable).collect());
        let build = |_version| IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
        let (_, response) = self.call(Target::Any, Duration::ZERO, build).await?;
        for result in &response.responses {
            if let Err(error) = outcome(result.error_code, result.error_message.as_deref()) {
                let context = format!("alter configs of topic {name}");
                return Err(ClientError::Kafka { context, error });
            }
        }
        Ok(())
    }
}

fn outcome(code: i16, message: Option<&str>) -> std::result::Result<(), KafkaError> {
    match KafkaError::from_code(code, message) {
        None => Ok(()),
        Some(error) => Err(error),
    }
}
