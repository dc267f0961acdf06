//! Committed offsets and group administration: OffsetCommit (2-9), OffsetFetch (1-9, many
//! groups per request from v8), OffsetDelete (0), ListGroups (0-4), DescribeGroups (0-5),
//! DeleteGroups (0-2). Commits and deletes go through the group's coordinator and are answered
//! once durable; fetches, lists and descriptions read the loaded coordinator.
//!
//! OffsetCommit v2-4 carry a `retention_time_ms`; it is ignored, as Kafka ignores it since
//! KIP-211 (offsets expire by `offsets.retention.minutes` once the group is empty).
//! OffsetFetch v9 names the fetching member and its epoch; a consumer group (KIP-848) refuses
//! an unknown member or a stale epoch for the whole group (UNKNOWN_MEMBER_ID,
//! STALE_MEMBER_EPOCH), and lets the admin client (no member, epoch -1) fetch.

use super::{group_id, str_bytes, topic_name};
use crate::consumer_groups::NotServed;
use crate::dispatch::Reply;
use crate::state::BrokerState;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, GroupId,
    ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, ResponseKind,
};
use sluice_group::{FetchedOffset, OffsetCommit, OffsetDelete, OffsetFetch, Request, Response, TopicPartition};
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use std::collections::BTreeMap;
use std::sync::Arc;

fn group_name(id: &str) -> GroupId {
    GroupId(str_bytes(id))
}

/// Whether the partition exists (Kafka answers UNKNOWN_TOPIC_OR_PARTITION for commits to
/// partitions its metadata does not have).
fn partition_exists<D: Disk, C: Clock>(state: &BrokerState<D, C>, partition: &TopicPartition) -> bool {
    state.topics.get(&partition.topic).is_some_and(|t| (0..t.partitions.len() as i32).contains(&partition.partition))
}

/// Groups per-partition answers by topic, topics in order of first appearance.
fn by_topic<T>(answers: impl IntoIterator<Item = (String, T)>) -> Vec<(String, Vec<T>)> {
    let mut topics: Vec<(String, Vec<T>)> = Vec::new();
    for (topic, answer) in answers {
        match topics.iter_mut().find(|(name, _)| *name == topic) {
            Some((_, answers)) => answers.push(answer),
            None => topics.push((topic, vec![answer])),
        }
    }
    topics
}

/// (topic, partition, code) answers grouped by topic.
fn codes_by_topic(answers: Vec<(TopicPartition, i16)>) -> Vec<(String, Vec<(i32, i16)>)> {
    by_topic(answers.into_iter().map(|(p, code)| (p.topic, (p.partition, code))))
}

/// The partitions an OffsetFetch names (`None`: every committed partition).
fn requested<'a>(topics: impl Iterator<Item = (&'a str, &'a [i32])>) -> Vec<TopicPartition> {
    topics.flat_map(|(name, indexes)| indexes.iter().map(move |i| TopicPartition::new(name, *i))).collect()
}

pub async fn offset_commit<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: OffsetCommitRequest,
    version: i16,
) -> Reply {
    let group = group_id(&request.group_id);
    let mut order = Vec::new();
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let partition = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
            order.push(partition.clone());
            if partition_exists(state, &partition) {
                // KIP-320: the leader epoch is sent from v6.
                let leader_epoch = if version >= 6 { p.committed_leader_epoch } else { -1 };
                let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
                known.push((partition, p.committed_offset, leader_epoch, metadata));
            } else {
                unknown.push((partition, error_code::UNKNOWN_TOPIC_OR_PARTITION));
            }
        }
    }
    let respond = move |answered: Vec<(TopicPartition, i16)>| {
        let mut codes: BTreeMap<TopicPartition, i16> = answered.into_iter().collect();
        codes.extend(unknown);
        let answers = order.into_iter().map(|p| {
            let code = codes.get(&p).copied().unwrap_or(error_code::UNKNOWN_SERVER_ERROR);
            (p, code)
        });
        let mut response = OffsetCommitResponse::default();
        response.topics = codes_by_topic(answers.collect())
            .into_iter()
            .map(|(name, partitions)| {
                OffsetCommitResponseTopic::default().with_name(topic_name(&name)).with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, code)| {
                            OffsetCommitResponsePartition::default().with_partition_index(index).with_error_code(code)
                        })
                        .collect(),
                )
            })
            .collect();
        ResponseKind::OffsetCommit(response)
    };
    if known.is_empty() {
        return Reply::Ready(Box::new(respond(Vec::new())));
    }
    let commit = OffsetCommit {
        group_id: group.clone(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: if version >= 7 { request.group_instance_id.as_ref().map(|i| i.to_string()) } else { None },
        offsets: known.clone(),
    };
    let all_failed = move |code: i16| known.iter().map(|(p, ..)| (p.clone(), code)).collect::<Vec<_>>();
    match state.groups.submit(state, &group, Request::Commit(commit)).await {
        Ok(submitted) => Reply::Deferred(Box::pin(async move {
            match submitted.answer().await {
                Ok(Response::Commit(commit)) => respond(commit.partitions),
                Ok(other) => unreachable!("an OffsetCommit answered with {other:?}"),
                Err(refused) => respond(all_failed(refused.code())),
            }
        })),
        Err(refused) => Reply::Ready(Box::new(respond(all_failed(refused.code())))),
    }
}

/// One group's OffsetFetch: the offsets, or the group-level error. A fetch the group refuses
/// (v9, KIP-848: an unknown member or a stale member epoch) has the error and no topics, as
/// Kafka's `KafkaApis.fetchOffsetsForGroup` answers a failed group.
async fn fetch_group<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    fetch: OffsetFetch,
) -> (Vec<FetchedOffset>, i16) {
    let fetched = state.groups.read(state, &fetch.group_id, |c| c.offset_fetch(&fetch)).await;
    match fetched {
        Ok(Ok(offsets)) => (offsets, error_code::NONE),
        Ok(Err(code)) => (Vec::new(), code),
        Err(refused) => {
            let partitions = fetch.partitions;
            let code = refused.code();
            let failed = partitions.unwrap_or_default().into_iter().map(|partition| FetchedOffset {
                partition,
                offset: -1,
                leader_epoch: -1,
                metadata: None,
                error: code,
            });
            (failed.collect(), code)
        }
    }
}

fn fetch_topics(fetched: &[FetchedOffset]) -> Vec<(String, Vec<&FetchedOffset>)> {
    by_topic(fetched.iter().map(|o| (o.partition.topic.clone(), o)))
}

pub async fn offset_fetch<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: OffsetFetchRequest,
    version: i16,
) -> ResponseKind {
    let require_stable = version >= 7 && request.require_stable;
    let mut response = OffsetFetchResponse::default();
    let epoch = |e: i32| if version >= 5 { e } else { -1 };
    if version >= 8 {
        for wanted in &request.groups {
            let group = group_id(&wanted.group_id);
            let partitions = wanted
                .topics
                .as_ref()
                .map(|topics| requested(topics.iter().map(|t| (t.name.0.as_str(), &t.partition_indexes[..]))));
            let fetch = OffsetFetch {
                group_id: group.clone(),
                partitions,
                require_stable,
                // v9 (KIP-848): the fetching member of a consumer group, checked by the core.
                member_id: wanted.member_id.as_ref().filter(|_| version >= 9).map(|id| id.to_string()),
                member_epoch: if version >= 9 { wanted.member_epoch } else { -1 },
            };
            let (fetched, code) = fetch_group(state, fetch).await;
            let topics = fetch_topics(&fetched)
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetFetchResponseTopics::default().with_name(topic_name(&name)).with_partitions(
                        partitions
                            .into_iter()
                            .map(|o| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(o.partition.partition)
                                    .with_committed_offset(o.offset)
                                    .with_committed_leader_epoch(epoch(o.leader_epoch))
                                    .with_metadata(o.metadata.as_deref().map(str_bytes))
                                    .with_error_code(o.error)
                            })
                            .collect(),
                    )
                })
                .collect();
            response.groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(group_name(&group))
                    .with_topics(topics)
                    .with_error_code(code),
            );
        }
        return ResponseKind::OffsetFetch(response);
    }
    let group = group_id(&request.group_id);
    let partitions = request
        .topics
        .as_ref()
        .map(|topics| requested(topics.iter().map(|t| (t.name.0.as_str(), &t.partition_indexes[..]))));
    let fetch = OffsetFetch { group_id: group, partitions, require_stable, member_id: None, member_epoch: -1 };
    let (fetched, code) = fetch_group(state, fetch).await;
    response.topics = fetch_topics(&fetched)
        .into_iter()
        .map(|(name, partitions)| {
            OffsetFetchResponseTopic::default().with_name(topic_name(&name)).with_partitions(
                partitions
                    .into_iter()
                    .map(|o| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(o.partition.partition)
                            .with_committed_offset(o.offset)
                            .with_committed_leader_epoch(epoch(o.leader_epoch))
                            .with_metadata(o.metadata.as_deref().map(str_bytes))
                            .with_error_code(o.error)
                    })
                    .collect(),
            )
        })
        .collect();
    // v1 has no top-level error: the partitions carry it.
    if version >= 2 {
        response.error_code = code;
    }
    ResponseKind::OffsetFetch(response)
}

pub async fn offset_delete<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>, request: OffsetDeleteRequest) -> Reply {
    let group = group_id(&request.group_id);
    let partitions: Vec<TopicPartition> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| TopicPartition::new(t.name.0.to_string(), p.partition_index)))
        .collect();
    let respond = |code: i16, answers: Vec<(TopicPartition, i16)>| {
        let topics = codes_by_topic(answers)
            .into_iter()
            .map(|(name, partitions)| {
                OffsetDeleteResponseTopic::default().with_name(topic_name(&name)).with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, code)| {
                            OffsetDeleteResponsePartition::default().with_partition_index(index).with_error_code(code)
                        })
                        .collect(),
                )
            })
            .collect();
        ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(code).with_topics(topics))
    };
    let delete = OffsetDelete { group_id: group.clone(), partitions };
    match state.groups.submit(state, &group, Request::OffsetDelete(delete)).await {
        Ok(submitted) => Reply::Deferred(Box::pin(async move {
            match submitted.answer().await {
                Ok(Response::OffsetDelete(answer)) => respond(answer.error, answer.partitions),
                Ok(other) => unreachable!("an OffsetDelete answered with {other:?}"),
                Err(refused) => respond(refused.code(), Vec::new()),
            }
        })),
        Err(refused) => Reply::Ready(Box::new(respond(refused.code(), Vec::new()))),
    }
}

pub async fn list_groups<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: ListGroupsRequest,
    version: i16,
) -> ResponseKind {
    let (groups, loading) = state.groups.list(state).await;
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_string().to_lowercase()).collect();
    // KIP-848 (v5): filter by group type, case-insensitively as Kafka does.
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_string().to_lowercase()).collect();
    let mut response = ListGroupsResponse::default();
    if loading {
        response.error_code = error_code::COORDINATOR_LOAD_IN_PROGRESS;
    }
    response.groups = groups
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            let mut listed = ListedGroup::default()
                .with_group_id(group_name(&g.group_id))
                .with_protocol_type(str_bytes(&g.protocol_type));
            if version >= 4 {
                listed.group_state = str_bytes(g.state);
            }
            if version >= 5 {
                listed.group_type = str_bytes(g.group_type);
            }
            listed
        })
        .collect();
    ResponseKind::ListGroups(response)
}

pub async fn describe_groups<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: DescribeGroupsRequest,
    version: i16,
) -> ResponseKind {
    let mut response = DescribeGroupsResponse::default();
    for wanted in &request.groups {
        let group = group_id(wanted);
        let mut described = DescribedGroup::default().with_group_id(group_name(&group));
        if group.is_empty() {
            described.error_code = error_code::INVALID_GROUP_ID;
            response.groups.push(described);
            continue;
        }
        match state.groups.describe(state, &group).await {
            // Kafka describes an unknown group as Dead, without an error; and a consumer group
            // (KIP-848) too: DescribeGroups only describes classic groups.
            Ok(None) => described.group_state = str_bytes("Dead"),
            Ok(Some(g)) if g.consumer.is_some() => described.group_state = str_bytes("Dead"),
            Ok(Some(g)) => {
                described.group_state = str_bytes(g.state_name());
                described.protocol_type = str_bytes(g.protocol_type.as_deref().unwrap_or(""));
                let protocol = g.protocol_name.clone().unwrap_or_default();
                described.protocol_data = str_bytes(&protocol);
                described.members = g
                    .members
                    .values()
                    .map(|m| {
                        let mut member = DescribedGroupMember::default()
                            .with_member_id(str_bytes(&m.member_id))
                            .with_client_id(str_bytes(&m.client_id))
                            .with_client_host(str_bytes(&m.client_host))
                            .with_member_metadata(m.metadata_for(&protocol).cloned().unwrap_or_default())
                            .with_member_assignment(m.assignment.clone());
                        if version >= 4 {
                            member.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
                        }
                        member
                    })
                    .collect();
            }
            Err(refused) => described.error_code = refused.code(),
        }
        response.groups.push(described);
    }
    ResponseKind::DescribeGroups(response)
}

pub async fn delete_groups<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>, request: DeleteGroupsRequest) -> Reply {
    let names: Vec<String> = request.groups_names.iter().map(group_id).collect();
    // One request per coordinator partition, in the order the groups were named.
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for name in &names {
        by_partition.entry(state.groups.partition_for(name)).or_default().push(name.clone());
    }
    let mut pending = Vec::new();
    let mut codes: BTreeMap<String, i16> = BTreeMap::new();
    for groups in by_partition.into_values() {
        let first = groups[0].clone();
        match state.groups.submit(state, &first, Request::DeleteGroups(groups.clone())).await {
            Ok(submitted) => pending.push((groups, submitted)),
            Err(refused) => codes.extend(groups.into_iter().map(|g| (g, refused.code()))),
        }
    }
    Reply::Deferred(Box::pin(async move {
        for (groups, submitted) in pending {
            match submitted.answer().await {
                Ok(Response::DeleteGroups(answer)) => codes.extend(answer.groups),
                Ok(other) => unreachable!("a DeleteGroups answered with {other:?}"),
                Err(refused) => codes.extend(groups.into_iter().map(|g| (g, NotServed::code(refused)))),
            }
        }
        let mut response = DeleteGroupsResponse::default();
        response.results = names
            .iter()
            .map(|name| {
                let code = codes.get(name).copied().unwrap_or(error_code::UNKNOWN_SERVER_ERROR);
                DeletableGroupResult::default().with_group_id(group_name(name)).with_error_code(code)
            })
            .collect();
        ResponseKind::DeleteGroups(response)
    }))
}
