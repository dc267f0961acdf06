//! The byte form of a controller log record: versioned JSON (layout and rules:
//! `docs/format.md`).
//!
//! Why JSON: metadata commands are rare and small, readable records make the controller log
//! inspectable with `kcat` and `jq`, and serde_json never panics on bad input (its recursion
//! limit and cautious preallocation bound the work to the input's size).
//!
//! The wire types below are frozen per format version and separate from `MetaCommand`, so the
//! in-memory types can change without changing bytes already in logs. Decoding is strict:
//! unknown fields, duplicate fields and malformed ids are errors, as is any version but 1. A
//! new version is written only once every replica reads it (KIP-584's `metadata.version` gate
//! plays this role in Kafka); a record of an unknown version stops the replica.

use crate::command::MetaCommand;
use crate::error::{DecodeError, MetaError};
use crate::limits::COMMAND_BYTES_MAX;
use serde::{Deserialize, Serialize};
use sluice_types::TopicId;
use sluice_types::{NodeId, Offset};
use std::collections::BTreeMap;

/// The record format this build writes and reads.
pub const COMMAND_FORMAT_VERSION: u64 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordV1 {
    version: u64,
    command: CommandV1,
}

/// Reads only the version, whatever else the record holds (for the error of a record that
/// does not decode as version 1).
#[derive(Deserialize)]
pub(crate) struct VersionProbe {
    pub(crate) version: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum CommandV1 {
    RegisterBroker { node_id: i32, kafka_host: String, kafka_port: i32, rpc_addr: String, rack: Option<String> },
    CreateTopic { name: String, topic_id: String, assignment: Vec<Vec<i32>>, configs: BTreeMap<String, String> },
    DeleteTopic { name: String },
    CreatePartitions { name: String, new_assignment: Vec<Vec<i32>> },
    AlterTopicConfigs { name: String, set: BTreeMap<String, String>, delete: Vec<String> },
    ReassignPartition { topic: String, partition: i32, replicas: Vec<i32> },
    DecommissionBroker { node_id: i32 },
    CompleteReassignment { topic: String, topic_id: String, partition: i32, epoch: i64, replicas: Vec<i32> },
}

impl MetaCommand {
    /// The record bytes. Refused when they would exceed `COMMAND_BYTES_MAX` (no replica would
    /// decode them).
    pub fn encode(&self) -> Result<Vec<u8>, MetaError> {
        let record = RecordV1 { version: COMMAND_FORMAT_VERSION, command: to_wire(self) };
        let bytes = serde_json::to_vec(&record).expect("string keys and plain values always serialize");
        if bytes.len() > COMMAND_BYTES_MAX {
            return Err(MetaError::CommandTooLarge { bytes: bytes.len(), limit_bytes: COMMAND_BYTES_MAX });
        }
        // Paired with `decode`: what is written must read back as itself (DESIGN.md, Style §3).
        assert_eq!(MetaCommand::decode(&bytes).as_ref(), Ok(self), "command does not round-trip");
        Ok(bytes)
    }

    /// Parses record bytes. Never panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<MetaCommand, DecodeError> {
        if bytes.len() > COMMAND_BYTES_MAX {
            return Err(DecodeError::TooLarge { bytes: bytes.len(), limit_bytes: COMMAND_BYTES_MAX });
        }
        let record: RecordV1 = parse_versioned(bytes, COMMAND_FORMAT_VERSION)?;
        if record.version != COMMAND_FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(record.version));
        }
        from_wire(record.command)
    }
}

/// Parses `bytes` as `T`; when that fails, says whether the version was the problem.
pub(crate) fn parse_versioned<T: for<'de> Deserialize<'de>>(bytes: &[u8], version: u64) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(|error| match serde_json::from_slice::<VersionProbe>(bytes) {
        Ok(probe) if probe.version != version => DecodeError::UnsupportedVersion(probe.version),
        _ => DecodeError::Malformed(error.to_string()),
    })
}

fn ids(node_ids: &[NodeId]) -> Vec<i32> {
    node_ids.iter().map(|id| id.0).collect()
}

fn node_ids(ids: Vec<i32>) -> Vec<NodeId> {
    ids.into_iter().map(NodeId).collect()
}

pub(crate) fn parse_topic_id(text: &str) -> Result<TopicId, DecodeError> {
    TopicId::parse(text).ok_or_else(|| DecodeError::Malformed(format!("topic id '{text}' is not a hyphenated UUID")))
}

fn to_wire(command: &MetaCommand) -> CommandV1 {
    match command.clone() {
        MetaCommand::RegisterBroker { node_id, kafka_host, kafka_port, rpc_addr, rack } => {
            CommandV1::RegisterBroker { node_id: node_id.0, kafka_host, kafka_port, rpc_addr, rack }
        }
        MetaCommand::CreateTopic { name, topic_id, assignment, configs } => CommandV1::CreateTopic {
            name,
            topic_id: topic_id.to_string(),
            assignment: assignment.iter().map(|replicas| ids(replicas)).collect(),
            configs,
        },
        MetaCommand::DeleteTopic { name } => CommandV1::DeleteTopic { name },
        MetaCommand::CreatePartitions { name, new_assignment } => CommandV1::CreatePartitions {
            name,
            new_assignment: new_assignment.iter().map(|replicas| ids(replicas)).collect(),
        },
        MetaCommand::AlterTopicConfigs { name, set, delete } => CommandV1::AlterTopicConfigs { name, set, delete },
        MetaCommand::ReassignPartition { topic, partition, replicas } => {
            CommandV1::ReassignPartition { topic, partition, replicas: ids(&replicas) }
        }
        MetaCommand::DecommissionBroker { node_id } => CommandV1::DecommissionBroker { node_id: node_id.0 },
        MetaCommand::CompleteReassignment { topic, topic_id, partition, epoch, replicas } => {
            CommandV1::CompleteReassignment {
                topic,
                topic_id: topic_id.to_string(),
                partition,
                epoch: epoch.0,
                replicas: ids(&replicas),
            }
        }
    }
}

fn from_wire(command: CommandV1) -> Result<MetaCommand, DecodeError> {
    Ok(match command {
        CommandV1::RegisterBroker { node_id, kafka_host, kafka_port, rpc_addr, rack } => {
            MetaCommand::RegisterBroker { node_id: NodeId(node_id), kafka_host, kafka_port, rpc_addr, rack }
        }
        CommandV1::CreateTopic { name, topic_id, assignment, configs } => MetaCommand::CreateTopic {
            name,
            topic_id: parse_topic_id(&topic_id)?,
            assignment: assignment.into_iter().map(node_ids).collect(),
            configs,
        },
        CommandV1::DeleteTopic { name } => MetaCommand::DeleteTopic { name },
        CommandV1::CreatePartitions { name, new_assignment } => {
            MetaCommand::CreatePartitions { name, new_assignment: new_assignment.into_iter().map(node_ids).collect() }
        }
        CommandV1::AlterTopicConfigs { name, set, delete } => MetaCommand::AlterTopicConfigs { name, set, delete },
        CommandV1::ReassignPartition { topic, partition, replicas } => {
            MetaCommand::ReassignPartition { topic, partition, replicas: node_ids(replicas) }
        }
        CommandV1::DecommissionBroker { node_id } => MetaCommand::DecommissionBroker { node_id: NodeId(node_id) },
        CommandV1::CompleteReassignment { topic, topic_id, partition, epoch, replicas } => {
            MetaCommand::CompleteReassignment {
                topic,
                topic_id: parse_topic_id(&topic_id)?,
                partition,
                epoch: Offset(epoch),
                replicas: node_ids(replicas),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create_topic() -> MetaCommand {
        MetaCommand::CreateTopic {
            name: "orders".to_string(),
            topic_id: TopicId([7; 16]),
            assignment: vec![vec![NodeId(1), NodeId(2)], vec![NodeId(2), NodeId(1)]],
            configs: BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]),
        }
    }

    /// The documented layout (docs/format.md), byte for byte: a change here is a format change.
    #[test]
    fn create_topic_bytes_are_the_documented_layout() {
        let bytes = create_topic().encode().expect("small");
        let expected = concat!(
            r#"{"version":1,"command":{"type":"create_topic","name":"orders","#,
            r#""topic_id":"07070707-0707-0707-0707-070707070707","assignment":[[1,2],[2,1]],"#,
            r#""configs":{"retention.ms":"60000"}}}"#
        );
        assert_eq!(String::from_utf8(bytes).expect("utf-8"), expected);
    }

    #[test]
    fn register_broker_bytes_are_the_documented_layout() {
        let command = MetaCommand::RegisterBroker {
            node_id: NodeId(3),
            kafka_host: "b3.example".to_string(),
            kafka_port: 9092,
            rpc_addr: "b3.example:9093".to_string(),
            rack: None,
        };
        let bytes = command.encode().expect("small");
        let expected = concat!(
            r#"{"version":1,"command":{"type":"register_broker","node_id":3,"kafka_host":"b3.example","#,
            r#""kafka_port":9092,"rpc_addr":"b3.example:9093","rack":null}}"#
        );
        assert_eq!(String::from_utf8(bytes).expect("utf-8"), expected);
    }

    #[test]
    fn every_kind_round_trips() {
        let commands = [
            MetaCommand::RegisterBroker {
                node_id: NodeId(0),
                kafka_host: "h".to_string(),
                kafka_port: -5,
                rpc_addr: String::new(),
                rack: Some("rack-1".to_string()),
            },
            create_topic(),
            MetaCommand::DeleteTopic { name: "orders".to_string() },
            MetaCommand::CreatePartitions { name: "orders".to_string(), new_assignment: vec![vec![NodeId(3)]] },
            MetaCommand::AlterTopicConfigs {
                name: "orders".to_string(),
                set: BTreeMap::from([("a".to_string(), "\"\\\u{0}é".to_string())]),
                delete: vec!["b".to_string()],
            },
            MetaCommand::ReassignPartition { topic: "orders".to_string(), partition: 4, replicas: vec![NodeId(9)] },
            MetaCommand::DecommissionBroker { node_id: NodeId(i32::MIN) },
            MetaCommand::CompleteReassignment {
                topic: "orders".to_string(),
                topic_id: TopicId([3; 16]),
                partition: 2,
                epoch: Offset(41),
                replicas: vec![NodeId(4), NodeId(1)],
            },
        ];
        for command in commands {
            let bytes = command.encode().expect("small");
            let tag = format!(r#""type":"{}""#, command.kind());
            assert!(String::from_utf8_lossy(&bytes).contains(&tag), "{tag}");
            assert_eq!(MetaCommand::decode(&bytes), Ok(command));
        }
    }

    #[test]
    fn a_newer_version_is_reported_as_such() {
        let bytes = br#"{"version":2,"command":{"type":"teleport_topic","name":"x"}}"#;
        assert_eq!(MetaCommand::decode(bytes), Err(DecodeError::UnsupportedVersion(2)));
        let bytes = br#"{"version":2,"command":{"type":"delete_topic","name":"x"}}"#;
        assert_eq!(MetaCommand::decode(bytes), Err(DecodeError::UnsupportedVersion(2)));
    }

    #[test]
    fn strictness_refuses_what_version_1_does_not_define() {
        let cases: [&[u8]; 9] = [
            b"",
            b"{}",
            br#"{"command":{"type":"delete_topic","name":"x"}}"#,
            br#"{"version":1,"command":{"type":"delete_topic","name":"x","extra":1}}"#,
            br#"{"version":1,"command":{"type":"delete_topic","name":"x"},"extra":1}"#,
            br#"{"version":1,"command":{"type":"delete_topic","name":"x","name":"y"}}"#,
            br#"{"version":1,"command":{"type":"decommission_broker","node_id":2147483648}}"#,
            br#"{"version":1,"command":{"type":"create_topic","name":"x","topic_id":"nope","assignment":[],"configs":{}}}"#,
            br#"{"version":1,"command":{"type":"delete_topic","name":"x"}} trailing"#,
        ];
        for bytes in cases {
            let result = MetaCommand::decode(bytes);
            assert!(matches!(result, Err(DecodeError::Malformed(_))), "{}: {result:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let bytes = vec![b' '; COMMAND_BYTES_MAX + 1];
        assert_eq!(
            MetaCommand::decode(&bytes),
            Err(DecodeError::TooLarge { bytes: COMMAND_BYTES_MAX + 1, limit_bytes: COMMAND_BYTES_MAX })
        );
    }

    #[test]
    fn oversized_commands_are_refused_when_encoding() {
        let set = (0..300).map(|i| (format!("k{i}"), "v".repeat(32 * 1024))).collect();
        let command = MetaCommand::AlterTopicConfigs { name: "t".to_string(), set, delete: vec![] };
        assert!(matches!(command.encode(), Err(MetaError::CommandTooLarge { .. })));
    }
}
