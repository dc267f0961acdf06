//! Encoding RPCs: Sluice values -> prost wire structs -> bytes.
//!
//! The sender asserts what the receiver checks (`validate.rs`): an outgoing message that a
//! peer would refuse is a bug in this broker, so it panics here rather than being dropped
//! silently there (DESIGN.md, Style 2 and 3). Entry batches are `Bytes` clones (reference
//! counts), copied once, into the encoded frame.

use crate::group_id::GroupId;
use crate::limits::RPC_BYTES_MAX;
use crate::rpc::{PeerBatch, RaftMessage, Rpc};
use crate::validate::{validate_group, validate_message, validate_peer_batch};
use crate::wire;
use bytes::Bytes;
use prost::Message as _;
use sluice_raft::{EntryKind, EntryMeta, LogPosition, Membership, MembershipChange, Message};

/// Encodes `rpc`. Panics if it breaks an invariant the receiver checks, or encodes to more than
/// `RPC_BYTES_MAX` (use an `Outbox` to split Raft traffic).
pub fn encode_rpc(rpc: &Rpc) -> Bytes {
    let kind = match rpc {
        Rpc::PeerBatch(batch) => wire::rpc::Kind::PeerBatch(peer_batch_to_wire(batch)),
        Rpc::ForwardRequest(request) => wire::rpc::Kind::ForwardRequest(wire::ForwardRequest {
            correlation_id: request.correlation_id,
            payload: request.payload.clone(),
        }),
        Rpc::ForwardResponse(response) => wire::rpc::Kind::ForwardResponse(wire::ForwardResponse {
            correlation_id: response.correlation_id,
            error_code: i32::from(response.error_code),
            payload: response.payload.clone(),
        }),
    };
    encode_wire(&wire::Rpc { kind: Some(kind) })
}

/// Encodes a PeerBatch as an RPC. Panics as [`encode_rpc`] does.
pub fn encode_peer_batch(batch: &PeerBatch) -> Bytes {
    encode_wire(&wire::Rpc { kind: Some(wire::rpc::Kind::PeerBatch(peer_batch_to_wire(batch))) })
}

pub(crate) fn encode_wire(rpc: &wire::Rpc) -> Bytes {
    let encoded = rpc.encode_to_vec();
    assert!(encoded.len() as u64 <= u64::from(RPC_BYTES_MAX), "rpc of {} bytes exceeds RPC_BYTES_MAX", encoded.len());
    Bytes::from(encoded)
}

fn peer_batch_to_wire(batch: &PeerBatch) -> wire::PeerBatch {
    if let Err(error) = validate_peer_batch(batch) {
        panic!("outgoing peer batch a receiver would refuse: {error}");
    }
    let groups = batch
        .groups
        .iter()
        .map(|group| wire::GroupMessages {
            group: Some(group_to_wire(group.group)),
            messages: group.messages.iter().map(message_to_wire_unchecked).collect(),
        })
        .collect();
    wire::PeerBatch { groups }
}

pub(crate) fn group_to_wire(group: GroupId) -> wire::GroupId {
    if let Err(error) = validate_group(group) {
        panic!("outgoing group id a receiver would refuse: {error}");
    }
    let kind = match group {
        GroupId::Controller => wire::group_id::Kind::Controller(wire::ControllerGroup {}),
        GroupId::Partition { topic_id, partition } => wire::group_id::Kind::Partition(wire::PartitionGroup {
            topic_id: Bytes::copy_from_slice(&topic_id.0),
            partition: partition.0,
        }),
    };
    wire::GroupId { kind: Some(kind) }
}

/// One message, checked as the receiver will check it.
pub(crate) fn message_to_wire(message: &RaftMessage) -> wire::RaftMessage {
    if let Err(error) = validate_message(message) {
        panic!("outgoing message a receiver would refuse: {error}: {:?}", message.envelope);
    }
    message_to_wire_unchecked(message)
}

pub(crate) fn message_to_wire_unchecked(message: &RaftMessage) -> wire::RaftMessage {
    use wire::raft_message::Kind;
    let envelope = &message.envelope;
    let kind = match &envelope.message {
        Message::PreVote { term, last } => Kind::PreVote(wire::PreVote { term: term.0, last: Some(position(*last)) }),
        Message::PreVoteResponse { term, granted } => {
            Kind::PreVoteResponse(wire::Granted { term: term.0, granted: *granted })
        }
        Message::Vote { term, last, transfer } => {
            Kind::Vote(wire::Vote { term: term.0, last: Some(position(*last)), transfer: *transfer })
        }
        Message::VoteResponse { term, granted } => {
            Kind::VoteResponse(wire::Granted { term: term.0, granted: *granted })
        }
        Message::AppendEntries { term, prev, entries, commit, log_start } => Kind::AppendEntries(wire::AppendEntries {
            term: term.0,
            prev: Some(position(*prev)),
            entries: entries.iter().zip(&message.entry_batches).map(|(e, b)| entry(e, b)).collect(),
            commit: commit.0,
            log_start: log_start.0,
        }),
        Message::AppendResponse { term, success, matched } => Kind::AppendResponse(wire::AppendResponse {
            term: term.0,
            success: *success,
            matched: Some(position(*matched)),
        }),
        Message::LogStart { term, log_start, log_start_term, membership: members } => Kind::LogStart(wire::LogStart {
            term: term.0,
            log_start: log_start.0,
            log_start_term: log_start_term.0,
            membership: Some(membership(members)),
        }),
        Message::TimeoutNow { term } => Kind::TimeoutNow(wire::TimeoutNow { term: term.0 }),
    };
    wire::RaftMessage { from: envelope.from.0, to: envelope.to.0, kind: Some(kind) }
}

fn entry(entry: &EntryMeta, batch: &Bytes) -> wire::Entry {
    let (kind, member) = match entry.kind {
        EntryKind::Data => (wire::EntryKind::Data, 0),
        EntryKind::LeaderNoop => (wire::EntryKind::LeaderNoop, 0),
        EntryKind::Membership(MembershipChange::AddLearner(id)) => (wire::EntryKind::AddLearner, id.0),
        EntryKind::Membership(MembershipChange::PromoteLearner(id)) => (wire::EntryKind::PromoteLearner, id.0),
        EntryKind::Membership(MembershipChange::Remove(id)) => (wire::EntryKind::Remove, id.0),
    };
    wire::Entry {
        index: entry.index.0,
        term: entry.term.0,
        kind: kind as i32,
        member,
        size_bytes: entry.size_bytes,
        batch: batch.clone(),
    }
}

fn position(position: LogPosition) -> wire::LogPosition {
    wire::LogPosition { term: position.term.0, index: position.index.0 }
}

fn membership(membership: &Membership) -> wire::Membership {
    wire::Membership {
        voters: membership.voters.iter().map(|id| id.0).collect(),
        learners: membership.learners.iter().map(|id| id.0).collect(),
    }
}
