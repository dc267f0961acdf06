//! The consumer group APIs in the version matrix (`api_version_matrix.rs`): FindCoordinator,
//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, OffsetDelete,
//! ListGroups, DescribeGroups and DeleteGroups, each at every advertised version, through a
//! success path and an error path, so every response shape is encoded at every version.
//!
//! Each case uses its own group (named after the API and version). The setup steps a case
//! needs (joining, syncing, committing) use one fixed version of the other APIs. The first
//! request after `__consumer_offsets` is created may find its coordinator loading
//! (COORDINATOR_LOAD_IN_PROGRESS): `until_loaded` retries it for a bounded time.

mod consumer_protocol;

use crate::common::*;
use bytes::Bytes;
pub use consumer_protocol::{consumer_group_describe, consumer_group_heartbeat};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, SyncGroupRequest,
};
use std::time::{Duration, Instant};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const ILLEGAL_GENERATION: i16 = 22;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const INVALID_REQUEST: i16 = 42;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
/// How long a request may keep finding its coordinator loading.
const LOAD_WAIT: Duration = Duration::from_secs(20);
const SESSION_TIMEOUT_MS: i32 = 10_000;
/// Versions the setup steps use.
const JOIN_SETUP_VERSION: i16 = 5;
const SYNC_SETUP_VERSION: i16 = 3;
const COMMIT_SETUP_VERSION: i16 = 8;
const FETCH_SETUP_VERSION: i16 = 6;

fn group(name: &str) -> GroupId {
    GroupId(string(name))
}

/// Runs `call` until its error code is not COORDINATOR_LOAD_IN_PROGRESS.
fn until_loaded<T>(mut call: impl FnMut() -> T, code: impl Fn(&T) -> i16) -> T {
    let deadline = Instant::now() + LOAD_WAIT;
    loop {
        let answer = call();
        if code(&answer) != COORDINATOR_LOAD_IN_PROGRESS || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn join_request(group_id: &str, member_id: &str, version: i16) -> JoinGroupRequest {
    let protocol = JoinGroupRequestProtocol::default()
        .with_name(string("range"))
        .with_metadata(Bytes::from_static(b"\x00\x01\x00\x00\x00\x01\x00\x06matrix\x00\x00\x00\x00"));
    let mut request = JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(SESSION_TIMEOUT_MS)
        .with_member_id(string(member_id))
        .with_protocol_type(string("consumer"))
        .with_protocols(vec![protocol]);
    if version >= 1 {
        request.rebalance_timeout_ms = SESSION_TIMEOUT_MS;
    }
    request
}

/// Joins `group_id` as its only member at `version`: (member id, generation, response).
fn join(client: &mut Client, group_id: &str, version: i16) -> (String, i32, JoinGroupResponse) {
    let mut response = until_loaded(|| client.call(version, join_request(group_id, "", version)), |r| r.error_code);
    if version >= 4 {
        // KIP-394: a new member gets its id first, and joins again with it.
        assert_eq!(response.error_code, MEMBER_ID_REQUIRED, "JoinGroup v{version} without a member id");
        assert!(!response.member_id.is_empty(), "MEMBER_ID_REQUIRED carries the id");
        let member_id = response.member_id.to_string();
        response = client.call(version, join_request(group_id, &member_id, version));
    }
    assert_eq!(response.error_code, NONE, "JoinGroup v{version}");
    let member_id = response.member_id.to_string();
    assert_eq!(response.leader.as_str(), member_id, "the only member leads");
    assert_eq!(response.members.len(), 1, "the leader sees every member");
    assert_eq!(response.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    (member_id, response.generation_id, response)
}

fn sync_request(group_id: &str, member_id: &str, generation_id: i32, assignment: &'static [u8]) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(generation_id)
        .with_member_id(string(member_id))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(string(member_id))
                .with_assignment(Bytes::from_static(assignment)),
        ])
}

/// A stable group with one member: (member id, generation).
fn stable_group(client: &mut Client, group_id: &str) -> (String, i32) {
    let (member_id, generation, _) = join(client, group_id, JOIN_SETUP_VERSION);
    let synced = client.call(SYNC_SETUP_VERSION, sync_request(group_id, &member_id, generation, b"assigned"));
    assert_eq!(synced.error_code, NONE, "setup SyncGroup");
    (member_id, generation)
}

fn commit_request(group_id: &str, offsets: &[(&str, i32, i64)], version: i16) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (name, partition, offset) in offsets {
        let mut entry = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_metadata(Some(string("m")));
        if version >= 6 {
            entry.committed_leader_epoch = 0;
        }
        match topics.iter_mut().find(|t| t.name.0.as_str() == *name) {
            Some(t) => t.partitions.push(entry),
            None => {
                topics.push(OffsetCommitRequestTopic::default().with_name(topic(name)).with_partitions(vec![entry]))
            }
        }
    }
    // A standalone commit: no generation, no member (assign + commit).
    OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(string(""))
        .with_topics(topics)
}

/// Commits standalone and checks every partition was accepted.
fn commit(client: &mut Client, group_id: &str, offsets: &[(&str, i32, i64)]) {
    let request = commit_request(group_id, offsets, COMMIT_SETUP_VERSION);
    let response = until_loaded(
        || client.call(COMMIT_SETUP_VERSION, request.clone()),
        |r| r.topics.first().and_then(|t| t.partitions.first()).map_or(NONE, |p| p.error_code),
    );
    for t in &response.topics {
        for p in &t.partitions {
            assert_eq!(p.error_code, NONE, "setup commit of {}-{}", t.name.0.as_str(), p.partition_index);
        }
    }
}

/// Committed offsets of `group_id` for `partitions` of `topic_name` (OffsetFetch v6).
fn committed(client: &mut Client, group_id: &str, topic_name: &str, partitions: &[i32]) -> Vec<i64> {
    let request = OffsetFetchRequest::default().with_group_id(group(group_id)).with_topics(Some(vec![
        OffsetFetchRequestTopic::default().with_name(topic(topic_name)).with_partition_indexes(partitions.to_vec()),
    ]));
    let response = until_loaded(|| client.call(FETCH_SETUP_VERSION, request.clone()), |r| r.error_code);
    assert_eq!(response.error_code, NONE);
    response.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.committed_offset)).collect()
}

/// Creates `__consumer_offsets`, as a client's first FindCoordinator does (group requests
/// before it answer NOT_COORDINATOR, as Kafka's do).
pub fn prepare(broker: &TestBroker) {
    let response = broker.client().call(3, FindCoordinatorRequest::default().with_key(string("prepare")));
    assert_eq!(response.error_code, NONE, "FindCoordinator creates __consumer_offsets");
}

pub fn find_coordinator(broker: &TestBroker, node_id: i32, version: i16) {
    let mut client = broker.client();
    let mut request = FindCoordinatorRequest::default();
    if version >= 4 {
        request.coordinator_keys = vec![string("find-a"), string("find-b")];
        let response = client.call(version, request);
        assert_eq!(response.coordinators.len(), 2);
        for c in &response.coordinators {
            assert_eq!((c.error_code, c.node_id.0, c.port), (NONE, node_id, i32::from(broker.addr().port())));
        }
    } else {
        request.key = string("find-a");
        let response = client.call(version, request);
        assert_eq!((response.error_code, response.node_id.0), (NONE, node_id));
        assert_eq!(response.port, i32::from(broker.addr().port()));
    }
    if version >= 1 {
        // Key type 1 (transactions) is not served yet.
        let mut transactional = FindCoordinatorRequest::default().with_key_type(1);
        if version >= 4 {
            transactional.coordinator_keys = vec![string("tx")];
            let response = client.call(version, transactional);
            assert_eq!(response.coordinators[0].error_code, INVALID_REQUEST);
        } else {
            transactional.key = string("tx");
            let response = client.call(version, transactional);
            assert_eq!(response.error_code, INVALID_REQUEST);
            assert!(response.error_message.is_some());
        }
    }
}

pub fn join_group(broker: &TestBroker, version: i16) {
    let mut client = broker.client();
    let group_id = format!("join-v{version}");
    let (_, generation, response) = join(&mut client, &group_id, version);
    assert_eq!(generation, 1);
    if version >= 7 {
        assert_eq!(response.protocol_type.as_ref().map(|p| p.as_str()), Some("consumer"));
    }
    // A session timeout below group.min.session.timeout.ms.
    let invalid = join_request(&group_id, "", version).with_session_timeout_ms(1);
    let invalid = if version >= 1 { invalid.with_rebalance_timeout_ms(1) } else { invalid };
    let refused = client.call(version, invalid);
    assert_eq!(refused.error_code, INVALID_SESSION_TIMEOUT);
}

pub fn sync_group(broker: &TestBroker, version: i16) {
    let mut client = broker.client();
    let group_id = format!("sync-v{version}");
    let (member_id, generation, _) = join(&mut client, &group_id, JOIN_SETUP_VERSION);
    let mut request = sync_request(&group_id, &member_id, generation, b"the assignment");
    if version >= 5 {
        request.protocol_type = Some(string("consumer"));
        request.protocol_name = Some(string("range"));
    }
    let response = client.call(version, request);
    assert_eq!(response.error_code, NONE);
    assert_eq!(&response.assignment[..], b"the assignment");
    if version >= 5 {
        assert_eq!(response.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    }
    let stale = client.call(version, sync_request(&group_id, &member_id, generation + 7, b"x"));
    assert_eq!(stale.error_code, ILLEGAL_GENERATION);
}

pub fn heartbeat(broker: &TestBroker, version: i16) {
    let mut client = broker.client();
    let group_id = format!("heartbeat-v{version}");
    let (member_id, generation) = stable_group(&mut client, &group_id);
    let beat = |member: &str| {
        HeartbeatRequest::default()
            .with_group_id(group(&group_id))
            .with_generation_id(generation)
            .with_member_id(string(member))
    };
    assert_eq!(client.call(version, beat(&member_id)).error_code, NONE);
    assert_eq!(client.call(version, beat("not-a-member")).error_code, UNKNOWN_MEMBER_ID);
}

pub fn leave_group(broker: &TestBroker, version: i16) {
    let mut client = broker.client();
    let group_id = format!("leave-v{version}");
    let (member_id, _) = stable_group(&mut client, &group_id);
    let mut request = LeaveGroupRequest::default().with_group_id(group(&group_id));
    if version >= 3 {
        request.members = vec![
            MemberIdentity::default().with_member_id(string(&member_id)),
            MemberIdentity::default().with_member_id(string("not-a-member")),
        ];
        let response = client.call(version, request);
        assert_eq!(response.error_code, NONE);
        let codes: Vec<i16> = response.members.iter().map(|m| m.error_code).collect();
        assert_eq!(codes, vec![NONE, UNKNOWN_MEMBER_ID]);
    } else {
        request.member_id = string(&member_id);
        assert_eq!(client.call(version, request).error_code, NONE);
        let again = LeaveGroupRequest::default().with_group_id(group(&group_id)).with_member_id(string(&member_id));
        assert_eq!(client.call(version, again).error_code, UNKNOWN_MEMBER_ID);
    }
}

pub fn offset_commit(broker: &TestBroker, data_topic: &str, version: i16) {
    let mut client = broker.client();
    let group_id = format!("commit-v{version}");
    let offsets = [(data_topic, 0, 2), (data_topic, 1, 3), (MISSING_TOPIC, 0, 1)];
    let request = commit_request(&group_id, &offsets, version);
    let response = until_loaded(
        || client.call(version, request.clone()),
        |r| r.topics.first().and_then(|t| t.partitions.first()).map_or(NONE, |p| p.error_code),
    );
    let codes: Vec<(String, i32, i16)> = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index, p.error_code)))
        .collect();
    let expected = vec![
        (data_topic.to_string(), 0, NONE),
        (data_topic.to_string(), 1, NONE),
        (MISSING_TOPIC.to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
    ];
    assert_eq!(codes, expected);
    assert_eq!(committed(&mut client, &group_id, data_topic, &[0, 1, 2]), vec![2, 3, -1]);
}

pub fn offset_fetch(broker: &TestBroker, data_topic: &str, version: i16) {
    let mut client = broker.client();
    let group_id = format!("fetch-v{version}");
    commit(&mut client, &group_id, &[(data_topic, 0, 2), (data_topic, 2, 1)]);
    let offsets = |partitions: Vec<(i32, i64)>| partitions;
    if version >= 8 {
        let wanted = OffsetFetchRequestGroup::default().with_group_id(group(&group_id)).with_topics(Some(vec![
            OffsetFetchRequestTopics::default().with_name(topic(data_topic)).with_partition_indexes(vec![0, 1, 2]),
        ]));
        let everything = OffsetFetchRequestGroup::default().with_group_id(group(&group_id)).with_topics(None);
        let unknown = OffsetFetchRequestGroup::default().with_group_id(group("never-committed")).with_topics(None);
        let request = OffsetFetchRequest::default().with_groups(vec![wanted, everything, unknown]);
        let response = client.call(version, request);
        assert_eq!(response.groups.len(), 3);
        let of = |i: usize| -> Vec<(i32, i64)> {
            let g = &response.groups[i];
            assert_eq!(g.error_code, NONE);
            g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.committed_offset))).collect()
        };
        assert_eq!(of(0), offsets(vec![(0, 2), (1, -1), (2, 1)]));
        assert_eq!(of(1), offsets(vec![(0, 2), (2, 1)]));
        assert_eq!(of(2), offsets(vec![]));
        return;
    }
    let named = OffsetFetchRequest::default().with_group_id(group(&group_id)).with_topics(Some(vec![
        OffsetFetchRequestTopic::default().with_name(topic(data_topic)).with_partition_indexes(vec![0, 1, 2]),
    ]));
    let named = if version >= 7 { named.with_require_stable(true) } else { named };
    let response = client.call(version, named);
    let got: Vec<(i32, i64, i16)> = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.committed_offset, p.error_code)))
        .collect();
    assert_eq!(got, vec![(0, 2, NONE), (1, -1, NONE), (2, 1, NONE)]);
    if version >= 2 {
        // v2+: a null topic list asks for every committed partition.
        let all = client.call(version, OffsetFetchRequest::default().with_group_id(group(&group_id)).with_topics(None));
        assert_eq!(all.error_code, NONE);
        let got: Vec<(i32, i64)> = all
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.committed_offset)))
            .collect();
        assert_eq!(got, vec![(0, 2), (2, 1)]);
    }
}

pub fn offset_delete(broker: &TestBroker, data_topic: &str, version: i16) {
    let mut client = broker.client();
    let group_id = format!("offset-delete-v{version}");
    commit(&mut client, &group_id, &[(data_topic, 0, 2), (data_topic, 1, 3)]);
    let request = |group_id: &str| {
        OffsetDeleteRequest::default().with_group_id(group(group_id)).with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(topic(data_topic))
                .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(0)]),
        ])
    };
    let response = client.call(version, request(&group_id));
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.topics[0].partitions[0].error_code, NONE);
    assert_eq!(committed(&mut client, &group_id, data_topic, &[0, 1]), vec![-1, 3]);
    let unknown = until_loaded(|| client.call(version, request("never-committed")), |r| r.error_code);
    assert_eq!(unknown.error_code, GROUP_ID_NOT_FOUND);
}

pub fn list_groups(broker: &TestBroker, data_topic: &str, version: i16) {
    let mut client = broker.client();
    let group_id = format!("list-v{version}");
    commit(&mut client, &group_id, &[(data_topic, 0, 1)]);
    let mut request = ListGroupsRequest::default();
    if version >= 4 {
        request.states_filter = vec![string("Empty")];
    }
    let response = until_loaded(|| client.call(version, request.clone()), |r| r.error_code);
    assert_eq!(response.error_code, NONE);
    let listed = response.groups.iter().find(|g| g.group_id.0.as_str() == group_id).expect("the group is listed");
    if version >= 4 {
        assert_eq!(listed.group_state.as_str(), "Empty");
        assert!(response.groups.iter().all(|g| g.group_state.as_str() == "Empty"), "the state filter applies");
    }
    if version >= 5 {
        // KIP-848: the group type, and a filter by it (case-insensitive).
        assert_eq!(listed.group_type.as_str(), "classic");
        let consumer_group = format!("list-consumer-v{version}");
        consumer_protocol::join_alone(&mut client, &consumer_group, data_topic);
        let request = ListGroupsRequest::default().with_types_filter(vec![string("Consumer")]);
        let response = client.call(version, request);
        assert_eq!(response.error_code, NONE);
        let ids: Vec<&str> = response.groups.iter().map(|g| g.group_id.0.as_str()).collect();
        assert!(ids.contains(&consumer_group.as_str()) && !ids.contains(&group_id.as_str()), "typed: {ids:?}");
        assert!(response.groups.iter().all(|g| g.group_type.as_str() == "consumer"), "the type filter applies");
    }
}

pub fn describe_groups(broker: &TestBroker, version: i16) {
    let mut client = broker.client();
    let group_id = format!("describe-v{version}");
    let (member_id, _) = stable_group(&mut client, &group_id);
    // KIP-848: DescribeGroups describes classic groups only; a consumer group reads as Dead.
    let consumer_group = format!("describe-consumer-v{version}");
    consumer_protocol::join_alone(&mut client, &consumer_group, "matrix");
    let mut request = DescribeGroupsRequest::default().with_groups(vec![
        group(&group_id),
        group("never-seen"),
        group(""),
        group(&consumer_group),
    ]);
    if version >= 3 {
        request.include_authorized_operations = false;
    }
    let response = client.call(version, request);
    let [live, dead, empty, consumer] = &response.groups[..] else { panic!("four groups described") };
    assert_eq!((consumer.error_code, consumer.group_state.as_str()), (NONE, "Dead"));
    assert!(consumer.members.is_empty());
    assert_eq!((live.error_code, live.group_state.as_str()), (NONE, "Stable"));
    assert_eq!((live.protocol_type.as_str(), live.protocol_data.as_str()), ("consumer", "range"));
    assert_eq!(live.members.len(), 1);
    assert_eq!(live.members[0].member_id.as_str(), member_id);
    assert_eq!(live.members[0].client_id.as_str(), "sluice-broker-tests");
    assert_eq!(&live.members[0].member_assignment[..], b"assigned");
    assert_eq!((dead.error_code, dead.group_state.as_str()), (NONE, "Dead"));
    assert_eq!(empty.error_code, INVALID_GROUP_ID);
}

pub fn delete_groups(broker: &TestBroker, data_topic: &str, version: i16) {
    let mut client = broker.client();
    let group_id = format!("delete-v{version}");
    commit(&mut client, &group_id, &[(data_topic, 0, 1)]);
    let request = DeleteGroupsRequest::default().with_groups_names(vec![group(&group_id), group("never-seen")]);
    let response = client.call(version, request);
    let codes: Vec<(String, i16)> = response.results.iter().map(|r| (r.group_id.0.to_string(), r.error_code)).collect();
    assert_eq!(codes, vec![(group_id.clone(), NONE), ("never-seen".to_string(), GROUP_ID_NOT_FOUND)]);
    assert_eq!(committed(&mut client, &group_id, data_topic, &[0]), vec![-1]);
}
