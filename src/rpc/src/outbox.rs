//! `Outbox`: coalesces the Raft messages of many groups into one RPC per peer.
//!
//! During one driver step the multi-raft driver pushes every group's outgoing messages (the
//! `Send` and `Replicate` effects, with their entries' batch bytes) and then drains: each peer
//! gets one encoded PeerBatch, or a few when its messages exceed an RPC's limits. Heartbeats of
//! thousands of groups to one peer thus cost one frame per tick, not one per group (DESIGN.md,
//! Replication). Pure: no I/O, no clock; the output is a function of the pushes alone.
//!
//! Order (deterministic, DESIGN.md "The seams and determinism"): RPCs by peer id (a BTreeMap);
//! within a peer, groups in the order of their first message since the last drain; within a
//! group, messages in push order. A group's messages can span two consecutive RPCs, never
//! reorder. Messages of different groups are independent, so grouping them loses nothing.
//!
//! Bounds: each drained RPC stays within the configured targets (`OutboxLimits`) unless it holds
//! a single message, and always within the protocol limits the receiver enforces (`limits.rs`).
//! Between drains at most `peer_pending_bytes_max` and `peer_pending_messages_max` per peer,
//! `pending_bytes_max` in all, and `peers_max` peers are held; a message past a bound is dropped
//! and counted, which Raft tolerates (heartbeats repeat, leaders resend what is not
//! acknowledged). A message that could never fit one RPC is dropped as `Oversized`.
//!
//! Sizes are upper-bound estimates (`FIELD_FRAMING_BYTES_MAX` per field), so an RPC is never
//! larger than estimated; `drain` asserts it.

use crate::encode::{encode_wire, group_to_wire, message_to_wire};
use crate::group_id::GroupId;
use crate::limits::{
    ENTRIES_PER_RPC_MAX, FIELD_FRAMING_BYTES_MAX, GROUPS_PER_RPC_MAX, MESSAGES_PER_RPC_MAX, OUTBOX_PENDING_BYTES_MAX,
    PEER_BATCH_BYTES_MAX, PEER_PENDING_BYTES_MAX, PEER_PENDING_MESSAGES_MAX, PEERS_MAX, RPC_BYTES_MAX,
};
use crate::rpc::RaftMessage;
use crate::wire;
use bytes::Bytes;
use prost::Message as _;
use sluice_types::NodeId;
use std::collections::BTreeMap;

/// The bytes of an RPC besides its groups: the `Rpc.peer_batch` field's framing.
const RPC_OVERHEAD_BYTES: u64 = FIELD_FRAMING_BYTES_MAX as u64;

/// What an `Outbox` may hold and emit. Every field must be positive and within the protocol
/// limit it refines (`OutboxLimits::check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Encoded bytes per RPC (<= `RPC_BYTES_MAX`); exceeded only by an RPC of one message.
    pub rpc_bytes_target: u32,
    /// Groups per RPC (<= `GROUPS_PER_RPC_MAX`).
    pub rpc_groups_max: u32,
    /// Messages per RPC (<= `MESSAGES_PER_RPC_MAX`).
    pub rpc_messages_max: u32,
    /// Entries per RPC (<= `ENTRIES_PER_RPC_MAX`); exceeded only by an RPC of one message.
    pub rpc_entries_max: u32,
    pub peer_pending_bytes_max: u32,
    pub peer_pending_messages_max: u32,
    pub pending_bytes_max: u32,
    pub peers_max: u32,
}

impl OutboxLimits {
    pub const DEFAULT: OutboxLimits = OutboxLimits {
        rpc_bytes_target: PEER_BATCH_BYTES_MAX,
        rpc_groups_max: GROUPS_PER_RPC_MAX,
        rpc_messages_max: MESSAGES_PER_RPC_MAX,
        rpc_entries_max: ENTRIES_PER_RPC_MAX,
        peer_pending_bytes_max: PEER_PENDING_BYTES_MAX,
        peer_pending_messages_max: PEER_PENDING_MESSAGES_MAX,
        pending_bytes_max: OUTBOX_PENDING_BYTES_MAX,
        peers_max: PEERS_MAX,
    };

    fn check(&self) {
        let all = [
            self.rpc_bytes_target,
            self.rpc_groups_max,
            self.rpc_messages_max,
            self.rpc_entries_max,
            self.peer_pending_bytes_max,
            self.peer_pending_messages_max,
            self.pending_bytes_max,
            self.peers_max,
        ];
        assert!(all.iter().all(|limit| *limit > 0), "outbox limits must be positive: {self:?}");
        let within_protocol = self.rpc_bytes_target <= RPC_BYTES_MAX
            && self.rpc_groups_max <= GROUPS_PER_RPC_MAX
            && self.rpc_messages_max <= MESSAGES_PER_RPC_MAX
            && self.rpc_entries_max <= ENTRIES_PER_RPC_MAX;
        assert!(within_protocol, "outbox limits past what a receiver accepts: {self:?}");
    }
}

/// What `push` did with a message.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    Dropped(DropReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The peer's pending bytes or messages would pass their bound.
    PeerFull,
    /// The pending bytes of all peers would pass `pending_bytes_max`.
    OutboxFull,
    /// A new peer past `peers_max`.
    TooManyPeers,
    /// Alone in an RPC it would pass `RPC_BYTES_MAX` or `ENTRIES_PER_RPC_MAX`.
    Oversized,
}

/// Counters since the outbox was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub messages_queued_total: u64,
    pub messages_dropped_total: u64,
    /// Estimated encoded bytes of the dropped messages.
    pub bytes_dropped_total: u64,
    pub rpcs_drained_total: u64,
}

/// One encoded RPC for the transport: `payload` goes to `to` as one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundRpc {
    pub to: NodeId,
    pub payload: Bytes,
}

/// Raft messages from this broker waiting for the next `drain`.
#[derive(Debug)]
pub struct Outbox {
    node: NodeId,
    limits: OutboxLimits,
    peers: BTreeMap<NodeId, PeerQueue>,
    /// Sum of `PeerQueue::pending_bytes`.
    pending_bytes: u64,
    stats: OutboxStats,
}

/// One peer's messages. Invariant: `groups` holds each group once, `index` maps it to its slot.
#[derive(Debug, Default)]
struct PeerQueue {
    groups: Vec<QueuedGroup>,
    index: BTreeMap<GroupId, usize>,
    /// Sum of the costs of the groups and messages held.
    pending_bytes: u64,
    pending_messages: u32,
}

#[derive(Debug)]
struct QueuedGroup {
    id: wire::GroupId,
    /// The group's bytes in an RPC besides its messages: its id and both fields' framing.
    cost: u64,
    messages: Vec<QueuedMessage>,
}

#[derive(Debug)]
struct QueuedMessage {
    message: wire::RaftMessage,
    /// Encoded bytes and the framing of its field.
    cost: u64,
    entries: u32,
}

impl Outbox {
    /// The outbox of broker `node`, with the default limits.
    pub fn new(node: NodeId) -> Outbox {
        Outbox::with_limits(node, OutboxLimits::DEFAULT)
    }

    pub fn with_limits(node: NodeId, limits: OutboxLimits) -> Outbox {
        limits.check();
        Outbox { node, limits, peers: BTreeMap::new(), pending_bytes: 0, stats: OutboxStats::default() }
    }

    /// Queues one message of `group` for its envelope's `to`. Panics if the message is not from
    /// this broker, is addressed to it, or breaks an invariant the receiver checks (a local bug).
    pub fn push(&mut self, group: GroupId, message: RaftMessage) -> Pushed {
        let to = message.envelope.to;
        assert_eq!(message.envelope.from, self.node, "an outbox sends only its own broker's messages");
        assert_ne!(to, self.node, "Raft never sends to itself");
        let wire_message = message_to_wire(&message);
        let cost = wire_message.encoded_len() as u64 + u64::from(FIELD_FRAMING_BYTES_MAX);
        let entries = u32::try_from(message.entries().len()).unwrap_or(u32::MAX);
        let slot = self.peers.get(&to).and_then(|q| q.index.get(&group).copied());
        let (group_cost, new_group) = match slot {
            Some(slot) => (self.peers[&to].groups[slot].cost, None),
            None => {
                let new_group = queued_group(group);
                (new_group.cost, Some(new_group))
            }
        };
        let added = cost + new_group.as_ref().map_or(0, |g| g.cost);
        if let Some(reason) = self.refusal(to, RPC_OVERHEAD_BYTES + group_cost + cost, entries, added) {
            self.stats.messages_dropped_total += 1;
            self.stats.bytes_dropped_total += cost;
            return Pushed::Dropped(reason);
        }
        let queue = self.peers.entry(to).or_default();
        let slot = slot.unwrap_or_else(|| {
            queue.groups.push(new_group.expect("a group not yet queued for this peer"));
            queue.index.insert(group, queue.groups.len() - 1);
            queue.groups.len() - 1
        });
        queue.groups[slot].messages.push(QueuedMessage { message: wire_message, cost, entries });
        queue.pending_bytes += added;
        queue.pending_messages += 1;
        self.pending_bytes += added;
        self.stats.messages_queued_total += 1;
        Pushed::Queued
    }

    /// Why a message for `to` cannot be queued, if it cannot: `alone_bytes` is the RPC it would
    /// make alone, `added_bytes` what queueing it adds to the pending bytes.
    fn refusal(&self, to: NodeId, alone_bytes: u64, entries: u32, added_bytes: u64) -> Option<DropReason> {
        let queue = self.peers.get(&to);
        let peer_bytes = queue.map_or(0, |q| q.pending_bytes);
        let peer_messages = queue.map_or(0, |q| q.pending_messages);
        if alone_bytes > u64::from(RPC_BYTES_MAX) || entries > ENTRIES_PER_RPC_MAX {
            Some(DropReason::Oversized)
        } else if queue.is_none() && self.peers.len() as u64 >= u64::from(self.limits.peers_max) {
            Some(DropReason::TooManyPeers)
        } else if peer_bytes + added_bytes > u64::from(self.limits.peer_pending_bytes_max)
            || peer_messages >= self.limits.peer_pending_messages_max
        {
            Some(DropReason::PeerFull)
        } else if self.pending_bytes + added_bytes > u64::from(self.limits.pending_bytes_max) {
            Some(DropReason::OutboxFull)
        } else {
            None
        }
    }

    /// Encodes everything queued: RPCs by peer id, each peer's in order (see the module doc).
    pub fn drain(&mut self) -> Vec<OutboundRpc> {
        let peers = std::mem::take(&mut self.peers);
        self.pending_bytes = 0;
        let mut rpcs = Vec::new();
        for (to, queue) in peers {
            let mut builder = RpcBuilder::default();
            for group in queue.groups {
                let QueuedGroup { id, cost: group_cost, messages } = group;
                builder.start_group();
                for message in messages {
                    if !builder.fits(&self.limits, group_cost, &message) {
                        rpcs.push(builder.finish(to));
                        builder = RpcBuilder::default();
                    }
                    builder.add(&id, group_cost, message);
                }
            }
            if !builder.groups.is_empty() {
                rpcs.push(builder.finish(to));
            }
        }
        self.stats.rpcs_drained_total += rpcs.len() as u64;
        rpcs
    }

    pub fn stats(&self) -> OutboxStats {
        self.stats
    }

    /// Estimated encoded bytes held for `peer`.
    pub fn pending_bytes(&self, peer: NodeId) -> u64 {
        self.peers.get(&peer).map_or(0, |q| q.pending_bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

fn queued_group(group: GroupId) -> QueuedGroup {
    let id = group_to_wire(group);
    let cost = id.encoded_len() as u64 + 2 * u64::from(FIELD_FRAMING_BYTES_MAX);
    QueuedGroup { id, cost, messages: Vec::new() }
}

/// One RPC being filled. `drain` feeds a peer's messages group by group, calling
/// `start_group` before each group's first message.
#[derive(Default)]
struct RpcBuilder {
    groups: Vec<wire::GroupMessages>,
    /// Upper bound of the groups' encoded size, with their framing and their messages'.
    bytes: u64,
    messages: u32,
    entries: u32,
    /// Whether the last of `groups` is the group being fed (false in a new RPC, and until a
    /// started group's first message).
    current: bool,
}

impl RpcBuilder {
    fn start_group(&mut self) {
        self.current = false;
    }

    fn fits(&self, limits: &OutboxLimits, group_cost: u64, message: &QueuedMessage) -> bool {
        if self.groups.is_empty() {
            return true; // A lone message always goes (`push` dropped what never fits).
        }
        let new_group = !self.current;
        let bytes = RPC_OVERHEAD_BYTES + self.bytes + if new_group { group_cost } else { 0 } + message.cost;
        bytes <= u64::from(limits.rpc_bytes_target)
            && self.groups.len() as u64 + u64::from(new_group) <= u64::from(limits.rpc_groups_max)
            && self.messages < limits.rpc_messages_max
            && u64::from(self.entries) + u64::from(message.entries) <= u64::from(limits.rpc_entries_max)
    }

    fn add(&mut self, id: &wire::GroupId, group_cost: u64, message: QueuedMessage) {
        if !self.current {
            self.groups.push(wire::GroupMessages { group: Some(id.clone()), messages: Vec::new() });
            self.current = true;
            self.bytes += group_cost;
        }
        self.bytes += message.cost;
        self.messages += 1;
        self.entries += message.entries;
        self.groups.last_mut().expect("a group was just ensured").messages.push(message.message);
    }

    fn finish(self, to: NodeId) -> OutboundRpc {
        let estimate = RPC_OVERHEAD_BYTES + self.bytes;
        let rpc = wire::Rpc { kind: Some(wire::rpc::Kind::PeerBatch(wire::PeerBatch { groups: self.groups })) };
        let payload = encode_wire(&rpc);
        assert!(payload.len() as u64 <= estimate, "rpc of {} bytes, estimated at most {estimate}", payload.len());
        OutboundRpc { to, payload }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::decode_peer_batch;
    use crate::rpc::{Link, PeerBatch};
    use crate::test_support::{LEADER, append, entry_with_batch, heartbeat, partition};
    use sluice_raft::{EntryKind, Envelope, LogPosition, Message};
    use sluice_types::{Offset, Term};

    const PEER_2: NodeId = NodeId(2);
    const PEER_3: NodeId = NodeId(3);

    fn decode(rpc: &OutboundRpc) -> PeerBatch {
        decode_peer_batch(rpc.payload.clone(), Link { sender: LEADER, receiver: rpc.to }).expect("a valid rpc")
    }

    /// Each RPC's (peer, group, message) triples in order.
    fn flatten(rpcs: &[OutboundRpc]) -> Vec<(NodeId, GroupId, RaftMessage)> {
        rpcs.iter().flat_map(|rpc| decode(rpc).into_messages().map(move |(g, m)| (rpc.to, g, m))).collect()
    }

    fn queued(outbox: &mut Outbox, group: GroupId, message: RaftMessage) {
        assert_eq!(outbox.push(group, message), Pushed::Queued);
    }

    #[test]
    fn heartbeats_of_many_groups_cost_one_rpc_per_peer() {
        let mut outbox = Outbox::new(LEADER);
        for topic in 0..4u8 {
            for p in 0..250 {
                for peer in [PEER_3, PEER_2] {
                    queued(&mut outbox, partition(topic, p), heartbeat(LEADER, peer));
                }
            }
        }
        let rpcs = outbox.drain();
        assert_eq!(rpcs.iter().map(|r| r.to).collect::<Vec<_>>(), vec![PEER_2, PEER_3], "one rpc per peer, by id");
        for rpc in &rpcs {
            let batch = decode(rpc);
            assert_eq!(batch.groups.len(), 1000);
            assert_eq!(batch.groups[999].group, partition(3, 249), "groups in push order");
        }
        assert!(outbox.is_empty() && outbox.drain().is_empty());
        assert_eq!(outbox.stats().rpcs_drained_total, 2);
        assert_eq!(outbox.stats().messages_queued_total, 2000);
    }

    #[test]
    fn a_group_gathers_its_messages_in_push_order() {
        let mut outbox = Outbox::new(LEADER);
        let first = append(LEADER, PEER_2, &[(10, 2, EntryKind::Data)]);
        let second = heartbeat(LEADER, PEER_2);
        queued(&mut outbox, partition(1, 0), first.clone());
        queued(&mut outbox, GroupId::Controller, heartbeat(LEADER, PEER_2));
        queued(&mut outbox, partition(1, 0), second.clone());
        let batch = decode(&outbox.drain()[0]);
        assert_eq!(batch.groups[0].group, partition(1, 0));
        assert_eq!(batch.groups[0].messages, vec![first, second]);
        assert_eq!(batch.groups[1].group, GroupId::Controller);
    }

    #[test]
    fn a_peer_past_an_rpc_target_gets_several_rpcs_in_order() {
        let limits =
            OutboxLimits { rpc_bytes_target: 1_000, rpc_messages_max: 7, rpc_groups_max: 3, ..OutboxLimits::DEFAULT };
        let mut outbox = Outbox::with_limits(LEADER, limits);
        let mut pushed = Vec::new();
        for i in 0..40 {
            let group = partition(1, i % 5);
            let message = if i % 3 == 0 {
                append(LEADER, PEER_2, &[(10, 2, EntryKind::Data)])
            } else {
                heartbeat(LEADER, PEER_2)
            };
            queued(&mut outbox, group, message.clone());
            pushed.push((group, message));
        }
        let rpcs = outbox.drain();
        assert!(rpcs.len() > 1);
        for rpc in &rpcs {
            let batch = decode(rpc);
            assert!(rpc.payload.len() <= 1_000 && batch.message_count() <= 7 && batch.groups.len() <= 3);
        }
        // Per group, the push order survives the split; groups come in first-push order.
        let mut expected = pushed.clone();
        expected.sort_by_key(|(group, _)| pushed.iter().position(|(g, _)| g == group));
        let delivered: Vec<_> = flatten(&rpcs).into_iter().map(|(_, g, m)| (g, m)).collect();
        assert_eq!(delivered, expected);
    }

    #[test]
    fn a_message_larger_than_the_target_travels_alone() {
        let limits = OutboxLimits { rpc_bytes_target: 100, ..OutboxLimits::DEFAULT };
        let mut outbox = Outbox::with_limits(LEADER, limits);
        queued(&mut outbox, GroupId::Controller, heartbeat(LEADER, PEER_2));
        queued(&mut outbox, GroupId::Controller, append(LEADER, PEER_2, &[(10, 2, EntryKind::Data)]));
        queued(&mut outbox, GroupId::Controller, heartbeat(LEADER, PEER_2));
        let rpcs = outbox.drain();
        assert_eq!(rpcs.iter().map(|r| decode(r).message_count()).collect::<Vec<_>>(), vec![1, 1, 1]);
        assert!(rpcs[1].payload.len() > 100);
    }

    #[test]
    fn a_full_peer_drops_and_counts_until_drained() {
        let limits = OutboxLimits { peer_pending_messages_max: 2, ..OutboxLimits::DEFAULT };
        let mut outbox = Outbox::with_limits(LEADER, limits);
        queued(&mut outbox, GroupId::Controller, heartbeat(LEADER, PEER_2));
        queued(&mut outbox, partition(1, 0), heartbeat(LEADER, PEER_2));
        assert_eq!(outbox.push(partition(1, 1), heartbeat(LEADER, PEER_2)), Pushed::Dropped(DropReason::PeerFull));
        queued(&mut outbox, GroupId::Controller, heartbeat(LEADER, PEER_3));
        let stats = outbox.stats();
        assert_eq!((stats.messages_queued_total, stats.messages_dropped_total), (3, 1));
        assert!(stats.bytes_dropped_total > 0);
        assert_eq!(flatten(&outbox.drain()).len(), 3);
        queued(&mut outbox, partition(1, 1), heartbeat(LEADER, PEER_2));
    }

    #[test]
    fn pending_bytes_are_bounded_per_peer_and_in_all() {
        let one = {
            let mut probe = Outbox::new(LEADER);
            queued(&mut probe, GroupId::Controller, heartbeat(LEADER, PEER_2));
            u32::try_from(probe.pending_bytes(PEER_2)).unwrap()
        };
        let limits = OutboxLimits { peer_pending_bytes_max: one, pending_bytes_max: 2 * one, ..OutboxLimits::DEFAULT };
        let mut outbox = Outbox::with_limits(LEADER, limits);
        queued(&mut outbox, GroupId::Controller, heartbeat(LEADER, PEER_2));
        assert_eq!(outbox.pending_bytes(PEER_2), u64::from(one));
        let again = outbox.push(GroupId::Controller, heartbeat(LEADER, PEER_2));
        assert_eq!(again, Pushed::Dropped(DropReason::PeerFull));
        queued(&mut outbox, GroupId::Controller, heartbeat(LEADER, PEER_3));
        let third = outbox.push(GroupId::Controller, heartbeat(LEADER, NodeId(4)));
        assert_eq!(third, Pushed::Dropped(DropReason::OutboxFull));
    }

    #[test]
    fn peers_past_the_bound_are_dropped() {
        let mut outbox = Outbox::with_limits(LEADER, OutboxLimits { peers_max: 1, ..OutboxLimits::DEFAULT });
        queued(&mut outbox, GroupId::Controller, heartbeat(LEADER, PEER_2));
        let other = outbox.push(GroupId::Controller, heartbeat(LEADER, PEER_3));
        assert_eq!(other, Pushed::Dropped(DropReason::TooManyPeers));
    }

    #[test]
    fn a_message_no_rpc_can_carry_is_dropped_as_oversized() {
        let (mut entry, _) = entry_with_batch(10, 2, 1, EntryKind::Data);
        let records = vec![0u8; RPC_BYTES_MAX as usize];
        let mut header = sluice_types::BatchHeader::template(1, 0);
        header.base_offset = Offset(10);
        header.partition_leader_epoch = Term(2);
        let batch = Bytes::from(sluice_types::batch::build_batch(&header, &records));
        entry.size_bytes = u32::try_from(batch.len()).unwrap();
        let message = Message::AppendEntries {
            term: Term(3),
            prev: LogPosition { term: Term(2), index: Offset(9) },
            entries: vec![entry],
            commit: Offset(7),
            log_start: Offset(0),
        };
        let huge = RaftMessage::new(Envelope { from: LEADER, to: PEER_2, message }, vec![batch]);
        let mut outbox = Outbox::new(LEADER);
        assert_eq!(outbox.push(GroupId::Controller, huge), Pushed::Dropped(DropReason::Oversized));
        assert!(outbox.is_empty());
    }

    #[test]
    #[should_panic(expected = "only its own broker's messages")]
    fn another_brokers_message_is_a_bug() {
        let _ = Outbox::new(LEADER).push(GroupId::Controller, heartbeat(PEER_3, PEER_2));
    }
}
