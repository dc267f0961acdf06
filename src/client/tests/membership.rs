//! The client's group member calls against a real Kafka-protocol broker: two members join one
//! generation (KIP-394's MEMBER_ID_REQUIRED round included), the leader's range assignment
//! splits the topic, a member's commits carry their metadata back through OffsetFetch, stale
//! generations and unknown members are fenced, and a leave makes the other member rejoin alone.
//!
//! Skipped unless `SLUICE_TEST_BROKER` names a broker (`host:port`), as `tests/broker.rs`:
//! `SLUICE_TEST_BROKER=127.0.0.1:9092 cargo test -p sluice-client --test membership`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sluice_client::{
    Assignment, Client, ClientError, JoinOptions, JoinedGroup, NewTopic, Offset, PartitionId, range_assignment,
};

const BROKER_ENV: &str = "SLUICE_TEST_BROKER";
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(20);
const PARTITION_COUNT: i32 = 3;
/// Rejoins allowed while waiting for a generation with the expected members.
const JOIN_ROUNDS_MAX: u32 = 10;

fn broker() -> Option<String> {
    let address = std::env::var(BROKER_ENV).ok().filter(|value| !value.is_empty());
    if address.is_none() {
        println!("skipped: set {BROKER_ENV}=host:port to run the client against a broker");
    }
    address
}

fn name(suffix: &str) -> String {
    format!("sluice-client-member-{}-{suffix}", std::process::id())
}

fn options() -> JoinOptions {
    JoinOptions { session_timeout_ms: 10_000, rebalance_timeout_ms: 10_000, group_instance_id: None }
}

async fn create_ready_topic(client: &mut Client, topic: &str) {
    let new = NewTopic {
        name: topic.to_owned(),
        partition_count: PARTITION_COUNT,
        replication_factor: 1,
        configs: Vec::new(),
    };
    client.create_topics(&[new]).await.unwrap()[0].1.clone().unwrap();
    let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
    loop {
        let metadata = client.metadata(Some(&[topic])).await.unwrap();
        let layout = &metadata.topics[0];
        if layout.error.is_none() && layout.partitions.iter().all(|partition| partition.leader.is_some()) {
            return;
        }
        assert!(Instant::now() < deadline, "topic {topic} not ready: {layout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The leader's range assignment of the generation `joined` describes.
fn assign(joined: &JoinedGroup, topic: &str) -> BTreeMap<String, Assignment> {
    assert!(joined.is_leader(), "{joined:?}");
    let members: Vec<(String, Vec<String>)> =
        joined.members.iter().map(|member| (member.member_id.clone(), member.topics.clone())).collect();
    range_assignment(&members, &[(topic.to_owned(), PARTITION_COUNT)].into())
}

fn kafka_code(result: Result<(), ClientError>) -> String {
    match result {
        Err(ClientError::Kafka { error, .. }) => error.name(),
        other => panic!("expected a Kafka error, got {other:?}"),
    }
}

#[tokio::test]
async fn two_members_split_commit_are_fenced_and_rebalance() {
    let Some(address) = broker() else { return };
    let topic = name("topic");
    let group = name("group");
    let topics = vec![topic.clone()];
    let (mut a, mut b) = (Client::connect(&address).await.unwrap(), Client::connect(&address).await.unwrap());
    create_ready_topic(&mut a, &topic).await;

    // Both join one generation: joins started together land within the initial rebalance delay
    // (KIP-134); a member that missed it rejoins with its id.
    let (mut id_a, mut id_b) = (String::new(), String::new());
    let mut rounds = 0;
    let join = options();
    let (joined_a, joined_b) = loop {
        rounds += 1;
        assert!(rounds <= JOIN_ROUNDS_MAX, "no common generation after {JOIN_ROUNDS_MAX} rounds");
        let (ja, jb) =
            tokio::join!(a.join_group(&group, &id_a, &topics, &join), b.join_group(&group, &id_b, &topics, &join));
        let (ja, jb) = (ja.unwrap(), jb.unwrap());
        (id_a, id_b) = (ja.member_id.clone(), jb.member_id.clone());
        if ja.generation_id == jb.generation_id {
            break (ja, jb);
        }
    };
    assert!(!joined_a.member_id.is_empty() && joined_a.member_id != joined_b.member_id);
    assert_eq!(joined_a.leader_id, joined_b.leader_id);
    let (leader, follower) = if joined_a.is_leader() { (&joined_a, &joined_b) } else { (&joined_b, &joined_a) };
    assert_eq!(leader.members.len(), 2, "{leader:?}");
    assert!(follower.members.is_empty(), "only the leader sees the members");
    assert!(leader.members.iter().all(|member| member.topics == topics), "{leader:?}");

    let plan = assign(leader, &topic);
    let none = BTreeMap::new();
    let (plan_a, plan_b) = if joined_a.is_leader() { (&plan, &none) } else { (&none, &plan) };
    let (got_a, got_b) =
        tokio::join!(a.sync_group(&group, &joined_a, None, plan_a), b.sync_group(&group, &joined_b, None, plan_b));
    let (got_a, got_b) = (got_a.unwrap(), got_b.unwrap());
    assert_eq!(got_a, plan[&joined_a.member_id]);
    assert_eq!(got_b, plan[&joined_b.member_id]);
    let mut all: Vec<i32> = got_a.iter().chain(&got_b).flat_map(|(_, ps)| ps.iter().map(|p| p.0)).collect();
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2], "every partition assigned once");

    let generation = joined_a.generation_id;
    a.heartbeat(&group, generation, &id_a).await.unwrap();
    b.heartbeat(&group, generation, &id_b).await.unwrap();

    // A member's commit keeps its metadata; OffsetFetch returns both.
    let commit = [(topic.clone(), PartitionId(0), Offset(7), "commit-a-1".to_owned())];
    let outcomes = a.commit_as_member(&group, generation, &id_a, &commit).await.unwrap();
    assert!(outcomes.len() == 1 && outcomes[0].error.is_none(), "{outcomes:?}");
    let fetched = a.fetch_committed_offsets(&group, Some(&[(topic.clone(), PartitionId(0))])).await.unwrap();
    assert_eq!(fetched[0].offset, Some(Offset(7)));
    assert_eq!(fetched[0].metadata.as_deref(), Some("commit-a-1"));

    // Fencing: a generation that is not the group's, and a member it does not know.
    let stale = [(topic.clone(), PartitionId(0), Offset(9), "commit-a-stale".to_owned())];
    let outcomes = a.commit_as_member(&group, generation + 1, &id_a, &stale).await.unwrap();
    assert_eq!(outcomes[0].error.as_ref().map(|e| e.name()).as_deref(), Some("ILLEGAL_GENERATION"));
    let outcomes = a.commit_as_member(&group, generation, "nobody", &stale).await.unwrap();
    assert_eq!(outcomes[0].error.as_ref().map(|e| e.name()).as_deref(), Some("UNKNOWN_MEMBER_ID"));
    let fetched = a.fetch_committed_offsets(&group, Some(&[(topic.clone(), PartitionId(0))])).await.unwrap();
    assert_eq!(fetched[0].metadata.as_deref(), Some("commit-a-1"), "a fenced commit is not visible");
    assert_eq!(kafka_code(a.heartbeat(&group, generation + 1, &id_a).await), "ILLEGAL_GENERATION");

    // B leaves: A is asked to rejoin and, alone in the next generation, takes every partition.
    b.leave_group(&group, &id_b).await.unwrap();
    assert_eq!(kafka_code(a.heartbeat(&group, generation, &id_a).await), "REBALANCE_IN_PROGRESS");
    let rejoined = a.join_group(&group, &id_a, &topics, &options()).await.unwrap();
    assert_eq!(rejoined.member_id, id_a);
    assert!(rejoined.generation_id > generation && rejoined.is_leader(), "{rejoined:?}");
    assert_eq!(rejoined.members.len(), 1);
    let plan = assign(&rejoined, &topic);
    let got = a.sync_group(&group, &rejoined, None, &plan).await.unwrap();
    assert_eq!(got, vec![(topic.clone(), (0..PARTITION_COUNT).map(PartitionId).collect())]);
    a.heartbeat(&group, rejoined.generation_id, &id_a).await.unwrap();

    a.leave_group(&group, &id_a).await.unwrap();
    assert_eq!(a.delete_groups(&[&group]).await.unwrap(), [(group.clone(), Ok(()))]);
    a.delete_topics(&[&topic]).await.unwrap()[0].1.clone().unwrap();
}
