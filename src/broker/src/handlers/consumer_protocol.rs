//! The consumer group protocol of KIP-848: ConsumerGroupHeartbeat (0-1) and
//! ConsumerGroupDescribe (0-1). The wire names topics by id; the coordinator core
//! (`sluice_group::consumer_heartbeat`) by name, so this maps ids to names on the way in and
//! back on the way out, and gives the core every topic's partition count so it can compute
//! targets without asking the broker. That count list is also what a v1 member's
//! `SubscribedTopicRegex` is matched against (every topic, internal ones included, as Kafka's
//! coordinator scans its whole metadata image), so a topic created later that matches reaches
//! the group at its next heartbeat; an invalid regex gets the core's INVALID_REGULAR_EXPRESSION.
//!
//! A topic id the broker does not know (the topic was deleted) is dropped from what a member
//! says it owns, and a target topic without an id is left out of the answer: the member learns
//! of the new assignment at its next heartbeat once the group's epoch moves.

use super::{group_id, str_bytes, topic_name};
use crate::dispatch::Reply;
use crate::state::BrokerState;
use kafka_protocol::messages::consumer_group_describe_response::{self as describe, DescribedGroup};
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as heartbeat};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, GroupId, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use sluice_group::assignor::TopicPartitions;
use sluice_group::{ConsumerGroupHeartbeat, Request, Response};
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use uuid::Uuid;

/// ConsumerGroupDescribe's `authorized_operations` when the request did not ask for them
/// (Kafka's `Integer.MIN_VALUE`).
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
/// ConsumerGroupDescribe v1 `member_type` of a member of the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;
/// KIP-1082: from ConsumerGroupHeartbeat v1 the client makes its member id.
const CLIENT_MEMBER_ID_VERSION: i16 = 1;

/// Topic names by id and partition counts by name, for every topic this broker knows.
struct TopicIndex {
    names: BTreeMap<Uuid, String>,
    ids: BTreeMap<String, Uuid>,
    partition_counts: BTreeMap<String, i32>,
}

impl TopicIndex {
    fn of<D: Disk, C: Clock>(state: &BrokerState<D, C>) -> TopicIndex {
        let mut index = TopicIndex { names: BTreeMap::new(), ids: BTreeMap::new(), partition_counts: BTreeMap::new() };
        for topic in state.topics.all() {
            let count = i32::try_from(topic.partitions.len()).expect("partition counts fit i32");
            index.names.insert(topic.topic_id, topic.name.clone());
            index.ids.insert(topic.name.clone(), topic.topic_id);
            index.partition_counts.insert(topic.name.clone(), count);
        }
        index
    }

    /// The wire's (topic id, partitions) as partitions by name; unknown ids are dropped.
    fn by_name<'a>(&self, topics: impl Iterator<Item = (&'a Uuid, &'a [i32])>) -> TopicPartitions {
        let mut named = TopicPartitions::new();
        for (id, partitions) in topics {
            if let Some(name) = self.names.get(id) {
                named.entry(name.clone()).or_default().extend(partitions.iter().copied());
            }
        }
        named
    }

    /// Partitions by name as (topic id, name, partitions); topics without an id are dropped.
    fn by_id(&self, partitions: &TopicPartitions) -> Vec<(Uuid, String, Vec<i32>)> {
        partitions
            .iter()
            .filter_map(|(name, set)| self.ids.get(name).map(|id| (*id, name.clone(), set.iter().copied().collect())))
            .collect()
    }
}

fn heartbeat_error(code: i16, message: &str) -> Reply {
    let response = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code)
        .with_error_message(Some(str_bytes(message)))
        .with_member_epoch(-1);
    Reply::Ready(Box::new(ResponseKind::ConsumerGroupHeartbeat(response)))
}

pub async fn consumer_group_heartbeat<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: &str,
    peer: SocketAddr,
) -> Reply {
    // KIP-1082: a v1 client sends its own member id, even when joining.
    if version >= CLIENT_MEMBER_ID_VERSION && request.member_id.is_empty() {
        return heartbeat_error(error_code::INVALID_REQUEST, "the member id is empty");
    }
    let index = TopicIndex::of(state);
    let group = group_id(&request.group_id);
    let heartbeat = ConsumerGroupHeartbeat {
        group_id: group.clone(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
        // Only v1 carries it: at v0 the decoder leaves it `None`.
        subscribed_topic_regex: request.subscribed_topic_regex.as_ref().map(|r| r.to_string()),
        server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
        owned: request
            .topic_partitions
            .as_ref()
            .map(|owned| index.by_name(owned.iter().map(|t| (&t.topic_id, t.partitions.as_slice())))),
        client_id: client_id.to_owned(),
        client_host: format!("/{}", peer.ip()),
        member_id_candidate: state.groups.member_id_candidate(client_id),
        partition_counts: index.partition_counts.clone(),
    };
    let submitted = state.groups.submit(state, &group, Request::ConsumerHeartbeat(heartbeat)).await;
    let answer = move |answer: Result<Response, i16>| {
        let mut response = ConsumerGroupHeartbeatResponse::default().with_member_epoch(-1);
        match answer {
            Ok(Response::ConsumerHeartbeat(hb)) => {
                response.error_code = hb.error;
                response.error_message = hb.error_message.as_deref().map(str_bytes);
                response.member_id = hb.member_id.as_deref().map(str_bytes);
                response.member_epoch = hb.member_epoch;
                response.heartbeat_interval_ms = hb.heartbeat_interval_ms;
                response.assignment = hb.assignment.map(|assigned| {
                    let topic_partitions = index
                        .by_id(&assigned)
                        .into_iter()
                        .map(|(id, _, partitions)| {
                            heartbeat::TopicPartitions::default().with_topic_id(id).with_partitions(partitions)
                        })
                        .collect();
                    heartbeat::Assignment::default().with_topic_partitions(topic_partitions)
                });
            }
            Ok(other) => unreachable!("a ConsumerGroupHeartbeat answered with {other:?}"),
            Err(code) => response.error_code = code,
        }
        ResponseKind::ConsumerGroupHeartbeat(response)
    };
    match submitted {
        Ok(submitted) => {
            Reply::Deferred(Box::pin(async move { answer(submitted.answer().await.map_err(|e| e.code())) }))
        }
        Err(refused) => Reply::Ready(Box::new(answer(Err(refused.code())))),
    }
}

fn described_assignment(index: &TopicIndex, partitions: &TopicPartitions) -> describe::Assignment {
    let topic_partitions = index
        .by_id(partitions)
        .into_iter()
        .map(|(id, name, partitions)| {
            describe::TopicPartitions::default()
                .with_topic_id(id)
                .with_topic_name(topic_name(&name))
                .with_partitions(partitions)
        })
        .collect();
    describe::Assignment::default().with_topic_partitions(topic_partitions)
}

pub async fn consumer_group_describe<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: ConsumerGroupDescribeRequest,
    version: i16,
) -> ResponseKind {
    let index = TopicIndex::of(state);
    let mut response = ConsumerGroupDescribeResponse::default();
    for wanted in &request.group_ids {
        let group = group_id(wanted);
        let mut described = DescribedGroup::default()
            .with_group_id(GroupId(str_bytes(&group)))
            .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
        let fail = |mut described: DescribedGroup, code: i16, message: String| {
            described.error_code = code;
            described.error_message = Some(StrBytes::from_string(message));
            described.group_state = str_bytes("Dead");
            described
        };
        if group.is_empty() {
            response.groups.push(fail(described, error_code::INVALID_GROUP_ID, "the group id is empty".into()));
            continue;
        }
        let consumer = match state.groups.describe(state, &group).await {
            Err(refused) => {
                let code = refused.code();
                response.groups.push(fail(described, code, error_code::name(code).to_owned()));
                continue;
            }
            // Kafka answers GROUP_ID_NOT_FOUND for a missing group and for a classic one.
            Ok(None) => None,
            Ok(Some(g)) => g.consumer,
        };
        let Some(consumer) = consumer else {
            let message = format!("group {group} is not a consumer group");
            response.groups.push(fail(described, error_code::GROUP_ID_NOT_FOUND, message));
            continue;
        };
        described.group_state = str_bytes(consumer.state_name());
        described.group_epoch = consumer.group_epoch;
        described.assignment_epoch = consumer.assignment_epoch;
        described.assignor_name = str_bytes(consumer.preferred_assignor().name());
        let empty = TopicPartitions::new();
        described.members = consumer
            .members
            .values()
            .map(|m| {
                let mut member = describe::Member::default()
                    .with_member_id(str_bytes(&m.member_id))
                    .with_instance_id(m.instance_id.as_deref().map(str_bytes))
                    .with_rack_id(m.rack_id.as_deref().map(str_bytes))
                    .with_member_epoch(m.member_epoch)
                    .with_client_id(str_bytes(&m.client_id))
                    .with_client_host(str_bytes(&m.client_host))
                    .with_subscribed_topic_names(m.subscribed_topics.iter().map(|t| topic_name(t)).collect())
                    // Every version carries it; Kafka describes a member without one as "".
                    .with_subscribed_topic_regex(Some(str_bytes(m.subscribed_topic_regex.as_deref().unwrap_or(""))))
                    .with_assignment(described_assignment(&index, &m.assigned))
                    .with_target_assignment(described_assignment(
                        &index,
                        consumer.target.get(&m.member_id).unwrap_or(&empty),
                    ));
                if version >= 1 {
                    member.member_type = MEMBER_TYPE_CONSUMER;
                }
                member
            })
            .collect();
        response.groups.push(described);
    }
    ResponseKind::ConsumerGroupDescribe(response)
}
