//! KIP-848's APIs in the version matrix: ConsumerGroupHeartbeat and ConsumerGroupDescribe at
//! every advertised version. A member joins at epoch 0 and is given every partition of the
//! data topic (by topic id), heartbeats steadily, is fenced for a wrong epoch, and leaves; a
//! described group shows its epochs, member, regex and assignments, and a missing or classic
//! group answers GROUP_ID_NOT_FOUND. From v1 a member may subscribe with a regex (KIP-848): it
//! is given the topics whose whole name matches, one created after it joined at its next
//! heartbeat, and a regex that does not compile is INVALID_REGULAR_EXPRESSION.

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
const INVALID_REGULAR_EXPRESSION: i16 = 128;
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
        regex_subscription(&mut client, version);
    }

    let leave = client.call(version, steady.with_member_epoch(-1).with_topic_partitions(None));
    assert_eq!((leave.error_code, leave.member_epoch), (NONE, -1), "leaving");
}

/// A v1 member subscribed by regex joins, gets the matching topic, then a matching topic created
/// after it joined; an invalid regex is refused with Kafka's code.
fn regex_subscription(client: &mut Client, version: i16) {
    let (prefix, group_id) = (format!("rx-v{version}"), format!("consumer-regex-v{version}"));
    let early_id = client.create_topic_ok(&format!("{prefix}-early"), 2, &[]);
    client.create_topic_ok(&format!("x{prefix}-early"), 1, &[]); // matches only in part
    let member_id = Uuid::from_u128(0x5e9e_0000 + version as u128).to_string();
    let by_regex = join_request(&group_id, &member_id, "unused")
        .with_subscribed_topic_names(None)
        .with_subscribed_topic_regex(Some(string(&format!("{prefix}-(early|late)"))));
    let joined = until_loaded(|| client.call(version, by_regex.clone()), |r| r.error_code);
    assert_eq!((joined.error_code, joined.error_message.as_ref().map(|m| m.to_string())), (NONE, None));
    let assignment = joined.assignment.as_ref().expect("a joined member learns its assignment");
    let [early] = &assignment.topic_partitions[..] else { panic!("one topic by regex: {assignment:?}") };
    assert_eq!((early.topic_id, early.partitions.clone()), (early_id, vec![0, 1]));

    let late_id = client.create_topic_ok(&format!("{prefix}-late"), 1, &[]);
    let owned = vec![TopicPartitions::default().with_topic_id(early_id).with_partitions(vec![0, 1])];
    let steady = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group(&group_id))
        .with_member_id(string(&member_id))
        .with_member_epoch(joined.member_epoch)
        .with_topic_partitions(Some(owned));
    let grown = client.call(version, steady.clone());
    assert_eq!(grown.error_code, NONE);
    assert!(grown.member_epoch > joined.member_epoch, "a new matching topic bumps the epoch");
    let assignment = grown.assignment.as_ref().expect("the new topic is assigned");
    let mut ids: Vec<Uuid> = assignment.topic_partitions.iter().map(|t| t.topic_id).collect();
    ids.sort();
    let mut expected = vec![early_id, late_id];
    expected.sort();
    assert_eq!(ids, expected, "{assignment:?}");

    let bad = join_request(&format!("consumer-regex-bad-v{version}"), &member_id, "unused")
        .with_subscribed_topic_names(None)
        .with_subscribed_topic_regex(Some(string(&format!("{prefix}-[a"))));
    let refused = until_loaded(|| client.call(version, bad.clone()), |r| r.error_code);
    assert_eq!(refused.error_code, INVALID_REGULAR_EXPRESSION);
    let message = refused.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
    assert!(message.contains("is not a valid regular expression"), "{message}");

    let leave = client.call(version, steady.with_member_epoch(-1).with_topic_partitions(None));
    assert_eq!(leave.error_code, NONE);
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
    let regex = member.subscribed_topic_regex.as_ref().map(|r| r.to_string());
    assert_eq!(regex.as_deref(), Some(""), "Kafka describes a member without a regex with \"\"");
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

    // A member subscribed by regex (v1 heartbeat) is described with it at every version.
    let regex_group = format!("consumer-describe-regex-v{version}");
    let member_id = Uuid::from_u128(0xde5c_0000 + version as u128).to_string();
    let by_regex =
        join_request(&regex_group, &member_id, data_topic).with_subscribed_topic_regex(Some(string("matri(x|ces)")));
    let joined = until_loaded(|| client.call(1, by_regex.clone()), |r| r.error_code);
    assert_eq!(joined.error_code, NONE);
    let response =
        client.call(version, ConsumerGroupDescribeRequest::default().with_group_ids(vec![group(&regex_group)]));
    let [described] = &response.groups[..] else { panic!("one group") };
    let [member] = &described.members[..] else { panic!("one member: {described:?}") };
    assert_eq!(member.subscribed_topic_regex.as_ref().map(|r| r.as_str()), Some("matri(x|ces)"));
    assert_eq!(member.subscribed_topic_names, vec![topic(data_topic)], "names and regex side by side");
}
