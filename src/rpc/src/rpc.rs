//! The RPCs between brokers, as the rest of Sluice sees them (the wire form is `wire.rs`).
//!
//! One transport frame carries one [`Rpc`]:
//! - a [`PeerBatch`]: Raft messages of many groups from one broker to another, coalesced so
//!   that heartbeats of thousands of partitions cost one frame per tick (DESIGN.md,
//!   Replication), with each AppendEntries entry's Kafka batch bytes attached;
//! - a [`ForwardRequest`] / [`ForwardResponse`]: a broker forwards a topic operation to the
//!   controller leader and gets its answer (opaque payloads, matched by correlation id).
//!
//! Values produced by decoding hold every invariant stated here; values the shell builds must
//! too (encoding asserts them, the paired check of decoding's validation).

use crate::error::RpcError;
use crate::group_id::GroupId;
use bytes::Bytes;
use sluice_raft::{EntryMeta, Envelope, Message};
use sluice_types::NodeId;

/// One top-level RPC: what a transport frame's payload decodes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rpc {
    PeerBatch(PeerBatch),
    ForwardRequest(ForwardRequest),
    ForwardResponse(ForwardResponse),
}

impl Rpc {
    /// The kind's name, for errors and logs.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Rpc::PeerBatch(_) => "PeerBatch",
            Rpc::ForwardRequest(_) => "ForwardRequest",
            Rpc::ForwardResponse(_) => "ForwardResponse",
        }
    }
}

/// Raft messages of many groups from one broker to one other. Invariants (checked by decoding,
/// kept by the outbox): at most `GROUPS_PER_RPC_MAX` groups, `MESSAGES_PER_RPC_MAX` messages
/// and `ENTRIES_PER_RPC_MAX` entries; every envelope has the same `from` and the same `to`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerBatch {
    pub groups: Vec<GroupMessages>,
}

impl PeerBatch {
    pub fn message_count(&self) -> u64 {
        self.groups.iter().map(|g| g.messages.len() as u64).sum()
    }

    pub fn entry_count(&self) -> u64 {
        self.groups.iter().flat_map(|g| &g.messages).map(|m| m.entry_batches.len() as u64).sum()
    }

    /// Every message with its group, in order: what the multi-raft driver steps.
    pub fn into_messages(self) -> impl Iterator<Item = (GroupId, RaftMessage)> {
        self.groups.into_iter().flat_map(|g| {
            let group = g.group;
            g.messages.into_iter().map(move |m| (group, m))
        })
    }
}

/// The messages of one group, in the order the group's replica sent them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMessages {
    pub group: GroupId,
    pub messages: Vec<RaftMessage>,
}

/// A Raft message with the batch bytes of its entries.
///
/// Invariants: `entry_batches` has one element per entry of an `AppendEntries` (none for any
/// other message), and each is the raw Kafka RecordBatch v2 the entry names: its length is
/// `size_bytes`, its last offset the entry's index, its partition leader epoch the entry's term
/// (`entry_batch.rs`). Entries of an AppendEntries are in log order after `prev` (Raft §5.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftMessage {
    pub envelope: Envelope,
    pub entry_batches: Vec<Bytes>,
}

impl RaftMessage {
    /// A message and its entries' batches. Panics if the batch count does not match the
    /// entries (the shell attaches one batch per entry, from its own log).
    pub fn new(envelope: Envelope, entry_batches: Vec<Bytes>) -> RaftMessage {
        let entries = entries_of(&envelope.message).len();
        assert_eq!(entries, entry_batches.len(), "one batch per AppendEntries entry");
        RaftMessage { envelope, entry_batches }
    }

    /// The entries' metadata (empty unless an AppendEntries).
    pub fn entries(&self) -> &[EntryMeta] {
        entries_of(&self.envelope.message)
    }
}

pub(crate) fn entries_of(message: &Message) -> &[EntryMeta] {
    match message {
        Message::AppendEntries { entries, .. } => entries,
        _ => &[],
    }
}

/// A topic operation a broker forwards to the controller leader. `payload` is opaque here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardRequest {
    /// Chosen by the forwarding broker; the response echoes it.
    pub correlation_id: u64,
    pub payload: Bytes,
}

/// The controller leader's answer to a [`ForwardRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardResponse {
    pub correlation_id: u64,
    /// A Kafka error code (Kafka protocol: `int16 error_code`; 0 is none). An `int32` on the
    /// wire, range-checked when decoded.
    pub error_code: i16,
    pub payload: Bytes,
}

/// The two ends of the link an RPC arrived on: the transport frame's sender id and this broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub sender: NodeId,
    pub receiver: NodeId,
}

impl Link {
    /// A PeerBatch travels from one broker to one other: every message in it is addressed from
    /// the frame's sender to this broker (the Raft core asserts `to` is itself).
    pub fn check(&self, batch: &PeerBatch) -> Result<(), RpcError> {
        for message in batch.groups.iter().flat_map(|g| &g.messages) {
            let Envelope { from, to, .. } = message.envelope;
            if from != self.sender || to != self.receiver {
                return Err(RpcError::Misaddressed { from, to, sender: self.sender, receiver: self.receiver });
            }
        }
        Ok(())
    }
}
