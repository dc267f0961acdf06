//! Three brokers in one process forming a cluster over loopback: the controller, replicated
//! partitions and failover, seen through the Kafka wire protocol.
//!
//! What it pins: a topic created on any broker appears on all of them with RF 3 and a leader
//! per partition; only the leader serves produce and fetch (others answer
//! NOT_LEADER_OR_FOLLOWER, Kafka protocol error 6); acks=-1 records committed before a clean
//! stop of the leader are served by the new leader after it; the stopped broker rejoins from
//! its data dir and catches up to the same high watermark. The three-process kill -9 tests are
//! `tests/system/cluster_test.py`.

mod common;

use common::{Client, TestBroker, batch, free_port_addr};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_broker::ClusterConfig;
use sluice_types::NodeId;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TOPIC: &str = "replicated";
const PARTITIONS: i32 = 3;
/// Leader elections take one to two election timeouts (1-2 s at the default tick).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn start_cluster() -> Vec<TestBroker> {
    let peers: BTreeMap<NodeId, std::net::SocketAddr> = (1..=3).map(|n| (NodeId(n), free_port_addr())).collect();
    (1..=3)
        .map(|n| {
            let peers = peers.clone();
            TestBroker::start(move |config| {
                config.node_id = n;
                config.cluster = Some(ClusterConfig {
                    rpc_addr: peers[&NodeId(n)],
                    peers,
                    tick_ms: ClusterConfig::TICK_MS_DEFAULT,
                    replica_lag_time_max_ms: ClusterConfig::REPLICA_LAG_TIME_MAX_MS_DEFAULT,
                    default_replication_factor: 1,
                });
            })
        })
        .collect()
}

/// Polls `check` until it returns `Some`, or panics after `CONVERGE_TIMEOUT`.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Partition -> leader id, once every partition has one in `client`'s Metadata.
fn leaders(client: &mut Client) -> Option<BTreeMap<i32, i32>> {
    let metadata = client.metadata(&[TOPIC]);
    let topic = metadata.topics.first()?;
    if topic.error_code != 0 || topic.partitions.len() != PARTITIONS as usize {
        return None;
    }
    let mut leaders = BTreeMap::new();
    for partition in &topic.partitions {
        if partition.leader_id.0 < 0 || partition.replica_nodes.len() != 3 {
            return None;
        }
        leaders.insert(partition.partition_index, partition.leader_id.0);
    }
    Some(leaders)
}

fn by_id(brokers: &[TestBroker], id: i32) -> &TestBroker {
    brokers.iter().find(|b| b.config.node_id == id).expect("a broker with that id")
}

#[test]
fn a_three_broker_cluster_replicates_fails_over_and_catches_up() {
    let mut brokers = start_cluster();
    let mut admin = brokers[1].client();
    // Creation needs all three brokers registered with the controller (RF 3).
    eventually("a created topic", || {
        let topic = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_num_partitions(PARTITIONS)
            .with_replication_factor(3);
        let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000);
        let response = admin.call(7, request);
        let code = response.topics[0].error_code;
        (code == 0 || code == 36).then_some(())
    });
    // Every broker learns the topic and a leader for each partition.
    let mut first = BTreeMap::new();
    for broker in &brokers {
        first = eventually("leaders in every broker's metadata", || leaders(&mut broker.client()));
    }
    for (partition, leader) in &first {
        let values: Vec<String> = (0..5).map(|i| format!("p{partition}-before-{i}")).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        by_id(&brokers, *leader).client().produce_ok(TOPIC, *partition, &values);
        let follower = brokers.iter().find(|b| b.config.node_id != *leader).expect("a follower");
        let refused = follower.client().produce(TOPIC, *partition, batch(&["nope"]), -1);
        assert_eq!(refused.error_code, NOT_LEADER_OR_FOLLOWER, "a follower refuses produce");
        let fetched = follower.client().fetch(TOPIC, *partition, 0);
        assert_eq!(fetched.error_code, NOT_LEADER_OR_FOLLOWER, "a follower refuses client fetches");
    }
    // Cleanly stop the leader of partition 0: its leaderships move (SIGTERM path), and the
    // new leader serves everything committed before.
    let old_leader = first[&0];
    let stopped = brokers.iter().position(|b| b.config.node_id == old_leader).expect("leader");
    brokers[stopped].stop();
    let survivor = brokers.iter().position(|b| b.config.node_id != old_leader).expect("survivor");
    let second = eventually("a new leader for partition 0", || {
        leaders(&mut brokers[survivor].client()).filter(|l| l[&0] != old_leader)
    });
    let new_leader = by_id(&brokers, second[&0]);
    let records = new_leader.client().read_all(TOPIC, 0, 0);
    let values: Vec<&str> = records.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["p0-before-0", "p0-before-1", "p0-before-2", "p0-before-3", "p0-before-4"]);
    new_leader.client().produce_ok(TOPIC, 0, &["p0-after"]);
    let high_watermark = new_leader.client().latest_offset(TOPIC, 0);
    // The stopped broker rejoins from its data dir and catches up: once it leads partition 0
    // again (preferred-leader restore, or any election), it serves the same log.
    brokers[stopped].restart();
    let all: Vec<String> = eventually("the restarted broker serving the caught-up log", || {
        let leaders = leaders(&mut brokers[stopped].client())?;
        let leader = by_id(&brokers, leaders[&0]);
        let mut client = leader.client();
        (client.latest_offset(TOPIC, 0) >= high_watermark)
            .then(|| client.read_all(TOPIC, 0, 0).into_iter().map(|(_, v)| v).collect())
    });
    assert_eq!(all.last().map(String::as_str), Some("p0-after"));
    assert_eq!(all.len(), 6, "every committed record once: {all:?}");
}

const MOVING: &str = "moving";

/// Replicas, leader and in-progress reassignments of `MOVING`-0 as `client`'s broker sees them.
fn placement(client: &mut Client) -> Option<(Vec<i32>, i32)> {
    let metadata = client.metadata(&[MOVING]);
    let partition = metadata.topics.first().filter(|t| t.error_code == 0)?.partitions.first()?.clone();
    Some((partition.replica_nodes.iter().map(|n| n.0).collect(), partition.leader_id.0))
}

fn reassign(client: &mut Client, replicas: Option<&[i32]>) -> i16 {
    use kafka_protocol::messages::AlterPartitionReassignmentsRequest;
    use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
    let replicas = replicas.map(|ids| ids.iter().copied().map(kafka_protocol::messages::BrokerId).collect());
    let partition = ReassignablePartition::default().with_partition_index(0).with_replicas(replicas);
    let topic = ReassignableTopic::default().with_name(TopicName(StrBytes::from_static_str(MOVING)));
    let request = AlterPartitionReassignmentsRequest::default()
        .with_topics(vec![topic.with_partitions(vec![partition])])
        .with_timeout_ms(10_000);
    client.call(0, request).responses[0].partitions[0].error_code
}

fn reassignments_in_progress(client: &mut Client) -> usize {
    let request = kafka_protocol::messages::ListPartitionReassignmentsRequest::default().with_timeout_ms(5000);
    client.call(0, request).topics.len()
}

/// Learner-then-swap (KIP-455 through single-server Raft changes): a partition on broker 1
/// alone moves to brokers 2 and 3 while it holds records; the new leader serves every record
/// in order, broker 1 deletes its copy, and producing goes on.
#[test]
fn a_partition_moves_between_brokers_by_reassignment() {
    use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
    let brokers = start_cluster();
    let mut admin = brokers[2].client();
    eventually("a topic placed on broker 1", || {
        let assignment = CreatableReplicaAssignment::default()
            .with_partition_index(0)
            .with_broker_ids(vec![kafka_protocol::messages::BrokerId(1)]);
        let topic = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(MOVING)))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![assignment]);
        let code =
            admin.call(7, CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000)).topics[0]
                .error_code;
        (code == 0 || code == 36).then_some(())
    });
    eventually("broker 1 leading", || placement(&mut brokers[0].client()).filter(|(_, l)| *l == 1));
    let before: Vec<String> = (0..50).map(|i| format!("before-{i}")).collect();
    for chunk in before.chunks(10) {
        let values: Vec<&str> = chunk.iter().map(String::as_str).collect();
        brokers[0].client().produce_ok(MOVING, 0, &values);
    }
    // Broker 3 may register after the topic exists: a reassignment onto it needs it registered
    // (the controller refuses unknown brokers), so wait until every broker is in the metadata.
    // Ask broker 1: a broker names itself in Metadata before it is registered, so broker 3's
    // own answer (`admin`) would count it early.
    let mut observer = brokers[0].client();
    eventually("all three brokers registered", || (observer.metadata(&[MOVING]).brokers.len() == 3).then_some(()));
    assert_eq!(reassign(&mut admin, None), 85, "NO_REASSIGNMENT_IN_PROGRESS: nothing to cancel");
    assert_eq!(reassign(&mut admin, Some(&[2, 9])), 39, "INVALID_REPLICA_ASSIGNMENT: unknown broker 9");
    assert_eq!(reassign(&mut admin, Some(&[2, 3])), 0);

    let (replicas, leader) = eventually("the move to brokers 2 and 3", || {
        let mut client = brokers[0].client();
        let (replicas, leader) = placement(&mut client)?;
        (replicas == [2, 3] && [2, 3].contains(&leader) && reassignments_in_progress(&mut client) == 0)
            .then_some((replicas, leader))
    });
    assert_eq!(replicas, [2, 3]);
    let leader = by_id(&brokers, leader);
    let served: Vec<String> = leader.client().read_all(MOVING, 0, 0).into_iter().map(|(_, v)| v).collect();
    assert_eq!(served, before, "every record moved, in order");
    // Leadership may still move between 2 and 3 (the preferred replica takes it back), and
    // broker 1's metadata may name the previous leader for a moment: produce to whoever leads.
    eventually("a produce to the new leader", || {
        let (_, leader) = placement(&mut brokers[0].client())?;
        let answer = by_id(&brokers, leader).client().produce(MOVING, 0, batch(&["after"]), -1);
        (answer.error_code == 0).then_some(())
    });
    let refused = brokers[0].client().produce(MOVING, 0, batch(&["nope"]), -1);
    assert_eq!(refused.error_code, NOT_LEADER_OR_FOLLOWER, "the old replica serves nothing");
    let dir = brokers[0].data_dir().join(format!("{MOVING}-0"));
    let left: Vec<String> = eventually("broker 1 deleting its copy", || {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .ok()?
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".log") || name.starts_with("raft") || name.contains("hard"))
            .collect();
        names.iter().all(|n| n.ends_with(".log")).then_some(names)
    });
    for name in left {
        let len = std::fs::metadata(dir.join(&name)).expect("segment").len();
        assert_eq!(len, 0, "{name}: broker 1's segments are empty after the move");
    }
}
