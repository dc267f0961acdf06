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
