//! The peer `Transport` seam: message-level broker-to-broker traffic.
//!
//! Raft must tolerate loss, duplication, reordering and delay of its messages. madsim's TCP
//! never produces those (it only stalls), so Raft traffic goes through this message-level trait
//! whose simulated implementation injects them (reference/dst.md §1.5, §4.2). Messages are
//! opaque bytes here; the replication layer (issue 4) defines their encoding.

use bytes::Bytes;
use sluice_types::NodeId;
use std::future::Future;

/// Why a message could not be handed to the network. Delivery is never guaranteed even on `Ok`.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    #[error("send queue to peer {0} is full")]
    QueueFull(NodeId),
    #[error("message of {0} bytes exceeds the frame limit")]
    TooLarge(u64),
    #[error("transport closed")]
    Closed,
}

/// Best-effort, message-level delivery between brokers.
pub trait Transport: Clone + Send + Sync + 'static {
    /// Queues `message` for `target`. Never blocks on the network: a full queue is an error.
    fn send(&self, target: NodeId, message: Bytes) -> Result<(), TransportError>;
    /// The next message from any peer, with its sender; `None` once the transport is closed.
    fn recv(&self) -> impl Future<Output = Option<(NodeId, Bytes)>> + Send;
}
