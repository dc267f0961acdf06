//! Raft messages between replicas, and the entry metadata they carry.
//!
//! Entries are Kafka record batches. The core never sees batch bytes: a message names entries by
//! [`EntryMeta`] (the batch's last offset as its index, its leader epoch as its term, and what
//! kind of entry it is). The shell attaches the bytes from storage when it sends an
//! `AppendEntries` and stores them when the core says `Append` (see `effect.rs`).
//!
//! Positions: an entry's index is its batch's *last* offset, so consecutive entries have
//! increasing but not consecutive indexes; the entry after `prev_index` starts at offset
//! `prev_index + 1`. Index -1 means "before the first entry" (an empty log).

use crate::membership::Membership;
use sluice_types::{NodeId, Offset, Term};

/// What an entry is, as far as consensus cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A producer batch.
    Data,
    /// A new leader's first entry: a Kafka control batch (Raft §8, "no-op at the start of its
    /// term"; the commit rule of §5.4.2 needs a current-term entry).
    LeaderNoop,
    /// A membership change, one server at a time (Raft thesis §4.1; KIP-853). It takes effect
    /// on each replica as soon as it is in that replica's log, committed or not.
    Membership(MembershipChange),
}

/// One single-server membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// A new replica joins without a vote and catches up (thesis §4.2.1).
    AddLearner(NodeId),
    /// A caught-up learner becomes a voter.
    PromoteLearner(NodeId),
    /// A voter or learner leaves.
    Remove(NodeId),
}

/// One log entry as consensus sees it. Invariant: `index >= 0`, and within a log, indexes and
/// terms never decrease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// The batch's last offset.
    pub index: Offset,
    /// The batch's partition leader epoch.
    pub term: Term,
    pub kind: EntryKind,
    /// The batch's size, for flow control bounded in bytes.
    pub size_bytes: u32,
}

/// A position in a log: the index and term of an entry (index -1, term -1 for the empty log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    pub term: Term,
    pub index: Offset,
}

impl LogPosition {
    pub const EMPTY: LogPosition = LogPosition { term: Term(-1), index: Offset(-1) };
}

/// A message from one replica to another. Every message carries the sender's term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Raft thesis §9.6: would you vote for me in `term` (not yet entered)?
    PreVote {
        term: Term,
        last: LogPosition,
    },
    PreVoteResponse {
        term: Term,
        granted: bool,
    },
    /// Raft §5.2. `transfer`: sent on the leader's TimeoutNow, so it bypasses leader stickiness.
    Vote {
        term: Term,
        last: LogPosition,
        transfer: bool,
    },
    VoteResponse {
        term: Term,
        granted: bool,
    },
    /// Raft §5.3. Empty `entries` is a heartbeat. `log_start` is the leader's first offset.
    AppendEntries {
        term: Term,
        prev: LogPosition,
        entries: Vec<EntryMeta>,
        commit: Offset,
        log_start: Offset,
    },
    /// `matched`: on success, the last index the follower now holds from this message; on
    /// failure, a hint for fast backtracking: the follower's last position at or below the
    /// leader's `prev` whose term is at most the leader's `prev` term (etcd raft's
    /// findConflictByTerm).
    AppendResponse {
        term: Term,
        success: bool,
        matched: LogPosition,
    },
    /// The follower is behind the leader's log start: resume from `log_start` (the partition
    /// log's form of a snapshot: retention and DeleteRecords moved the prefix away).
    LogStart {
        term: Term,
        log_start: Offset,
        log_start_term: Term,
        /// The membership as of the log start: changes in the skipped prefix are skipped too.
        membership: Membership,
    },
    /// Raft thesis §3.10: leadership transfer; start an election now.
    TimeoutNow {
        term: Term,
    },
}

impl Message {
    pub fn term(&self) -> Term {
        match self {
            Message::PreVote { term, .. }
            | Message::PreVoteResponse { term, .. }
            | Message::Vote { term, .. }
            | Message::VoteResponse { term, .. }
            | Message::AppendEntries { term, .. }
            | Message::AppendResponse { term, .. }
            | Message::LogStart { term, .. }
            | Message::TimeoutNow { term } => *term,
        }
    }
}

/// A message with its addressing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub from: NodeId,
    pub to: NodeId,
    pub message: Message,
}
