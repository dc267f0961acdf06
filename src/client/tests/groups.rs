//! The client's consumer group admin calls against a real Kafka-protocol broker: standalone
//! commits of a fresh group, fetching them back, ListGroups and DescribeGroups of the Empty
//! group, a `seek` (KIP-122 reset) planned and executed, and DeleteGroups.
//!
//! Skipped unless `SLUICE_TEST_BROKER` names a broker (`host:port`), as `tests/broker.rs`:
//! `SLUICE_TEST_BROKER=127.0.0.1:9092 cargo test -p sluice-client --test groups`.
//! It creates a topic and a group named `sluice-client-test-<pid>-<suffix>` and deletes them.

use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_client::{Client, CommitOutcome, NewTopic, Offset, PartitionId, ProduceOptions, ProduceRecord, SeekTarget};

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
