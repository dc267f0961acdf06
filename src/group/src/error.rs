//! The Kafka error codes the coordinator answers with (Kafka protocol guide, "Error Codes").
//! The group core sits below `sluice-protocol`, so it names the codes it needs itself.

/// A Kafka error code, as sent on the wire.
pub type ErrorCode = i16;

pub const NONE: ErrorCode = 0;
pub const OFFSET_METADATA_TOO_LARGE: ErrorCode = 12;
pub const COORDINATOR_LOAD_IN_PROGRESS: ErrorCode = 14;
pub const COORDINATOR_NOT_AVAILABLE: ErrorCode = 15;
pub const NOT_COORDINATOR: ErrorCode = 16;
pub const ILLEGAL_GENERATION: ErrorCode = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: ErrorCode = 23;
pub const INVALID_GROUP_ID: ErrorCode = 24;
pub const UNKNOWN_MEMBER_ID: ErrorCode = 25;
pub const INVALID_SESSION_TIMEOUT: ErrorCode = 26;
pub const REBALANCE_IN_PROGRESS: ErrorCode = 27;
pub const INVALID_REQUEST: ErrorCode = 42;
pub const INVALID_COMMIT_OFFSET_SIZE: ErrorCode = 28;
pub const GROUP_ID_NOT_FOUND: ErrorCode = 69;
pub const NON_EMPTY_GROUP: ErrorCode = 68;
pub const MEMBER_ID_REQUIRED: ErrorCode = 79;
pub const FENCED_INSTANCE_ID: ErrorCode = 82;
pub const GROUP_MAX_SIZE_REACHED: ErrorCode = 81;
pub const GROUP_SUBSCRIBED_TO_TOPIC: ErrorCode = 86;
pub const UNSTABLE_OFFSET_COMMIT: ErrorCode = 88;
/// KIP-848: the member's epoch is not one the coordinator accepts; it must rejoin at epoch 0.
pub const FENCED_MEMBER_EPOCH: ErrorCode = 110;
/// KIP-848: `ServerAssignor` names no assignor of this broker.
pub const UNSUPPORTED_ASSIGNOR: ErrorCode = 112;
/// KIP-848: an OffsetCommit carried a member epoch other than the member's.
pub const STALE_MEMBER_EPOCH: ErrorCode = 113;
/// KIP-848: a ConsumerGroupHeartbeat `SubscribedTopicRegex` does not compile (Kafka 4.0,
/// KAFKA-17592).
pub const INVALID_REGULAR_EXPRESSION: ErrorCode = 128;
