//! KIP-848's APIs in the version matrix: ConsumerGroupHeartbeat and ConsumerGroupDescribe at
//! every advertised version. A member joins at epoch 0 and is given every partition of the
//! data topic (by topic id), heartbeats steadily, is fenced for a wrong epoch, and leaves; a
//! described group shows its epochs, member and assignments, and a missing or classic group
//! answers GROUP_ID_NOT_FOUND.

use super::{group, stable_group, until_loaded};
use crate::common::*;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};
use uuid::Uuid;

const NONE: i16 = 0;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const GROUP_ID_NOT_FOUND: i16 = 69;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const REBALANCE_TIMEOUT_MS: i32 = 10_000;
/// The broker's `group.consumer.heartbeat.interval.ms` default.
const HEARTBEAT_INTERVAL_MS: i32 = 5_000;

/// A joining heartbeat: v0 leaves the member id to the broker, v1 makes it (KIP-1082).
fn join_request(group_id: &str, member_id: &str, data_topic: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(string(member_id))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
        .with_subscribed_topic_names(Some(vec![topic(data_topic)]))
        .with_server_assignor(Some(string("uniform")))
        .with_topic_partitions(Some(vec![]))
}

fn member_id_for(version: i16) -> String {
    if version >= 1 { Uuid::from_u128(0x51ce_0000 + version as u128).to_string() } else { String::new() }
}

/// Joins `group_id` alone: the answer, which must carry every partition of `data_topic`.
fn join(
    client: &mut Client,
    group_id: &str,
    data_topic: &str,
    data_topic_id: Uuid,
    partitions: i32,
    version: i16,
) -> ConsumerGroupHeartbeatResponse {
    let member_id = member_id_for(version);
    let joined =
        until_loaded(|| client.call(version, join_request(group_id, &member_id, data_topic)), |r| r.error_code);
    assert_eq!((joined.error_code, joined.error_message.as_ref().map(|m| m.to_string())), (NONE, None));
    let given = joined.member_id.as_ref().expect("the member's id").to_string();
    assert!(!given.is_empty());
    if version >= 1 {
        assert_eq!(given, member_id, "a v1 member keeps the id it made");
    }
    assert!(joined.member_epoch >= 1, "joining bumps the group epoch: {}", joined.member_epoch);
    assert_eq!(joined.heartbeat_interval_ms, HEARTBEAT_INTERVAL_MS);
    let assignment = joined.assignment.as_ref().expect("a joined member learns its assignment");
    let [owned] = &assignment.topic_partitions[..] else { panic!("one topic assigned: {assignment:?}") };
    assert_eq!(owned.topic_id, data_topic_id);
    assert_eq!(owned.partitions, (0..partitions).collect::<Vec<_>>());
    joined
}

/// Joins `group_id` as its only member (v1), without checking the assignment.
pub fn join_alone(client: &mut Client, group_id: &str, data_topic: &str) {
    let joined =
        until_loaded(|| client.call(1, join_request(group_id, &member_id_for(1), data_topic)), |r| r.error_code);
    assert_eq!(joined.error_code, NONE, "joining {group_id}");
}

pub fn consumer_group_heartbeat(
    broker: &TestBroker,
    data_topic: &str,
    data_topic_id: Uuid,
    partitions: i32,
    version: i16,
) {
    let mut client = broker.client();
    let group_id = format!("consumer-heartbeat-v{version}");
    let joined = join(&mut client, &group_id, data_topic, data_topic_id, partitions, version);
    let member_id = joined.member_id.clone().expect("member id");
    let epoch = joined.member_epoch;
    let owned = vec![
        TopicPartitions::default().with_topic_id(data_topic_id).with_partitions((0..partitions).collect::<Vec<_>>()),
    ];
    let steady = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group(&group_id))
        .with_member_id(member_id.clone())
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(Some(owned));
    let answer = client.call(version, steady.clone());
    assert_eq!((answer.error_code, answer.member_epoch), (NONE, epoch), "a steady heartbeat");
    assert!(answer.assignment.is_none(), "an unchanged assignment is not sent again");

    let fenced = client.call(version, steady.clone().with_member_epoch(epoch + 5));
    assert_eq!(fenced.error_code, FENCED_MEMBER_EPOCH, "an epoch from the future");
    let unknown = client.call(version, steady.clone().with_member_id(string("not-a-member")));
    assert_eq!(unknown.error_code, UNKNOWN_MEMBER_ID);
    let assignor = client.call(
        version,
        join_request(&group_id, &member_id_for(version), data_topic).with_server_assignor(Some(string("sticky"))),
    );
    assert_eq!(assignor.error_code, UNSUPPORTED_ASSIGNOR);
    let empty_group = client.call(version, join_request("", &member_id_for(version), data_topic));
    assert_eq!(empty_group.error_code, INVALID_GROUP_ID);
    if version >= 1 {
        let no_id = client.call(version, join_request(&group_id, "", data_topic));
        assert_eq!(no_id.error_code, INVALID_REQUEST, "KIP-1082: v1 members make their id");
        let regex = join_request(&group_id, &member_id_for(version), data_topic)
            .with_subscribed_topic_names(None)
            .with_subscribed_topic_regex(Some(string("matr.*")));
        assert_eq!(client.call(version, regex).error_code, INVALID_REQUEST, "regex subscriptions");
    }

    let leave = client.call(version, steady.with_member_epoch(-1).with_topic_partitions(None));
    assert_eq!((leave.error_code, leave.member_epoch), (NONE, -1), "leaving");
}

pub fn consumer_group_describe(
    broker: &TestBroker,
    data_topic: &str,
    data_topic_id: Uuid,
    partitions: i32,
    version: i16,
) {
    let mut client = broker.client();
    let group_id = format!("consumer-describe-v{version}");
    let joined = join(&mut client, &group_id, data_topic, data_topic_id, partitions, 1);
    let classic = format!("consumer-describe-classic-v{version}");
    stable_group(&mut client, &classic);
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![
        group(&group_id),
        group("never-seen"),
        group(&classic),
        group(""),
    ]);
    let response = client.call(version, request);
    let [live, missing, classic, empty] = &response.groups[..] else { panic!("four groups described") };
    assert_eq!((live.error_code, live.group_state.as_str()), (NONE, "Stable"));
    assert_eq!((live.group_epoch, live.assignment_epoch), (joined.member_epoch, joined.member_epoch));
    assert_eq!(live.assignor_name.as_str(), "uniform");
    let [member] = &live.members[..] else { panic!("one member: {live:?}") };
    assert_eq!(Some(&member.member_id), joined.member_id.as_ref());
    assert_eq!(member.member_epoch, joined.member_epoch);
    assert_eq!(member.client_id.as_str(), "sluice-broker-tests");
    assert_eq!(member.subscribed_topic_names, vec![topic(data_topic)]);
    for assignment in [&member.assignment, &member.target_assignment] {
        let [owned] = &assignment.topic_partitions[..] else { panic!("one topic: {assignment:?}") };
        assert_eq!((owned.topic_id, owned.topic_name.0.as_str()), (data_topic_id, data_topic));
        assert_eq!(owned.partitions, (0..partitions).collect::<Vec<_>>());
    }
    if version >= 1 {
        assert_eq!(member.member_type, 1, "a consumer-protocol member");
    }
    assert_eq!(missing.error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(classic.error_code, GROUP_ID_NOT_FOUND, "a classic group is not a consumer group");
    assert_eq!(empty.error_code, INVALID_GROUP_ID);
}
