//! The cluster metadata every broker holds: registered brokers and topics (id, partitions and
//! their replicas, config overrides), as of one index of the controller log.
//!
//! Invariants (checked by `validate`, after every snapshot load and in the property tests):
//! - `applied_index` only grows (`apply` asserts it), and no broker epoch is above it;
//! - every replica and reassignment target names a registered broker, no broker twice, and a
//!   partition has 1..=`REPLICATION_FACTOR_MAX` replicas; a partition's `members` hold its
//!   replicas and target, and its reassignment epoch is not after the applied index;
//! - topic names are legal, and distinct even with '.' and '_' unified (Kafka `Topic`); topic
//!   ids are unique and not reserved (KIP-516);
//! - every topic has 1..=`PARTITIONS_PER_TOPIC_MAX` partitions, and the cluster at most
//!   `PARTITIONS_MAX`, `TOPICS_MAX` topics and `BROKERS_MAX` brokers;
//! - the indexes (`topic_names_by_id`, `topic_names_by_metric_name`, `partitions_total`) are
//!   exactly what the brokers and topics imply. They are derived: a snapshot omits them.
//!
//! Determinism: ordered maps only, so iteration (and so snapshots and placement) depends only
//! on content.

use crate::error::MetaError;
use crate::limits::{BROKERS_MAX, PARTITIONS_MAX, PARTITIONS_PER_TOPIC_MAX, TOPICS_MAX};
use crate::validate::{
    metric_name, validate_configs, validate_members, validate_registration, validate_replicas, validate_topic_name,
};
use sluice_types::TopicId;
use sluice_types::{NodeId, Offset};
use std::collections::BTreeMap;

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub node_id: NodeId,
    /// KIP-631: the offset of the broker's latest registration record. Invariant: 0 <= epoch
    /// <= the state's `applied_index`.
    pub broker_epoch: Offset,
    pub kafka_host: String,
    pub kafka_port: i32,
    pub rpc_addr: String,
    pub rack: Option<String>,
    /// Leaving the cluster: keeps the replicas it has, gets no new ones.
    pub decommissioning: bool,
}

/// Where one partition's replicas are.
///
/// A reassignment moves the partition's Raft group from `replicas` to `target_replicas` one
/// server at a time (learners catch up, are promoted, then the old voters leave; Raft thesis
/// §4.1, §4.2.1); the group's leader drives it and reports the end (`CompleteReassignment`).
/// Until then every broker that may be in the group keeps hosting its replica (`members`), so
/// no broker drops a replica the group may still count as a voter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionPlacement {
    /// The replicas; the first is the preferred leader. Invariant: see the module doc.
    pub replicas: Vec<NodeId>,
    /// A reassignment in progress: the replica set the partition is moving to. Invariant: valid
    /// like `replicas`, and different from it.
    pub target_replicas: Option<Vec<NodeId>>,
    /// Every broker that may be in the partition's Raft group, and so hosts a replica: the
    /// replicas, then every target recorded since the last completed reassignment. Shrinks to
    /// the replicas only at `CompleteReassignment`. Invariant: holds `replicas` and the target,
    /// no broker twice, at most `GROUP_MEMBERS_MAX`.
    pub members: Vec<NodeId>,
    /// The group's configuration before its first entry (the replicas at creation). A replica
    /// that joins later starts from it and replays the membership entries of the log (or gets
    /// the configuration as of the leader's log start). Never changes.
    pub initial_voters: Vec<NodeId>,
    /// The controller log index of the latest `ReassignPartition` for this partition (-1: none).
    /// Membership entries in the group's log carry the epoch that drove them, and a leader
    /// whose metadata is older than the group's newest epoch does not drive, so a stale leader
    /// never undoes a completed move; a completion names the epoch it completes.
    pub reassignment_epoch: Offset,
}

impl PartitionPlacement {
    /// A new partition's placement: the group starts with `replicas` as its voters.
    pub fn new(replicas: Vec<NodeId>) -> PartitionPlacement {
        PartitionPlacement {
            members: replicas.clone(),
            initial_voters: replicas.clone(),
            replicas,
            target_replicas: None,
            reassignment_epoch: Offset(-1),
        }
    }

    /// The replica set the group is to have: the target while a reassignment is in progress.
    pub fn desired(&self) -> &[NodeId] {
        self.target_replicas.as_deref().unwrap_or(&self.replicas)
    }

    /// Whether the group may still differ from `replicas` (a reassignment in progress, or a
    /// cancelled one whose members have not all left yet).
    pub fn is_moving(&self) -> bool {
        self.target_replicas.is_some() || self.members != self.replicas
    }
}

/// A topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    pub name: String,
    pub topic_id: TopicId,
    /// Partition `p` is `partitions[p]`. Invariant: 1..=`PARTITIONS_PER_TOPIC_MAX` entries.
    pub partitions: Vec<PartitionPlacement>,
    /// Config overrides (everything else is the broker default, as in Kafka).
    pub configs: BTreeMap<String, String>,
}

impl Topic {
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).expect("partitions are bounded by PARTITIONS_PER_TOPIC_MAX")
    }

    pub fn partition(&self, partition: i32) -> Option<&PartitionPlacement> {
        usize::try_from(partition).ok().and_then(|at| self.partitions.get(at))
    }

    /// The replica count of partition 0, which new partitions get (Kafka's CreatePartitions).
    pub fn replication_factor(&self) -> usize {
        self.partitions[0].replicas.len()
    }
}

/// How many replicas a broker holds, and how many of them are the preferred leader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct BrokerLoad {
    /// Replicas and reassignment targets (a broker that is to receive a replica is loaded).
    pub replicas: u32,
    pub preferred_leaders: u32,
}

/// The metadata state machine. Change it only through `apply` (or load a snapshot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaState {
    /// The index of the last command applied; -1 before the first.
    pub(crate) applied_index: Offset,
    pub(crate) brokers: BTreeMap<NodeId, Broker>,
    pub(crate) topics: BTreeMap<String, Topic>,
    /// Derived: topic id -> name.
    pub(crate) topic_names_by_id: BTreeMap<TopicId, String>,
    /// Derived: `metric_name(name)` -> name.
    pub(crate) topic_names_by_metric_name: BTreeMap<String, String>,
    /// Derived: the sum of every topic's partition count.
    pub(crate) partitions_total: u32,
}

fn load_of(loads: &mut BTreeMap<NodeId, BrokerLoad>, node_id: NodeId) -> &mut BrokerLoad {
    loads.get_mut(&node_id).expect("replicas name registered brokers")
}

impl Default for MetaState {
    fn default() -> Self {
        MetaState::new()
    }
}

impl MetaState {
    /// The empty state, before the first command.
    pub fn new() -> MetaState {
        MetaState {
            applied_index: Offset(-1),
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            topic_names_by_id: BTreeMap::new(),
            topic_names_by_metric_name: BTreeMap::new(),
            partitions_total: 0,
        }
    }

    /// The index of the last command applied (-1 before the first). A refused command counts:
    /// every replica refuses it alike, so the state is a function of the log through here.
    pub fn applied_index(&self) -> Offset {
        self.applied_index
    }

    pub fn brokers(&self) -> &BTreeMap<NodeId, Broker> {
        &self.brokers
    }

    pub fn broker(&self, node_id: NodeId) -> Option<&Broker> {
        self.brokers.get(&node_id)
    }

    pub fn topics(&self) -> &BTreeMap<String, Topic> {
        &self.topics
    }

    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, topic_id: TopicId) -> Option<&Topic> {
        self.topic_names_by_id.get(&topic_id).map(|name| &self.topics[name])
    }

    /// Partitions over all topics.
    pub fn partitions_total(&self) -> u32 {
        self.partitions_total
    }

    /// Every registered broker's load (zero for brokers without replicas).
    pub fn broker_loads(&self) -> BTreeMap<NodeId, BrokerLoad> {
        let mut loads: BTreeMap<NodeId, BrokerLoad> =
            self.brokers.keys().map(|id| (*id, BrokerLoad::default())).collect();
        for placement in self.topics.values().flat_map(|topic| &topic.partitions) {
            load_of(&mut loads, placement.replicas[0]).preferred_leaders += 1;
            for node_id in &placement.replicas {
                load_of(&mut loads, *node_id).replicas += 1;
            }
            for node_id in &placement.members {
                if !placement.replicas.contains(node_id) {
                    load_of(&mut loads, *node_id).replicas += 1;
                }
            }
        }
        loads
    }

    /// Builds a state from its primary content (a snapshot), rebuilding the indexes, and checks
    /// every invariant.
    pub(crate) fn from_parts(
        applied_index: Offset,
        brokers: Vec<Broker>,
        topics: Vec<Topic>,
    ) -> Result<MetaState, String> {
        let mut state = MetaState::new();
        state.applied_index = applied_index;
        for broker in brokers {
            let node_id = broker.node_id;
            if state.brokers.insert(node_id, broker).is_some() {
                return Err(format!("broker {node_id} appears twice"));
            }
        }
        for topic in topics {
            let name = topic.name.clone();
            if state.topic_names_by_id.insert(topic.topic_id, name.clone()).is_some() {
                return Err(format!("topic id {} appears twice", topic.topic_id));
            }
            if state.topic_names_by_metric_name.insert(metric_name(&name), name.clone()).is_some() {
                return Err(format!("topic '{name}' collides with another topic's name"));
            }
            let partitions = u32::try_from(topic.partitions.len()).map_err(|_| "too many partitions".to_string())?;
            state.partitions_total = state.partitions_total.saturating_add(partitions);
            if state.topics.insert(name.clone(), topic).is_some() {
                return Err(format!("topic '{name}' appears twice"));
            }
        }
        state.validate()?;
        Ok(state)
    }

    /// Checks every invariant of the module doc; `Err` says which one is broken and where.
    pub fn validate(&self) -> Result<(), String> {
        if self.applied_index.0 < -1 {
            return Err(format!("applied index {} is below -1", self.applied_index));
        }
        if self.brokers.len() > BROKERS_MAX || self.topics.len() > TOPICS_MAX || self.partitions_total > PARTITIONS_MAX
        {
            return Err("the state exceeds BROKERS_MAX, TOPICS_MAX or PARTITIONS_MAX".to_string());
        }
        for (node_id, broker) in &self.brokers {
            let rack = broker.rack.as_deref();
            validate_registration(*node_id, &broker.kafka_host, broker.kafka_port, &broker.rpc_addr, rack)
                .map_err(|error| error.to_string())?;
            if broker.node_id != *node_id || !(0..=self.applied_index.0).contains(&broker.broker_epoch.0) {
                return Err(format!("broker {node_id}: wrong key or epoch {}", broker.broker_epoch));
            }
        }
        let mut partitions_total = 0u32;
        for (name, topic) in &self.topics {
            self.validate_topic(name, topic)?;
            partitions_total += u32::try_from(topic.partitions.len()).expect("bounded by PARTITIONS_PER_TOPIC_MAX");
        }
        let indexed = self.topics.len() == self.topic_names_by_id.len()
            && self.topics.len() == self.topic_names_by_metric_name.len()
            && partitions_total == self.partitions_total;
        if !indexed {
            return Err("the topic indexes do not match the topics".to_string());
        }
        Ok(())
    }

    fn validate_topic(&self, name: &str, topic: &Topic) -> Result<(), String> {
        validate_topic_name(name).map_err(|error| error.to_string())?;
        validate_configs(&topic.configs).map_err(|error| format!("topic '{name}': {error}"))?;
        let indexed = topic.name == name
            && self.topic_names_by_id.get(&topic.topic_id).map(String::as_str) == Some(name)
            && self.topic_names_by_metric_name.get(&metric_name(name)).map(String::as_str) == Some(name);
        if !indexed || topic.topic_id.is_reserved() {
            return Err(format!("topic '{name}': wrong key, reserved id or stale index"));
        }
        if topic.partitions.is_empty() || topic.partitions.len() > PARTITIONS_PER_TOPIC_MAX as usize {
            return Err(format!("topic '{name}' has {} partitions", topic.partitions.len()));
        }
        for (index, placement) in topic.partitions.iter().enumerate() {
            let broken = |error: MetaError| format!("topic '{name}' partition {index}: {error}");
            // Replicas placed before their broker started decommissioning may stay.
            validate_replicas(&placement.replicas, &self.brokers, &placement.replicas).map_err(broken)?;
            if let Some(target) = &placement.target_replicas {
                validate_replicas(target, &self.brokers, target).map_err(broken)?;
                if *target == placement.replicas {
                    return Err(format!("topic '{name}' partition {index}: the target is the current replica set"));
                }
            }
            validate_replicas(&placement.initial_voters, &self.brokers, &placement.initial_voters).map_err(broken)?;
            validate_members(&placement.members, &self.brokers).map_err(broken)?;
            let held = placement.desired().iter().chain(&placement.replicas).all(|n| placement.members.contains(n));
            if !held || placement.reassignment_epoch > self.applied_index || placement.reassignment_epoch.0 < -1 {
                return Err(format!("topic '{name}' partition {index}: members miss a replica, or a future epoch"));
            }
        }
        Ok(())
    }
}
