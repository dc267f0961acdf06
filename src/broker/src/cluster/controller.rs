//! Topic operations as the controller group sees them: the requests any broker forwards to the
//! controller leader, and how the leader turns one into a `MetaCommand` record.
//!
//! A broker cannot build the command itself: the topic id and the replica placement are
//! choices only the leader may make, against the state it has applied (KRaft: the active
//! controller assigns `TopicRecord.topicId` and `PartitionRecord.replicas`). So brokers send a
//! `ControllerRequest` (JSON in a `ForwardRequest`), the leader validates it, decides, and
//! proposes the command; the answer (`ControllerReply`) carries the Kafka error code and the
//! controller log index at which the command was applied, so the forwarding broker can wait
//! until its own metadata has caught up before it answers the client.

use crate::topic_config::TopicConfig;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_meta::{MetaCommand, MetaError, MetaState, TopicId, place_replicas};
use sluice_protocol::error_code;
use sluice_protocol::records::{BatchOptions, Record, encode_batch};
use sluice_types::Compression;
use sluice_types::{NodeId, Offset, Term};
use std::collections::BTreeMap;

/// A topic operation for the controller leader (forwarded as JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControllerRequest {
    RegisterBroker {
        node_id: i32,
        kafka_host: String,
        kafka_port: i32,
        rpc_addr: String,
    },
    /// `assignment`: explicit replicas per partition (CreateTopics `assignments`), or `None`
    /// to let the controller place `partitions` x `replication_factor`.
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i16,
        assignment: Option<Vec<Vec<i32>>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// Raise the partition count to `count`.
    CreatePartitions {
        name: String,
        count: i32,
    },
    AlterTopicConfigs {
        name: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    ReassignPartition {
        topic: String,
        partition: i32,
        replicas: Vec<i32>,
    },
    /// AlterPartitionReassignments with null replicas: back to the current replicas.
    CancelReassignment {
        topic: String,
        partition: i32,
    },
    /// A partition's group leader: the group has the target of reassignment `epoch`.
    CompleteReassignment {
        topic: String,
        /// Hyphenated UUID.
        topic_id: String,
        partition: i32,
        epoch: i64,
        replicas: Vec<i32>,
    },
    DecommissionBroker {
        node_id: i32,
    },
    /// Not for the controller: a broker tells its peers the partitions it leads (sent every
    /// `LEADER_REPORT_MS`, never answered): `(topic id, partition, leader epoch, ISR)`.
    LeaderReport {
        partitions: Vec<(String, i32, i32, Vec<i32>)>,
    },
    /// Not for the controller: sent to a partition's leader, which hands leadership to the
    /// preferred replica if that replica is caught up (ElectLeaders, KIP-460 PREFERRED).
    ElectPreferred {
        topic: String,
        partition: i32,
    },
}

/// The controller's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerReply {
    pub error_code: i16,
    pub message: String,
    /// The controller log index the command was applied at (-1 when refused before proposing).
    pub applied_index: i64,
}

impl ControllerReply {
    pub fn refused(code: i16, message: impl Into<String>) -> ControllerReply {
        ControllerReply { error_code: code, message: message.into(), applied_index: -1 }
    }

    pub fn from_meta(error: &MetaError, applied_index: Offset) -> ControllerReply {
        ControllerReply {
            error_code: error.kafka_error_code(),
            message: error.to_string(),
            applied_index: applied_index.0,
        }
    }

    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a reply serializes"))
    }

    pub fn decode(bytes: &[u8]) -> Option<ControllerReply> {
        serde_json::from_slice(bytes).ok()
    }
}

impl ControllerRequest {
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a request serializes"))
    }

    pub fn decode(bytes: &[u8]) -> Option<ControllerRequest> {
        serde_json::from_slice(bytes).ok()
    }

    /// The leader's decision: the command to propose, or the refusal. `next_index` and `term`
    /// seed the topic id (unique per proposal without a random source).
    pub fn to_command(
        &self,
        state: &MetaState,
        next_index: Offset,
        term: Term,
    ) -> Result<MetaCommand, ControllerReply> {
        let meta = |error: MetaError| ControllerReply::refused(error.kafka_error_code(), error.to_string());
        let nodes = |ids: &[i32]| ids.iter().copied().map(NodeId).collect::<Vec<_>>();
        Ok(match self.clone() {
            ControllerRequest::RegisterBroker { node_id, kafka_host, kafka_port, rpc_addr } => {
                MetaCommand::RegisterBroker { node_id: NodeId(node_id), kafka_host, kafka_port, rpc_addr, rack: None }
            }
            ControllerRequest::CreateTopic { name, partitions, replication_factor, assignment, configs } => {
                sluice_meta::validate_topic_name(&name).map_err(meta)?;
                TopicConfig::from_overrides(configs.clone())
                    .map_err(|message| ControllerReply::refused(error_code::INVALID_CONFIG, message))?;
                let assignment = match assignment {
                    Some(assignment) => assignment.iter().map(|replicas| nodes(replicas)).collect(),
                    None => {
                        let live = live_brokers(state);
                        place_replicas(partitions, replication_factor, &live, state, crc32fast::hash(name.as_bytes()))
                            .map_err(meta)?
                    }
                };
                MetaCommand::CreateTopic { topic_id: topic_id_for(&name, next_index, term), name, assignment, configs }
            }
            ControllerRequest::DeleteTopic { name } => MetaCommand::DeleteTopic { name },
            ControllerRequest::CreatePartitions { name, count } => {
                let topic = state.topic(&name).ok_or_else(|| {
                    ControllerReply::refused(error_code::UNKNOWN_TOPIC_OR_PARTITION, format!("unknown topic {name}"))
                })?;
                let current = topic.partition_count();
                if count <= current {
                    let message = format!("topic has {current} partitions; the count can only grow");
                    return Err(ControllerReply::refused(error_code::INVALID_PARTITIONS, message));
                }
                let rf = i16::try_from(topic.replication_factor()).expect("replication factors are small");
                let live = live_brokers(state);
                let start = crc32fast::hash(name.as_bytes()).wrapping_add(current as u32);
                let new_assignment = place_replicas(count - current, rf, &live, state, start).map_err(meta)?;
                MetaCommand::CreatePartitions { name, new_assignment }
            }
            ControllerRequest::AlterTopicConfigs { name, set, delete } => {
                if let Some(topic) = state.topic(&name) {
                    let mut merged = topic.configs.clone();
                    merged.extend(set.clone());
                    for key in &delete {
                        merged.remove(key);
                    }
                    TopicConfig::from_overrides(merged)
                        .map_err(|message| ControllerReply::refused(error_code::INVALID_CONFIG, message))?;
                }
                MetaCommand::AlterTopicConfigs { name, set, delete }
            }
            ControllerRequest::ReassignPartition { topic, partition, replicas } => {
                MetaCommand::ReassignPartition { topic, partition, replicas: nodes(&replicas) }
            }
            ControllerRequest::CancelReassignment { topic, partition } => {
                let placement = state.topic(&topic).and_then(|t| t.partition(partition)).ok_or_else(|| {
                    ControllerReply::refused(error_code::UNKNOWN_TOPIC_OR_PARTITION, format!("{topic}-{partition}"))
                })?;
                if placement.target_replicas.is_none() {
                    let message = format!("{topic}-{partition} has no reassignment to cancel");
                    return Err(ControllerReply::refused(error_code::NO_REASSIGNMENT_IN_PROGRESS, message));
                }
                MetaCommand::ReassignPartition { topic, partition, replicas: placement.replicas.clone() }
            }
            ControllerRequest::CompleteReassignment { topic, topic_id, partition, epoch, replicas } => {
                let topic_id = TopicId::parse(&topic_id)
                    .ok_or_else(|| ControllerReply::refused(error_code::INVALID_REQUEST, "bad topic id"))?;
                MetaCommand::CompleteReassignment {
                    topic,
                    topic_id,
                    partition,
                    epoch: Offset(epoch),
                    replicas: nodes(&replicas),
                }
            }
            ControllerRequest::DecommissionBroker { node_id } => {
                MetaCommand::DecommissionBroker { node_id: NodeId(node_id) }
            }
            ControllerRequest::ElectPreferred { .. } | ControllerRequest::LeaderReport { .. } => {
                return Err(ControllerReply::refused(
                    error_code::INVALID_REQUEST,
                    "elections go to the partition leader",
                ));
            }
        })
    }
}

/// Registered brokers that take new replicas, sorted by id.
fn live_brokers(state: &MetaState) -> Vec<NodeId> {
    state.brokers().values().filter(|broker| !broker.decommissioning).map(|broker| broker.node_id).collect()
}

/// A topic id derived from the name, the proposal's index and term: unique per proposal, and
/// never one of Kafka's reserved ids.
fn topic_id_for(name: &str, next_index: Offset, term: Term) -> TopicId {
    let mut bytes = [0u8; 16];
    bytes[0..4].copy_from_slice(&crc32fast::hash(name.as_bytes()).to_be_bytes());
    bytes[4..12].copy_from_slice(&next_index.0.to_be_bytes());
    bytes[12..16].copy_from_slice(&term.0.to_be_bytes());
    bytes[0] |= 0x80; // Never ZERO or METADATA (both start with a zero byte).
    let id = TopicId(bytes);
    assert!(!id.is_reserved());
    id
}

/// The controller log batch holding `command` (one record, its value the encoded command).
/// Offsets and epoch are stamped when proposed.
pub fn command_batch(command: &MetaCommand, now_ms: i64) -> Result<bytes::BytesMut, MetaError> {
    let value = command.encode()?;
    let record =
        Record { offset_delta: 0, timestamp_delta: 0, key: None, value: Some(Bytes::from(value)), headers: Vec::new() };
    let options = BatchOptions { base_offset: Offset(0), base_timestamp: now_ms, ..BatchOptions::default() };
    let batch = encode_batch(&[record], Compression::None, &options).expect("a command batch encodes");
    Ok(bytes::BytesMut::from(&batch[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip() {
        let request = ControllerRequest::CreateTopic {
            name: "orders".to_string(),
            partitions: 6,
            replication_factor: 3,
            assignment: None,
            configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        };
        assert_eq!(ControllerRequest::decode(&request.encode()), Some(request));
        let reply = ControllerReply { error_code: 36, message: "exists".to_string(), applied_index: 7 };
        assert_eq!(ControllerReply::decode(&reply.encode()), Some(reply));
        assert_eq!(ControllerRequest::decode(b"{}"), None);
    }

    #[test]
    fn topic_ids_differ_per_proposal_and_are_never_reserved() {
        let a = topic_id_for("t", Offset(5), Term(1));
        let b = topic_id_for("t", Offset(6), Term(1));
        assert_ne!(a, b);
        assert!(!a.is_reserved() && !b.is_reserved());
    }

    #[test]
    fn placement_needs_registered_brokers() {
        let state = MetaState::new();
        let request = ControllerRequest::CreateTopic {
            name: "t".to_string(),
            partitions: 1,
            replication_factor: 3,
            assignment: None,
            configs: BTreeMap::new(),
        };
        let refused = request.to_command(&state, Offset(0), Term(1)).expect_err("no brokers");
        assert_eq!(refused.error_code, error_code::INVALID_REPLICATION_FACTOR);
    }
}
