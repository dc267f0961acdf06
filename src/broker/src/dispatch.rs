//! Routes a decoded request to its handler.
//!
//! A handler runs its synchronous part before returning (so effects happen in arrival order)
//! and returns either the response, a future of the response (for waits), or no response at
//! all (Produce with acks=0, which Kafka never answers), or a request to close the connection
//! (an acks=0 produce that failed: Kafka closes so the producer refreshes its metadata).

use crate::handlers;
use crate::state::BrokerState;
use futures::future::BoxFuture;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use sluice_io::{Clock, Disk};
use sluice_protocol::frame::Request;
use std::net::SocketAddr;
use std::sync::Arc;

pub enum Reply {
    Ready(Box<ResponseKind>),
    Deferred(BoxFuture<'static, ResponseKind>),
    NoResponse,
    /// Close the connection after answering what came before (acks=0 produce errors).
    Close,
}

pub async fn dispatch<D: Disk, C: Clock>(state: &Arc<BrokerState<D, C>>, request: Request, peer: SocketAddr) -> Reply {
    let version = request.header.request_api_version;
    match request.body {
        RequestKind::FindCoordinator(body) => {
            Reply::Ready(Box::new(handlers::groups::find_coordinator(state, body, version).await))
        }
        RequestKind::JoinGroup(body) => {
            let client_id = request.header.client_id.as_deref().unwrap_or("");
            handlers::groups::join_group(state, body, version, client_id, peer).await
        }
        RequestKind::ConsumerGroupHeartbeat(body) => {
            let client_id = request.header.client_id.as_deref().unwrap_or("");
            handlers::consumer_protocol::consumer_group_heartbeat(state, body, version, client_id, peer).await
        }
        RequestKind::ConsumerGroupDescribe(body) => {
            Reply::Ready(Box::new(handlers::consumer_protocol::consumer_group_describe(state, body, version).await))
        }
        RequestKind::SyncGroup(body) => handlers::groups::sync_group(state, body, version).await,
        RequestKind::Heartbeat(body) => handlers::groups::heartbeat(state, body).await,
        RequestKind::LeaveGroup(body) => handlers::groups::leave_group(state, body, version).await,
        RequestKind::OffsetCommit(body) => handlers::group_offsets::offset_commit(state, body, version).await,
        RequestKind::OffsetFetch(body) => {
            Reply::Ready(Box::new(handlers::group_offsets::offset_fetch(state, body, version).await))
        }
        RequestKind::OffsetDelete(body) => handlers::group_offsets::offset_delete(state, body).await,
        RequestKind::ListGroups(body) => {
            Reply::Ready(Box::new(handlers::group_offsets::list_groups(state, body, version).await))
        }
        RequestKind::DescribeGroups(body) => {
            Reply::Ready(Box::new(handlers::group_offsets::describe_groups(state, body, version).await))
        }
        RequestKind::DeleteGroups(body) => handlers::group_offsets::delete_groups(state, body).await,
        RequestKind::ApiVersions(_) => {
            Reply::Ready(Box::new(ResponseKind::ApiVersions(handlers::api_versions::response())))
        }
        RequestKind::Metadata(body) => Reply::Ready(Box::new(handlers::metadata::handle(state, body, version).await)),
        RequestKind::Produce(body) => handlers::produce::handle(state, body, version).await,
        RequestKind::Fetch(body) => handlers::fetch::handle(state, body, version).await,
        RequestKind::ListOffsets(body) => {
            Reply::Ready(Box::new(handlers::list_offsets::handle(state, body, version).await))
        }
        RequestKind::CreateTopics(body) => {
            Reply::Ready(Box::new(handlers::topics_admin::create_topics(state, body, version).await))
        }
        RequestKind::DeleteTopics(body) => {
            Reply::Ready(Box::new(handlers::topics_admin::delete_topics(state, body, version).await))
        }
        RequestKind::CreatePartitions(body) => {
            Reply::Ready(Box::new(handlers::topics_admin::create_partitions(state, body).await))
        }
        RequestKind::DeleteRecords(body) => {
            Reply::Ready(Box::new(handlers::topics_admin::delete_records(state, body).await))
        }
        RequestKind::DescribeConfigs(body) => Reply::Ready(Box::new(handlers::configs::describe(state, body, version))),
        RequestKind::AlterConfigs(body) => Reply::Ready(Box::new(handlers::configs::alter(state, body).await)),
        RequestKind::IncrementalAlterConfigs(body) => {
            Reply::Ready(Box::new(handlers::configs::incremental_alter(state, body).await))
        }
        RequestKind::DescribeCluster(body) => Reply::Ready(Box::new(handlers::cluster::describe_cluster(state, body))),
        RequestKind::InitProducerId(body) => {
            Reply::Ready(Box::new(handlers::cluster::init_producer_id(state, body).await))
        }
        RequestKind::ElectLeaders(body) => Reply::Ready(Box::new(handlers::cluster::elect_leaders(state, body).await)),
        RequestKind::AlterPartitionReassignments(body) => {
            Reply::Ready(Box::new(handlers::reassign::alter(state, body, version).await))
        }
        RequestKind::ListPartitionReassignments(body) => Reply::Ready(Box::new(handlers::reassign::list(state, body))),
        RequestKind::OffsetForLeaderEpoch(body) => {
            Reply::Ready(Box::new(handlers::list_offsets::offset_for_leader_epoch(state, body).await))
        }
        other => unreachable!("decoded an unsupported request: {other:?}"),
    }
}
