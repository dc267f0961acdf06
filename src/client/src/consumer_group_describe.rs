//! Describing a group the way Kafka 4's Admin `describeConsumerGroups` does: ConsumerGroupDescribe
//! (API 69, KIP-848) first, and DescribeGroups when the group is not a consumer group.
//!
//! Since KIP-848 a group is of one of two types: `classic` (JoinGroup/SyncGroup members, described
//! by DescribeGroups) or `consumer` (ConsumerGroupHeartbeat members, described by
//! ConsumerGroupDescribe). Each API describes only its own type: DescribeGroups answers `Dead`
//! with no members for a consumer group, and ConsumerGroupDescribe answers GROUP_ID_NOT_FOUND for
//! a classic or unknown one. So [`Client::describe_any_group`] asks ConsumerGroupDescribe and
//! falls back to DescribeGroups on GROUP_ID_NOT_FOUND, or when the coordinator does not speak
//! ConsumerGroupDescribe (not advertised in ApiVersions, or UNSUPPORTED_VERSION), as Kafka's
//! `DescribeConsumerGroupsHandler` does.
//!
//! ConsumerGroupDescribe names each assigned topic by id and by name; this client keeps names.
//! The conversion from the wire (`consumer_group_description`) is pure and unit-tested here.

use kafka_protocol::messages::consumer_group_describe_response::{Assignment, DescribedGroup as WireGroup};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};
use sluice_protocol::error_code::{GROUP_ID_NOT_FOUND, INVALID_REQUEST, UNSUPPORTED_VERSION};
use sluice_types::PartitionId;

use crate::client::Client;
use crate::consumer_member::NamedPartitions;
use crate::error::{ClientError, KafkaError, Result};
use crate::groups::{GroupDescription, group_id, kafka_error};

/// A group's type (Kafka's `GroupType`, KIP-848), as ListGroups v5 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupType {
    /// JoinGroup/SyncGroup members, or a group that only has committed offsets.
    Classic,
    /// ConsumerGroupHeartbeat members (`group.protocol=consumer`).
    Consumer,
}

impl GroupType {
    /// Kafka's wire name: `classic` or `consumer`.
    pub fn name(self) -> &'static str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
        }
    }
}

/// A consumer group (type `consumer`) as ConsumerGroupDescribe reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    /// Kafka's consumer group state: Empty, Assigning, Reconciling, Stable, Dead.
    pub state: String,
    /// Moves when membership, subscriptions or the subscribed topics' partitions change.
    pub group_epoch: i32,
    /// The group epoch the target assignment was computed at (equal to it once computed).
    pub assignment_epoch: i32,
    /// The server assignor the target uses (`uniform`, `range`).
    pub assignor_name: String,
    pub members: Vec<ConsumerGroupMember>,
}

/// One member of a consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupMember {
    pub member_id: String,
    /// The static member's `group.instance.id` (KIP-345).
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// Equals the assignment epoch once the member has reconciled (KIP-848).
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    /// A regular-expression subscription (KIP-848), if the member has one.
    pub subscribed_topic_regex: Option<String>,
    /// The partitions the member may consume now.
    pub assignment: NamedPartitions,
    /// The partitions it is moving towards; equal to `assignment` once reconciled.
    pub target_assignment: NamedPartitions,
}

/// A group of either type, as Kafka's Admin `describeConsumerGroups` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DescribedGroup {
    /// Described by DescribeGroups: a classic group, or an unknown one (`Dead`).
    Classic(GroupDescription),
    /// Described by ConsumerGroupDescribe.
    Consumer(ConsumerGroupDescription),
}

impl DescribedGroup {
    pub fn group_id(&self) -> &str {
        match self {
            DescribedGroup::Classic(group) => &group.group_id,
            DescribedGroup::Consumer(group) => &group.group_id,
        }
    }

    pub fn group_type(&self) -> GroupType {
        match self {
            DescribedGroup::Classic(_) => GroupType::Classic,
            DescribedGroup::Consumer(_) => GroupType::Consumer,
        }
    }

    /// Kafka's state name for the group's type (`Empty` and `Dead` mean the same in both).
    pub fn state(&self) -> &str {
        match self {
            DescribedGroup::Classic(group) => &group.state,
            DescribedGroup::Consumer(group) => &group.state,
        }
    }

    pub fn member_count(&self) -> usize {
        match self {
            DescribedGroup::Classic(group) => group.members.len(),
            DescribedGroup::Consumer(group) => group.members.len(),
        }
    }

    /// Every partition a member holds now, as (member id, topic, partition): a classic
    /// member's decoded ConsumerProtocol assignment, a consumer member's current assignment.
    pub fn assigned(&self) -> Vec<(&str, &str, PartitionId)> {
        let mut assigned = Vec::new();
        match self {
            DescribedGroup::Classic(group) => {
                for member in &group.members {
                    let topics = member.assignment.iter().flat_map(|assignment| &assignment.partitions);
                    for (topic, partitions) in topics {
                        let id = member.member_id.as_str();
                        assigned.extend(partitions.iter().map(|partition| (id, topic.as_str(), *partition)));
                    }
                }
            }
            DescribedGroup::Consumer(group) => {
                for member in &group.members {
                    for (topic, partitions) in &member.assignment {
                        let id = member.member_id.as_str();
                        assigned.extend(partitions.iter().map(|p| (id, topic.as_str(), PartitionId(*p))));
                    }
                }
            }
        }
        assigned
    }
}

/// An assignment by topic name (the wire carries both id and name; Kafka's Admin keeps names).
fn named_partitions(assignment: &Assignment) -> NamedPartitions {
    let mut named = NamedPartitions::new();
    for topic in &assignment.topic_partitions {
        named.entry(topic.topic_name.0.to_string()).or_default().extend(topic.partitions.iter().copied());
    }
    named
}

/// Reads `group`'s entry of a ConsumerGroupDescribe answer: `None` for GROUP_ID_NOT_FOUND (a
/// classic or unknown group), an error for any other error code or a missing entry.
pub(crate) fn consumer_group_description(
    group: &str,
    response: ConsumerGroupDescribeResponse,
) -> Result<Option<ConsumerGroupDescription>> {
    let context = format!("ConsumerGroupDescribe {group}");
    let Some(described) = response.groups.into_iter().find(|described| described.group_id.0.as_str() == group) else {
        let error = KafkaError { code: INVALID_REQUEST, message: None };
        return Err(ClientError::Kafka { context: format!("{context}: group missing"), error });
    };
    if described.error_code == GROUP_ID_NOT_FOUND {
        return Ok(None);
    }
    kafka_error(context, described.error_code, described.error_message.as_deref())?;
    Ok(Some(description_of(group, described)))
}

fn description_of(group: &str, described: WireGroup) -> ConsumerGroupDescription {
    let members = described
        .members
        .into_iter()
        .map(|member| ConsumerGroupMember {
            member_id: member.member_id.to_string(),
            instance_id: member.instance_id.as_ref().map(ToString::to_string),
            rack_id: member.rack_id.as_ref().map(ToString::to_string),
            member_epoch: member.member_epoch,
            client_id: member.client_id.to_string(),
            client_host: member.client_host.to_string(),
            subscribed_topic_names: member.subscribed_topic_names.iter().map(|name| name.0.to_string()).collect(),
            subscribed_topic_regex: member.subscribed_topic_regex.as_ref().map(ToString::to_string),
            assignment: named_partitions(&member.assignment),
            target_assignment: named_partitions(&member.target_assignment),
        })
        .collect();
    ConsumerGroupDescription {
        group_id: group.to_owned(),
        state: described.group_state.to_string(),
        group_epoch: described.group_epoch,
        assignment_epoch: described.assignment_epoch,
        assignor_name: described.assignor_name.to_string(),
        members,
    }
}

/// Whether a ConsumerGroupDescribe failed because the coordinator does not speak it: Kafka's
/// `handleUnsupportedVersionException`, and the per-group UNSUPPORTED_VERSION code.
fn is_unsupported(error: &ClientError) -> bool {
    match error {
        ClientError::UnsupportedVersion { .. } => true,
        ClientError::Kafka { error, .. } => error.code == UNSUPPORTED_VERSION,
        _ => false,
    }
}

impl Client {
    /// ConsumerGroupDescribe for one group on its coordinator: `None` when it is not a
    /// consumer group (GROUP_ID_NOT_FOUND: classic, or unknown). Fails with
    /// [`ClientError::UnsupportedVersion`] when the coordinator does not advertise the API.
    pub async fn describe_consumer_group(&mut self, group: &str) -> Result<Option<ConsumerGroupDescription>> {
        let build = |_version| ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
        let first_code = |_version, response: &ConsumerGroupDescribeResponse| {
            response.groups.first().map(|described| described.error_code)
        };
        let (_, response) = self.coordinator_call(group, build, first_code).await?;
        consumer_group_description(group, response)
    }

    /// A group of either type, as Kafka 4's Admin `describeConsumerGroups`: ConsumerGroupDescribe,
    /// then DescribeGroups if the group is not a consumer group or the coordinator does not speak
    /// ConsumerGroupDescribe. An unknown group is a classic `Dead` one (or DescribeGroups v6's
    /// GROUP_ID_NOT_FOUND error, from a broker that answers so).
    pub async fn describe_any_group(&mut self, group: &str) -> Result<DescribedGroup> {
        match self.describe_consumer_group(group).await {
            Ok(Some(consumer)) => return Ok(DescribedGroup::Consumer(consumer)),
            Ok(None) => tracing::debug!(group, "not a consumer group: asking DescribeGroups"),
            Err(error) if is_unsupported(&error) => {
                tracing::debug!(group, %error, "no ConsumerGroupDescribe: asking DescribeGroups");
            }
            Err(error) => return Err(error),
        }
        self.describe_group(group).await.map(DescribedGroup::Classic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::{ConsumerAssignment, GroupMember, str_bytes};
    use kafka_protocol::messages::consumer_group_describe_response::{Member, TopicPartitions};
    use kafka_protocol::messages::{GroupId, TopicName};
    use kafka_protocol::protocol::{Encodable, Message};
    use sluice_protocol::error_code::GROUP_AUTHORIZATION_FAILED;

    fn assignment(topics: &[(&str, &[i32])]) -> Assignment {
        let topics = topics
            .iter()
            .map(|(name, partitions)| {
                TopicPartitions::default()
                    .with_topic_id(uuid::Uuid::from_u128(name.len() as u128 + 1))
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions.to_vec())
            })
            .collect();
        Assignment::default().with_topic_partitions(topics)
    }

    fn named(topics: &[(&str, &[i32])]) -> NamedPartitions {
        topics.iter().map(|(name, partitions)| ((*name).to_owned(), partitions.iter().copied().collect())).collect()
    }

    fn answer(group: WireGroup) -> ConsumerGroupDescribeResponse {
        ConsumerGroupDescribeResponse::default().with_groups(vec![group])
    }

    fn reconciling_group() -> WireGroup {
        let member = Member::default()
            .with_member_id(str_bytes("m-1"))
            .with_instance_id(Some(str_bytes("i-1")))
            .with_member_epoch(4)
            .with_client_id(str_bytes("c"))
            .with_client_host(str_bytes("/10.0.0.1"))
            .with_subscribed_topic_names(vec![TopicName(str_bytes("orders"))])
            .with_assignment(assignment(&[("orders", &[0, 1, 2])]))
            .with_target_assignment(assignment(&[("orders", &[0, 1])]))
            .with_member_type(1);
        WireGroup::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_group_state(str_bytes("Reconciling"))
            .with_group_epoch(5)
            .with_assignment_epoch(5)
            .with_assignor_name(str_bytes("uniform"))
            .with_members(vec![member])
    }

    #[test]
    fn a_consumer_group_reads_with_epochs_and_both_assignments_by_topic_name() {
        let described = consumer_group_description("g", answer(reconciling_group())).unwrap().unwrap();
        assert_eq!(
            (described.state.as_str(), described.group_epoch, described.assignment_epoch),
            ("Reconciling", 5, 5)
        );
        assert_eq!(described.assignor_name, "uniform");
        let member = &described.members[0];
        assert_eq!((member.member_id.as_str(), member.member_epoch), ("m-1", 4));
        assert_eq!((member.instance_id.as_deref(), member.rack_id.as_deref()), (Some("i-1"), None));
        assert_eq!(
            (member.subscribed_topic_names.as_slice(), member.subscribed_topic_regex.as_deref()),
            (&["orders".to_owned()][..], None)
        );
        assert_eq!(member.assignment, named(&[("orders", &[0, 1, 2])]));
        assert_eq!(member.target_assignment, named(&[("orders", &[0, 1])]));
    }

    #[test]
    fn group_id_not_found_means_not_a_consumer_group_and_other_errors_fail() {
        let not_found = WireGroup::default().with_group_id(GroupId(str_bytes("g"))).with_error_code(GROUP_ID_NOT_FOUND);
        assert_eq!(consumer_group_description("g", answer(not_found)).unwrap(), None);
        let refused =
            WireGroup::default().with_group_id(GroupId(str_bytes("g"))).with_error_code(GROUP_AUTHORIZATION_FAILED);
        let error = consumer_group_description("g", answer(refused)).unwrap_err();
        assert_eq!(error.kafka_error().map(|e| e.code), Some(GROUP_AUTHORIZATION_FAILED));
        assert!(!is_unsupported(&error));
        assert!(consumer_group_description("other", answer(reconciling_group())).is_err(), "another group");
        let unsupported =
            WireGroup::default().with_group_id(GroupId(str_bytes("g"))).with_error_code(UNSUPPORTED_VERSION);
        assert!(is_unsupported(&consumer_group_description("g", answer(unsupported)).unwrap_err()));
    }

    #[test]
    fn the_request_encodes_at_every_version() {
        let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id("g")]);
        let range = ConsumerGroupDescribeRequest::VERSIONS;
        for version in range.min..=range.max {
            assert!(request.encode(&mut bytes::BytesMut::new(), version).is_ok(), "v{version}");
        }
    }

    #[test]
    fn both_types_list_what_their_members_hold_now() {
        let consumer = consumer_group_description("g", answer(reconciling_group())).unwrap().unwrap();
        let consumer = DescribedGroup::Consumer(consumer);
        assert_eq!(
            (consumer.group_type().name(), consumer.state(), consumer.member_count()),
            ("consumer", "Reconciling", 1)
        );
        let held: Vec<_> = consumer.assigned().into_iter().map(|(m, t, p)| (m, t, p.0)).collect();
        assert_eq!(held, [("m-1", "orders", 0), ("m-1", "orders", 1), ("m-1", "orders", 2)], "not the target");
        let member = GroupMember {
            member_id: "c-1".to_owned(),
            group_instance_id: None,
            client_id: "c".to_owned(),
            client_host: "/10.0.0.2".to_owned(),
            assignment_bytes: Default::default(),
            assignment: Some(ConsumerAssignment {
                version: 3,
                partitions: vec![("payments".to_owned(), vec![PartitionId(2)])],
                user_data: None,
            }),
        };
        let classic = DescribedGroup::Classic(GroupDescription {
            group_id: "k".to_owned(),
            state: "Stable".to_owned(),
            protocol_type: "consumer".to_owned(),
            protocol: "range".to_owned(),
            members: vec![member],
        });
        assert_eq!((classic.group_id(), classic.group_type(), classic.state()), ("k", GroupType::Classic, "Stable"));
        let held: Vec<_> = classic.assigned().into_iter().map(|(m, t, p)| (m, t, p.0)).collect();
        assert_eq!(held, [("c-1", "payments", 2)]);
    }

    #[test]
    fn only_a_missing_api_falls_back() {
        let missing = ClientError::UnsupportedVersion {
            api: "another API",
            address: "b:9092".to_owned(),
            client_min: 0,
            client_max: 1,
        };
        assert!(is_unsupported(&missing));
        assert!(!is_unsupported(&ClientError::InvalidArgument("x".to_owned())));
    }
}
