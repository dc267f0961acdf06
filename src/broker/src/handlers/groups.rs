//! The classic group membership APIs: FindCoordinator (0-4), JoinGroup (0-7), SyncGroup (0-5),
//! Heartbeat (0-4), LeaveGroup (0-5). Each maps the wire request onto `sluice_group`'s request,
//! gives it to the group's coordinator (`consumer_groups`), and maps the answer back, setting
//! only the fields the request's version has (kafka-protocol refuses to encode others).
//!
//! JoinGroup and SyncGroup wait (for the rebalance, the leader's assignment, or a write): their
//! answers are deferred, so the connection keeps serving other requests meanwhile.

use super::{group_id, str_bytes};
use crate::consumer_groups::{NotServed, Submitted, ensure_offsets_topic};
use crate::dispatch::Reply;
use crate::state::BrokerState;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ResponseKind, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_group::{JoinGroup, LeaveGroup, LeavingMember, Protocol, Request, Response, SyncGroup};
use sluice_io::{Clock, Disk};
use sluice_protocol::error_code;
use sluice_types::NodeId;
use std::net::SocketAddr;
use std::sync::Arc;

/// FindCoordinator key types (KIP-98 added transactions).
const KEY_TYPE_GROUP: i8 = 0;

/// The broker that coordinates `key`: the leader of its `__consumer_offsets` partition, as
/// (node id, host, port), or the error code to answer.
async fn coordinator_of<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    key: &str,
) -> Result<(i32, String, i32), i16> {
    let topic = ensure_offsets_topic(state).await?;
    let index = state.groups.partition_for(key);
    let partition = topic.partitions.get(index as usize).ok_or(error_code::COORDINATOR_NOT_AVAILABLE)?;
    let Some(view) = partition.replica_view() else {
        let (host, port) = state.config.advertised();
        return Ok((state.config.node_id, host, port));
    };
    let me = NodeId(state.config.node_id);
    let stale_ms = crate::cluster::limits::LEADER_REPORT_STALE_MS;
    let (leader, _, _) = view.leadership(me, state.clock.now(), stale_ms);
    let leader = leader.ok_or(error_code::COORDINATOR_NOT_AVAILABLE)?;
    if leader == me {
        let (host, port) = state.config.advertised();
        return Ok((me.0, host, port));
    }
    let cluster = state.cluster.as_ref().expect("a replicated partition means cluster mode");
    let snapshot = cluster.snapshot();
    let broker = snapshot.meta.brokers().get(&leader).ok_or(error_code::COORDINATOR_NOT_AVAILABLE)?;
    Ok((leader.0, broker.kafka_host.clone(), broker.kafka_port))
}

pub async fn find_coordinator<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: FindCoordinatorRequest,
    version: i16,
) -> ResponseKind {
    let keys: Vec<String> = if version >= 4 {
        request.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![request.key.to_string()]
    };
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        let result = if request.key_type != KEY_TYPE_GROUP {
            Err(error_code::INVALID_REQUEST)
        } else {
            coordinator_of(state, &key).await
        };
        found.push((key, result));
    }
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = found
            .into_iter()
            .map(|(key, result)| {
                let mut coordinator = Coordinator::default().with_key(str_bytes(&key));
                match result {
                    Ok((node_id, host, port)) => {
                        coordinator.node_id = BrokerId(node_id);
                        coordinator.host = str_bytes(&host);
                        coordinator.port = port;
                    }
                    Err(code) => {
                        coordinator.node_id = BrokerId(-1);
                        coordinator.error_code = code;
                        coordinator.error_message = Some(str_bytes(find_error_message(code)));
                    }
                }
                coordinator
            })
            .collect();
        return ResponseKind::FindCoordinator(response);
    }
    let (_, result) = found.pop().expect("one key below v4");
    match result {
        Ok((node_id, host, port)) => {
            response.node_id = BrokerId(node_id);
            response.host = str_bytes(&host);
            response.port = port;
        }
        Err(code) => {
            response.error_code = code;
            response.node_id = BrokerId(-1);
            if version >= 1 {
                response.error_message = Some(str_bytes(find_error_message(code)));
            }
        }
    }
    ResponseKind::FindCoordinator(response)
}

fn find_error_message(code: i16) -> &'static str {
    match code {
        error_code::INVALID_REQUEST => "only group coordinators exist: transactions are not supported yet",
        _ => error_code::name(code),
    }
}

fn optional(value: &Option<StrBytes>) -> Option<String> {
    value.as_ref().map(|v| v.to_string())
}

/// Defers the answer of a submitted request, or answers a refusal at once.
fn deferred(
    submitted: Result<Submitted, NotServed>,
    answer: impl FnOnce(Result<Response, i16>) -> ResponseKind + Send + 'static,
) -> Reply {
    match submitted {
        Ok(submitted) => {
            Reply::Deferred(Box::pin(async move { answer(submitted.answer().await.map_err(|e| e.code())) }))
        }
        Err(refused) => Reply::Ready(Box::new(answer(Err(refused.code())))),
    }
}

pub async fn join_group<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: JoinGroupRequest,
    version: i16,
    client_id: &str,
    peer: SocketAddr,
) -> Reply {
    let group = group_id(&request.group_id);
    let join = JoinGroup {
        group_id: group.clone(),
        session_timeout_ms: request.session_timeout_ms,
        // JoinGroup v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 { request.rebalance_timeout_ms } else { request.session_timeout_ms },
        member_id: request.member_id.to_string(),
        group_instance_id: optional(&request.group_instance_id),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| Protocol { name: p.name.to_string(), metadata: p.metadata.clone() })
            .collect(),
        client_id: client_id.to_string(),
        client_host: format!("/{}", peer.ip()),
        // KIP-394: from v4 a new member first gets its id with MEMBER_ID_REQUIRED.
        require_known_member_id: version >= 4,
        member_id_candidate: state.groups.member_id_candidate(client_id),
    };
    let member_id = join.member_id.clone();
    let submitted = state.groups.submit(state, &group, Request::Join(join)).await;
    deferred(submitted, move |answer| {
        let mut response = JoinGroupResponse::default().with_member_id(str_bytes(&member_id));
        response.generation_id = -1;
        response.protocol_name = (version < 7).then(|| str_bytes(""));
        match answer {
            Ok(Response::Join(join)) => {
                response.error_code = join.error;
                response.generation_id = join.generation_id;
                response.leader = str_bytes(&join.leader);
                response.member_id = str_bytes(&join.member_id);
                if version >= 7 {
                    response.protocol_type = join.protocol_type.as_deref().map(str_bytes);
                    response.protocol_name = join.protocol_name.as_deref().map(str_bytes);
                } else {
                    response.protocol_name = Some(str_bytes(join.protocol_name.as_deref().unwrap_or("")));
                }
                response.members = join
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut member = JoinGroupResponseMember::default()
                            .with_member_id(str_bytes(&m.member_id))
                            .with_metadata(m.metadata);
                        if version >= 5 {
                            member.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
                        }
                        member
                    })
                    .collect();
            }
            Ok(other) => unreachable!("a JoinGroup answered with {other:?}"),
            Err(code) => response.error_code = code,
        }
        ResponseKind::JoinGroup(response)
    })
}

pub async fn sync_group<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: SyncGroupRequest,
    version: i16,
) -> Reply {
    let group = group_id(&request.group_id);
    let sync = SyncGroup {
        group_id: group.clone(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: optional(&request.group_instance_id),
        protocol_type: if version >= 5 { optional(&request.protocol_type) } else { None },
        protocol_name: if version >= 5 { optional(&request.protocol_name) } else { None },
        assignments: request.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect(),
    };
    let submitted = state.groups.submit(state, &group, Request::Sync(sync)).await;
    deferred(submitted, move |answer| {
        let mut response = SyncGroupResponse::default();
        match answer {
            Ok(Response::Sync(sync)) => {
                response.error_code = sync.error;
                response.assignment = sync.assignment;
                if version >= 5 {
                    response.protocol_type = sync.protocol_type.as_deref().map(str_bytes);
                    response.protocol_name = sync.protocol_name.as_deref().map(str_bytes);
                }
            }
            Ok(other) => unreachable!("a SyncGroup answered with {other:?}"),
            Err(code) => response.error_code = code,
        }
        ResponseKind::SyncGroup(response)
    })
}

pub async fn heartbeat<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>, request: HeartbeatRequest) -> Reply {
    let group = group_id(&request.group_id);
    let heartbeat = sluice_group::Heartbeat {
        group_id: group.clone(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: optional(&request.group_instance_id),
    };
    let submitted = state.groups.submit(state, &group, Request::Heartbeat(heartbeat)).await;
    deferred(submitted, |answer| {
        let code = match answer {
            Ok(Response::Heartbeat(code)) => code,
            Ok(other) => unreachable!("a Heartbeat answered with {other:?}"),
            Err(code) => code,
        };
        ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
    })
}

pub async fn leave_group<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    request: LeaveGroupRequest,
    version: i16,
) -> Reply {
    let group = group_id(&request.group_id);
    let members: Vec<LeavingMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: optional(&m.group_instance_id),
            })
            .collect()
    } else {
        vec![LeavingMember { member_id: request.member_id.to_string(), group_instance_id: None }]
    };
    let leave = LeaveGroup { group_id: group.clone(), members };
    let submitted = state.groups.submit(state, &group, Request::Leave(leave)).await;
    deferred(submitted, move |answer| {
        let mut response = LeaveGroupResponse::default();
        match answer {
            Ok(Response::Leave(leave)) => {
                response.error_code = leave.error;
                if version >= 3 {
                    response.members = leave
                        .members
                        .into_iter()
                        .map(|(member, code)| {
                            MemberResponse::default()
                                .with_member_id(str_bytes(&member.member_id))
                                .with_group_instance_id(member.group_instance_id.as_deref().map(str_bytes))
                                .with_error_code(code)
                        })
                        .collect();
                } else if let Some((_, code)) = leave.members.first()
                    && response.error_code == error_code::NONE
                {
                    // v0-2 name one member: its outcome is the answer.
                    response.error_code = *code;
                }
            }
            Ok(other) => unreachable!("a LeaveGroup answered with {other:?}"),
            Err(code) => response.error_code = code,
        }
        ResponseKind::LeaveGroup(response)
    })
}
