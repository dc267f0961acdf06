//! Consumer group membership in the classic protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup and a member's OffsetCommit), plus the consumer protocol's subscription and
//! assignment bytes and Kafka's range assignor, so a caller can run a group member loop.
//!
//! Why here: the simulator's group workload drives real brokers through these calls, and its
//! checker needs to know exactly what each commit did. So [`Client::commit_as_member`] is sent
//! **once** to the coordinator found by FindCoordinator: its error comes back as it is, never
//! hidden behind a retry (a commit retried after a timeout could land twice, in an unknown
//! order; the caller decides, and records, what it retries). The membership calls retry while
//! the coordinator moves or loads, as Kafka's consumer does: the checker does not judge them.
//!
//! The member loop itself (when to heartbeat, when to rejoin) is the caller's: this client
//! keeps no background task (see the crate docs).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    OffsetCommitRequest, SyncGroupRequest, SyncGroupResponse, TopicName,
    join_group_request::JoinGroupRequestProtocol,
    leave_group_request::MemberIdentity,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    sync_group_request::SyncGroupRequestAssignment,
};
use sluice_protocol::error_code::MEMBER_ID_REQUIRED;
use sluice_types::{Offset, PartitionId};

use crate::client::{Client, Target};
use crate::error::{ClientError, KafkaError, Result};
use crate::groups::{CommitOutcome, group_id, kafka_error, str_bytes};

/// Kafka's consumer protocol type.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
/// The range assignor's protocol name (Kafka's `RangeAssignor`).
pub const RANGE_ASSIGNOR: &str = "range";
/// The consumer protocol version this client writes (version 0: topics and user data).
const CONSUMER_PROTOCOL_VERSION: i16 = 0;
/// Kafka protocol: LeaveGroup v3+ leaves a batch of members (KIP-345).
const LEAVE_GROUP_BATCH_VERSION_MIN: i16 = 3;
/// Topics one subscription may list.
const SUBSCRIBED_TOPICS_MAX: usize = 100_000;

/// How a member joins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinOptions {
    /// Kafka's `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// Kafka's `max.poll.interval.ms`: how long the coordinator waits for members to rejoin.
    pub rebalance_timeout_ms: i32,
    /// KIP-345 static membership.
    pub group_instance_id: Option<String>,
}

/// One member as the leader sees it in the JoinGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// The topics its consumer protocol subscription lists (empty if it is not one).
    pub topics: Vec<String>,
}

/// The JoinGroup answer of a generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedGroup {
    pub generation_id: i32,
    pub member_id: String,
    pub leader_id: String,
    pub protocol_name: Option<String>,
    /// Every member, for the leader only (followers get none).
    pub members: Vec<JoinedMember>,
}

impl JoinedGroup {
    pub fn is_leader(&self) -> bool {
        self.leader_id == self.member_id
    }
}

/// A member's assignment: partitions by topic.
pub type Assignment = Vec<(String, Vec<PartitionId>)>;

/// The consumer protocol subscription (version 0): int16 version, int32 topic count, int16-length
/// topic names, then null user data (int32 -1). Kafka: `ConsumerProtocolSubscription`.
pub fn encode_consumer_subscription(topics: &[String]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(CONSUMER_PROTOCOL_VERSION);
    put_strings(&mut out, topics.iter().map(String::as_str));
    out.put_i32(-1);
    out.freeze()
}

/// The consumer protocol assignment (version 0): int16 version, int32 topic count, for each an
/// int16-length name, int32 partition count and int32 partitions, then null user data.
/// Kafka: `ConsumerProtocolAssignment`. [`crate::decode_consumer_assignment`] reads it.
pub fn encode_consumer_assignment(assignment: &[(String, Vec<PartitionId>)]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(CONSUMER_PROTOCOL_VERSION);
    out.put_i32(i32::try_from(assignment.len()).expect("topic count fits i32"));
    for (topic, partitions) in assignment {
        put_string(&mut out, topic);
        out.put_i32(i32::try_from(partitions.len()).expect("partition count fits i32"));
        for partition in partitions {
            out.put_i32(partition.0);
        }
    }
    out.put_i32(-1);
    out.freeze()
}

fn put_string(out: &mut BytesMut, value: &str) {
    out.put_i16(i16::try_from(value.len()).expect("topic names are at most 249 bytes"));
    out.put_slice(value.as_bytes());
}

fn put_strings<'a>(out: &mut BytesMut, values: impl ExactSizeIterator<Item = &'a str>) {
    out.put_i32(i32::try_from(values.len()).expect("count fits i32"));
    for value in values {
        put_string(out, value);
    }
}

/// The topics of a consumer protocol subscription, or `None` if the bytes are not one.
pub fn decode_consumer_subscription(bytes: &[u8]) -> Option<Vec<String>> {
    let mut reader = crate::groups::Reader::new(bytes);
    let _version = reader.i16("version").ok()?;
    let count = reader.count("topic count", SUBSCRIBED_TOPICS_MAX).ok()?;
    let mut topics = Vec::with_capacity(count.min(bytes.len()));
    for _ in 0..count {
        let length = usize::try_from(reader.i16("topic name length").ok()?).ok()?;
        topics.push(std::str::from_utf8(reader.take(length, "topic name").ok()?).ok()?.to_owned());
    }
    Some(topics)
}

/// Kafka's `RangeAssignor`: per topic, the subscribed members in member id order take
/// consecutive ranges, the first `partitions % members` one partition more. Every member gets
/// an entry, possibly empty. `partition_counts` lacks a topic nobody can be assigned.
pub fn range_assignment(
    members: &[(String, Vec<String>)],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut assignments: BTreeMap<String, Assignment> =
        members.iter().map(|(member, _)| (member.clone(), Vec::new())).collect();
    let mut subscribers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (member, topics) in members {
        for topic in topics {
            subscribers.entry(topic.as_str()).or_default().push(member.as_str());
        }
    }
    for (topic, mut consumers) in subscribers {
        let Some(&partitions) = partition_counts.get(topic) else { continue };
        consumers.sort_unstable();
        consumers.dedup();
        let consumer_count = i32::try_from(consumers.len()).expect("members fit i32");
        let (per_consumer, extra) = (partitions / consumer_count, partitions % consumer_count);
        let mut next = 0;
        for (index, consumer) in consumers.iter().enumerate() {
            let index = i32::try_from(index).expect("members fit i32");
            let count = per_consumer + i32::from(index < extra);
            if count > 0 {
                let range = (next..next + count).map(PartitionId).collect();
                assignments.get_mut(*consumer).expect("every member has an entry").push((topic.to_owned(), range));
            }
            next += count;
        }
        assert_eq!(next, partitions, "the range assignor hands out every partition of {topic} once");
    }
    assignments
}

impl Client {
    /// Sends one group request to `group`'s coordinator (found afresh) and returns the answer.
    async fn coordinator_once<R: kafka_protocol::protocol::Request>(
        &mut self,
        group: &str,
        broker_wait: Duration,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(i16, R::Response)> {
        let coordinator = self.find_coordinator(group).await?;
        self.call(Target::Node(coordinator.node_id), broker_wait, build).await
    }

    /// JoinGroup with a consumer protocol subscription to `topics` and the range assignor. An
    /// empty `member_id` joins as a new member; the coordinator then answers MEMBER_ID_REQUIRED
    /// with an id (KIP-394) and this joins once more with it.
    pub async fn join_group(
        &mut self,
        group: &str,
        member_id: &str,
        topics: &[String],
        options: &JoinOptions,
    ) -> Result<JoinedGroup> {
        let metadata = encode_consumer_subscription(topics);
        let broker_wait =
            Duration::from_millis(u64::try_from(options.rebalance_timeout_ms.max(0)).expect("non-negative"));
        let mut member_id = member_id.to_owned();
        // At most two rounds: the second carries the id MEMBER_ID_REQUIRED gave.
        for _ in 0..2 {
            let build = |_version: i16| {
                JoinGroupRequest::default()
                    .with_group_id(group_id(group))
                    .with_session_timeout_ms(options.session_timeout_ms)
                    .with_rebalance_timeout_ms(options.rebalance_timeout_ms)
                    .with_member_id(str_bytes(&member_id))
                    .with_group_instance_id(options.group_instance_id.as_deref().map(str_bytes))
                    .with_protocol_type(str_bytes(CONSUMER_PROTOCOL_TYPE))
                    .with_protocols(vec![
                        JoinGroupRequestProtocol::default()
                            .with_name(str_bytes(RANGE_ASSIGNOR))
                            .with_metadata(metadata.clone()),
                    ])
            };
            let code = |_version, response: &JoinGroupResponse| Some(response.error_code);
            let (_, response) = self.coordinator_call_waiting(group, broker_wait, build, code).await?;
            if response.error_code == MEMBER_ID_REQUIRED && member_id.is_empty() {
                member_id = response.member_id.to_string();
                continue;
            }
            kafka_error(format!("JoinGroup for group {group}"), response.error_code, None)?;
            let members = response
                .members
                .iter()
                .map(|member| JoinedMember {
                    member_id: member.member_id.to_string(),
                    group_instance_id: member.group_instance_id.as_ref().map(ToString::to_string),
                    topics: decode_consumer_subscription(&member.metadata).unwrap_or_default(),
                })
                .collect();
            return Ok(JoinedGroup {
                generation_id: response.generation_id,
                member_id: response.member_id.to_string(),
                leader_id: response.leader.to_string(),
                protocol_name: response.protocol_name.as_ref().map(ToString::to_string),
                members,
            });
        }
        let error = KafkaError { code: MEMBER_ID_REQUIRED, message: None };
        Err(ClientError::Kafka { context: format!("JoinGroup for group {group}: asked twice for a member id"), error })
    }

    /// SyncGroup: the leader sends every member's assignment, the others none. Returns this
    /// member's assignment.
    pub async fn sync_group(
        &mut self,
        group: &str,
        joined: &JoinedGroup,
        group_instance_id: Option<&str>,
        assignments: &BTreeMap<String, Assignment>,
    ) -> Result<Assignment> {
        let encoded: Vec<SyncGroupRequestAssignment> = assignments
            .iter()
            .map(|(member, assignment)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(str_bytes(member))
                    .with_assignment(encode_consumer_assignment(assignment))
            })
            .collect();
        let build = |_version| {
            SyncGroupRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id(joined.generation_id)
                .with_member_id(str_bytes(&joined.member_id))
                .with_group_instance_id(group_instance_id.map(str_bytes))
                .with_protocol_type(Some(str_bytes(CONSUMER_PROTOCOL_TYPE)))
                .with_protocol_name(joined.protocol_name.as_deref().map(str_bytes))
                .with_assignments(encoded.clone())
        };
        let code = |_version, response: &SyncGroupResponse| Some(response.error_code);
        let (_, response) = self.coordinator_call_waiting(group, Duration::ZERO, build, code).await?;
        kafka_error(format!("SyncGroup for group {group}"), response.error_code, None)?;
        if response.assignment.is_empty() {
            return Ok(Vec::new());
        }
        let decoded = crate::decode_consumer_assignment(&response.assignment).map_err(|error| ClientError::Kafka {
            context: format!("SyncGroup for group {group}: {error}"),
            error: KafkaError { code: sluice_protocol::error_code::INVALID_REQUEST, message: None },
        })?;
        Ok(decoded.partitions)
    }

    /// Heartbeat: `Ok` while the generation stands; REBALANCE_IN_PROGRESS asks the member to
    /// rejoin, ILLEGAL_GENERATION and UNKNOWN_MEMBER_ID say it was fenced.
    pub async fn heartbeat(&mut self, group: &str, generation_id: i32, member_id: &str) -> Result<()> {
        let build = |_version| {
            HeartbeatRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id(generation_id)
                .with_member_id(str_bytes(member_id))
        };
        let code = |_version, response: &HeartbeatResponse| Some(response.error_code);
        let (_, response) = self.coordinator_call_waiting(group, Duration::ZERO, build, code).await?;
        kafka_error(format!("Heartbeat for group {group}"), response.error_code, None)
    }

    /// LeaveGroup of one member (v3+ as a batch of one, KIP-345).
    pub async fn leave_group(&mut self, group: &str, member_id: &str) -> Result<()> {
        let build = |version| {
            let request = LeaveGroupRequest::default().with_group_id(group_id(group));
            if version >= LEAVE_GROUP_BATCH_VERSION_MIN {
                request.with_members(vec![MemberIdentity::default().with_member_id(str_bytes(member_id))])
            } else {
                request.with_member_id(str_bytes(member_id))
            }
        };
        let code = |_version, response: &LeaveGroupResponse| Some(response.error_code);
        let (_, response) = self.coordinator_call_waiting(group, Duration::ZERO, build, code).await?;
        let member_codes = response.members.iter().map(|member| member.error_code);
        let code = std::iter::once(response.error_code).chain(member_codes).find(|code| *code != 0).unwrap_or(0);
        kafka_error(format!("LeaveGroup for group {group}"), code, None)
    }

    /// OffsetCommit by a member of `generation_id`: each entry is (topic, partition, offset,
    /// metadata). Sent once; one outcome per partition, sorted. A whole-request failure (a
    /// timeout, a lost connection) is an `Err`, and then the commit may or may not have landed.
    pub async fn commit_as_member(
        &mut self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        offsets: &[(String, PartitionId, Offset, String)],
    ) -> Result<Vec<CommitOutcome>> {
        let mut partitions: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (topic, partition, offset, metadata) in offsets {
            assert!(offset.0 >= 0, "commit of offset {offset} for {topic}-{partition}");
            let committed = OffsetCommitRequestPartition::default()
                .with_partition_index(partition.0)
                .with_committed_offset(offset.0)
                .with_committed_metadata(Some(str_bytes(metadata)));
            partitions.entry(topic.as_str()).or_default().push(committed);
        }
        let topics: Vec<OffsetCommitRequestTopic> = partitions
            .into_iter()
            .map(|(name, partitions)| {
                OffsetCommitRequestTopic::default().with_name(TopicName(str_bytes(name))).with_partitions(partitions)
            })
            .collect();
        let build = |_version| {
            OffsetCommitRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id_or_member_epoch(generation_id)
                .with_member_id(str_bytes(member_id))
                .with_topics(topics)
        };
        let (_, response) = self.coordinator_once(group, Duration::ZERO, build).await?;
        let mut outcomes: Vec<CommitOutcome> = response
            .topics
            .iter()
            .flat_map(|topic| {
                topic.partitions.iter().map(|answer| CommitOutcome {
                    topic: topic.name.0.to_string(),
                    partition: PartitionId(answer.partition_index),
                    error: KafkaError::from_code(answer.error_code, None),
                })
            })
            .collect();
        outcomes.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        let mut asked: Vec<(String, PartitionId)> = offsets.iter().map(|(t, p, _, _)| (t.clone(), *p)).collect();
        asked.sort();
        asked.dedup();
        let answered: Vec<(String, PartitionId)> = outcomes.iter().map(|o| (o.topic.clone(), o.partition)).collect();
        if answered != asked {
            let error = KafkaError { code: sluice_protocol::error_code::INVALID_REQUEST, message: None };
            let context = format!("OffsetCommit for group {group}: the answer does not name every partition asked");
            return Err(ClientError::Kafka { context, error });
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn subscription_round_trips() {
        let topics = names(&["a", "orders"]);
        let bytes = encode_consumer_subscription(&topics);
        assert_eq!(decode_consumer_subscription(&bytes), Some(topics));
        assert_eq!(decode_consumer_subscription(&bytes[..5]), None);
        // The broker's reader agrees (sluice-group reads the same bytes).
        assert_eq!(&bytes[..2], &[0, 0]);
    }

    #[test]
    fn assignment_round_trips_through_the_decoder() {
        let assignment = vec![("t".to_owned(), vec![PartitionId(0), PartitionId(3)])];
        let decoded = crate::decode_consumer_assignment(&encode_consumer_assignment(&assignment)).expect("decodes");
        assert_eq!(decoded.partitions, assignment);
        assert_eq!(decoded.user_data, None);
    }

    #[test]
    fn the_range_assignor_splits_as_kafka_does() {
        // Kafka's RangeAssignor javadoc: two consumers, two topics of three partitions each:
        // C0 gets t0p0, t0p1, t1p0, t1p1 and C1 gets t0p2, t1p2.
        let members = vec![("C1".to_owned(), names(&["t0", "t1"])), ("C0".to_owned(), names(&["t0", "t1"]))];
        let counts: BTreeMap<String, i32> = [("t0".to_owned(), 3), ("t1".to_owned(), 3)].into();
        let assigned = range_assignment(&members, &counts);
        let p = |ids: &[i32]| ids.iter().copied().map(PartitionId).collect::<Vec<_>>();
        assert_eq!(assigned["C0"], vec![("t0".to_owned(), p(&[0, 1])), ("t1".to_owned(), p(&[0, 1]))]);
        assert_eq!(assigned["C1"], vec![("t0".to_owned(), p(&[2])), ("t1".to_owned(), p(&[2]))]);
    }

    #[test]
    fn more_members_than_partitions_leaves_some_empty() {
        let members: Vec<(String, Vec<String>)> =
            ["a", "b", "c"].iter().map(|m| ((*m).to_owned(), names(&["t"]))).collect();
        let counts: BTreeMap<String, i32> = [("t".to_owned(), 2)].into();
        let assigned = range_assignment(&members, &counts);
        assert_eq!(assigned.len(), 3);
        assert_eq!(assigned["a"], vec![("t".to_owned(), vec![PartitionId(0)])]);
        assert_eq!(assigned["b"], vec![("t".to_owned(), vec![PartitionId(1)])]);
        assert!(assigned["c"].is_empty());
        // A topic nobody knows the size of is left unassigned.
        let unknown = range_assignment(&[("a".to_owned(), names(&["x"]))], &counts);
        assert!(unknown["a"].is_empty());
    }
}
