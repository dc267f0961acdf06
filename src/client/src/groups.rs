//! Consumer group administration, as Kafka's Admin client and `kafka-consumer-groups` do it:
//! FindCoordinator, ListGroups, DescribeGroups, OffsetFetch, OffsetCommit and DeleteGroups
//! (the offset reset plan built on them is in [`crate::seek`]).
//!
//! Routing: a group lives on one broker, its coordinator (the leader of the group's
//! `__consumer_offsets` partition). Every group request goes there, after FindCoordinator
//! (key_type 0, GROUP). A broker that is not (or not yet) the coordinator answers
//! NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS or COORDINATOR_NOT_AVAILABLE; the call then
//! finds the coordinator again and retries, at most [`COORDINATOR_ATTEMPTS_MAX`] times. The
//! coordinator is looked up afresh for every call: this client serves admin tools, where one
//! more round trip is cheaper than a cache that can go stale.
//!
//! Commits made here are standalone (generation -1, empty member id): Kafka accepts them only
//! while the group has no members, which is exactly the guard an offset reset needs.
//!
//! Members' assignments are decoded by a pure function ([`decode_consumer_assignment`]),
//! unit-tested here.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest, OffsetFetchResponse, TopicName,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics},
};
use kafka_protocol::protocol::{Request, StrBytes};
use sluice_protocol::error_code::{COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR};
use sluice_types::{NodeId, Offset, PartitionId};

use crate::client::{Client, Target};
use crate::error::{ClientError, KafkaError, Result};
use crate::metadata::BrokerMetadata;

/// How many times a group call is sent, at most, while the coordinator moves or loads.
pub const COORDINATOR_ATTEMPTS_MAX: u32 = 30;
/// The pause before finding the coordinator again (Kafka's `retry.backoff.ms` is 100 ms; a
/// coordinator loading `__consumer_offsets` takes longer, so 30 attempts span about 6 s).
pub const COORDINATOR_RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// Kafka protocol: FindCoordinator `key_type` GROUP.
const COORDINATOR_KEY_TYPE_GROUP: i8 = 0;
/// Kafka protocol: FindCoordinator v4+ batches `coordinator_keys` (KIP-699).
const FIND_COORDINATOR_BATCHED_VERSION_MIN: i16 = 4;
/// Kafka protocol: OffsetFetch v8+ carries a `groups` array (KIP-709).
const OFFSET_FETCH_GROUPS_VERSION_MIN: i16 = 8;
/// Kafka protocol: OffsetFetch v2+ asks for every partition with a null `topics` (v1 has no
/// null array: kafka-protocol would send one anyway, so v1 asks for no topic and then fails).
const OFFSET_FETCH_ALL_VERSION_MIN: i16 = 2;
/// Kafka protocol: ListGroups v4+ reports each group's state (KIP-518).
const LIST_GROUPS_STATE_VERSION_MIN: i16 = 4;
/// Kafka protocol: ListGroups v5+ reports each group's type (KIP-848).
const LIST_GROUPS_TYPE_VERSION_MIN: i16 = 5;
/// Topics one decoded assignment may list (bounds a corrupt count before allocating).
const ASSIGNED_TOPICS_MAX: usize = 100_000;
/// Partitions one decoded assignment may list per topic.
const ASSIGNED_PARTITIONS_MAX: usize = 1_000_000;

/// A group as ListGroups reports it. `state` needs ListGroups v4+, `group_type` v5+.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    /// `consumer` for Kafka consumers; empty for groups that only commit offsets.
    pub protocol_type: String,
    pub state: Option<String>,
    pub group_type: Option<String>,
}

/// A group as DescribeGroups reports it. An unknown group is `Dead` with no members, and so is
/// a consumer group (KIP-848): [`Client::describe_any_group`] describes both types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// Kafka's state name: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead.
    pub state: String,
    pub protocol_type: String,
    /// The chosen protocol (the assignor for consumers: `range`, `cooperative-sticky`).
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

/// One member of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    /// The static member's `group.instance.id` (KIP-345).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The member's assignment, raw as the leader sent it (empty during a rebalance).
    pub assignment_bytes: Bytes,
    /// The assignment decoded as Kafka's ConsumerProtocol; `None` when empty or not one.
    pub assignment: Option<ConsumerAssignment>,
}

/// Kafka's `ConsumerProtocolAssignment` (versions 0-3 share the layout):
///
/// ```text
///  int16 version | int32 topic count | per topic: int16 length, name bytes,
///                                      int32 partition count, int32 partitions...
///                | int32 user data length (-1: null) | user data bytes
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerAssignment {
    pub version: i16,
    /// Assigned partitions by topic, in the order the leader wrote them.
    pub partitions: Vec<(String, Vec<PartitionId>)>,
    pub user_data: Option<Bytes>,
}

/// Why assignment bytes are not a ConsumerProtocol assignment.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error("assignment ends inside its {0}")]
    Truncated(&'static str),
    #[error("assignment has a bad {field}: {value}")]
    BadCount { field: &'static str, value: i64 },
    #[error("assignment has a topic name that is not UTF-8")]
    TopicNotUtf8,
}

/// A group's committed offset of one partition. Invariant: `offset` is `None` when nothing is
/// committed (Kafka answers -1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: PartitionId,
    pub offset: Option<Offset>,
    pub leader_epoch: Option<i32>,
    pub metadata: Option<String>,
    pub error: Option<KafkaError>,
}

/// The outcome of committing one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitOutcome {
    pub topic: String,
    pub partition: PartitionId,
    pub error: Option<KafkaError>,
}

/// The outcome for one group of DeleteGroups.
pub type GroupOutcome = (String, std::result::Result<(), KafkaError>);

/// Decodes a member's assignment as Kafka's ConsumerProtocol. Bytes after the user data are
/// ignored: Kafka reads a newer version's assignment as its own newest (forward compatible).
pub fn decode_consumer_assignment(bytes: &[u8]) -> std::result::Result<ConsumerAssignment, AssignmentError> {
    let mut reader = Reader { rest: bytes };
    let version = reader.i16("version")?;
    let topic_count = reader.count("topic count", ASSIGNED_TOPICS_MAX)?;
    let mut partitions = Vec::with_capacity(topic_count.min(reader.rest.len()));
    for _ in 0..topic_count {
        let name_length = reader.i16("topic name length")?;
        let name_length = usize::try_from(name_length)
            .map_err(|_| AssignmentError::BadCount { field: "topic name length", value: i64::from(name_length) })?;
        let name = reader.take(name_length, "topic name")?;
        let name = std::str::from_utf8(name).map_err(|_| AssignmentError::TopicNotUtf8)?.to_owned();
        let partition_count = reader.count("partition count", ASSIGNED_PARTITIONS_MAX)?;
        let mut topic_partitions = Vec::with_capacity(partition_count.min(reader.rest.len() / 4));
        for _ in 0..partition_count {
            topic_partitions.push(PartitionId(reader.i32("partition")?));
        }
        partitions.push((name, topic_partitions));
    }
    let user_data_length = reader.i32("user data length")?;
    let user_data = match usize::try_from(user_data_length) {
        Ok(length) => Some(Bytes::copy_from_slice(reader.take(length, "user data")?)),
        Err(_) if user_data_length == -1 => None,
        Err(_) => return Err(AssignmentError::BadCount { field: "user data length", value: user_data_length.into() }),
    };
    Ok(ConsumerAssignment { version, partitions, user_data })
}

/// A bounds-checked big-endian cursor over assignment bytes.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(rest: &'a [u8]) -> Reader<'a> {
        Reader { rest }
    }

    pub(crate) fn take(&mut self, count: usize, field: &'static str) -> std::result::Result<&'a [u8], AssignmentError> {
        if self.rest.len() < count {
            return Err(AssignmentError::Truncated(field));
        }
        let (head, tail) = self.rest.split_at(count);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> std::result::Result<i16, AssignmentError> {
        Ok(i16::from_be_bytes(self.take(2, field)?.try_into().expect("2 bytes")))
    }

    fn i32(&mut self, field: &'static str) -> std::result::Result<i32, AssignmentError> {
        Ok(i32::from_be_bytes(self.take(4, field)?.try_into().expect("4 bytes")))
    }

    /// An int32 array count in `0..=max` (a null array, -1, is refused: Kafka never writes one).
    pub(crate) fn count(&mut self, field: &'static str, max: usize) -> std::result::Result<usize, AssignmentError> {
        let value = self.i32(field)?;
        match usize::try_from(value) {
            Ok(count) if count <= max => Ok(count),
            _ => Err(AssignmentError::BadCount { field, value: value.into() }),
        }
    }
}

pub(crate) fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

pub(crate) fn group_id(value: &str) -> GroupId {
    GroupId(str_bytes(value))
}

fn is_coordinator_error(code: i16) -> bool {
    matches!(code, NOT_COORDINATOR | COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE)
}

pub(crate) fn kafka_error(context: String, code: i16, message: Option<&str>) -> Result<()> {
    match KafkaError::from_code(code, message) {
        None => Ok(()),
        Some(error) => Err(ClientError::Kafka { context, error }),
    }
}

/// Requested partitions grouped by topic, in order.
pub(crate) fn by_topic(partitions: &[(String, PartitionId)]) -> BTreeMap<&str, Vec<i32>> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic.as_str()).or_default().push(partition.0);
    }
    topics
}

impl Client {
    /// The coordinator of `group` (FindCoordinator, key_type GROUP), retrying while the cluster
    /// has none yet (COORDINATOR_NOT_AVAILABLE, as the `__consumer_offsets` topic is created).
    pub async fn find_coordinator(&mut self, group: &str) -> Result<BrokerMetadata> {
        let mut attempt = 1;
        loop {
            match self.find_coordinator_once(group).await {
                Err(ClientError::Kafka { error, .. })
                    if is_coordinator_error(error.code) && attempt < COORDINATOR_ATTEMPTS_MAX =>
                {
                    tracing::debug!(group, %error, attempt, "no coordinator yet");
                    attempt += 1;
                    tokio::time::sleep(COORDINATOR_RETRY_BACKOFF).await;
                }
                result => return result,
            }
        }
    }

    /// One FindCoordinator; remembers the coordinator's address for routing.
    async fn find_coordinator_once(&mut self, group: &str) -> Result<BrokerMetadata> {
        let build = |version| find_coordinator_request(group, version);
        let (version, response) = self.call(Target::Any, Duration::ZERO, build).await?;
        let context = format!("FindCoordinator for group {group}");
        let (node_id, host, port) = if version >= FIND_COORDINATOR_BATCHED_VERSION_MIN {
            let Some(found) = response.coordinators.iter().find(|found| found.key.as_str() == group) else {
                let detail = "the FindCoordinator answer does not name the group".to_owned();
                return Err(ClientError::NoBroker { node_id: -1, detail });
            };
            kafka_error(context, found.error_code, found.error_message.as_deref())?;
            (found.node_id.0, found.host.to_string(), found.port)
        } else {
            kafka_error(context, response.error_code, response.error_message.as_deref())?;
            (response.node_id.0, response.host.to_string(), response.port)
        };
        let coordinator = BrokerMetadata { node_id: NodeId(node_id), host, port, rack: None };
        self.broker_addresses.insert(coordinator.node_id, coordinator.address());
        Ok(coordinator)
    }

    /// Sends a group request to `group`'s coordinator; while `coordinator_code` finds a
    /// coordinator error in the answer, finds the coordinator again and resends. The last
    /// attempt's answer is returned as it is, for the caller to report its errors.
    pub(crate) async fn coordinator_call<R: Request>(
        &mut self,
        group: &str,
        build: impl Fn(i16) -> R,
        coordinator_code: impl Fn(i16, &R::Response) -> Option<i16>,
    ) -> Result<(i16, R::Response)> {
        self.coordinator_call_waiting(group, Duration::ZERO, build, coordinator_code).await
    }

    /// As `coordinator_call`, for a request the broker may hold up to `broker_wait` (JoinGroup
    /// waits for the rebalance).
    pub(crate) async fn coordinator_call_waiting<R: Request>(
        &mut self,
        group: &str,
        broker_wait: Duration,
        build: impl Fn(i16) -> R,
        coordinator_code: impl Fn(i16, &R::Response) -> Option<i16>,
    ) -> Result<(i16, R::Response)> {
        let mut attempt = 1;
        loop {
            let coordinator = self.find_coordinator(group).await?;
            let (version, response) = self.call(Target::Node(coordinator.node_id), broker_wait, &build).await?;
            match coordinator_code(version, &response) {
                Some(code) if is_coordinator_error(code) && attempt < COORDINATOR_ATTEMPTS_MAX => {
                    tracing::debug!(group, code, attempt, coordinator = %coordinator.node_id, "coordinator moved");
                    attempt += 1;
                    tokio::time::sleep(COORDINATOR_RETRY_BACKOFF).await;
                }
                _ => return Ok((version, response)),
            }
        }
    }

    /// Every group of the cluster: ListGroups to each broker (each lists the groups it
    /// coordinates), merged and sorted by group id, as Kafka's Admin `listConsumerGroups`.
    /// Fails if any broker fails, as that call's `all()` does.
    pub async fn list_groups(&mut self) -> Result<Vec<ListedGroup>> {
        let brokers = self.metadata(Some(&[])).await?.brokers;
        let mut groups: BTreeMap<String, ListedGroup> = BTreeMap::new();
        for broker in brokers {
            let mut attempt = 1;
            let (version, response) = loop {
                let build = |_version| ListGroupsRequest::default();
                let (version, response) = self.call(Target::Node(broker.node_id), Duration::ZERO, build).await?;
                if is_coordinator_error(response.error_code) && attempt < COORDINATOR_ATTEMPTS_MAX {
                    attempt += 1;
                    tokio::time::sleep(COORDINATOR_RETRY_BACKOFF).await;
                    continue;
                }
                break (version, response);
            };
            kafka_error(format!("ListGroups to broker {}", broker.node_id), response.error_code, None)?;
            for listed in response.groups {
                let group = ListedGroup {
                    group_id: listed.group_id.0.to_string(),
                    protocol_type: listed.protocol_type.to_string(),
                    state: (version >= LIST_GROUPS_STATE_VERSION_MIN).then(|| listed.group_state.to_string()),
                    group_type: (version >= LIST_GROUPS_TYPE_VERSION_MIN).then(|| listed.group_type.to_string()),
                };
                groups.insert(group.group_id.clone(), group);
            }
        }
        Ok(groups.into_values().collect())
    }

    /// DescribeGroups for one group, members' assignments decoded for `consumer` groups.
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupDescription> {
        let build = |_version| DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
        let first_code = |_version, response: &kafka_protocol::messages::DescribeGroupsResponse| {
            response.groups.first().map(|described| described.error_code)
        };
        let (_, response) = self.coordinator_call(group, build, first_code).await?;
        let Some(described) = response.groups.into_iter().find(|described| described.group_id.0.as_str() == group)
        else {
            let error = KafkaError { code: sluice_protocol::error_code::INVALID_REQUEST, message: None };
            return Err(ClientError::Kafka { context: format!("DescribeGroups {group}: group missing"), error });
        };
        let context = format!("DescribeGroups {group}");
        kafka_error(context, described.error_code, described.error_message.as_deref())?;
        let is_consumer = described.protocol_type.as_str() == "consumer";
        let members = described
            .members
            .into_iter()
            .map(|member| {
                let assignment = (is_consumer && !member.member_assignment.is_empty())
                    .then(|| decode_consumer_assignment(&member.member_assignment).ok())
                    .flatten();
                GroupMember {
                    member_id: member.member_id.to_string(),
                    group_instance_id: member.group_instance_id.as_ref().map(ToString::to_string),
                    client_id: member.client_id.to_string(),
                    client_host: member.client_host.to_string(),
                    assignment_bytes: member.member_assignment,
                    assignment,
                }
            })
            .collect();
        Ok(GroupDescription {
            group_id: group.to_owned(),
            state: described.group_state.to_string(),
            protocol_type: described.protocol_type.to_string(),
            protocol: described.protocol_data.to_string(),
            members,
        })
    }

    /// OffsetFetch: `group`'s committed offsets of `partitions`, or of every partition it has
    /// committed when `None` (OffsetFetch v2+; v1 cannot say "all" and fails to encode).
    /// Sorted by topic and partition.
    pub async fn fetch_committed_offsets(
        &mut self,
        group: &str,
        partitions: Option<&[(String, PartitionId)]>,
    ) -> Result<Vec<CommittedOffset>> {
        let topics = partitions.map(by_topic);
        let build = |version: i16| offset_fetch_request(group, topics.as_ref(), version);
        let group_code = |version, response: &OffsetFetchResponse| {
            let code = if version >= OFFSET_FETCH_GROUPS_VERSION_MIN {
                response.groups.first().map_or(0, |answer| answer.error_code)
            } else {
                response.error_code
            };
            let partition_codes = response.topics.iter().flat_map(|topic| &topic.partitions).map(|p| p.error_code);
            std::iter::once(code).chain(partition_codes).find(|code| *code != 0)
        };
        let (version, response) = self.coordinator_call(group, build, group_code).await?;
        if partitions.is_none() && version < OFFSET_FETCH_ALL_VERSION_MIN {
            let detail = format!("OffsetFetch v{version} cannot ask for every partition of group {group}");
            return Err(ClientError::InvalidArgument(detail));
        }
        committed_offsets(group, version, response)
    }

    /// OffsetCommit of `offsets` as a standalone commit (generation -1, no member id), as
    /// Kafka's Admin `alterConsumerGroupOffsets` sends it. The coordinator refuses it while
    /// the group has members (UNKNOWN_MEMBER_ID). One outcome per partition, sorted.
    pub async fn commit_offsets(
        &mut self,
        group: &str,
        offsets: &[(String, PartitionId, Offset)],
    ) -> Result<Vec<CommitOutcome>> {
        let request = offset_commit_request(group, offsets);
        let build = |_version| request.clone();
        let first_code = |_version, response: &kafka_protocol::messages::OffsetCommitResponse| {
            let codes = response.topics.iter().flat_map(|topic| &topic.partitions).map(|p| p.error_code);
            codes.into_iter().find(|code| *code != 0)
        };
        let (_, response) = self.coordinator_call(group, build, first_code).await?;
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
        Ok(outcomes)
    }

    /// DeleteGroups, one request per group to its coordinator. One outcome per group, in the
    /// order given: NON_EMPTY_GROUP while it has members, GROUP_ID_NOT_FOUND if unknown.
    pub async fn delete_groups(&mut self, groups: &[&str]) -> Result<Vec<GroupOutcome>> {
        let mut outcomes = Vec::with_capacity(groups.len());
        for group in groups {
            let build = |_version| DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
            let first_code = |_version, response: &kafka_protocol::messages::DeleteGroupsResponse| {
                response.results.first().map(|result| result.error_code)
            };
            let (_, response) = self.coordinator_call(group, build, first_code).await?;
            let result = response.results.iter().find(|result| result.group_id.0.as_str() == *group);
            let outcome = match result {
                None => Err(KafkaError {
                    code: sluice_protocol::error_code::INVALID_REQUEST,
                    message: Some("the DeleteGroups answer does not name the group".to_owned()),
                }),
                Some(result) => KafkaError::from_code(result.error_code, None).map_or(Ok(()), Err),
            };
            outcomes.push(((*group).to_owned(), outcome));
        }
        Ok(outcomes)
    }
}

fn find_coordinator_request(group: &str, version: i16) -> FindCoordinatorRequest {
    let request = FindCoordinatorRequest::default().with_key_type(COORDINATOR_KEY_TYPE_GROUP);
    if version >= FIND_COORDINATOR_BATCHED_VERSION_MIN {
        request.with_coordinator_keys(vec![str_bytes(group)])
    } else {
        request.with_key(str_bytes(group))
    }
}

/// A standalone commit: generation -1, no member id, empty metadata (as Kafka's Admin sends).
fn offset_commit_request(group: &str, offsets: &[(String, PartitionId, Offset)]) -> OffsetCommitRequest {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (topic, partition, offset) in offsets {
        assert!(offset.0 >= 0, "commit of offset {offset} for {topic}-{partition}");
        let committed = OffsetCommitRequestPartition::default()
            .with_partition_index(partition.0)
            .with_committed_offset(offset.0)
            .with_committed_metadata(Some(StrBytes::default()));
        topics.entry(topic.as_str()).or_default().push(committed);
    }
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            OffsetCommitRequestTopic::default().with_name(TopicName(str_bytes(name))).with_partitions(partitions)
        })
        .collect();
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_topics(topics)
}

fn offset_fetch_request(group: &str, topics: Option<&BTreeMap<&str, Vec<i32>>>, version: i16) -> OffsetFetchRequest {
    if version >= OFFSET_FETCH_GROUPS_VERSION_MIN {
        let topics = topics.map(|topics| {
            topics
                .iter()
                .map(|(name, partitions)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(TopicName(str_bytes(name)))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        });
        let requested = OffsetFetchRequestGroup::default().with_group_id(group_id(group)).with_topics(topics);
        return OffsetFetchRequest::default().with_groups(vec![requested]);
    }
    let topics = match topics {
        None if version < OFFSET_FETCH_ALL_VERSION_MIN => Some(Vec::new()),
        None => None,
        Some(topics) => Some(
            topics
                .iter()
                .map(|(name, partitions)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(str_bytes(name)))
                        .with_partition_indexes(partitions.clone())
                })
                .collect(),
        ),
    };
    OffsetFetchRequest::default().with_group_id(group_id(group)).with_topics(topics)
}

/// One partition of an OffsetFetch answer: topic, partition, offset, leader epoch, metadata,
/// error code (v8+ and older versions name the same fields in two types).
type FetchedRow<'a> = (&'a str, i32, i64, i32, Option<&'a StrBytes>, i16);

/// Reads an OffsetFetch answer: a group-level error fails the call, partition errors are kept.
fn committed_offsets(group: &str, version: i16, response: OffsetFetchResponse) -> Result<Vec<CommittedOffset>> {
    let context = format!("OffsetFetch for group {group}");
    let rows: Vec<FetchedRow> = if version >= OFFSET_FETCH_GROUPS_VERSION_MIN {
        let Some(answer) = response.groups.iter().find(|answer| answer.group_id.0.as_str() == group) else {
            let error = KafkaError { code: sluice_protocol::error_code::INVALID_REQUEST, message: None };
            return Err(ClientError::Kafka { context: format!("{context}: group missing"), error });
        };
        kafka_error(context, answer.error_code, None)?;
        let partitions = answer.topics.iter().flat_map(|topic| topic.partitions.iter().map(move |p| (topic, p)));
        partitions
            .map(|(topic, p)| {
                let metadata = p.metadata.as_ref();
                (
                    topic.name.0.as_str(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    metadata,
                    p.error_code,
                )
            })
            .collect()
    } else {
        kafka_error(context, response.error_code, None)?;
        let partitions = response.topics.iter().flat_map(|topic| topic.partitions.iter().map(move |p| (topic, p)));
        partitions
            .map(|(topic, p)| {
                let metadata = p.metadata.as_ref();
                (
                    topic.name.0.as_str(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    metadata,
                    p.error_code,
                )
            })
            .collect()
    };
    let mut offsets: Vec<CommittedOffset> = rows
        .into_iter()
        .map(|(topic, partition, offset, epoch, metadata, code)| CommittedOffset {
            topic: topic.to_owned(),
            partition: PartitionId(partition),
            offset: (offset >= 0).then_some(Offset(offset)),
            leader_epoch: (epoch >= 0).then_some(epoch),
            metadata: metadata.map(ToString::to_string),
            error: KafkaError::from_code(code, None),
        })
        .collect();
    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Message;
    use sluice_protocol::error_code::GROUP_AUTHORIZATION_FAILED;

    /// Kafka's ConsumerProtocol assignment bytes for `partitions` and `user_data`.
    fn encode(version: i16, partitions: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Vec<u8> {
        let mut bytes = version.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        for (topic, indexes) in partitions {
            bytes.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            bytes.extend_from_slice(topic.as_bytes());
            bytes.extend_from_slice(&(indexes.len() as i32).to_be_bytes());
            for index in *indexes {
                bytes.extend_from_slice(&index.to_be_bytes());
            }
        }
        match user_data {
            Some(data) => {
                bytes.extend_from_slice(&(data.len() as i32).to_be_bytes());
                bytes.extend_from_slice(data);
            }
            None => bytes.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        bytes
    }

    #[test]
    fn an_assignment_decodes_to_topics_partitions_and_user_data() {
        let bytes = encode(3, &[("orders", &[0, 2]), ("payments", &[1])], Some(b"sticky"));
        let assignment = decode_consumer_assignment(&bytes).unwrap();
        assert_eq!(assignment.version, 3);
        assert_eq!(
            assignment.partitions,
            vec![
                ("orders".to_owned(), vec![PartitionId(0), PartitionId(2)]),
                ("payments".to_owned(), vec![PartitionId(1)]),
            ]
        );
        assert_eq!(assignment.user_data, Some(Bytes::from_static(b"sticky")));
    }

    #[test]
    fn null_user_data_and_trailing_bytes_of_newer_versions_are_accepted() {
        let mut bytes = encode(0, &[], None);
        let assignment = decode_consumer_assignment(&bytes).unwrap();
        assert_eq!((assignment.partitions.len(), assignment.user_data), (0, None));
        bytes.extend_from_slice(&[0, 1, 2]);
        assert_eq!(decode_consumer_assignment(&bytes).unwrap().partitions.len(), 0);
    }

    #[test]
    fn truncated_or_corrupt_assignments_are_refused() {
        let bytes = encode(1, &[("orders", &[0, 1])], Some(b"x"));
        for cut in 0..bytes.len() {
            assert!(decode_consumer_assignment(&bytes[..cut]).is_err(), "cut at {cut} decoded");
        }
        let mut huge_count = bytes.clone();
        huge_count[2..6].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(
            decode_consumer_assignment(&huge_count),
            Err(AssignmentError::BadCount { field: "topic count", value: i64::from(i32::MAX) })
        );
        let mut negative_name = bytes.clone();
        negative_name[6..8].copy_from_slice(&(-1i16).to_be_bytes());
        assert!(matches!(decode_consumer_assignment(&negative_name), Err(AssignmentError::BadCount { .. })));
        let mut bad_user_data = encode(0, &[], None);
        bad_user_data[6..10].copy_from_slice(&(-2i32).to_be_bytes());
        assert!(matches!(decode_consumer_assignment(&bad_user_data), Err(AssignmentError::BadCount { .. })));
        let mut not_utf8 = bytes;
        not_utf8[8] = 0xff;
        assert_eq!(decode_consumer_assignment(&not_utf8), Err(AssignmentError::TopicNotUtf8));
    }

    /// Every version the client may negotiate encodes (a field set outside its versions fails).
    fn encodes<R: kafka_protocol::protocol::Encodable>(request: &R, version: i16) -> bool {
        request.encode(&mut bytes::BytesMut::new(), version).is_ok()
    }

    #[test]
    fn group_requests_encode_at_every_version() {
        let versions = |range: kafka_protocol::protocol::VersionRange| range.min..=range.max;
        for version in versions(FindCoordinatorRequest::VERSIONS) {
            assert!(encodes(&find_coordinator_request("g", version), version), "FindCoordinator v{version}");
        }
        let partitions = [("t".to_owned(), PartitionId(0))];
        let topics = by_topic(&partitions);
        for version in versions(OffsetFetchRequest::VERSIONS) {
            assert!(encodes(&offset_fetch_request("g", Some(&topics), version), version), "OffsetFetch v{version}");
            let all = offset_fetch_request("g", None, version);
            assert!(encodes(&all, version), "OffsetFetch v{version} of every partition");
            let null_topics = match all.groups.first() {
                Some(group) => group.topics.is_none(),
                None => all.topics.is_none(),
            };
            assert_eq!(null_topics, version >= OFFSET_FETCH_ALL_VERSION_MIN, "OffsetFetch v{version}");
        }
        let commit = offset_commit_request("g", &[("t".to_owned(), PartitionId(0), Offset(5))]);
        for version in versions(OffsetCommitRequest::VERSIONS) {
            assert!(encodes(&commit, version), "OffsetCommit v{version}");
        }
    }

    #[test]
    fn offset_fetch_answers_read_alike_before_and_after_the_groups_array() {
        use kafka_protocol::messages::offset_fetch_response::{
            OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
            OffsetFetchResponseTopic, OffsetFetchResponseTopics,
        };
        let name = || TopicName(str_bytes("t"));
        let old = OffsetFetchResponse::default().with_topics(vec![
            OffsetFetchResponseTopic::default().with_name(name()).with_partitions(vec![
                OffsetFetchResponsePartition::default().with_partition_index(1).with_committed_offset(-1),
                OffsetFetchResponsePartition::default().with_partition_index(0).with_committed_offset(7),
            ]),
        ]);
        let grouped = OffsetFetchResponse::default().with_groups(vec![
            OffsetFetchResponseGroup::default().with_group_id(group_id("g")).with_topics(vec![
                OffsetFetchResponseTopics::default().with_name(name()).with_partitions(vec![
                    OffsetFetchResponsePartitions::default().with_partition_index(1).with_committed_offset(-1),
                    OffsetFetchResponsePartitions::default().with_partition_index(0).with_committed_offset(7),
                ]),
            ]),
        ]);
        let summary = |offsets: Vec<CommittedOffset>| -> Vec<(i32, Option<Offset>)> {
            offsets.iter().map(|entry| (entry.partition.0, entry.offset)).collect()
        };
        let expected = vec![(0, Some(Offset(7))), (1, None)];
        assert_eq!(summary(committed_offsets("g", 7, old).unwrap()), expected);
        assert_eq!(summary(committed_offsets("g", 8, grouped.clone()).unwrap()), expected);
        let refused = OffsetFetchResponse::default().with_groups(vec![
            OffsetFetchResponseGroup::default()
                .with_group_id(group_id("g"))
                .with_error_code(GROUP_AUTHORIZATION_FAILED),
        ]);
        let error = committed_offsets("g", 8, refused).unwrap_err();
        assert_eq!(error.kafka_error().map(|e| e.code), Some(GROUP_AUTHORIZATION_FAILED));
        assert!(committed_offsets("other", 8, grouped).is_err(), "an answer for another group");
    }
}
