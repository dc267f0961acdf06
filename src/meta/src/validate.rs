//! Checks shared by `apply` (refuse a command) and snapshot loading (refuse a state `apply`
//! could not have produced). Each check names the Kafka rule it follows.
//!
//! Only structure is checked here: names, sizes, replica lists, registrations. Config *values*
//! (is `retention.ms` a number?) are the proposer's to check against its config schema before
//! it proposes; they do not depend on the replicated state, so no race can change the answer.

use crate::error::MetaError;
use crate::limits::{
    CONFIG_KEY_BYTES_MAX, CONFIG_VALUE_BYTES_MAX, CONFIGS_PER_TOPIC_MAX, HOST_BYTES_MAX, RACK_BYTES_MAX,
    REPLICATION_FACTOR_MAX, RPC_ADDRESS_BYTES_MAX, TOPIC_NAME_BYTES_MAX,
};
use crate::state::Broker;
use sluice_types::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's topic name rule (`org.apache.kafka.common.internals.Topic.validate`): 1..=249 bytes
/// of `[a-zA-Z0-9._-]`, and not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), MetaError> {
    let invalid =
        |reason: &str| Err(MetaError::InvalidTopicName { name: name.to_string(), reason: reason.to_string() });
    if name.is_empty() || name.len() > TOPIC_NAME_BYTES_MAX {
        return invalid("a topic name has 1 to 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not topic names");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return invalid("a topic name contains only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// The name under which Kafka reports a topic's metrics: '.' becomes '_', so "a.b" and "a_b"
/// collide and Kafka refuses the second (`Topic.hasCollision`, `Topic.unifyCollisionChars`).
pub fn metric_name(name: &str) -> String {
    name.replace('.', "_")
}

/// A config name as it may appear in a `set` or `delete` list.
pub fn validate_config_key(key: &str) -> Result<(), MetaError> {
    if key.is_empty() || key.len() > CONFIG_KEY_BYTES_MAX {
        return Err(MetaError::InvalidConfig(format!(
            "config name '{key}' must have 1 to {CONFIG_KEY_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

/// A topic's complete set of config overrides.
pub fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), MetaError> {
    if configs.len() > CONFIGS_PER_TOPIC_MAX {
        return Err(MetaError::InvalidConfig(format!(
            "{} config overrides exceed the limit of {CONFIGS_PER_TOPIC_MAX}",
            configs.len()
        )));
    }
    for (key, value) in configs {
        validate_config_key(key)?;
        if value.len() > CONFIG_VALUE_BYTES_MAX {
            return Err(MetaError::InvalidConfig(format!(
                "the value of '{key}' has {} bytes, more than {CONFIG_VALUE_BYTES_MAX}",
                value.len()
            )));
        }
    }
    Ok(())
}

/// A broker's registration fields. KRaft requires `node.id >= 0`; a Kafka port is 1..=65535.
pub fn validate_registration(
    node_id: NodeId,
    kafka_host: &str,
    kafka_port: i32,
    rpc_addr: &str,
    rack: Option<&str>,
) -> Result<(), MetaError> {
    let invalid = |reason: String| Err(MetaError::InvalidBrokerRegistration(format!("broker {node_id}: {reason}")));
    if node_id.0 < 0 {
        return invalid("node ids are non-negative".to_string());
    }
    if kafka_host.is_empty() || kafka_host.len() > HOST_BYTES_MAX {
        return invalid(format!("the Kafka host must have 1 to {HOST_BYTES_MAX} bytes"));
    }
    if !(1..=65_535).contains(&kafka_port) {
        return invalid(format!("Kafka port {kafka_port} is not in 1..=65535"));
    }
    if rpc_addr.is_empty() || rpc_addr.len() > RPC_ADDRESS_BYTES_MAX {
        return invalid(format!("the RPC address must have 1 to {RPC_ADDRESS_BYTES_MAX} bytes"));
    }
    if rack.is_some_and(|rack| rack.is_empty() || rack.len() > RACK_BYTES_MAX) {
        return invalid(format!("a rack name has 1 to {RACK_BYTES_MAX} bytes"));
    }
    Ok(())
}

/// One partition's replica list (KRaft `ReplicationControlManager`'s manual assignment rules):
/// not empty, at most `REPLICATION_FACTOR_MAX` long, no broker twice, every broker registered.
/// A broker that is decommissioning may keep a replica it has (`already_placed`) but gets no
/// new one.
/// A partition's group members (`PartitionPlacement::members`): registered brokers, none twice,
/// 1..=`GROUP_MEMBERS_MAX` of them.
pub fn validate_members(members: &[NodeId], brokers: &BTreeMap<NodeId, Broker>) -> Result<(), MetaError> {
    if members.is_empty() || members.len() > crate::limits::GROUP_MEMBERS_MAX {
        return Err(MetaError::InvalidReplicaAssignment(format!(
            "{} brokers in one partition's group (at most {} while reassignments overlap)",
            members.len(),
            crate::limits::GROUP_MEMBERS_MAX
        )));
    }
    let distinct: BTreeSet<&NodeId> = members.iter().collect();
    if distinct.len() != members.len() || members.iter().any(|n| !brokers.contains_key(n)) {
        return Err(MetaError::InvalidReplicaAssignment("group members repeat or name unknown brokers".to_string()));
    }
    Ok(())
}

pub fn validate_replicas(
    replicas: &[NodeId],
    brokers: &BTreeMap<NodeId, Broker>,
    already_placed: &[NodeId],
) -> Result<(), MetaError> {
    if replicas.is_empty() {
        return Err(MetaError::InvalidReplicaAssignment("a partition has an empty replica list".to_string()));
    }
    if replicas.len() > REPLICATION_FACTOR_MAX as usize {
        return Err(MetaError::InvalidReplicationFactor(format!(
            "{} replicas exceed the limit of {REPLICATION_FACTOR_MAX}",
            replicas.len()
        )));
    }
    let mut seen = BTreeSet::new();
    for node_id in replicas {
        if !seen.insert(*node_id) {
            return Err(MetaError::InvalidReplicaAssignment(format!(
                "a partition names broker {node_id} more than once"
            )));
        }
        let Some(broker) = brokers.get(node_id) else {
            return Err(MetaError::InvalidReplicaAssignment(format!(
                "broker {node_id} is named, but no such broker is registered"
            )));
        };
        if broker.decommissioning && !already_placed.contains(node_id) {
            return Err(MetaError::BrokerNotAvailable {
                node_id: *node_id,
                reason: "it is decommissioning and takes no new replicas".to_string(),
            });
        }
    }
    Ok(())
}

/// The replica lists of new partitions, all `replication_factor` long (KRaft: "not consistent
/// with previous partitions" otherwise).
pub fn validate_new_partitions(
    assignment: &[Vec<NodeId>],
    replication_factor: usize,
    brokers: &BTreeMap<NodeId, Broker>,
) -> Result<(), MetaError> {
    for (index, replicas) in assignment.iter().enumerate() {
        if replicas.len() != replication_factor {
            return Err(MetaError::InvalidReplicaAssignment(format!(
                "partition {index} of the assignment has {} replicas where the others have {replication_factor}",
                replicas.len()
            )));
        }
        validate_replicas(replicas, brokers, &[])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafkas_rule() {
        for good in ["a", "orders", "a.b_c-D9", &"x".repeat(TOPIC_NAME_BYTES_MAX), "...", "__consumer_offsets"] {
            assert_eq!(validate_topic_name(good), Ok(()), "{good}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", "a\0", &"x".repeat(TOPIC_NAME_BYTES_MAX + 1)] {
            let error = validate_topic_name(bad).expect_err(bad);
            assert_eq!(error.kafka_error_code(), crate::error::code::INVALID_TOPIC_EXCEPTION);
        }
    }

    #[test]
    fn dots_and_underscores_share_a_metric_name() {
        assert_eq!(metric_name("a.b_c"), "a_b_c");
        assert_eq!(metric_name("a_b.c"), metric_name("a.b_c"));
    }

    #[test]
    fn registrations_need_a_usable_listener() {
        assert_eq!(validate_registration(NodeId(0), "h", 9092, "h:1", Some("r")), Ok(()));
        assert!(validate_registration(NodeId(-1), "h", 9092, "h:1", None).is_err());
        assert!(validate_registration(NodeId(1), "", 9092, "h:1", None).is_err());
        assert!(validate_registration(NodeId(1), "h", 0, "h:1", None).is_err());
        assert!(validate_registration(NodeId(1), "h", 65_536, "h:1", None).is_err());
        assert!(validate_registration(NodeId(1), "h", 9092, "", None).is_err());
        assert!(validate_registration(NodeId(1), "h", 9092, "h:1", Some("")).is_err());
    }

    #[test]
    fn configs_are_bounded() {
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1".to_string());
        assert_eq!(validate_configs(&configs), Ok(()));
        configs.insert(String::new(), "1".to_string());
        assert!(validate_configs(&configs).is_err());
        configs.clear();
        configs.insert("k".to_string(), "v".repeat(CONFIG_VALUE_BYTES_MAX + 1));
        assert!(validate_configs(&configs).is_err());
        let many = (0..=CONFIGS_PER_TOPIC_MAX).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(validate_configs(&many).is_err());
    }
}
