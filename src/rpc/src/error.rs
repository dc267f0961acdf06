//! `RpcError`: every way an RPC received from a peer can be invalid.
//!
//! Why typed: a malicious or buggy peer is an expected failure (DESIGN.md, Style 2). The shell
//! drops the frame (and may log the peer); the Raft core never sees it, so nothing a peer sends
//! can trip one of the core's assertions. Decoding never panics.

use sluice_types::{BatchError, NodeId};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("rpc of {bytes} bytes exceeds RPC_BYTES_MAX")]
    TooLarge { bytes: u64 },
    /// The bytes are not a protobuf encoding of the schema (prost's verdict).
    #[error("malformed rpc: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// The protobuf framing is broken (found before decoding, by `prescan.rs`).
    #[error("malformed protobuf framing: {0}")]
    Framing(&'static str),
    #[error("more than {limit} {what} in one rpc")]
    TooMany { what: &'static str, limit: u32 },
    #[error("missing field {0}")]
    MissingField(&'static str),
    #[error("unknown {what} value {value}")]
    UnknownEnum { what: &'static str, value: i32 },
    #[error("{field} out of range: {value}")]
    OutOfRange { field: &'static str, value: i64 },
    #[error("topic id of {bytes} bytes (want 16)")]
    TopicIdLength { bytes: u64 },
    #[error("membership: {0}")]
    Membership(&'static str),
    /// Raft §5.3: an AppendEntries carries consecutive log entries after `prev`.
    #[error("AppendEntries entry at index {index}: {reason}")]
    EntryOrder { index: i64, reason: &'static str },
    /// The attached bytes are not the batch the entry metadata names.
    #[error("entry at index {index}: {reason}")]
    EntryBatch { index: i64, reason: EntryBatchMismatch },
    /// A message on the link from `sender` to `receiver` must be from `sender` to `receiver`.
    #[error("message from {from} to {to} on the link from {sender} to {receiver}")]
    Misaddressed { from: NodeId, to: NodeId, sender: NodeId, receiver: NodeId },
    #[error("expected a peer batch, got a {0}")]
    NotAPeerBatch(&'static str),
}

/// How an entry's batch bytes disagree with its `EntryMeta` (see `entry_batch.rs`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryBatchMismatch {
    #[error("{bytes} batch bytes, but size_bytes says {size_bytes}")]
    Length { bytes: u64, size_bytes: u32 },
    #[error("not a record batch: {0}")]
    Header(BatchError),
    #[error("batch length field says {header_bytes} bytes, but {bytes} are attached")]
    HeaderLength { header_bytes: u64, bytes: u64 },
    #[error("batch base offset {base_offset}, expected {expected} (right after the previous entry)")]
    BaseOffset { base_offset: i64, expected: i64 },
    #[error("batch last offset {last_offset}, but the entry index is {index}")]
    LastOffset { last_offset: i64, index: i64 },
    #[error("batch partition leader epoch {epoch}, but the entry term is {term}")]
    Epoch { epoch: i32, term: i32 },
}
