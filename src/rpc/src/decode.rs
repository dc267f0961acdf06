//! Decoding an RPC a peer sent: bytes -> prost wire structs -> validated Sluice values.
//!
//! Three passes, each refusing what the next must not see: `prescan.rs` bounds the frame size
//! and the element counts (so prost's allocations are bounded); prost checks the protobuf
//! encoding; this module converts, refusing absent fields, unknown enum values and malformed
//! ids, then runs `validate.rs` on every message. A decoded value holds every invariant `rpc.rs`
//! states. Nothing here panics on any input (the fuzz target and the property tests check it).
//!
//! Strictness beyond protobuf: messages and positions must be present (proto3 cannot tell an
//! absent message from a default one otherwise); membership node ids must be strictly
//! increasing (the sender encodes sets); `Entry.member` must be 0 unless the entry is a
//! membership change. Unknown fields are ignored, as protobuf prescribes.

use crate::error::RpcError;
use crate::group_id::{GroupId, TopicId};
use crate::limits::MEMBERS_MAX;
use crate::prescan::prescan;
use crate::rpc::{ForwardRequest, ForwardResponse, GroupMessages, Link, PeerBatch, RaftMessage, Rpc};
use crate::validate::{validate_group, validate_message, validate_peer_batch};
use crate::wire;
use bytes::Bytes;
use prost::Message as _;
use sluice_raft::{EntryKind, EntryMeta, Envelope, LogPosition, Membership, MembershipChange, Message};
use sluice_types::{NodeId, Offset, PartitionId, Term};
use std::collections::BTreeSet;

/// Decodes any RPC, copying byte fields out of `bytes`. Checks everything except the link
/// (who sent it to whom): the entry point for fuzzing and for callers without a link.
pub fn decode_rpc(bytes: &[u8]) -> Result<Rpc, RpcError> {
    prescan(bytes)?;
    rpc_from_wire(wire::Rpc::decode(bytes)?)
}

/// Decodes an RPC that arrived on `link`: entry batches and payloads are slices of `bytes`
/// (zero-copy), and every Raft message must be from `link.sender` to `link.receiver`.
pub fn decode_rpc_from(bytes: Bytes, link: Link) -> Result<Rpc, RpcError> {
    prescan(&bytes)?;
    let rpc = rpc_from_wire(wire::Rpc::decode(bytes)?)?;
    if let Rpc::PeerBatch(batch) = &rpc {
        link.check(batch)?;
    }
    Ok(rpc)
}

/// [`decode_rpc_from`], for a caller that expects a PeerBatch and nothing else.
pub fn decode_peer_batch(bytes: Bytes, link: Link) -> Result<PeerBatch, RpcError> {
    match decode_rpc_from(bytes, link)? {
        Rpc::PeerBatch(batch) => Ok(batch),
        other => Err(RpcError::NotAPeerBatch(other.kind_name())),
    }
}

fn rpc_from_wire(rpc: wire::Rpc) -> Result<Rpc, RpcError> {
    match rpc.kind.ok_or(RpcError::MissingField("Rpc.kind"))? {
        wire::rpc::Kind::PeerBatch(batch) => {
            let groups = batch.groups.into_iter().map(group_messages_from_wire).collect::<Result<Vec<_>, _>>()?;
            let batch = PeerBatch { groups };
            validate_peer_batch(&batch)?;
            Ok(Rpc::PeerBatch(batch))
        }
        wire::rpc::Kind::ForwardRequest(request) => {
            Ok(Rpc::ForwardRequest(ForwardRequest { correlation_id: request.correlation_id, payload: request.payload }))
        }
        wire::rpc::Kind::ForwardResponse(response) => {
            let error_code = i16::try_from(response.error_code).map_err(|_| RpcError::OutOfRange {
                field: "ForwardResponse.error_code",
                value: i64::from(response.error_code),
            })?;
            Ok(Rpc::ForwardResponse(ForwardResponse {
                correlation_id: response.correlation_id,
                error_code,
                payload: response.payload,
            }))
        }
    }
}

fn group_messages_from_wire(group: wire::GroupMessages) -> Result<GroupMessages, RpcError> {
    let id = group_from_wire(group.group.ok_or(RpcError::MissingField("GroupMessages.group"))?)?;
    let messages = group.messages.into_iter().map(message_from_wire).collect::<Result<Vec<_>, _>>()?;
    Ok(GroupMessages { group: id, messages })
}

pub(crate) fn group_from_wire(group: wire::GroupId) -> Result<GroupId, RpcError> {
    let id = match group.kind.ok_or(RpcError::MissingField("GroupId.kind"))? {
        wire::group_id::Kind::Controller(wire::ControllerGroup {}) => GroupId::Controller,
        wire::group_id::Kind::Partition(partition) => {
            let topic_id = <[u8; 16]>::try_from(partition.topic_id.as_ref())
                .map_err(|_| RpcError::TopicIdLength { bytes: partition.topic_id.len() as u64 })?;
            GroupId::Partition { topic_id: TopicId(topic_id), partition: PartitionId(partition.partition) }
        }
    };
    validate_group(id)?;
    Ok(id)
}

fn message_from_wire(message: wire::RaftMessage) -> Result<RaftMessage, RpcError> {
    use wire::raft_message::Kind;
    let mut entry_batches = Vec::new();
    let body = match message.kind.ok_or(RpcError::MissingField("RaftMessage.kind"))? {
        Kind::PreVote(m) => Message::PreVote { term: Term(m.term), last: position(m.last, "PreVote.last")? },
        Kind::PreVoteResponse(m) => Message::PreVoteResponse { term: Term(m.term), granted: m.granted },
        Kind::Vote(m) => {
            Message::Vote { term: Term(m.term), last: position(m.last, "Vote.last")?, transfer: m.transfer }
        }
        Kind::VoteResponse(m) => Message::VoteResponse { term: Term(m.term), granted: m.granted },
        Kind::AppendEntries(m) => {
            let mut entries = Vec::with_capacity(m.entries.len());
            entry_batches.reserve_exact(m.entries.len());
            for entry in m.entries {
                let (meta, batch) = entry_from_wire(entry)?;
                entries.push(meta);
                entry_batches.push(batch);
            }
            Message::AppendEntries {
                term: Term(m.term),
                prev: position(m.prev, "AppendEntries.prev")?,
                entries,
                commit: Offset(m.commit),
                log_start: Offset(m.log_start),
            }
        }
        Kind::AppendResponse(m) => Message::AppendResponse {
            term: Term(m.term),
            success: m.success,
            matched: position(m.matched, "AppendResponse.matched")?,
        },
        Kind::LogStart(m) => Message::LogStart {
            term: Term(m.term),
            log_start: Offset(m.log_start),
            log_start_term: Term(m.log_start_term),
            membership: membership(m.membership.ok_or(RpcError::MissingField("LogStart.membership"))?)?,
        },
        Kind::TimeoutNow(m) => Message::TimeoutNow { term: Term(m.term) },
    };
    let envelope = Envelope { from: NodeId(message.from), to: NodeId(message.to), message: body };
    let message = RaftMessage { envelope, entry_batches };
    validate_message(&message)?;
    Ok(message)
}

fn entry_from_wire(entry: wire::Entry) -> Result<(EntryMeta, Bytes), RpcError> {
    let code = wire::EntryKind::try_from(entry.kind)
        .map_err(|_| RpcError::UnknownEnum { what: "EntryKind", value: entry.kind })?;
    let member = NodeId(entry.member);
    let kind = match code {
        wire::EntryKind::Data => EntryKind::Data,
        wire::EntryKind::LeaderNoop => EntryKind::LeaderNoop,
        wire::EntryKind::AddLearner => EntryKind::Membership(MembershipChange::AddLearner(member)),
        wire::EntryKind::PromoteLearner => EntryKind::Membership(MembershipChange::PromoteLearner(member)),
        wire::EntryKind::Remove => EntryKind::Membership(MembershipChange::Remove(member)),
    };
    if !matches!(kind, EntryKind::Membership(_)) && entry.member != 0 {
        return Err(RpcError::OutOfRange { field: "Entry.member", value: i64::from(entry.member) });
    }
    let meta = EntryMeta { index: Offset(entry.index), term: Term(entry.term), kind, size_bytes: entry.size_bytes };
    Ok((meta, entry.batch))
}

fn position(position: Option<wire::LogPosition>, field: &'static str) -> Result<LogPosition, RpcError> {
    let position = position.ok_or(RpcError::MissingField(field))?;
    Ok(LogPosition { term: Term(position.term), index: Offset(position.index) })
}

fn membership(membership: wire::Membership) -> Result<Membership, RpcError> {
    Ok(Membership { voters: node_set(&membership.voters)?, learners: node_set(&membership.learners)? })
}

fn node_set(ids: &[i32]) -> Result<BTreeSet<NodeId>, RpcError> {
    if ids.len() as u64 > u64::from(MEMBERS_MAX) {
        return Err(RpcError::Membership("more than MEMBERS_MAX members"));
    }
    if !ids.is_sorted_by(|a, b| a < b) {
        return Err(RpcError::Membership("node ids not strictly increasing"));
    }
    Ok(ids.iter().copied().map(NodeId).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{encode_peer_batch, encode_rpc, message_to_wire_unchecked};
    use crate::error::EntryBatchMismatch;
    use crate::limits::MEMBERS_MAX;
    use crate::test_support::{FOLLOWER, LEADER, append, every_variant, heartbeat, partition};

    const LINK: Link = Link { sender: LEADER, receiver: FOLLOWER };

    fn batch_of(groups: Vec<(GroupId, Vec<RaftMessage>)>) -> PeerBatch {
        PeerBatch { groups: groups.into_iter().map(|(group, messages)| GroupMessages { group, messages }).collect() }
    }

    /// A frame holding one (wire) message in partition group (7, 0).
    fn frame(message: wire::RaftMessage) -> Vec<u8> {
        let group = crate::encode::group_to_wire(partition(7, 0));
        let groups = vec![wire::GroupMessages { group: Some(group), messages: vec![message] }];
        wire::Rpc { kind: Some(wire::rpc::Kind::PeerBatch(wire::PeerBatch { groups })) }.encode_to_vec()
    }

    /// The wire form of a valid AppendEntries with three entries, to corrupt.
    fn wire_append() -> wire::RaftMessage {
        message_to_wire_unchecked(&append(LEADER, FOLLOWER, &[(10, 2, EntryKind::Data), (12, 3, EntryKind::Data)]))
    }

    fn wire_entries(message: &mut wire::RaftMessage) -> &mut wire::AppendEntries {
        match &mut message.kind {
            Some(wire::raft_message::Kind::AppendEntries(append)) => append,
            _ => unreachable!("an AppendEntries"),
        }
    }

    fn log_start(voters: Vec<i32>, learners: Vec<i32>) -> Vec<u8> {
        let membership = Some(wire::Membership { voters, learners });
        let kind =
            wire::raft_message::Kind::LogStart(wire::LogStart { term: 3, log_start: 5, log_start_term: 2, membership });
        frame(wire::RaftMessage { from: 1, to: 2, kind: Some(kind) })
    }

    #[test]
    fn every_message_variant_round_trips_with_its_entry_batches() {
        let batch = batch_of(vec![
            (GroupId::Controller, every_variant(LEADER, FOLLOWER)),
            (partition(7, 3), every_variant(LEADER, FOLLOWER)),
        ]);
        let bytes = encode_peer_batch(&batch);
        assert_eq!(decode_peer_batch(bytes.clone(), LINK), Ok(batch.clone()));
        assert_eq!(decode_rpc(&bytes), Ok(Rpc::PeerBatch(batch)));
    }

    #[test]
    fn decoding_from_bytes_slices_the_entry_batches_out_of_the_frame() {
        let batch = batch_of(vec![(partition(1, 0), vec![append(LEADER, FOLLOWER, &[(11, 3, EntryKind::Data)])])]);
        let frame = encode_peer_batch(&batch);
        let decoded = decode_peer_batch(frame.clone(), LINK).unwrap();
        let entry = decoded.groups[0].messages[0].entry_batches[0].as_ptr_range();
        let frame_range = frame.as_ptr_range();
        assert!(frame_range.start <= entry.start && entry.end <= frame_range.end, "zero-copy");
    }

    #[test]
    fn forward_request_and_response_round_trip() {
        let request =
            Rpc::ForwardRequest(ForwardRequest { correlation_id: u64::MAX, payload: Bytes::from_static(b"op") });
        assert_eq!(decode_rpc(&encode_rpc(&request)), Ok(request));
        let response = Rpc::ForwardResponse(ForwardResponse {
            correlation_id: 7,
            error_code: -1,
            payload: Bytes::from_static(b"r"),
        });
        assert_eq!(decode_rpc_from(encode_rpc(&response), LINK), Ok(response));
        let wide = wire::ForwardResponse { correlation_id: 7, error_code: 40_000, payload: Bytes::new() };
        let wide = wire::Rpc { kind: Some(wire::rpc::Kind::ForwardResponse(wide)) }.encode_to_vec();
        assert!(matches!(decode_rpc(&wide), Err(RpcError::OutOfRange { field: "ForwardResponse.error_code", .. })));
    }

    #[test]
    fn a_forwarded_operation_is_not_a_peer_batch() {
        let request = encode_rpc(&Rpc::ForwardRequest(ForwardRequest::default()));
        assert_eq!(decode_peer_batch(request, LINK), Err(RpcError::NotAPeerBatch("ForwardRequest")));
    }

    #[test]
    fn messages_must_travel_from_the_frame_sender_to_this_broker() {
        let bytes = encode_peer_batch(&batch_of(vec![(GroupId::Controller, vec![heartbeat(LEADER, FOLLOWER)])]));
        let elsewhere = Link { sender: LEADER, receiver: NodeId(3) };
        assert!(matches!(decode_rpc_from(bytes.clone(), elsewhere), Err(RpcError::Misaddressed { .. })));
        let spoofed = Link { sender: NodeId(3), receiver: FOLLOWER };
        assert!(matches!(decode_rpc_from(bytes, spoofed), Err(RpcError::Misaddressed { .. })));
    }

    #[test]
    fn absent_fields_are_refused_not_defaulted() {
        assert_eq!(decode_rpc(&[]), Err(RpcError::MissingField("Rpc.kind")));
        let no_kind = frame(wire::RaftMessage { from: 1, to: 2, kind: None });
        assert_eq!(decode_rpc(&no_kind), Err(RpcError::MissingField("RaftMessage.kind")));
        let mut no_prev = wire_append();
        wire_entries(&mut no_prev).prev = None;
        assert_eq!(decode_rpc(&frame(no_prev)), Err(RpcError::MissingField("AppendEntries.prev")));
        let no_group = wire::GroupMessages { group: None, messages: Vec::new() };
        let no_group = wire::Rpc { kind: Some(wire::rpc::Kind::PeerBatch(wire::PeerBatch { groups: vec![no_group] })) };
        assert_eq!(decode_rpc(&no_group.encode_to_vec()), Err(RpcError::MissingField("GroupMessages.group")));
    }

    #[test]
    fn group_ids_are_checked() {
        let partition = |topic_id: &'static [u8], partition| {
            let kind = wire::group_id::Kind::Partition(wire::PartitionGroup {
                topic_id: Bytes::from_static(topic_id),
                partition,
            });
            wire::GroupId { kind: Some(kind) }
        };
        assert_eq!(group_from_wire(partition(&[0; 15], 0)), Err(RpcError::TopicIdLength { bytes: 15 }));
        assert!(matches!(
            group_from_wire(partition(&[0; 16], -1)),
            Err(RpcError::OutOfRange { field: "partition", .. })
        ));
        assert_eq!(group_from_wire(wire::GroupId { kind: None }), Err(RpcError::MissingField("GroupId.kind")));
    }

    #[test]
    fn unknown_entry_kinds_and_stray_members_are_refused() {
        let mut unknown = wire_append();
        wire_entries(&mut unknown).entries[0].kind = 9;
        assert_eq!(decode_rpc(&frame(unknown)), Err(RpcError::UnknownEnum { what: "EntryKind", value: 9 }));
        let mut stray = wire_append();
        wire_entries(&mut stray).entries[0].member = 4;
        assert!(matches!(decode_rpc(&frame(stray)), Err(RpcError::OutOfRange { field: "Entry.member", .. })));
    }

    #[test]
    fn entries_must_follow_prev_in_log_order() {
        let mut repeated = wire_append();
        wire_entries(&mut repeated).entries[1].index = 10;
        assert!(matches!(decode_rpc(&frame(repeated)), Err(RpcError::EntryOrder { index: 10, .. })));
        let mut before_prev = wire_append();
        wire_entries(&mut before_prev).prev = Some(wire::LogPosition { term: 2, index: 10 });
        assert!(matches!(decode_rpc(&frame(before_prev)), Err(RpcError::EntryOrder { index: 10, .. })));
        let mut term_back = wire_append();
        wire_entries(&mut term_back).entries[1].term = 1;
        assert!(matches!(decode_rpc(&frame(term_back)), Err(RpcError::EntryOrder { index: 12, .. })));
        let mut future_term = wire_append();
        wire_entries(&mut future_term).term = 2;
        wire_entries(&mut future_term).entries[1].term = 3;
        assert!(matches!(decode_rpc(&frame(future_term)), Err(RpcError::EntryOrder { index: 12, .. })));
    }

    #[test]
    fn entry_bytes_must_be_the_batch_the_entry_names() {
        let mut short = wire_append();
        let entry = &mut wire_entries(&mut short).entries[0];
        entry.batch = entry.batch.slice(1..);
        assert!(matches!(
            decode_rpc(&frame(short)),
            Err(RpcError::EntryBatch { index: 10, reason: EntryBatchMismatch::Length { .. } })
        ));
        let mut other_term = wire_append();
        wire_entries(&mut other_term).entries[1].term = 2;
        assert!(matches!(
            decode_rpc(&frame(other_term)),
            Err(RpcError::EntryBatch { index: 12, reason: EntryBatchMismatch::Epoch { .. } })
        ));
        let mut swapped = wire_append();
        let entries = &mut wire_entries(&mut swapped).entries;
        let first = entries[0].batch.clone();
        entries[0].batch = std::mem::replace(&mut entries[1].batch, first);
        assert!(matches!(decode_rpc(&frame(swapped)), Err(RpcError::EntryBatch { index: 10, .. })));
    }

    #[test]
    fn terms_and_offsets_out_of_range_are_refused() {
        let mut huge_term = wire_append();
        wire_entries(&mut huge_term).term = i32::MAX;
        assert!(matches!(decode_rpc(&frame(huge_term)), Err(RpcError::OutOfRange { field: "term", .. })));
        let mut negative_commit = wire_append();
        wire_entries(&mut negative_commit).commit = -2;
        assert!(matches!(decode_rpc(&frame(negative_commit)), Err(RpcError::OutOfRange { field: "commit", .. })));
        let negative_start = wire::LogStart { term: 3, log_start: i64::MIN, log_start_term: 2, membership: None };
        let kind = wire::raft_message::Kind::LogStart(wire::LogStart {
            membership: Some(wire::Membership { voters: vec![1], learners: Vec::new() }),
            ..negative_start
        });
        let bytes = frame(wire::RaftMessage { from: 1, to: 2, kind: Some(kind) });
        assert!(matches!(decode_rpc(&bytes), Err(RpcError::OutOfRange { field: "log_start", .. })));
    }

    #[test]
    fn memberships_are_sets_with_a_voter_and_no_overlap() {
        assert!(decode_rpc(&log_start(vec![1, 2, 3], vec![4])).is_ok());
        let refused =
            |voters, learners| matches!(decode_rpc(&log_start(voters, learners)), Err(RpcError::Membership(_)));
        assert!(refused(vec![2, 1], vec![]), "unsorted");
        assert!(refused(vec![1, 1], vec![]), "duplicate");
        assert!(refused(vec![], vec![1]), "no voter");
        assert!(refused(vec![1, 2], vec![2]), "voter and learner");
        let too_many = (0..=MEMBERS_MAX as i32).collect();
        assert!(refused(too_many, vec![]), "more than MEMBERS_MAX");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_rpc(&[0x0a, 0x03, 0x0a, 0x01]).is_err());
        assert!(decode_rpc(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode_rpc(&[0x12, 0x02, 0x08, 0x80]).is_err(), "truncated varint inside a message");
    }

    #[test]
    #[should_panic(expected = "outgoing message a receiver would refuse")]
    fn encoding_asserts_what_decoding_checks() {
        let mut message = append(LEADER, FOLLOWER, &[(10, 2, EntryKind::Data)]);
        message.entry_batches[0] = message.entry_batches[0].slice(1..);
        crate::encode::message_to_wire(&message);
    }
}
