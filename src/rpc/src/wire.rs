//! The wire schema: prost messages, derived on plain structs (no .proto file, no build step).
//!
//! Schema, in proto3 notation (tags are the wire contract: never reuse or renumber one):
//!
//! ```text
//! message Rpc             { oneof kind { PeerBatch peer_batch = 1; ForwardRequest forward_request = 2;
//!                                        ForwardResponse forward_response = 3; } }
//! message PeerBatch       { repeated GroupMessages groups = 1; }
//! message GroupMessages   { GroupId group = 1; repeated RaftMessage messages = 2; }
//! message GroupId         { oneof kind { ControllerGroup controller = 1; PartitionGroup partition = 2; } }
//! message ControllerGroup { }
//! message PartitionGroup  { bytes topic_id = 1; int32 partition = 2; }
//! message RaftMessage     { int32 from = 1; int32 to = 2;
//!                           oneof kind { PreVote pre_vote = 3; PreVoteResponse pre_vote_response = 4;
//!                                        Vote vote = 5; VoteResponse vote_response = 6;
//!                                        AppendEntries append_entries = 7; AppendResponse append_response = 8;
//!                                        LogStart log_start = 9; TimeoutNow timeout_now = 10; } }
//! message LogPosition     { sint32 term = 1; sint64 index = 2; }
//! message PreVote         { sint32 term = 1; LogPosition last = 2; }
//! message PreVoteResponse { sint32 term = 1; bool granted = 2; }
//! message Vote            { sint32 term = 1; LogPosition last = 2; bool transfer = 3; }
//! message VoteResponse    { sint32 term = 1; bool granted = 2; }
//! message AppendEntries   { sint32 term = 1; LogPosition prev = 2; repeated Entry entries = 3;
//!                           sint64 commit = 4; sint64 log_start = 5; }
//! message Entry           { sint64 index = 1; sint32 term = 2; EntryKind kind = 3; int32 member = 4;
//!                           uint32 size_bytes = 5; bytes batch = 6; }
//! enum    EntryKind       { DATA = 0; LEADER_NOOP = 1; ADD_LEARNER = 2; PROMOTE_LEARNER = 3; REMOVE = 4; }
//! message AppendResponse  { sint32 term = 1; bool success = 2; LogPosition matched = 3; }
//! message LogStart        { sint32 term = 1; sint64 log_start = 2; sint32 log_start_term = 3;
//!                           Membership membership = 4; }
//! message Membership      { repeated sfixed32 voters = 1; repeated sfixed32 learners = 2; }
//! message TimeoutNow      { sint32 term = 1; }
//! message ForwardRequest  { uint64 correlation_id = 1; bytes payload = 2; }
//! message ForwardResponse { uint64 correlation_id = 1; int32 error_code = 2; bytes payload = 3; }
//! ```
//!
//! Choices: terms and offsets are zigzag (`sint`) because -1 (the empty log) is common and a
//! plain negative varint costs ten bytes. Membership node ids are `sfixed32` so a decoded list
//! is never larger in memory than on the wire. `Entry.member` is the node id of a membership
//! change (0 and absent otherwise). `Entry.batch` and the payloads are `bytes::Bytes`: decoding
//! from a `Bytes` frame slices it instead of copying.
//!
//! The `*_TAG` constants name the tags `prescan.rs` walks; a test pins them to the derive.

use bytes::Bytes;

/// `Rpc.peer_batch`.
pub(crate) const RPC_PEER_BATCH_TAG: u32 = 1;
/// `PeerBatch.groups`.
pub(crate) const PEER_BATCH_GROUPS_TAG: u32 = 1;
/// `GroupMessages.messages`.
pub(crate) const GROUP_MESSAGES_MESSAGES_TAG: u32 = 2;
/// `RaftMessage.append_entries`.
pub(crate) const RAFT_MESSAGE_APPEND_ENTRIES_TAG: u32 = 7;
/// `AppendEntries.entries`.
pub(crate) const APPEND_ENTRIES_ENTRIES_TAG: u32 = 3;

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Rpc {
    #[prost(oneof = "rpc::Kind", tags = "1, 2, 3")]
    pub kind: Option<rpc::Kind>,
}

pub(crate) mod rpc {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Kind {
        #[prost(message, tag = "1")]
        PeerBatch(super::PeerBatch),
        #[prost(message, tag = "2")]
        ForwardRequest(super::ForwardRequest),
        #[prost(message, tag = "3")]
        ForwardResponse(super::ForwardResponse),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PeerBatch {
    #[prost(message, repeated, tag = "1")]
    pub groups: Vec<GroupMessages>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GroupMessages {
    #[prost(message, optional, tag = "1")]
    pub group: Option<GroupId>,
    #[prost(message, repeated, tag = "2")]
    pub messages: Vec<RaftMessage>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GroupId {
    #[prost(oneof = "group_id::Kind", tags = "1, 2")]
    pub kind: Option<group_id::Kind>,
}

pub(crate) mod group_id {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Kind {
        #[prost(message, tag = "1")]
        Controller(super::ControllerGroup),
        #[prost(message, tag = "2")]
        Partition(super::PartitionGroup),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ControllerGroup {}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PartitionGroup {
    #[prost(bytes = "bytes", tag = "1")]
    pub topic_id: Bytes,
    #[prost(int32, tag = "2")]
    pub partition: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RaftMessage {
    #[prost(int32, tag = "1")]
    pub from: i32,
    #[prost(int32, tag = "2")]
    pub to: i32,
    #[prost(oneof = "raft_message::Kind", tags = "3, 4, 5, 6, 7, 8, 9, 10")]
    pub kind: Option<raft_message::Kind>,
}

pub(crate) mod raft_message {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(crate) enum Kind {
        #[prost(message, tag = "3")]
        PreVote(super::PreVote),
        #[prost(message, tag = "4")]
        PreVoteResponse(super::Granted),
        #[prost(message, tag = "5")]
        Vote(super::Vote),
        #[prost(message, tag = "6")]
        VoteResponse(super::Granted),
        #[prost(message, tag = "7")]
        AppendEntries(super::AppendEntries),
        #[prost(message, tag = "8")]
        AppendResponse(super::AppendResponse),
        #[prost(message, tag = "9")]
        LogStart(super::LogStart),
        #[prost(message, tag = "10")]
        TimeoutNow(super::TimeoutNow),
    }
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(crate) struct LogPosition {
    #[prost(sint32, tag = "1")]
    pub term: i32,
    #[prost(sint64, tag = "2")]
    pub index: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PreVote {
    #[prost(sint32, tag = "1")]
    pub term: i32,
    #[prost(message, optional, tag = "2")]
    pub last: Option<LogPosition>,
}

/// `PreVoteResponse` and `VoteResponse`: the same fields.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Granted {
    #[prost(sint32, tag = "1")]
    pub term: i32,
    #[prost(bool, tag = "2")]
    pub granted: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Vote {
    #[prost(sint32, tag = "1")]
    pub term: i32,
    #[prost(message, optional, tag = "2")]
    pub last: Option<LogPosition>,
    #[prost(bool, tag = "3")]
    pub transfer: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AppendEntries {
    #[prost(sint32, tag = "1")]
    pub term: i32,
    #[prost(message, optional, tag = "2")]
    pub prev: Option<LogPosition>,
    #[prost(message, repeated, tag = "3")]
    pub entries: Vec<Entry>,
    #[prost(sint64, tag = "4")]
    pub commit: i64,
    #[prost(sint64, tag = "5")]
    pub log_start: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Entry {
    #[prost(sint64, tag = "1")]
    pub index: i64,
    #[prost(sint32, tag = "2")]
    pub term: i32,
    #[prost(enumeration = "EntryKind", tag = "3")]
    pub kind: i32,
    #[prost(int32, tag = "4")]
    pub member: i32,
    #[prost(uint32, tag = "5")]
    pub size_bytes: u32,
    #[prost(bytes = "bytes", tag = "6")]
    pub batch: Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum EntryKind {
    Data = 0,
    LeaderNoop = 1,
    AddLearner = 2,
    PromoteLearner = 3,
    Remove = 4,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AppendResponse {
    #[prost(sint32, tag = "1")]
    pub term: i32,
    #[prost(bool, tag = "2")]
    pub success: bool,
    #[prost(message, optional, tag = "3")]
    pub matched: Option<LogPosition>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LogStart {
    #[prost(sint32, tag = "1")]
    pub term: i32,
    #[prost(sint64, tag = "2")]
    pub log_start: i64,
    #[prost(sint32, tag = "3")]
    pub log_start_term: i32,
    #[prost(message, optional, tag = "4")]
    pub membership: Option<Membership>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Membership {
    #[prost(sfixed32, repeated, tag = "1")]
    pub voters: Vec<i32>,
    #[prost(sfixed32, repeated, tag = "2")]
    pub learners: Vec<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TimeoutNow {
    #[prost(sint32, tag = "1")]
    pub term: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ForwardRequest {
    #[prost(uint64, tag = "1")]
    pub correlation_id: u64,
    #[prost(bytes = "bytes", tag = "2")]
    pub payload: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ForwardResponse {
    #[prost(uint64, tag = "1")]
    pub correlation_id: u64,
    #[prost(int32, tag = "2")]
    pub error_code: i32,
    #[prost(bytes = "bytes", tag = "3")]
    pub payload: Bytes,
}
