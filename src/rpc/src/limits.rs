//! The named limits of broker-to-broker RPCs, in one place so sender and receiver agree.
//!
//! Why each exists: a decoder that trusts counts read off the wire can be made to allocate far
//! more than the bytes it received (prost builds one struct per repeated element, each many
//! times larger than its smallest encoding). The receiver bounds the frame size and, before
//! prost allocates anything, the number of groups, messages and entries (`prescan.rs`). The
//! sender (`outbox.rs`) splits its RPCs so that every one it emits stays within the same limits:
//! what one side sends, the other accepts.
//!
//! Invariant: `PEER_BATCH_BYTES_MAX <= RPC_BYTES_MAX`, and `RPC_BYTES_MAX` equals the byte
//! transport's largest frame payload (`sluice_io::FRAME_BYTES_MAX`; this crate is sans-IO and
//! cannot name it, so the shell asserts the two agree).

/// The largest encoded RPC accepted: one transport frame's payload.
pub const RPC_BYTES_MAX: u32 = 16 << 20;

/// The size an `Outbox` aims for per drained RPC: a peer's pending messages beyond it go in a
/// further RPC. One message larger than this (up to `RPC_BYTES_MAX`) travels alone. Twice the
/// Raft core's default `append_bytes_max`, so one full AppendEntries plus heartbeats fit.
pub const PEER_BATCH_BYTES_MAX: u32 = 8 << 20;

/// Raft groups in one PeerBatch. A broker with thousands of partitions shares at most that many
/// groups with one peer; more go in a further RPC.
pub const GROUPS_PER_RPC_MAX: u32 = 1 << 15;

/// Raft messages in one PeerBatch, over all its groups.
pub const MESSAGES_PER_RPC_MAX: u32 = 1 << 16;

/// Entries in one PeerBatch, over all its AppendEntries. The smallest Kafka batch (a 61-byte
/// header and one record) is about 70 bytes, so this covers `PEER_BATCH_BYTES_MAX` of the
/// smallest batches roughly half over; the outbox splits before reaching it.
pub const ENTRIES_PER_RPC_MAX: u32 = 1 << 16;

/// Voters plus learners of one membership (a LogStart message). A partition has a handful of
/// replicas; the controller group has at most every broker.
pub const MEMBERS_MAX: u32 = 1 << 10;

/// A Kafka topic id (a UUID) on the wire.
pub const TOPIC_ID_BYTES: u32 = 16;

/// Upper bound of the bytes protobuf spends to frame one length-delimited field: a one-byte
/// key (every tag in this schema is below 16) and a length varint of at most five bytes.
pub const FIELD_FRAMING_BYTES_MAX: u32 = 6;

/// Encoded bytes an `Outbox` holds for one peer between drains; messages past it are dropped
/// and counted (Raft retransmits: heartbeats repeat, a leader resends unacknowledged entries).
pub const PEER_PENDING_BYTES_MAX: u32 = 4 * PEER_BATCH_BYTES_MAX;

/// Messages an `Outbox` holds for one peer between drains.
pub const PEER_PENDING_MESSAGES_MAX: u32 = 4 * MESSAGES_PER_RPC_MAX;

/// Encoded bytes an `Outbox` holds for all peers together between drains.
pub const OUTBOX_PENDING_BYTES_MAX: u32 = 32 * PEER_BATCH_BYTES_MAX;

/// Distinct peers an `Outbox` holds messages for: at most every broker of the largest cluster.
pub const PEERS_MAX: u32 = MEMBERS_MAX;

// The outbox may fill a frame, never overflow one.
const _: () = assert!(PEER_BATCH_BYTES_MAX <= RPC_BYTES_MAX);
const _: () = assert!(MESSAGES_PER_RPC_MAX >= GROUPS_PER_RPC_MAX);
const _: () =
    assert!(PEER_PENDING_BYTES_MAX >= PEER_BATCH_BYTES_MAX && OUTBOX_PENDING_BYTES_MAX >= PEER_PENDING_BYTES_MAX);
