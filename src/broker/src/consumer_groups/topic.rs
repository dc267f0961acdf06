//! The internal topic `__consumer_offsets`: created on the first FindCoordinator for a group
//! (as Kafka creates it), compacted, with `offsets.topic.num.partitions` partitions and, in a
//! cluster, a replication factor of `offsets.topic.replication.factor` (3) or the cluster's
//! size if smaller.

use crate::cluster::ControllerRequest;
use crate::state::BrokerState;
use crate::topic_config::TopicConfig;
use crate::topics::{Topic, TopicError};
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// `offsets.topic.replication.factor`.
const OFFSETS_TOPIC_REPLICATION_FACTOR: i16 = 3;
/// `offsets.topic.segment.bytes` (Kafka's default, 100 MiB).
const OFFSETS_TOPIC_SEGMENT_BYTES: &str = "104857600";

/// The internal topic's settings (Kafka's `GroupCoordinator.groupMetadataTopicConfigs`).
pub fn offsets_topic_config() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), OFFSETS_TOPIC_SEGMENT_BYTES.to_string()),
        ("compression.type".to_string(), "producer".to_string()),
    ])
}

/// The internal topic, created if missing. Errors are the FindCoordinator code to answer.
pub async fn ensure_offsets_topic<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>) -> Result<Arc<Topic<D>>, i16> {
    if let Some(topic) = state.topics.get(OFFSETS_TOPIC) {
        return Ok(topic);
    }
    let partitions = state.groups.partitions;
    if let Some(cluster) = &state.cluster {
        let brokers = i16::try_from(cluster.config.peers.len()).unwrap_or(i16::MAX);
        let request = ControllerRequest::CreateTopic {
            name: OFFSETS_TOPIC.to_string(),
            partitions,
            replication_factor: OFFSETS_TOPIC_REPLICATION_FACTOR.min(brokers),
            assignment: None,
            configs: offsets_topic_config(),
        };
        return match crate::handlers::topics_admin::forward(state, request).await {
            Ok(()) | Err((error_code::TOPIC_ALREADY_EXISTS, _)) => {
                state.topics.get(OFFSETS_TOPIC).ok_or(error_code::COORDINATOR_NOT_AVAILABLE)
            }
            Err((code, message)) => {
                // Kafka: the offsets topic cannot be created yet (too few brokers registered).
                tracing::info!(code = error_code::name(code), %message, "creating __consumer_offsets failed; clients retry");
                Err(error_code::COORDINATOR_NOT_AVAILABLE)
            }
        };
    }
    let config = TopicConfig::from_overrides(offsets_topic_config()).expect("the offsets topic config is valid");
    match state.topics.create(OFFSETS_TOPIC, partitions, config, false, &state.clock).await {
        Ok(topic) => {
            tracing::info!(partitions, "created __consumer_offsets");
            Ok(topic)
        }
        Err(TopicError::AlreadyExists) => state.topics.get(OFFSETS_TOPIC).ok_or(error_code::COORDINATOR_NOT_AVAILABLE),
        Err(error) => {
            tracing::error!(%error, "creating __consumer_offsets failed");
            Err(error_code::COORDINATOR_NOT_AVAILABLE)
        }
    }
}
