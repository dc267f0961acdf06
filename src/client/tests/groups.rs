//! The client's consumer group admin calls against a real Kafka-protocol broker: standalone
//! commits of a fresh group, fetching them back, ListGroups and DescribeGroups of the Empty
//! group, a `seek` (KIP-122 reset) planned and executed, and DeleteGroups; and the member calls:
//! two members join one generation (KIP-394's MEMBER_ID_REQUIRED round included), the leader's
//! range assignment splits the topic, a member's commits carry their metadata back through
//! OffsetFetch, stale generations and unknown members are fenced, and a leave makes the other
//! member rejoin alone. KIP-848: two ConsumerGroupHeartbeat members reconcile (revoke before
//! reassign) while ConsumerGroupDescribe, the unified describe and ListGroups v5 show the
//! group's type, epochs and each member's assignment and target; classic groups still describe
//! through DescribeGroups.
//!
//! Skipped unless `SLUICE_TEST_BROKER` names a broker (`host:port`), as `tests/broker.rs`:
//! `SLUICE_TEST_BROKER=127.0.0.1:9092 cargo test -p sluice-client --test groups`.
//! It creates a topic and a group named `sluice-client-test-<pid>-<suffix>` and deletes them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_client::{
    Assignment, CLIENT_ID_DEFAULT, Client, ClientError, CommitOutcome, ConsumerGroupDescription, ConsumerHeartbeat,
    DescribedGroup, GroupType, JOIN_MEMBER_EPOCH, JoinOptions, JoinedGroup, LEAVE_MEMBER_EPOCH, NamedPartitions,
    NewTopic, Offset, PartitionId, ProduceOptions, ProduceRecord, SeekTarget, range_assignment,
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
    // A group that only has offsets is classic: ConsumerGroupDescribe does not know it.
    assert_eq!(client.describe_consumer_group(&group).await.unwrap(), None);
    assert_eq!(client.describe_any_group(&group).await.unwrap(), DescribedGroup::Classic(description));
    assert!(ours.group_type.as_deref().is_none_or(|t| t == GroupType::Classic.name()), "{ours:?}");

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

    // A classic group with members describes through DescribeGroups, assignments decoded.
    let DescribedGroup::Classic(described) = a.describe_any_group(&group).await.unwrap() else {
        panic!("group {group} is classic");
    };
    assert_eq!((described.state.as_str(), described.protocol.as_str()), ("Stable", "range"), "{described:?}");
    let mut held: Vec<(String, i32)> = DescribedGroup::Classic(described.clone())
        .assigned()
        .into_iter()
        .map(|(member_id, _, partition)| (member_id.to_owned(), partition.0))
        .collect();
    held.sort_by_key(|(_, partition)| *partition);
    let mut planned: Vec<(String, i32)> = plan
        .iter()
        .flat_map(|(id, topics)| topics.iter().flat_map(move |(_, ps)| ps.iter().map(|p| (id.clone(), p.0))))
        .collect();
    planned.sort_by_key(|(_, partition)| *partition);
    assert_eq!(held, planned);
    let listed = a.list_groups().await.unwrap();
    let ours = listed.iter().find(|listed| listed.group_id == group).unwrap();
    assert!(ours.group_type.as_deref().is_none_or(|t| t == GroupType::Classic.name()), "{ours:?}");

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

/// Heartbeats one KIP-848 member may send while reconciling before the test gives up.
const HEARTBEATS_MAX: u32 = 10;
const REBALANCE_TIMEOUT_MS: i32 = 10_000;

fn joining(member_id: &str, topic: &str) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        member_id: member_id.to_owned(),
        member_epoch: JOIN_MEMBER_EPOCH,
        instance_id: None,
        rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
        subscribed_topics: Some(vec![topic.to_owned()]),
        server_assignor: None,
        owned: None,
    }
}

/// A heartbeat that changes nothing but reports what the member owns.
fn owning(member_id: &str, member_epoch: i32, owned: &NamedPartitions) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        member_id: member_id.to_owned(),
        member_epoch,
        instance_id: None,
        rebalance_timeout_ms: -1,
        subscribed_topics: None,
        server_assignor: None,
        owned: Some(owned.clone()),
    }
}

fn partitions(topic: &str, partitions: impl IntoIterator<Item = i32>) -> NamedPartitions {
    [(topic.to_owned(), partitions.into_iter().collect::<BTreeSet<i32>>())].into()
}

/// Heartbeats as a member that revokes and takes whatever it is told at once, until it holds
/// `target` at `epoch`. Returns what it owns.
async fn reconcile(
    client: &mut Client,
    group: &str,
    member_id: &str,
    (mut member_epoch, mut owned): (i32, NamedPartitions),
    epoch: i32,
    target: &NamedPartitions,
) -> NamedPartitions {
    for _ in 0..HEARTBEATS_MAX {
        if member_epoch == epoch && owned == *target {
            return owned;
        }
        let answer = client.consumer_group_heartbeat(group, &owning(member_id, member_epoch, &owned)).await.unwrap();
        assert_eq!(answer.error, None, "{answer:?}");
        member_epoch = answer.member_epoch;
        owned = answer.assignment.unwrap_or(owned);
    }
    panic!("member {member_id} holds {owned:?} at epoch {member_epoch} after {HEARTBEATS_MAX} heartbeats");
}

/// The one member of `described` with id `member_id`.
fn member<'a>(described: &'a ConsumerGroupDescription, member_id: &str) -> &'a sluice_client::ConsumerGroupMember {
    let found = described.members.iter().find(|member| member.member_id == member_id);
    found.unwrap_or_else(|| panic!("no member {member_id} in {described:?}"))
}

#[tokio::test]
async fn a_consumer_group_describes_its_epochs_and_reconciliation() {
    let Some(address) = broker() else { return };
    let topic = name("kip848-topic");
    let group = name("kip848-group");
    let (id_a, id_b) = (name("kip848-member-a"), name("kip848-member-b"));
    let (mut a, mut b) = (Client::connect(&address).await.unwrap(), Client::connect(&address).await.unwrap());
    create_ready_topic(&mut a, &topic).await;
    let all = partitions(&topic, 0..PARTITION_COUNT);

    // A joins alone and is given every partition at once: the group is Stable at epoch e1.
    let joined_a = a.consumer_group_heartbeat(&group, &joining(&id_a, &topic)).await.unwrap();
    assert_eq!((joined_a.error.clone(), joined_a.member_id.as_deref()), (None, Some(id_a.as_str())), "{joined_a:?}");
    let e1 = joined_a.member_epoch;
    assert!(e1 > 0 && joined_a.assignment.as_ref() == Some(&all), "{joined_a:?}");
    let described = a.describe_consumer_group(&group).await.unwrap().expect("a consumer group");
    assert_eq!((described.state.as_str(), described.group_epoch, described.assignment_epoch), ("Stable", e1, e1));
    assert_eq!(described.assignor_name, "uniform", "the default server assignor");
    let only = member(&described, &id_a);
    assert_eq!((only.member_epoch, &only.assignment, &only.target_assignment), (e1, &all, &all));
    assert_eq!((only.client_id.as_str(), &only.subscribed_topic_names), (CLIENT_ID_DEFAULT, &vec![topic.clone()]));
    assert!(!only.client_host.is_empty() && only.instance_id.is_none(), "{only:?}");

    // B joins: the target splits the topic, but B gets nothing until A revokes (KIP-848).
    let joined_b = b.consumer_group_heartbeat(&group, &joining(&id_b, &topic)).await.unwrap();
    assert_eq!(joined_b.error, None, "{joined_b:?}");
    let e2 = joined_b.member_epoch;
    assert!(e2 > e1, "{joined_b:?}");
    let described = a.describe_consumer_group(&group).await.unwrap().expect("a consumer group");
    assert_eq!((described.state.as_str(), described.group_epoch, described.assignment_epoch), ("Reconciling", e2, e2));
    let (member_a, member_b) = (member(&described, &id_a), member(&described, &id_b));
    assert_eq!((member_a.member_epoch, &member_a.assignment), (e1, &all), "A has not heartbeated since");
    assert_eq!((member_b.member_epoch, member_b.assignment.is_empty()), (e2, true), "{member_b:?}");
    let (target_a, target_b) = (member_a.target_assignment.clone(), member_b.target_assignment.clone());
    let target_a_set: BTreeSet<i32> = target_a.get(&topic).cloned().unwrap_or_default();
    let target_b_set: BTreeSet<i32> = target_b.get(&topic).cloned().unwrap_or_default();
    assert!(!target_a_set.is_empty() && !target_b_set.is_empty(), "{described:?}");
    assert!(target_a_set.is_disjoint(&target_b_set), "{described:?}");
    assert_eq!(target_a_set.union(&target_b_set).copied().collect::<BTreeSet<_>>(), all[&topic]);

    // The unified describe prefers ConsumerGroupDescribe; DescribeGroups knows only classic
    // groups and answers Dead, as Kafka does; ListGroups v5 names the type.
    assert_eq!(a.describe_any_group(&group).await.unwrap(), DescribedGroup::Consumer(described.clone()));
    let classic_view = a.describe_group(&group).await.unwrap();
    assert_eq!((classic_view.state.as_str(), classic_view.members.len()), ("Dead", 0), "{classic_view:?}");
    let listed = a.list_groups().await.unwrap();
    let ours = listed.iter().find(|listed| listed.group_id == group).unwrap();
    assert_eq!((ours.protocol_type.as_str(), ours.group_type.as_deref()), ("consumer", Some("consumer")), "{ours:?}");
    assert_eq!(ours.state.as_deref(), Some("Reconciling"));

    // A revokes what moves to B, then B takes it: every member at e2, holding its target.
    let owned_a = reconcile(&mut a, &group, &id_a, (e1, all.clone()), e2, &target_a).await;
    let owned_b = reconcile(&mut b, &group, &id_b, (e2, NamedPartitions::new()), e2, &target_b).await;
    let DescribedGroup::Consumer(described) = b.describe_any_group(&group).await.unwrap() else {
        panic!("group {group} is a consumer group");
    };
    assert_eq!((described.state.as_str(), described.group_epoch, described.assignment_epoch), ("Stable", e2, e2));
    for (member_id, owned) in [(&id_a, &owned_a), (&id_b, &owned_b)] {
        let described = member(&described, member_id);
        assert_eq!((described.member_epoch, &described.assignment), (e2, owned), "{described:?}");
        assert_eq!(described.target_assignment, described.assignment, "{described:?}");
    }

    // Both leave: the group is Empty, still a consumer group, at a newer epoch.
    for (client, member_id) in [(&mut a, &id_a), (&mut b, &id_b)] {
        let leave = ConsumerHeartbeat { member_epoch: LEAVE_MEMBER_EPOCH, owned: None, ..owning(member_id, 0, &all) };
        let answer = client.consumer_group_heartbeat(&group, &leave).await.unwrap();
        assert_eq!((answer.error, answer.member_epoch), (None, LEAVE_MEMBER_EPOCH));
    }
    let described = a.describe_any_group(&group).await.unwrap();
    assert_eq!(
        (described.group_type(), described.state(), described.member_count()),
        (GroupType::Consumer, "Empty", 0)
    );
    let DescribedGroup::Consumer(empty) = &described else { unreachable!("checked above") };
    assert!(empty.group_epoch > e2, "{empty:?}");

    assert_eq!(a.delete_groups(&[&group]).await.unwrap(), [(group.clone(), Ok(()))]);
    a.delete_topics(&[&topic]).await.unwrap()[0].1.clone().unwrap();
}
