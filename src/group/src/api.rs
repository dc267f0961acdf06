//! What goes into and comes out of the coordinator: Kafka's group requests and responses as
//! plain structs (the broker maps them to and from the wire), and the coordinator's inputs and
//! ordered outputs.
//!
//! A request that cannot be answered at once (a JoinGroup waiting for the rebalance, a
//! SyncGroup waiting for the leader's assignment, anything waiting for its records to be
//! durable) is answered later by an [`Output::Respond`] carrying the [`Token`] the shell gave it.
//! Records reach the `__consumer_offsets` partition through [`Output::Persist`]; the shell
//! reports the outcome with [`Input::Persisted`], and nothing that depends on a write is
//! answered before it is durable.

use crate::error::ErrorCode;
use bytes::Bytes;

/// The shell's handle for one request, echoed in its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub u64);

/// The coordinator's handle for one write of records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteId(pub u64);

/// The two clocks the coordinator reads: monotonic time for session and rebalance timeouts,
/// wall time for what is stored (commit timestamps, offset retention), since stored times must
/// mean the same on the next coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time {
    pub monotonic_ms: i64,
    pub wall_ms: i64,
}

/// One protocol a member supports (for consumers, an assignor name and its subscription).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// JoinGroup (all versions; the shell fills fields an old version lacks as Kafka does:
/// `rebalance_timeout_ms` = `session_timeout_ms` for v0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroup {
    pub group_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// Empty for a member that has no id yet.
    pub member_id: String,
    /// Static membership (KIP-345).
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: a new dynamic member is first given its id with MEMBER_ID_REQUIRED and
    /// joins again with it (KIP-394).
    pub require_known_member_id: bool,
    /// The id this member gets if it needs a new one, made by the shell (client id and a
    /// random UUID, as Kafka does); the core has no randomness.
    pub member_id_candidate: String,
}

/// A member as the leader sees it in its JoinGroup answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupResponse {
    pub error: ErrorCode,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only for the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<JoinMember>,
}

impl JoinGroupResponse {
    pub fn error(error: ErrorCode, member_id: &str) -> JoinGroupResponse {
        JoinGroupResponse {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroup {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// From the leader: each member's assignment.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroupResponse {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncGroupResponse {
    pub fn error(error: ErrorCode) -> SyncGroupResponse {
        SyncGroupResponse { error, protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One member leaving (LeaveGroup v3+ leaves in batches; v0-2 send one member id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveGroup {
    pub group_id: String,
    pub members: Vec<LeavingMember>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveGroupResponse {
    pub error: ErrorCode,
    pub members: Vec<(LeavingMember, ErrorCode)>,
}

/// A topic partition, by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition { topic: topic.into(), partition }
    }
}

/// One committed position (`__consumer_offsets` OffsetCommitValue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when unknown (OffsetCommit v6+, KIP-320).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommit {
    pub group_id: String,
    /// -1 for a standalone consumer (no group membership, `assign` plus commits).
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub offsets: Vec<(TopicPartition, i64, i32, Option<String>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitResponse {
    pub partitions: Vec<(TopicPartition, ErrorCode)>,
}

/// OffsetFetch of one group (v8+ carry several, each one of these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetFetch {
    pub group_id: String,
    /// `None`: every partition the group has committed (v2+).
    pub partitions: Option<Vec<TopicPartition>>,
    /// v7+ (KIP-447).
    pub require_stable: bool,
    /// v9+ (KIP-848): the member of a consumer group that fetches, checked with its epoch.
    /// `None` with epoch -1: the admin client, or a version without these fields.
    pub member_id: Option<String>,
    pub member_epoch: i32,
}

/// One answer of OffsetFetch: offset -1 when nothing is committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedOffset {
    pub partition: TopicPartition,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub error: ErrorCode,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetDelete {
    pub group_id: String,
    pub partitions: Vec<TopicPartition>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetDeleteResponse {
    pub error: ErrorCode,
    pub partitions: Vec<(TopicPartition, ErrorCode)>,
}

/// DeleteGroups: one answer per group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteGroupsResponse {
    pub groups: Vec<(String, ErrorCode)>,
}

/// ConsumerGroupHeartbeat (KIP-848), with topics by name: the shell maps topic ids to names
/// and back, and passes the partition count of every topic it knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupHeartbeat {
    pub group_id: String,
    /// Empty when joining in v0 (the coordinator then uses `member_id_candidate`); v1 clients
    /// make their own (KIP-1082).
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 leaves a static member's place open; else the member's epoch.
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// v1 only (KIP-848, RE2/J syntax, matched against whole topic names). `None`: unchanged;
    /// `Some("")`: no regex, as Kafka reads an empty one.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now; `None`: unchanged.
    pub owned: Option<crate::assignor::TopicPartitions>,
    pub client_id: String,
    pub client_host: String,
    /// The id a joining v0 member gets, made by the shell (the core has no randomness).
    pub member_id_candidate: String,
    /// Partition count by topic name, for every topic the broker knows.
    pub partition_counts: std::collections::BTreeMap<String, i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupHeartbeatResponse {
    pub error: ErrorCode,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's partitions, when they changed (or it joined); `None`: unchanged.
    pub assignment: Option<crate::assignor::TopicPartitions>,
}

impl ConsumerGroupHeartbeatResponse {
    pub fn error(code: ErrorCode, message: &str) -> ConsumerGroupHeartbeatResponse {
        ConsumerGroupHeartbeatResponse {
            error: code,
            error_message: (!message.is_empty()).then(|| message.to_owned()),
            member_id: None,
            member_epoch: -1,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

/// A request the coordinator may have to answer later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Join(JoinGroup),
    Sync(SyncGroup),
    Heartbeat(Heartbeat),
    Leave(LeaveGroup),
    Commit(OffsetCommit),
    OffsetDelete(OffsetDelete),
    DeleteGroups(Vec<String>),
    ConsumerHeartbeat(ConsumerGroupHeartbeat),
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Join(JoinGroupResponse),
    Sync(SyncGroupResponse),
    Heartbeat(ErrorCode),
    Leave(LeaveGroupResponse),
    Commit(OffsetCommitResponse),
    OffsetDelete(OffsetDeleteResponse),
    DeleteGroups(DeleteGroupsResponse),
    ConsumerHeartbeat(ConsumerGroupHeartbeatResponse),
}

/// Everything that drives the coordinator.
// Inputs are moved into `step` one at a time and never stored in bulk: boxing the request
// would only add an allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Request(Token, Request),
    /// Time passed: timeouts fire.
    Tick,
    /// The write's records are durable (`error` is `None`) or will never be (a Kafka code,
    /// such as NOT_COORDINATOR when leadership moved).
    Persisted {
        write: WriteId,
        error: Option<ErrorCode>,
    },
}

/// What the coordinator asks of the shell, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Respond(Token, Response),
    /// Append these records to the group's `__consumer_offsets` partition, as one batch, and
    /// report with [`Input::Persisted`].
    Persist {
        write: WriteId,
        records: Vec<crate::records::OffsetsRecord>,
    },
}
