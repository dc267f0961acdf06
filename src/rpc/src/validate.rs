//! The invariants of a Raft message between brokers, checked on both ends.
//!
//! The receiver runs these on every decoded message, so nothing a peer sends can reach one of
//! the Raft core's assertions or overflow its arithmetic; the sender asserts them before it
//! encodes (DESIGN.md, Style 3: paired checks). What is checked, and why:
//! - terms are in `0..=TERM_MAX`, positions in `-1..` (the empty log is term -1, index -1):
//!   the core adds one to a term it adopts (election) and to offsets (`Offset::next`);
//! - an AppendEntries' entries follow `prev` in log order: indexes strictly increasing, terms
//!   never decreasing (Raft §5.3; `RaftLog::append` asserts both), and no entry term later than
//!   the message's (a leader's log holds no term later than its own, Raft §5.1);
//! - each entry's attached bytes are the batch it names, starting right after the previous
//!   entry (offsets are dense; `entry_batch.rs`);
//! - a membership has a voter, no node both voter and learner (the core asserts that), and at
//!   most `MEMBERS_MAX` members;
//! - per PeerBatch, the group, message and entry counts are within the limits (`limits.rs`).
//!
//! Not checked here, because it depends on the receiver's state: whether a membership change
//! is valid against the receiver's configuration.

use crate::entry_batch::check_entry_batch;
use crate::error::RpcError;
use crate::group_id::GroupId;
use crate::limits::{ENTRIES_PER_RPC_MAX, GROUPS_PER_RPC_MAX, MEMBERS_MAX, MESSAGES_PER_RPC_MAX};
use crate::rpc::{PeerBatch, RaftMessage};
use bytes::Bytes;
use sluice_raft::{EntryMeta, LogPosition, Membership, Message};
use sluice_types::{Offset, Term};

/// The largest term accepted: the core computes `term + 1` when it campaigns.
pub const TERM_MAX: i32 = i32::MAX - 1;
/// The largest offset accepted: the core and storage compute `offset + 1`.
pub const OFFSET_MAX: i64 = i64::MAX - 1;

pub(crate) fn validate_peer_batch(batch: &PeerBatch) -> Result<(), RpcError> {
    within("groups", batch.groups.len() as u64, GROUPS_PER_RPC_MAX)?;
    within("messages", batch.message_count(), MESSAGES_PER_RPC_MAX)?;
    within("entries", batch.entry_count(), ENTRIES_PER_RPC_MAX)?;
    for group in &batch.groups {
        validate_group(group.group)?;
        for message in &group.messages {
            validate_message(message)?;
        }
    }
    Ok(())
}

fn within(what: &'static str, count: u64, limit: u32) -> Result<(), RpcError> {
    if count > u64::from(limit) {
        return Err(RpcError::TooMany { what, limit });
    }
    Ok(())
}

pub(crate) fn validate_group(group: GroupId) -> Result<(), RpcError> {
    match group {
        GroupId::Controller => Ok(()),
        GroupId::Partition { partition, .. } => in_range("partition", i64::from(partition.0), 0, i64::from(i32::MAX)),
    }
}

pub(crate) fn validate_message(message: &RaftMessage) -> Result<(), RpcError> {
    let envelope = &message.envelope;
    term("term", envelope.message.term(), 0)?;
    match &envelope.message {
        Message::PreVote { last, .. } | Message::Vote { last, .. } => position("last", *last),
        Message::PreVoteResponse { .. } | Message::VoteResponse { .. } | Message::TimeoutNow { .. } => Ok(()),
        Message::AppendEntries { term: leader_term, prev, entries, commit, log_start } => {
            position("prev", *prev)?;
            offset("commit", *commit, -1)?;
            offset("log_start", *log_start, 0)?;
            validate_entries(*leader_term, *prev, entries, &message.entry_batches)
        }
        Message::AppendResponse { matched, .. } => position("matched", *matched),
        Message::LogStart { log_start, log_start_term, membership, .. } => {
            offset("log_start", *log_start, 0)?;
            term("log_start_term", *log_start_term, -1)?;
            validate_membership(membership)
        }
    }
}

fn validate_entries(
    leader_term: Term,
    prev: LogPosition,
    entries: &[EntryMeta],
    batches: &[Bytes],
) -> Result<(), RpcError> {
    // Not reachable from the network: decoding builds one batch per entry.
    assert_eq!(entries.len(), batches.len(), "one batch per AppendEntries entry");
    let mut last = prev;
    for (entry, batch) in entries.iter().zip(batches) {
        let index = entry.index.0;
        offset("entry index", entry.index, 0)?;
        term("entry term", entry.term, 0)?;
        let order_error = |reason| Err(RpcError::EntryOrder { index, reason });
        if entry.index <= last.index {
            return order_error("index not after the previous entry's");
        }
        if entry.term < last.term {
            return order_error("term below the previous entry's");
        }
        if entry.term > leader_term {
            return order_error("term later than the leader's");
        }
        check_entry_batch(entry, batch, Offset(last.index.0 + 1))
            .map_err(|reason| RpcError::EntryBatch { index, reason })?;
        last = LogPosition { term: entry.term, index: entry.index };
    }
    Ok(())
}

pub(crate) fn validate_membership(membership: &Membership) -> Result<(), RpcError> {
    if membership.voters.is_empty() {
        return Err(RpcError::Membership("no voter"));
    }
    if !membership.voters.is_disjoint(&membership.learners) {
        return Err(RpcError::Membership("a node is both voter and learner"));
    }
    if (membership.voters.len() + membership.learners.len()) as u64 > u64::from(MEMBERS_MAX) {
        return Err(RpcError::Membership("more than MEMBERS_MAX members"));
    }
    Ok(())
}

fn term(field: &'static str, term: Term, min: i32) -> Result<(), RpcError> {
    in_range(field, i64::from(term.0), i64::from(min), i64::from(TERM_MAX))
}

fn offset(field: &'static str, offset: Offset, min: i64) -> Result<(), RpcError> {
    in_range(field, offset.0, min, OFFSET_MAX)
}

fn position(field: &'static str, position: LogPosition) -> Result<(), RpcError> {
    term(field, position.term, -1)?;
    offset(field, position.index, -1)
}

fn in_range(field: &'static str, value: i64, min: i64, max: i64) -> Result<(), RpcError> {
    if value < min || value > max {
        return Err(RpcError::OutOfRange { field, value });
    }
    Ok(())
}
