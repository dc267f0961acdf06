//! Fixtures shared by the unit tests: real Kafka batches for entries, and one message of every
//! Raft variant.

use crate::group_id::{GroupId, TopicId};
use crate::rpc::RaftMessage;
use bytes::Bytes;
use sluice_raft::{EntryKind, EntryMeta, Envelope, LogPosition, Membership, MembershipChange, Message};
use sluice_types::batch::build_batch;
use sluice_types::{BatchHeader, NodeId, Offset, PartitionId, Term};

pub(crate) const LEADER: NodeId = NodeId(1);
pub(crate) const FOLLOWER: NodeId = NodeId(2);

/// A batch of `records` records ending at `index` in `term`, and its entry.
pub(crate) fn entry_with_batch(index: i64, term: i32, records: i32, kind: EntryKind) -> (EntryMeta, Bytes) {
    let mut header = BatchHeader::template(records, 1_700_000_000_000);
    header.base_offset = Offset(index - i64::from(records - 1));
    header.partition_leader_epoch = Term(term);
    let batch = Bytes::from(build_batch(&header, b"records"));
    let size_bytes = u32::try_from(batch.len()).expect("small");
    (EntryMeta { index: Offset(index), term: Term(term), kind, size_bytes }, batch)
}

pub(crate) fn partition(topic: u8, partition: i32) -> GroupId {
    GroupId::Partition { topic_id: TopicId([topic; 16]), partition: PartitionId(partition) }
}

/// An AppendEntries in term 3 after (2, 9) with one entry per `(index, term, kind)`, each batch
/// starting after the previous one.
pub(crate) fn append(from: NodeId, to: NodeId, entries: &[(i64, i32, EntryKind)]) -> RaftMessage {
    let mut previous = 9;
    let (metas, batches): (Vec<_>, Vec<_>) = entries
        .iter()
        .map(|(index, term, kind)| {
            let records = i32::try_from(index - previous).expect("few records");
            previous = *index;
            entry_with_batch(*index, *term, records, *kind)
        })
        .unzip();
    let message = Message::AppendEntries {
        term: Term(3),
        prev: LogPosition { term: Term(2), index: Offset(9) },
        entries: metas,
        commit: Offset(7),
        log_start: Offset(0),
    };
    RaftMessage::new(Envelope { from, to, message }, batches)
}

pub(crate) fn heartbeat(from: NodeId, to: NodeId) -> RaftMessage {
    append(from, to, &[])
}

/// One message of every variant (AppendEntries with entries of every kind), `from` -> `to`.
pub(crate) fn every_variant(from: NodeId, to: NodeId) -> Vec<RaftMessage> {
    let last = LogPosition { term: Term(2), index: Offset(9) };
    let membership = Membership { voters: [1, 2, 3].map(NodeId).into(), learners: [4].map(NodeId).into() };
    let plain = [
        Message::PreVote { term: Term(3), last },
        Message::PreVoteResponse { term: Term(3), granted: true },
        Message::Vote { term: Term(3), last: LogPosition::EMPTY, transfer: true },
        Message::VoteResponse { term: Term(3), granted: false },
        Message::AppendResponse { term: Term(3), success: false, matched: last },
        Message::LogStart { term: Term(3), log_start: Offset(100), log_start_term: Term(2), membership },
        Message::TimeoutNow { term: Term(3) },
    ];
    let mut messages: Vec<RaftMessage> =
        plain.into_iter().map(|message| RaftMessage::new(Envelope { from, to, message }, Vec::new())).collect();
    messages.push(heartbeat(from, to));
    messages.push(append(
        from,
        to,
        &[
            (11, 2, EntryKind::Data),
            (12, 3, EntryKind::LeaderNoop),
            (14, 3, EntryKind::Membership(MembershipChange::AddLearner(NodeId(5)))),
            (16, 3, EntryKind::Membership(MembershipChange::PromoteLearner(NodeId(5)))),
            (18, 3, EntryKind::Membership(MembershipChange::Remove(NodeId(0)))),
        ],
    ));
    messages
}
