//! Why a command was refused, each reason mapped to the Kafka error code a client sees, and
//! why a record or snapshot could not be decoded.
//!
//! Refusals are expected (two proposals can race, and the later one meets the state the earlier
//! one left), so they are typed errors, never panics (DESIGN.md, Style §2). Every replica
//! refuses the same command alike, because validation reads only the replicated state.

use sluice_types::NodeId;
use sluice_types::TopicId;

/// Kafka error codes used here (Kafka protocol guide, "Error Codes"; the same numbers as
/// `sluice_protocol::error_code`, not depended on so the state machine does not pull in the
/// wire codecs and compression crates).
pub mod code {
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const BROKER_NOT_AVAILABLE: i16 = 8;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
}

/// A command refused by `MetaState::apply` (or a placement refused by `place_replicas`). The
/// state is unchanged by a refused command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("topic '{name}' already exists")]
    TopicAlreadyExists { name: String },
    #[error("unknown topic '{name}'")]
    UnknownTopic { name: String },
    #[error("topic '{name}' has no partition {partition}")]
    UnknownPartition { name: String, partition: i32 },
    /// Kafka's topic name rule (`Topic.validate`), or a name that collides with an existing one
    /// once '.' and '_' are treated alike (`Topic.hasCollision`: both map to one metric name).
    #[error("invalid topic name '{name}': {reason}")]
    InvalidTopicName { name: String, reason: String },
    /// The proposer supplies topic ids; a reserved or duplicate one is the proposer's bug, not
    /// the client's request, hence UNKNOWN_SERVER_ERROR.
    #[error("topic id {topic_id} {reason}")]
    InvalidTopicId { topic_id: TopicId, reason: String },
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    /// Kafka (KRaft `ReplicationControlManager`) answers INVALID_REPLICA_ASSIGNMENT for an empty
    /// replica list, a broker named twice, an unregistered broker and a replica count that
    /// differs from the topic's.
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// An unregistered broker was named where a registered one is required, or new replicas
    /// were placed on a broker that is leaving the cluster.
    #[error("broker {node_id} is not available: {reason}")]
    BrokerNotAvailable { node_id: NodeId, reason: String },
    /// AlterPartitionReassignments cancel with nothing to cancel, or a completion for a
    /// reassignment that has since been replaced or cancelled (KIP-455).
    #[error("no reassignment in progress: {0}")]
    NoReassignmentInProgress(String),
    #[error("invalid broker registration: {0}")]
    InvalidBrokerRegistration(String),
    /// `MetaCommand::encode`: the record would exceed `COMMAND_BYTES_MAX`.
    #[error("command of {bytes} bytes exceeds the limit of {limit_bytes}")]
    CommandTooLarge { bytes: usize, limit_bytes: usize },
}

impl MetaError {
    /// The Kafka error code a client sees for this refusal.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            MetaError::TopicAlreadyExists { .. } => code::TOPIC_ALREADY_EXISTS,
            MetaError::UnknownTopic { .. } | MetaError::UnknownPartition { .. } => code::UNKNOWN_TOPIC_OR_PARTITION,
            MetaError::InvalidTopicName { .. } => code::INVALID_TOPIC_EXCEPTION,
            MetaError::InvalidTopicId { .. } => code::UNKNOWN_SERVER_ERROR,
            MetaError::InvalidPartitions(_) => code::INVALID_PARTITIONS,
            MetaError::InvalidReplicationFactor(_) => code::INVALID_REPLICATION_FACTOR,
            MetaError::InvalidReplicaAssignment(_) => code::INVALID_REPLICA_ASSIGNMENT,
            MetaError::InvalidConfig(_) => code::INVALID_CONFIG,
            MetaError::BrokerNotAvailable { .. } => code::BROKER_NOT_AVAILABLE,
            MetaError::NoReassignmentInProgress(_) => code::NO_REASSIGNMENT_IN_PROGRESS,
            MetaError::InvalidBrokerRegistration(_) | MetaError::CommandTooLarge { .. } => code::INVALID_REQUEST,
        }
    }
}

/// Bytes that are not a record or snapshot of a supported version. A committed record that
/// does not decode must stop the replica: skipping it would make its state diverge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{bytes} bytes exceed the limit of {limit_bytes}")]
    TooLarge { bytes: usize, limit_bytes: usize },
    #[error("format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u64),
    #[error("malformed: {0}")]
    Malformed(String),
    /// Well-formed, but not a state `apply` could have produced (snapshots only).
    #[error("inconsistent snapshot: {0}")]
    Inconsistent(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_kafka_protocol_guide_numbers() {
        let name = || "t".to_string();
        let cases = [
            (MetaError::TopicAlreadyExists { name: name() }, 36),
            (MetaError::UnknownTopic { name: name() }, 3),
            (MetaError::UnknownPartition { name: name(), partition: 7 }, 3),
            (MetaError::InvalidTopicName { name: name(), reason: String::new() }, 17),
            (MetaError::InvalidTopicId { topic_id: TopicId::ZERO, reason: String::new() }, -1),
            (MetaError::InvalidPartitions(String::new()), 37),
            (MetaError::InvalidReplicationFactor(String::new()), 38),
            (MetaError::InvalidReplicaAssignment(String::new()), 39),
            (MetaError::InvalidConfig(String::new()), 40),
            (MetaError::BrokerNotAvailable { node_id: NodeId(1), reason: String::new() }, 8),
            (MetaError::NoReassignmentInProgress(String::new()), 85),
            (MetaError::InvalidBrokerRegistration(String::new()), 42),
            (MetaError::CommandTooLarge { bytes: 2, limit_bytes: 1 }, 42),
        ];
        for (error, expected) in cases {
            assert_eq!(error.kafka_error_code(), expected, "{error}");
        }
    }
}
