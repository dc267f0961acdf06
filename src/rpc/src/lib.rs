//! `sluice-rpc`: the messages brokers send each other, and the coalescing of Raft traffic.
//!
//! Every partition is a Raft group and a broker hosts thousands of them, so the Raft messages
//! from one broker to another are coalesced: during one driver step the multi-raft driver
//! feeds every group's outgoing messages, with their entries' Kafka batch bytes, to an
//! [`Outbox`], which drains to one RPC per peer (DESIGN.md, Replication: "heartbeats and
//! appends for many groups between the same two brokers are coalesced into one RPC"). The byte
//! transport (`sluice_io::TcpTransport`) carries each encoded RPC as one frame.
//!
//! Sans-IO, like the Raft core: no tokio, no clock, no threads, no randomness. The wire format
//! is protobuf via prost derives on plain structs (no .proto file, no build step); the schema is
//! in `wire.rs`. Decoding never panics and never trusts a count: every frame is bounded in
//! size and element counts before prost allocates (`prescan.rs`), then every value is validated
//! (`validate.rs`) so nothing a peer sends can trip an assertion of the Raft core. Encoding
//! asserts the same invariants: what one broker sends, the other accepts.
//!
//! Map: `rpc.rs` (the RPC values), `group_id.rs` (which Raft group), `encode.rs` and
//! `decode.rs` (the conversions), `wire.rs` (the prost schema), `prescan.rs` (allocation
//! bounds), `validate.rs` and `entry_batch.rs` (the checks), `outbox.rs` (coalescing),
//! `limits.rs` (every limit), `error.rs` (`RpcError`).

mod decode;
mod encode;
mod entry_batch;
mod error;
mod group_id;
pub mod limits;
mod outbox;
mod prescan;
mod rpc;
#[cfg(test)]
mod test_support;
mod validate;
mod wire;

pub use decode::{decode_peer_batch, decode_rpc, decode_rpc_from};
pub use encode::{encode_peer_batch, encode_rpc};
pub use error::{EntryBatchMismatch, RpcError};
pub use group_id::{GroupId, TopicId};
pub use outbox::{DropReason, OutboundRpc, Outbox, OutboxLimits, OutboxStats, Pushed};
pub use rpc::{ForwardRequest, ForwardResponse, GroupMessages, Link, PeerBatch, RaftMessage, Rpc};
pub use validate::{OFFSET_MAX, TERM_MAX};
