//! The snapshot: the whole state as of `applied_index`, as versioned JSON (layout:
//! `docs/format.md`). A restarted replica, or a follower behind the controller log's start,
//! loads it and applies the log from `applied_index + 1` on.
//!
//! Only the primary content is written (brokers and topics); the indexes are rebuilt on load.
//! Loading checks every invariant of `state.rs`: a snapshot that `apply` could not have
//! produced is refused (`DecodeError::Inconsistent`), never half-loaded. Equal states write
//! equal bytes (ordered maps, fixed field order), so replicas can compare snapshots by hash.
//!
//! Size: a snapshot is bounded by the state's limits (`limits.rs`), and the shell holds the
//! bytes in memory before decoding them, so no separate byte limit applies here.

use crate::codec::{parse_topic_id, parse_versioned};
use crate::error::DecodeError;
use crate::state::{Broker, MetaState, PartitionPlacement, Topic};
use serde::{Deserialize, Serialize};
use sluice_types::{NodeId, Offset};
use std::collections::BTreeMap;

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u64 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotV1 {
    version: u64,
    applied_index: i64,
    brokers: Vec<BrokerV1>,
    topics: Vec<TopicV1>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BrokerV1 {
    node_id: i32,
    broker_epoch: i64,
    kafka_host: String,
    kafka_port: i32,
    rpc_addr: String,
    rack: Option<String>,
    decommissioning: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicV1 {
    name: String,
    topic_id: String,
    configs: BTreeMap<String, String>,
    partitions: Vec<PartitionV1>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionV1 {
    replicas: Vec<i32>,
    target_replicas: Option<Vec<i32>>,
    members: Vec<i32>,
    initial_voters: Vec<i32>,
    reassignment_epoch: i64,
}

impl MetaState {
    /// The snapshot bytes of this state.
    pub fn to_snapshot_bytes(&self) -> Vec<u8> {
        let snapshot = SnapshotV1 {
            version: SNAPSHOT_FORMAT_VERSION,
            applied_index: self.applied_index.0,
            brokers: self.brokers.values().map(broker_to_wire).collect(),
            topics: self.topics.values().map(topic_to_wire).collect(),
        };
        serde_json::to_vec(&snapshot).expect("string keys and plain values always serialize")
    }

    /// Loads a snapshot. Never panics, whatever the bytes.
    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<MetaState, DecodeError> {
        let snapshot: SnapshotV1 = parse_versioned(bytes, SNAPSHOT_FORMAT_VERSION)?;
        if snapshot.version != SNAPSHOT_FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(snapshot.version));
        }
        let brokers = snapshot.brokers.into_iter().map(broker_from_wire).collect();
        let topics = snapshot.topics.into_iter().map(topic_from_wire).collect::<Result<Vec<_>, _>>()?;
        MetaState::from_parts(Offset(snapshot.applied_index), brokers, topics).map_err(DecodeError::Inconsistent)
    }
}

fn ids(node_ids: &[NodeId]) -> Vec<i32> {
    node_ids.iter().map(|id| id.0).collect()
}

fn node_ids(ids: Vec<i32>) -> Vec<NodeId> {
    ids.into_iter().map(NodeId).collect()
}

fn broker_to_wire(broker: &Broker) -> BrokerV1 {
    BrokerV1 {
        node_id: broker.node_id.0,
        broker_epoch: broker.broker_epoch.0,
        kafka_host: broker.kafka_host.clone(),
        kafka_port: broker.kafka_port,
        rpc_addr: broker.rpc_addr.clone(),
        rack: broker.rack.clone(),
        decommissioning: broker.decommissioning,
    }
}

fn broker_from_wire(broker: BrokerV1) -> Broker {
    Broker {
        node_id: NodeId(broker.node_id),
        broker_epoch: Offset(broker.broker_epoch),
        kafka_host: broker.kafka_host,
        kafka_port: broker.kafka_port,
        rpc_addr: broker.rpc_addr,
        rack: broker.rack,
        decommissioning: broker.decommissioning,
    }
}

fn topic_to_wire(topic: &Topic) -> TopicV1 {
    let partitions = topic.partitions.iter().map(|placement| PartitionV1 {
        replicas: ids(&placement.replicas),
        target_replicas: placement.target_replicas.as_deref().map(ids),
        members: ids(&placement.members),
        initial_voters: ids(&placement.initial_voters),
        reassignment_epoch: placement.reassignment_epoch.0,
    });
    TopicV1 {
        name: topic.name.clone(),
        topic_id: topic.topic_id.to_string(),
        configs: topic.configs.clone(),
        partitions: partitions.collect(),
    }
}

fn topic_from_wire(topic: TopicV1) -> Result<Topic, DecodeError> {
    let partitions = topic.partitions.into_iter().map(|partition| PartitionPlacement {
        replicas: node_ids(partition.replicas),
        target_replicas: partition.target_replicas.map(node_ids),
        members: node_ids(partition.members),
        initial_voters: node_ids(partition.initial_voters),
        reassignment_epoch: Offset(partition.reassignment_epoch),
    });
    Ok(Topic {
        name: topic.name,
        topic_id: parse_topic_id(&topic.topic_id)?,
        configs: topic.configs,
        partitions: partitions.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::MetaCommand;
    use sluice_types::TopicId;

    fn state() -> MetaState {
        let mut state = MetaState::new();
        let register = |id: i32| MetaCommand::RegisterBroker {
            node_id: NodeId(id),
            kafka_host: format!("b{id}"),
            kafka_port: 9092,
            rpc_addr: format!("b{id}:9093"),
            rack: (id == 2).then(|| "r1".to_string()),
        };
        state.apply(Offset(0), &register(1)).expect("valid");
        state.apply(Offset(3), &register(2)).expect("valid");
        let create = MetaCommand::CreateTopic {
            name: "t".to_string(),
            topic_id: TopicId([9; 16]),
            assignment: vec![vec![NodeId(1), NodeId(2)]],
            configs: BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]),
        };
        state.apply(Offset(4), &create).expect("valid");
        let reassign =
            MetaCommand::ReassignPartition { topic: "t".to_string(), partition: 0, replicas: vec![NodeId(2)] };
        state.apply(Offset(5), &reassign).expect("valid");
        state.apply(Offset(6), &MetaCommand::DecommissionBroker { node_id: NodeId(1) }).expect("valid");
        state
    }

    #[test]
    fn snapshot_bytes_are_the_documented_layout() {
        let expected = concat!(
            r#"{"version":1,"applied_index":6,"brokers":["#,
            r#"{"node_id":1,"broker_epoch":0,"kafka_host":"b1","kafka_port":9092,"rpc_addr":"b1:9093","rack":null,"decommissioning":true},"#,
            r#"{"node_id":2,"broker_epoch":3,"kafka_host":"b2","kafka_port":9092,"rpc_addr":"b2:9093","rack":"r1","decommissioning":false}],"#,
            r#""topics":[{"name":"t","topic_id":"09090909-0909-0909-0909-090909090909","#,
            r#""configs":{"cleanup.policy":"compact"},"partitions":[{"replicas":[1,2],"target_replicas":[2],"#,
            r#""members":[1,2],"initial_voters":[1,2],"reassignment_epoch":5}]}]}"#
        );
        assert_eq!(String::from_utf8(state().to_snapshot_bytes()).expect("utf-8"), expected);
    }

    #[test]
    fn a_snapshot_loads_as_the_state_it_was_taken_from() {
        let state = state();
        let loaded = MetaState::from_snapshot_bytes(&state.to_snapshot_bytes()).expect("valid");
        assert_eq!(loaded, state);
        assert_eq!(loaded.topic_by_id(TopicId([9; 16])).map(|t| t.name.as_str()), Some("t"));
        let empty = MetaState::new();
        assert_eq!(MetaState::from_snapshot_bytes(&empty.to_snapshot_bytes()), Ok(empty));
    }

    #[test]
    fn inconsistent_snapshots_are_refused() {
        let good = String::from_utf8(state().to_snapshot_bytes()).expect("utf-8");
        let edits = [
            // A replica on an unregistered broker.
            (r#""replicas":[1,2]"#, r#""replicas":[1,7]"#),
            // A broker twice in one partition.
            (r#""replicas":[1,2]"#, r#""replicas":[2,2]"#),
            // A target equal to the current replicas.
            (r#""target_replicas":[2]"#, r#""target_replicas":[1,2]"#),
            // A broker epoch after the applied index.
            (r#""broker_epoch":3"#, r#""broker_epoch":7"#),
            // The same broker twice.
            (r#""node_id":2,"#, r#""node_id":1,"#),
            // A reserved topic id.
            ("09090909-0909-0909-0909-090909090909", "00000000-0000-0000-0000-000000000000"),
            // An illegal topic name.
            (r#""name":"t""#, r#""name":"t/""#),
            // A topic without partitions.
            (
                r#""partitions":[{"replicas":[1,2],"target_replicas":[2],"members":[1,2],"initial_voters":[1,2],"reassignment_epoch":5}]"#,
                r#""partitions":[]"#,
            ),
            // Members that miss a replica.
            (r#""members":[1,2]"#, r#""members":[2]"#),
            // A reassignment epoch after the applied index.
            (r#""reassignment_epoch":5"#, r#""reassignment_epoch":9"#),
        ];
        for (from, to) in edits {
            assert!(good.contains(from), "{from}");
            let bad = good.replacen(from, to, 1);
            let result = MetaState::from_snapshot_bytes(bad.as_bytes());
            assert!(matches!(result, Err(DecodeError::Inconsistent(_))), "{to}: {result:?}");
        }
    }

    #[test]
    fn malformed_and_newer_snapshots_are_refused() {
        assert!(matches!(MetaState::from_snapshot_bytes(b"{"), Err(DecodeError::Malformed(_))));
        let newer = br#"{"version":2,"applied_index":1,"brokers":[],"topics":[],"acls":[]}"#;
        assert_eq!(MetaState::from_snapshot_bytes(newer), Err(DecodeError::UnsupportedVersion(2)));
        let bad_id = r#"{"version":1,"applied_index":1,"brokers":[],"topics":[{"name":"t","topic_id":"x","configs":{},"partitions":[]}]}"#;
        assert!(matches!(MetaState::from_snapshot_bytes(bad_id.as_bytes()), Err(DecodeError::Malformed(_))));
    }
}
