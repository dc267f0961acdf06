//! One module per group of Kafka APIs. Each handler maps storage and registry outcomes onto
//! the Kafka error codes the protocol documents for that API.

pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod consumer_protocol;
pub mod fetch;
pub mod group_offsets;
pub mod groups;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod reassign;
pub mod topics_admin;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub(crate) fn group_id(id: &kafka_protocol::messages::GroupId) -> String {
    id.0.to_string()
}

pub(crate) fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}
