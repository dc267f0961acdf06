//! `MetaState::apply`: one committed command, validated against the state it meets.
//!
//! Each handler checks everything first and changes the state only once nothing can fail, so
//! a refused command leaves the state as it was (the property tests check this). Refusals are
//! Kafka's answers to the same request (KRaft `ReplicationControlManager`,
//! `ClusterControlManager`); `MetaError::kafka_error_code` gives the code.

use crate::command::{Applied, MetaCommand};
use crate::error::MetaError;
use crate::limits::{BROKERS_MAX, PARTITIONS_MAX, PARTITIONS_PER_TOPIC_MAX, TOPICS_MAX};
use crate::state::{Broker, MetaState, PartitionPlacement, Topic};
use crate::validate::{
    metric_name, validate_config_key, validate_configs, validate_members, validate_new_partitions,
    validate_registration, validate_replicas, validate_topic_name,
};
use sluice_types::TopicId;
use sluice_types::{NodeId, Offset, PartitionId};
use std::collections::BTreeMap;

impl MetaState {
    /// Applies the command committed at `index`. Indexes must increase from call to call (a
    /// replica applies its log in order, once); the index is consumed even when the command is
    /// refused.
    pub fn apply(&mut self, index: Offset, command: &MetaCommand) -> Result<Applied, MetaError> {
        assert!(index > self.applied_index, "applying index {index} after {}", self.applied_index);
        let result = match command {
            MetaCommand::RegisterBroker { node_id, kafka_host, kafka_port, rpc_addr, rack } => {
                self.register_broker(index, *node_id, kafka_host, *kafka_port, rpc_addr, rack.as_deref())
            }
            MetaCommand::CreateTopic { name, topic_id, assignment, configs } => {
                self.create_topic(name, *topic_id, assignment, configs)
            }
            MetaCommand::DeleteTopic { name } => self.delete_topic(name),
            MetaCommand::CreatePartitions { name, new_assignment } => self.create_partitions(name, new_assignment),
            MetaCommand::AlterTopicConfigs { name, set, delete } => self.alter_topic_configs(name, set, delete),
            MetaCommand::ReassignPartition { topic, partition, replicas } => {
                self.reassign_partition(index, topic, *partition, replicas)
            }
            MetaCommand::DecommissionBroker { node_id } => self.decommission_broker(*node_id),
            MetaCommand::CompleteReassignment { topic, topic_id, partition, epoch, replicas } => {
                self.complete_reassignment(topic, *topic_id, *partition, *epoch, replicas)
            }
        };
        self.applied_index = index;
        result
    }

    fn register_broker(
        &mut self,
        index: Offset,
        node_id: NodeId,
        kafka_host: &str,
        kafka_port: i32,
        rpc_addr: &str,
        rack: Option<&str>,
    ) -> Result<Applied, MetaError> {
        validate_registration(node_id, kafka_host, kafka_port, rpc_addr, rack)?;
        let previous = self.brokers.get(&node_id);
        if previous.is_none() && self.brokers.len() >= BROKERS_MAX {
            return Err(MetaError::InvalidBrokerRegistration(format!("the cluster holds {BROKERS_MAX} brokers")));
        }
        let first_registration = previous.is_none();
        let decommissioning = previous.is_some_and(|broker| broker.decommissioning);
        let broker = Broker {
            node_id,
            broker_epoch: index,
            kafka_host: kafka_host.to_string(),
            kafka_port,
            rpc_addr: rpc_addr.to_string(),
            rack: rack.map(str::to_string),
            decommissioning,
        };
        self.brokers.insert(node_id, broker);
        assert!(self.brokers.len() <= BROKERS_MAX);
        Ok(Applied::BrokerRegistered { node_id, broker_epoch: index, first_registration })
    }

    fn create_topic(
        &mut self,
        name: &str,
        topic_id: TopicId,
        assignment: &[Vec<NodeId>],
        configs: &BTreeMap<String, String>,
    ) -> Result<Applied, MetaError> {
        validate_topic_name(name)?;
        if self.topics.contains_key(name) {
            return Err(MetaError::TopicAlreadyExists { name: name.to_string() });
        }
        if let Some(existing) = self.topic_names_by_metric_name.get(&metric_name(name)) {
            return Err(MetaError::InvalidTopicName {
                name: name.to_string(),
                reason: format!("it collides with topic '{existing}' ('.' and '_' name the same metrics)"),
            });
        }
        if topic_id.is_reserved() || self.topic_names_by_id.contains_key(&topic_id) {
            return Err(MetaError::InvalidTopicId { topic_id, reason: "is reserved or in use".to_string() });
        }
        if self.topics.len() >= TOPICS_MAX {
            return Err(MetaError::InvalidPartitions(format!("the cluster holds {TOPICS_MAX} topics")));
        }
        let partitions = self.check_partition_count(0, assignment.len())?;
        let Some(first) = assignment.first().filter(|replicas| !replicas.is_empty()) else {
            return Err(MetaError::InvalidReplicationFactor("the replication factor must be at least 1".to_string()));
        };
        validate_new_partitions(assignment, first.len(), &self.brokers)?;
        validate_configs(configs)?;

        let placements = assignment.iter().map(|replicas| PartitionPlacement::new(replicas.clone()));
        let topic =
            Topic { name: name.to_string(), topic_id, partitions: placements.collect(), configs: configs.clone() };
        self.topics.insert(name.to_string(), topic);
        self.topic_names_by_id.insert(topic_id, name.to_string());
        self.topic_names_by_metric_name.insert(metric_name(name), name.to_string());
        self.partitions_total += partitions as u32;
        assert_eq!(self.topics.len(), self.topic_names_by_id.len());
        assert_eq!(self.topics.len(), self.topic_names_by_metric_name.len());
        Ok(Applied::TopicCreated { topic_id, partitions })
    }

    fn delete_topic(&mut self, name: &str) -> Result<Applied, MetaError> {
        let topic = self.topics.remove(name).ok_or_else(|| MetaError::UnknownTopic { name: name.to_string() })?;
        let by_id = self.topic_names_by_id.remove(&topic.topic_id);
        let by_metric_name = self.topic_names_by_metric_name.remove(&metric_name(name));
        assert_eq!(by_id.as_deref(), Some(name));
        assert_eq!(by_metric_name.as_deref(), Some(name));
        let partitions = topic.partition_count();
        self.partitions_total -= partitions as u32;
        Ok(Applied::TopicDeleted { topic_id: topic.topic_id, partitions })
    }

    fn create_partitions(&mut self, name: &str, new_assignment: &[Vec<NodeId>]) -> Result<Applied, MetaError> {
        let topic = self.topics.get(name).ok_or_else(|| MetaError::UnknownTopic { name: name.to_string() })?;
        let current = topic.partition_count();
        if new_assignment.is_empty() {
            // Kafka: asking for the current count (or fewer) is INVALID_PARTITIONS.
            return Err(MetaError::InvalidPartitions(format!("topic '{name}' already has {current} partitions")));
        }
        let partitions = self.check_partition_count(current, new_assignment.len())?;
        validate_new_partitions(new_assignment, topic.replication_factor(), &self.brokers)?;

        let topic = self.topics.get_mut(name).expect("checked above");
        let placements = new_assignment.iter().map(|replicas| PartitionPlacement::new(replicas.clone()));
        topic.partitions.extend(placements);
        assert_eq!(topic.partition_count(), partitions);
        self.partitions_total += (partitions - current) as u32;
        Ok(Applied::PartitionsCreated { topic_id: topic.topic_id, first_new: PartitionId(current), partitions })
    }

    /// The partition count after adding `added` to a topic of `current`: within the topic and
    /// cluster limits (INVALID_PARTITIONS otherwise).
    fn check_partition_count(&self, current: i32, added: usize) -> Result<i32, MetaError> {
        let limit = (PARTITIONS_PER_TOPIC_MAX - current) as usize;
        if added == 0 || added > limit {
            return Err(MetaError::InvalidPartitions(format!(
                "{current} + {added} partitions is not in 1..={PARTITIONS_PER_TOPIC_MAX}"
            )));
        }
        if self.partitions_total as usize + added > PARTITIONS_MAX as usize {
            return Err(MetaError::InvalidPartitions(format!("the cluster holds {PARTITIONS_MAX} partitions")));
        }
        Ok(current + added as i32)
    }

    fn alter_topic_configs(
        &mut self,
        name: &str,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<Applied, MetaError> {
        let topic = self.topics.get(name).ok_or_else(|| MetaError::UnknownTopic { name: name.to_string() })?;
        if delete.len() > crate::limits::CONFIGS_PER_TOPIC_MAX {
            return Err(MetaError::InvalidConfig(format!("{} deletions in one command", delete.len())));
        }
        let mut configs = topic.configs.clone();
        for key in delete {
            validate_config_key(key)?;
            // Kafka IncrementalAlterConfigs: one operation per key and request.
            if set.contains_key(key) {
                return Err(MetaError::InvalidConfig(format!("'{key}' is both set and deleted")));
            }
            configs.remove(key);
        }
        configs.extend(set.iter().map(|(key, value)| (key.clone(), value.clone())));
        validate_configs(&configs)?;

        let topic = self.topics.get_mut(name).expect("checked above");
        topic.configs = configs;
        Ok(Applied::TopicConfigsAltered { topic_id: topic.topic_id })
    }

    fn reassign_partition(
        &mut self,
        index: Offset,
        name: &str,
        partition: i32,
        replicas: &[NodeId],
    ) -> Result<Applied, MetaError> {
        let topic = self.topics.get(name).ok_or_else(|| MetaError::UnknownTopic { name: name.to_string() })?;
        let placement = topic
            .partition(partition)
            .ok_or_else(|| MetaError::UnknownPartition { name: name.to_string(), partition })?;
        let target = if placement.replicas == replicas {
            None // Kafka: reassigning to the current replicas cancels a reassignment in progress.
        } else {
            validate_replicas(replicas, &self.brokers, &placement.members)?;
            Some(replicas.to_vec())
        };
        let mut members = placement.members.clone();
        members.extend(replicas.iter().filter(|n| !placement.members.contains(n)));
        validate_members(&members, &self.brokers)?;

        let topic = self.topics.get_mut(name).expect("checked above");
        let at = usize::try_from(partition).expect("checked above");
        let placement = &mut topic.partitions[at];
        placement.target_replicas = target.clone();
        placement.members = members;
        placement.reassignment_epoch = index;
        Ok(Applied::ReassignmentRecorded { topic_id: topic.topic_id, partition: PartitionId(partition), target })
    }

    fn complete_reassignment(
        &mut self,
        name: &str,
        topic_id: TopicId,
        partition: i32,
        epoch: Offset,
        replicas: &[NodeId],
    ) -> Result<Applied, MetaError> {
        let topic = self
            .topics
            .get(name)
            .filter(|topic| topic.topic_id == topic_id)
            .ok_or_else(|| MetaError::UnknownTopic { name: name.to_string() })?;
        let placement = topic
            .partition(partition)
            .ok_or_else(|| MetaError::UnknownPartition { name: name.to_string(), partition })?;
        if placement.reassignment_epoch != epoch || placement.desired() != replicas || !placement.is_moving() {
            return Err(MetaError::NoReassignmentInProgress(format!(
                "{name}-{partition}: epoch {epoch} to {replicas:?} is not the reassignment in progress"
            )));
        }

        let topic = self.topics.get_mut(name).expect("checked above");
        let at = usize::try_from(partition).expect("checked above");
        let placement = &mut topic.partitions[at];
        placement.replicas = replicas.to_vec();
        placement.target_replicas = None;
        placement.members = replicas.to_vec();
        assert!(!placement.is_moving());
        Ok(Applied::ReassignmentCompleted { topic_id, partition: PartitionId(partition), replicas: replicas.to_vec() })
    }

    fn decommission_broker(&mut self, node_id: NodeId) -> Result<Applied, MetaError> {
        let broker = self.brokers.get_mut(&node_id).ok_or_else(|| MetaError::BrokerNotAvailable {
            node_id,
            reason: "no such broker is registered".to_string(),
        })?;
        let newly = !broker.decommissioning;
        broker.decommissioning = true;
        Ok(Applied::BrokerDecommissioning { node_id, newly })
    }
}
