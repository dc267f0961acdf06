//! The records of the controller log, and what applying one changed.
//!
//! The proposer (the controller group's leader) decides everything that needs a choice before
//! it proposes: the topic id, the replica placement (`place_replicas`). A command therefore
//! carries explicit values, and applying it is a pure function of the state and the command
//! (KRaft does the same: `TopicRecord` and `PartitionRecord` carry the id and the replicas).
//!
//! Validation still happens when a command is applied, not only when it is proposed: two
//! proposals can race (two CreateTopic for one name, a DeleteTopic before a CreatePartitions),
//! and the later one must meet the state the earlier one left.

use sluice_types::TopicId;
use sluice_types::{NodeId, Offset, PartitionId};
use std::collections::BTreeMap;

/// One record of the controller log. Encoded by `codec.rs` (layout: `docs/format.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaCommand {
    /// A broker announces itself (KIP-631 `RegisterBrokerRecord`). Registering again updates the
    /// addresses and the broker epoch; a decommissioning broker stays decommissioning.
    RegisterBroker {
        node_id: NodeId,
        /// The Kafka listener clients connect to (Kafka protocol: Metadata `host`, `port`).
        kafka_host: String,
        kafka_port: i32,
        /// Where peers send Raft traffic (`host:port`).
        rpc_addr: String,
        /// `broker.rack`.
        rack: Option<String>,
    },
    /// A new topic. `assignment[p]` holds partition `p`'s replicas, the first one being the
    /// preferred leader; every partition has the same number of replicas.
    CreateTopic {
        name: String,
        topic_id: TopicId,
        assignment: Vec<Vec<NodeId>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// Appends partitions to a topic (Kafka's CreatePartitions): `new_assignment[i]` holds the
    /// replicas of partition `current_count + i`.
    CreatePartitions {
        name: String,
        new_assignment: Vec<Vec<NodeId>>,
    },
    /// Sets and removes config overrides (Kafka's IncrementalAlterConfigs SET and DELETE).
    AlterTopicConfigs {
        name: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// Records the target replica set of a partition (Kafka's AlterPartitionReassignments). The
    /// move itself (learners catch up, then the sets swap) is driven later; a target equal to
    /// the current replicas cancels a pending move.
    ReassignPartition {
        topic: String,
        partition: i32,
        replicas: Vec<NodeId>,
    },
    /// Marks a broker as leaving: no new replicas are placed on it.
    DecommissionBroker {
        node_id: NodeId,
    },
    /// The partition's group leader reports that the group's voters are exactly `replicas` (the
    /// desired set of reassignment `epoch`), with no learner and the change committed: the
    /// replicas become `replicas`, and brokers outside them drop theirs. Refused unless the
    /// topic is the same incarnation and `epoch` is still the partition's latest reassignment.
    CompleteReassignment {
        topic: String,
        topic_id: TopicId,
        partition: i32,
        epoch: Offset,
        replicas: Vec<NodeId>,
    },
}

/// What a successful `apply` changed, for the shell (create or delete partition logs, answer
/// the waiting request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    BrokerRegistered {
        node_id: NodeId,
        /// KIP-631: a broker's epoch is the offset of its registration record.
        broker_epoch: Offset,
        /// False when the broker was registered before (an address update or a restart).
        first_registration: bool,
    },
    TopicCreated {
        topic_id: TopicId,
        partitions: i32,
    },
    TopicDeleted {
        topic_id: TopicId,
        partitions: i32,
    },
    PartitionsCreated {
        topic_id: TopicId,
        /// The first new partition; new ones run up to `partitions - 1`.
        first_new: PartitionId,
        /// The topic's partition count now.
        partitions: i32,
    },
    TopicConfigsAltered {
        topic_id: TopicId,
    },
    /// `target: None`: the reassignment was cancelled (the target equals the current replicas).
    ReassignmentRecorded {
        topic_id: TopicId,
        partition: PartitionId,
        target: Option<Vec<NodeId>>,
    },
    ReassignmentCompleted {
        topic_id: TopicId,
        partition: PartitionId,
        replicas: Vec<NodeId>,
    },
    BrokerDecommissioning {
        node_id: NodeId,
        /// False when the broker was already decommissioning (the command is idempotent).
        newly: bool,
    },
}

impl MetaCommand {
    /// The record type's name in the encoding (`docs/format.md`), for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            MetaCommand::RegisterBroker { .. } => "register_broker",
            MetaCommand::CreateTopic { .. } => "create_topic",
            MetaCommand::DeleteTopic { .. } => "delete_topic",
            MetaCommand::CreatePartitions { .. } => "create_partitions",
            MetaCommand::AlterTopicConfigs { .. } => "alter_topic_configs",
            MetaCommand::ReassignPartition { .. } => "reassign_partition",
            MetaCommand::DecommissionBroker { .. } => "decommission_broker",
            MetaCommand::CompleteReassignment { .. } => "complete_reassignment",
        }
    }
}
