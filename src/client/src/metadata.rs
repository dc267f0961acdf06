//! Metadata and DescribeCluster: which brokers exist, which topics, and who leads each
//! partition. The Metadata answer also refreshes the client's routing tables.

use std::time::Duration;

use kafka_protocol::messages::{
    DescribeClusterRequest, MetadataRequest, MetadataResponse, TopicName, metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::StrBytes;
use sluice_types::{NodeId, PartitionId};

use crate::client::{Client, Target};
use crate::error::{ClientError, KafkaError, Result};

/// One broker as Metadata or DescribeCluster advertises it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerMetadata {
    pub node_id: NodeId,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerMetadata {
    /// `host:port`, bracketing IPv6 literals.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition's replicas. Invariant: `leader` is `None` when Metadata said -1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: PartitionId,
    pub leader: Option<NodeId>,
    pub leader_epoch: i32,
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    pub offline_replicas: Vec<NodeId>,
    pub error: Option<KafkaError>,
}

/// One topic. Invariant: `partitions` is sorted by partition index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    /// The topic id (KIP-516) as a UUID string; all zeros when the broker does not say.
    pub topic_id: String,
    pub is_internal: bool,
    pub error: Option<KafkaError>,
    pub partitions: Vec<PartitionMetadata>,
}

/// A Metadata answer. Invariant: `brokers` sorted by node id, `topics` by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    /// `None` when the broker reported -1 (no controller known).
    pub controller_id: Option<NodeId>,
    pub brokers: Vec<BrokerMetadata>,
    pub topics: Vec<TopicMetadata>,
}

/// A DescribeCluster answer (KIP-700). Invariant: `brokers` sorted by node id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: String,
    pub controller_id: Option<NodeId>,
    pub brokers: Vec<BrokerMetadata>,
}

fn node(id: i32) -> Option<NodeId> {
    (id >= 0).then_some(NodeId(id))
}

fn nodes(ids: &[kafka_protocol::messages::BrokerId]) -> Vec<NodeId> {
    ids.iter().map(|id| NodeId(id.0)).collect()
}

impl Client {
    /// Metadata for `topics`, or for every topic when `None`. Never auto-creates topics.
    pub async fn metadata(&mut self, topics: Option<&[&str]>) -> Result<ClusterMetadata> {
        let build = |version: i16| {
            let requested = match topics {
                Some(names) => Some(names.iter().map(|name| topic_request(name)).collect()),
                // v0 has no null array: an empty list means "all topics".
                None if version == 0 => Some(Vec::new()),
                None => None,
            };
            let mut request = MetadataRequest::default().with_topics(requested);
            if version >= 4 {
                request = request.with_allow_auto_topic_creation(false);
            }
            request
        };
        let (_, response) = self.call(Target::Any, Duration::ZERO, build).await?;
        if let Some(error) = KafkaError::from_code(response.error_code, None) {
            return Err(ClientError::Kafka { context: "Metadata".to_owned(), error });
        }
        let metadata = cluster_metadata(response);
        self.remember(&metadata);
        Ok(metadata)
    }

    /// Updates the routing tables from a Metadata answer.
    fn remember(&mut self, metadata: &ClusterMetadata) {
        for broker in &metadata.brokers {
            self.broker_addresses.insert(broker.node_id, broker.address());
        }
        for topic in &metadata.topics {
            if topic.error.is_none() {
                self.topics.insert(topic.name.clone(), topic.clone());
            }
        }
    }

    /// DescribeCluster (KIP-700): cluster id, controller and brokers. Fails with
    /// `UnsupportedVersion` on brokers older than Kafka 2.8.
    pub async fn describe_cluster(&mut self) -> Result<ClusterDescription> {
        let build = |_version| DescribeClusterRequest::default();
        let (_, response) = self.call(Target::Any, Duration::ZERO, build).await?;
        let message = response.error_message.as_deref();
        if let Some(error) = KafkaError::from_code(response.error_code, message) {
            return Err(ClientError::Kafka { context: "DescribeCluster".to_owned(), error });
        }
        let mut brokers: Vec<BrokerMetadata> = response
            .brokers
            .iter()
            .map(|broker| BrokerMetadata {
                node_id: NodeId(broker.broker_id.0),
                host: broker.host.to_string(),
                port: broker.port,
                rack: broker.rack.as_ref().map(ToString::to_string),
            })
            .collect();
        brokers.sort_by_key(|broker| broker.node_id);
        Ok(ClusterDescription {
            cluster_id: response.cluster_id.to_string(),
            controller_id: node(response.controller_id.0),
            brokers,
        })
    }
}

fn topic_request(name: &str) -> MetadataRequestTopic {
    let name = TopicName(StrBytes::from_string(name.to_owned()));
    MetadataRequestTopic::default().with_name(Some(name))
}

fn cluster_metadata(response: MetadataResponse) -> ClusterMetadata {
    let mut brokers: Vec<BrokerMetadata> = response
        .brokers
        .iter()
        .map(|broker| BrokerMetadata {
            node_id: NodeId(broker.node_id.0),
            host: broker.host.to_string(),
            port: broker.port,
            rack: broker.rack.as_ref().map(ToString::to_string),
        })
        .collect();
    brokers.sort_by_key(|broker| broker.node_id);
    let mut topics: Vec<TopicMetadata> = response
        .topics
        .iter()
        .map(|topic| {
            let mut partitions: Vec<PartitionMetadata> = topic
                .partitions
                .iter()
                .map(|partition| PartitionMetadata {
                    partition: PartitionId(partition.partition_index),
                    leader: node(partition.leader_id.0),
                    leader_epoch: partition.leader_epoch,
                    replicas: nodes(&partition.replica_nodes),
                    isr: nodes(&partition.isr_nodes),
                    offline_replicas: nodes(&partition.offline_replicas),
                    error: KafkaError::from_code(partition.error_code, None),
                })
                .collect();
            partitions.sort_by_key(|partition| partition.partition);
            TopicMetadata {
                name: topic.name.as_ref().map(|name| name.0.to_string()).unwrap_or_default(),
                topic_id: topic.topic_id.to_string(),
                is_internal: topic.is_internal,
                error: KafkaError::from_code(topic.error_code, None),
                partitions,
            }
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    ClusterMetadata {
        cluster_id: response.cluster_id.as_ref().map(ToString::to_string),
        controller_id: node(response.controller_id.0),
        brokers,
        topics,
    }
}
