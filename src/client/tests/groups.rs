//! The client's consumer group admin calls against a real Kafka-protocol broker: standalone
//! commits of a fresh group, fetching them back, ListGroups and DescribeGroups of the Empty
//! group, a `seek` (KIP-122 reset) planned and executed, and DeleteGroups; and the member calls:
//! two members join one generation (KIP-394's MEMBER_ID_REQUIRED round included), the leader's
//! range assignment splits the topic, a member's commits carry their metadata back through
//! OffsetFetch, stale generations and unknown members are fenced, and a leave makes the other
//! member rejoin alone.
//!
//! Skipped unless `SLUICE_TEST_BROKER` names a broker (`host:port`), as `tests/broker.rs`:
//! `SLUICE_TEST_BROKER=127.0.0.1:9092 cargo test -p sluice-client --test groups`.
//! It creates a topic and a group named `sluice-client-test-<pid>-<suffix>` and deletes them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_client::{
    Assignment, Client, ClientError, CommitOutcome, JoinOptions, JoinedGroup, NewTopic, Offset, PartitionId,
    ProduceOptions, ProduceRecord, SeekTarget, range_assignment,
};

const BROKER_ENV: &str = "SLUICE_TEST_BROKER";
/// How long to wait for a new topic's partitions to get leaders.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(20);
const PARTITION_COUNT: i32 = 3;
/// Records written to partition 0, with CreateTime `RECORD_TIMESTAMP_FIRST_MS + 1000 * index`.
const RECORD_COUNT: i64 = 6;
const RECORD_TIMESTAMP_FIRST_MS: i64 = 1_000_000;

fn broker() -> Option<String> {
    let address = std::env::var(BROKER_ENV).ok().filter(|value| !value.is_empty());
    if address.is_none() {
        println!("skipped: set {BROKER_ENV}=host:port to run the client against a broker");
    }
    address
}

fn name(suffix: &str) -> String {
    format!("sluice-client-test-{}-{suffix}", std::process::id())
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

/// Writes `RECORD_COUNT` records with increasing timestamps to partition 0.
async fn produce_timed_records(client: &mut Client, topic: &str) {
    let records = (0..RECORD_COUNT)
        .map(|index| ProduceRecord {
            value: Some(Bytes::from(format!("record {index}"))),
            timestamp_ms: Some(RECORD_TIMESTAMP_FIRST_MS + 1000 * index),
            ..Default::default()
        })
        .collect();
    let options = ProduceOptions { partition: Some(PartitionId(0)), ..ProduceOptions::default() };
    let results = client.produce(topic, records, &options).await.unwrap();
    assert!(results.iter().all(|result| result.error.is_none()), "{results:?}");
}

fn assert_all_committed(outcomes: &[CommitOutcome], count: usize) {
    assert_eq!(outcomes.len(), count, "{outcomes:?}");
    for outcome in outcomes {
        assert!(outcome.error.is_none(), "{outcome:?}");
    }
}

/// The committed offset of each of `partitions`, in order.
async fn committed(client: &mut Client, group: &str, topic: &str, partitions: &[i32]) -> Vec<Option<i64>> {
    let requested: Vec<(String, PartitionId)> =
        partitions.iter().map(|p| (topic.to_owned(), PartitionId(*p))).collect();
    let fetched = client.fetch_committed_offsets(group, Some(&requested)).await.unwrap();
    assert_eq!(fetched.len(), partitions.len(), "{fetched:?}");
    fetched
        .iter()
        .map(|entry| {
            assert!(entry.error.is_none(), "{entry:?}");
            entry.offset.map(|offset| offset.0)
        })
        .collect()
}

#[tokio::test]
async fn standalone_commits_seek_and_delete() {
    let Some(address) = broker() else { return };
    let mut client = Client::connect(&address).await.unwrap();
    let topic = name("group-topic");
    let group = name("group");
    create_ready_topic(&mut client, &topic).await;
    produce_timed_records(&mut client, &topic).await;

    let coordinator = client.find_coordinator(&group).await.unwrap();
    assert!(coordinator.node_id.0 >= 0 && coordinator.port > 0, "{coordinator:?}");

    // A fresh group's standalone commit creates it, Empty.
    let offsets = [(topic.clone(), PartitionId(0), Offset(4)), (topic.clone(), PartitionId(1), Offset(0))];
    assert_all_committed(&client.commit_offsets(&group, &offsets).await.unwrap(), 2);
    assert_eq!(committed(&mut client, &group, &topic, &[0, 1, 2]).await, [Some(4), Some(0), None]);
    let all = client.fetch_committed_offsets(&group, None).await.unwrap();
    let all: Vec<_> = all.iter().map(|entry| (entry.partition.0, entry.offset.map(|o| o.0))).collect();
    assert_eq!(all, [(0, Some(4)), (1, Some(0))], "OffsetFetch of every committed partition");

    let listed = client.list_groups().await.unwrap();
    let ours = listed.iter().find(|listed| listed.group_id == group);
    let ours = ours.unwrap_or_else(|| panic!("group {group} not listed: {listed:?}"));
    assert!(ours.state.as_deref().is_none_or(|state| state == "Empty"), "{ours:?}");

    let description = client.describe_group(&group).await.unwrap();
    assert_eq!(description.state, "Empty", "{description:?}");
    assert!(description.members.is_empty());

    // Seek to the start: the committed partitions, from where they are to the log start.
    let plan = client.plan_seek(&group, SeekTarget::Start, None).await.unwrap();
    let moves: Vec<_> = plan.iter().map(|seek| (seek.partition.0, seek.current.map(|o| o.0), seek.new.0)).collect();
    assert_eq!(moves, [(0, Some(4), 0), (1, Some(0), 0)]);
    let execute: Vec<_> = plan.iter().map(|seek| (seek.topic.clone(), seek.partition, seek.new)).collect();
    assert_all_committed(&client.commit_offsets(&group, &execute).await.unwrap(), 2);
    assert_eq!(committed(&mut client, &group, &topic, &[0, 1]).await, [Some(0), Some(0)]);

    // With --topic, every partition of the topic; the end is each log end.
    let plan = client.plan_seek(&group, SeekTarget::End, Some(&topic)).await.unwrap();
    let moves: Vec<_> = plan.iter().map(|seek| (seek.partition.0, seek.current.map(|o| o.0), seek.new.0)).collect();
    assert_eq!(moves, [(0, Some(0), RECORD_COUNT), (1, Some(0), 0), (2, None, 0)]);

    // By timestamp: the first record at or after it; none that new falls back to the log end.
    let at = |plan: &[sluice_client::PlannedSeek]| plan[0].new.0;
    let target = SeekTarget::Timestamp(RECORD_TIMESTAMP_FIRST_MS + 2500);
    assert_eq!(at(&client.plan_seek(&group, target, Some(&topic)).await.unwrap()), 3);
    let target = SeekTarget::Timestamp(RECORD_TIMESTAMP_FIRST_MS + 1000 * RECORD_COUNT);
    assert_eq!(at(&client.plan_seek(&group, target, Some(&topic)).await.unwrap()), RECORD_COUNT);
    // An explicit offset past the log end is moved to the log end.
    let target = SeekTarget::Offset(Offset(RECORD_COUNT + 100));
    assert_eq!(at(&client.plan_seek(&group, target, Some(&topic)).await.unwrap()), RECORD_COUNT);

    let deleted = client.delete_groups(&[&group]).await.unwrap();
    assert_eq!(deleted, [(group.clone(), Ok(()))]);
    assert_eq!(committed(&mut client, &group, &topic, &[0, 1]).await, [None, None]);
    let again = client.delete_groups(&[&group]).await.unwrap();
    let error = again[0].1.clone().unwrap_err();
    assert_eq!(error.name(), "GROUP_ID_NOT_FOUND", "{error}");

    client.delete_topics(&[&topic]).await.unwrap()[0].1.clone().unwrap();
}

/// Rejoins allowed while waiting for a generation with the expected members.
const JOIN_ROUNDS_MAX: u32 = 10;

fn options() -> JoinOptions {
    JoinOptions { session_timeout_ms: 10_000, rebalance_timeout_ms: 10_000, group_instance_id: None }
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
    let topic = name("member-topic");
    let group = name("member-group");
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
