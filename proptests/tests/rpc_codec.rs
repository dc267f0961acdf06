//! Property tests of `sluice-rpc`: the broker-to-broker codec and the outbox that coalesces
//! Raft traffic.
//!
//! What:
//! - RoundTrip: any valid RPC (every Raft message variant, entries of every kind with real
//!   Kafka batches attached, memberships, forwarded operations) decodes to itself, from a slice
//!   and zero-copy from `Bytes` on its link.
//! - NeverPanics: decoding arbitrary bytes, and valid encodings after bit flips, truncations,
//!   insertions and deletions, returns a value or an `RpcError`; a value it returns holds every
//!   invariant (it re-encodes, which asserts them, and round-trips).
//! - OutboxConserves: every message the outbox queued comes out exactly once, to its peer, per
//!   group in push order with groups in first-push order; RPCs come by peer id and each stays
//!   within the configured limits unless it carries one message; a message it refused is counted
//!   and never sent; with the default limits nothing is refused and each peer gets one RPC.
//!
//! Why: the decoder reads bytes from the network, so it must hold against any input (DESIGN.md,
//! "Verification": fuzz every decoder), and the outbox's splitting and bounds are easy to get
//! subtly wrong at the edges. `proptests/fuzz` is the place for a longer cargo-fuzz run of
//! `sluice_rpc::decode_rpc`.
//!
//! Replay: a failing case is printed minimized; `PROPTEST_CASES` raises the case count and
//! `PROPTEST_RNG_SEED` fixes the generator.

use bytes::Bytes;
use proptest::prelude::*;
use sluice_raft::{EntryKind, EntryMeta, Envelope, LogPosition, Membership, MembershipChange, Message};
use sluice_rpc::limits::{ENTRIES_PER_RPC_MAX, GROUPS_PER_RPC_MAX, MESSAGES_PER_RPC_MAX, RPC_BYTES_MAX};
use sluice_rpc::{
    ForwardRequest, ForwardResponse, GroupId, GroupMessages, Link, OFFSET_MAX, OutboundRpc, Outbox, OutboxLimits,
    PeerBatch, Pushed, RaftMessage, Rpc, TERM_MAX, TopicId, decode_peer_batch, decode_rpc, decode_rpc_from, encode_rpc,
};
use sluice_types::batch::build_batch;
use sluice_types::{BatchHeader, NodeId, Offset, PartitionId, Term};
use std::collections::{BTreeMap, BTreeSet};

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES_DEFAULT: u32 = 256;
/// Groups per generated PeerBatch, and messages per group.
const GROUPS_MAX: usize = 4;
const MESSAGES_PER_GROUP_MAX: usize = 5;
/// Entries per generated AppendEntries, and offsets per entry (its batch's records).
const ENTRIES_MAX: usize = 5;
const RECORDS_PER_ENTRY_MAX: i64 = 4;
/// Record bytes per generated batch.
const RECORD_BYTES_MAX: usize = 40;
/// Node ids drawn for envelopes and memberships.
const NODE_ID_MAX: i32 = 8;
/// Mutations applied to one valid encoding.
const MUTATIONS_MAX: usize = 8;
/// Operations per outbox case.
const OUTBOX_OPS_MAX: usize = 80;
/// The outbox's own broker, and the peers it sends to.
const SELF: NodeId = NodeId(1);
const PEERS: [NodeId; 4] = [NodeId(2), NodeId(3), NodeId(4), NodeId(5)];

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(CASES_DEFAULT)
}

// ---------------------------------------------------------------------------------------------
// Generators of valid values
// ---------------------------------------------------------------------------------------------

fn node() -> impl Strategy<Value = NodeId> {
    (0..=NODE_ID_MAX).prop_map(NodeId)
}

/// Small terms mostly, and the extremes.
fn term() -> impl Strategy<Value = Term> {
    prop_oneof![4 => 0..10i32, 1 => Just(TERM_MAX), 1 => 0..=TERM_MAX].prop_map(Term)
}

/// Small offsets mostly, and offsets near the top.
fn offset(min: i64) -> impl Strategy<Value = Offset> {
    prop_oneof![4 => min..1_000i64, 1 => (OFFSET_MAX - 100)..=OFFSET_MAX, 1 => min..=OFFSET_MAX].prop_map(Offset)
}

fn position() -> impl Strategy<Value = LogPosition> {
    prop_oneof![
        1 => Just(LogPosition::EMPTY),
        4 => (prop_oneof![Just(Term(-1)), term()], offset(-1)).prop_map(|(term, index)| LogPosition { term, index }),
    ]
}

fn membership() -> impl Strategy<Value = Membership> {
    proptest::collection::btree_set(node(), 1..6).prop_flat_map(|members| {
        let members: Vec<NodeId> = members.into_iter().collect();
        let count = members.len();
        (Just(members), 1..=count).prop_map(|(members, voters)| Membership {
            voters: members[..voters].iter().copied().collect(),
            learners: members[voters..].iter().copied().collect(),
        })
    })
}

fn entry_kind() -> impl Strategy<Value = EntryKind> {
    prop_oneof![
        4 => Just(EntryKind::Data),
        1 => Just(EntryKind::LeaderNoop),
        1 => node().prop_map(|id| EntryKind::Membership(MembershipChange::AddLearner(id))),
        1 => node().prop_map(|id| EntryKind::Membership(MembershipChange::PromoteLearner(id))),
        1 => node().prop_map(|id| EntryKind::Membership(MembershipChange::Remove(id))),
    ]
}

/// The batch for an entry covering `base..=index` in `term`.
fn batch(base: i64, index: i64, term: Term, records: &[u8]) -> Bytes {
    let count = i32::try_from(index - base + 1).expect("few records");
    let mut header = BatchHeader::template(count, 1_700_000_000_000);
    header.base_offset = Offset(base);
    header.partition_leader_epoch = term;
    Bytes::from(build_batch(&header, records))
}

/// An AppendEntries body and its batches: entries after `prev` in log order, terms between
/// `prev`'s and the leader's, each batch covering the offsets after the previous entry.
fn append_entries() -> impl Strategy<Value = (Message, Vec<Bytes>)> {
    let steps = proptest::collection::vec(
        (
            1..=RECORDS_PER_ENTRY_MAX,
            any::<bool>(),
            entry_kind(),
            proptest::collection::vec(any::<u8>(), 0..RECORD_BYTES_MAX),
        ),
        0..=ENTRIES_MAX,
    );
    (term(), position(), steps, offset(-1), offset(0)).prop_map(|(leader_term, prev, steps, commit, log_start)| {
        let prev = LogPosition { term: prev.term.min(leader_term), index: prev.index };
        let (mut last, mut entries, mut batches) = (prev, Vec::new(), Vec::new());
        for (records, next_term, kind, bytes) in steps {
            let Some(index) = last.index.0.checked_add(records).filter(|i| *i <= OFFSET_MAX) else { break };
            let term = if next_term { leader_term } else { Term(last.term.0.max(0)) };
            let batch = batch(last.index.0 + 1, index, term, &bytes);
            let size_bytes = u32::try_from(batch.len()).expect("small batch");
            entries.push(EntryMeta { index: Offset(index), term, kind, size_bytes });
            batches.push(batch);
            last = LogPosition { term, index: Offset(index) };
        }
        (Message::AppendEntries { term: leader_term, prev, entries, commit, log_start }, batches)
    })
}

fn message_body() -> impl Strategy<Value = (Message, Vec<Bytes>)> {
    let plain = prop_oneof![
        (term(), position()).prop_map(|(term, last)| Message::PreVote { term, last }),
        (term(), any::<bool>()).prop_map(|(term, granted)| Message::PreVoteResponse { term, granted }),
        (term(), position(), any::<bool>()).prop_map(|(term, last, transfer)| Message::Vote { term, last, transfer }),
        (term(), any::<bool>()).prop_map(|(term, granted)| Message::VoteResponse { term, granted }),
        (term(), any::<bool>(), position()).prop_map(|(term, success, matched)| Message::AppendResponse {
            term,
            success,
            matched
        }),
        (term(), offset(0), prop_oneof![Just(Term(-1)), term()], membership()).prop_map(
            |(term, log_start, log_start_term, membership)| Message::LogStart {
                term,
                log_start,
                log_start_term,
                membership
            }
        ),
        term().prop_map(|term| Message::TimeoutNow { term }),
    ];
    prop_oneof![2 => plain.prop_map(|message| (message, Vec::new())), 1 => append_entries()]
}

fn raft_message(from: NodeId, to: NodeId) -> impl Strategy<Value = RaftMessage> {
    message_body().prop_map(move |(message, batches)| RaftMessage::new(Envelope { from, to, message }, batches))
}

fn group_id() -> impl Strategy<Value = GroupId> {
    prop_oneof![
        1 => Just(GroupId::Controller),
        4 => (any::<[u8; 16]>(), prop_oneof![0..10i32, 0..=i32::MAX])
            .prop_map(|(topic, partition)| GroupId::Partition { topic_id: TopicId(topic), partition: PartitionId(partition) }),
    ]
}

/// A PeerBatch whose messages all travel `from` -> `to`.
fn peer_batch(from: NodeId, to: NodeId) -> impl Strategy<Value = PeerBatch> {
    let group = (group_id(), proptest::collection::vec(raft_message(from, to), 0..=MESSAGES_PER_GROUP_MAX))
        .prop_map(|(group, messages)| GroupMessages { group, messages });
    proptest::collection::vec(group, 0..=GROUPS_MAX).prop_map(|groups| PeerBatch { groups })
}

fn payload() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn rpc() -> impl Strategy<Value = Rpc> {
    prop_oneof![
        4 => (node(), node()).prop_flat_map(|(from, to)| peer_batch(from, to)).prop_map(Rpc::PeerBatch),
        1 => (any::<u64>(), payload())
            .prop_map(|(correlation_id, payload)| Rpc::ForwardRequest(ForwardRequest { correlation_id, payload })),
        1 => (any::<u64>(), any::<i16>(), payload()).prop_map(|(correlation_id, error_code, payload)| {
            Rpc::ForwardResponse(ForwardResponse { correlation_id, error_code, payload })
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// RoundTrip and NeverPanics
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    Truncate { to: usize },
    Insert { at: usize, byte: u8 },
    Delete { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        1 => any::<usize>().prop_map(|to| Mutation::Truncate { to }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        1 => any::<usize>().prop_map(|at| Mutation::Delete { at }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match *mutation {
        Mutation::FlipBit { at, bit } if len > 0 => bytes[at % len] ^= 1 << bit,
        Mutation::Truncate { to } => bytes.truncate(to % (len + 1)),
        Mutation::Insert { at, byte } => bytes.insert(at % (len + 1), byte),
        Mutation::Delete { at } if len > 0 => {
            bytes.remove(at % len);
        }
        _ => {}
    }
}

/// A decoded value holds every invariant: encoding it (which asserts them) round-trips.
fn check_decoded(decoded: Rpc) -> Result<(), TestCaseError> {
    let again = decode_rpc(&encode_rpc(&decoded));
    prop_assert_eq!(again, Ok(decoded));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_valid_rpc_round_trips(rpc in rpc()) {
        let bytes = encode_rpc(&rpc);
        prop_assert!(bytes.len() as u64 <= u64::from(RPC_BYTES_MAX));
        prop_assert_eq!(decode_rpc(&bytes), Ok(rpc));
    }

    #[test]
    fn a_peer_batch_round_trips_zero_copy_on_its_link(batch in peer_batch(NodeId(3), NodeId(5))) {
        let link = Link { sender: NodeId(3), receiver: NodeId(5) };
        let has_messages = batch.message_count() > 0;
        let bytes = encode_rpc(&Rpc::PeerBatch(batch.clone()));
        let decoded = decode_peer_batch(bytes.clone(), link).expect("a valid batch decodes");
        let frame = bytes.as_ptr_range();
        for entry in decoded.groups.iter().flat_map(|g| &g.messages).flat_map(|m| &m.entry_batches) {
            let range = entry.as_ptr_range();
            prop_assert!(frame.start <= range.start && range.end <= frame.end, "entry batches slice the frame");
        }
        prop_assert_eq!(decoded, batch);
        let reversed = Link { sender: NodeId(5), receiver: NodeId(3) };
        prop_assert_eq!(decode_rpc_from(bytes, reversed).is_err(), has_messages, "misaddressed messages are refused");
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(decoded) = decode_rpc(&bytes) {
            check_decoded(decoded)?;
        }
    }

    #[test]
    fn decoding_mutated_encodings_never_panics(
        rpc in rpc(),
        mutations in proptest::collection::vec(mutation(), 1..=MUTATIONS_MAX),
    ) {
        let mut bytes = encode_rpc(&rpc).to_vec();
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
            if let Ok(decoded) = decode_rpc(&bytes) {
                check_decoded(decoded)?;
            }
            let link = Link { sender: NodeId(1), receiver: NodeId(2) };
            if let Ok(decoded) = decode_rpc_from(Bytes::from(bytes.clone()), link) {
                check_decoded(decoded)?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OutboxConserves
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// Push a message of shape `shape` for group `group` (an index into a few groups) to
    /// `PEERS[peer]`.
    Push {
        peer: usize,
        group: u8,
        shape: u8,
    },
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..PEERS.len(), 0..6u8, 0..5u8).prop_map(|(peer, group, shape)| Op::Push { peer, group, shape }),
        1 => Just(Op::Drain),
    ]
}

fn outbox_group(index: u8) -> GroupId {
    if index == 0 {
        GroupId::Controller
    } else {
        GroupId::Partition { topic_id: TopicId([index; 16]), partition: PartitionId(i32::from(index)) }
    }
}

/// A message from `SELF` to `to`: a heartbeat, a vote, a response, or an append of up to three
/// entries. `serial` makes every message distinct, so order and duplicates show.
fn outbox_message(to: NodeId, shape: u8, serial: i32) -> RaftMessage {
    let term = Term(serial);
    let message = match shape {
        0 => Message::VoteResponse { term, granted: true },
        1 => Message::Vote { term, last: LogPosition::EMPTY, transfer: false },
        2 => Message::AppendResponse { term, success: true, matched: LogPosition { term, index: Offset(5) } },
        _ => {
            let count = i64::from(shape - 2);
            let entries = (0..count)
                .map(|i| EntryMeta { index: Offset(10 + i), term, kind: EntryKind::Data, size_bytes: 0 })
                .collect::<Vec<_>>();
            let batches: Vec<Bytes> =
                entries.iter().map(|e| batch(e.index.0, e.index.0, term, b"0123456789")).collect();
            let entries = entries
                .into_iter()
                .zip(&batches)
                .map(|(e, b)| EntryMeta { size_bytes: u32::try_from(b.len()).expect("small"), ..e })
                .collect();
            let prev = LogPosition { term: Term(0), index: Offset(9) };
            let message = Message::AppendEntries { term, prev, entries, commit: Offset(9), log_start: Offset(0) };
            return RaftMessage::new(Envelope { from: SELF, to, message }, batches);
        }
    };
    RaftMessage::new(Envelope { from: SELF, to, message }, Vec::new())
}

fn small_limits() -> impl Strategy<Value = OutboxLimits> {
    (300..3_000u32, 1..5u32, 1..8u32, 1..6u32, 400..4_000u32, 1..20u32, 800..12_000u32, 1..=4u32).prop_map(
        |(bytes, groups, messages, entries, peer_bytes, peer_messages, total_bytes, peers)| OutboxLimits {
            rpc_bytes_target: bytes,
            rpc_groups_max: groups,
            rpc_messages_max: messages,
            rpc_entries_max: entries,
            peer_pending_bytes_max: peer_bytes,
            peer_pending_messages_max: peer_messages,
            pending_bytes_max: total_bytes,
            peers_max: peers,
        },
    )
}

/// The messages queued since the last drain, per peer: groups in first-push order, each with
/// its messages in push order.
type Expected = BTreeMap<NodeId, Vec<(GroupId, Vec<RaftMessage>)>>;

/// Drains and checks the RPCs against what was queued.
fn drain_and_check(outbox: &mut Outbox, limits: &OutboxLimits, expected: &mut Expected) -> Result<(), TestCaseError> {
    let rpcs: Vec<OutboundRpc> = outbox.drain();
    prop_assert!(outbox.is_empty());
    prop_assert!(rpcs.windows(2).all(|w| w[0].to <= w[1].to), "rpcs by peer id");
    let mut delivered: BTreeMap<NodeId, Vec<(GroupId, RaftMessage)>> = BTreeMap::new();
    for rpc in &rpcs {
        let batch = decode_peer_batch(rpc.payload.clone(), Link { sender: SELF, receiver: rpc.to })
            .map_err(|e| TestCaseError::fail(format!("undecodable rpc: {e}")))?;
        let (messages, entries) = (batch.message_count(), batch.entry_count());
        prop_assert!(messages >= 1, "no empty rpc");
        prop_assert!(batch.groups.len() as u64 <= u64::from(GROUPS_PER_RPC_MAX));
        prop_assert!(messages <= u64::from(MESSAGES_PER_RPC_MAX) && entries <= u64::from(ENTRIES_PER_RPC_MAX));
        prop_assert!(batch.groups.len() as u64 <= u64::from(limits.rpc_groups_max));
        prop_assert!(messages <= u64::from(limits.rpc_messages_max));
        if messages > 1 {
            prop_assert!(rpc.payload.len() as u64 <= u64::from(limits.rpc_bytes_target));
            prop_assert!(entries <= u64::from(limits.rpc_entries_max));
        }
        delivered.entry(rpc.to).or_default().extend(batch.into_messages());
    }
    let expected: BTreeMap<NodeId, Vec<(GroupId, RaftMessage)>> = std::mem::take(expected)
        .into_iter()
        .map(|(peer, groups)| {
            (peer, groups.into_iter().flat_map(|(g, messages)| messages.into_iter().map(move |m| (g, m))).collect())
        })
        .collect();
    prop_assert_eq!(delivered, expected);
    Ok(())
}

fn run_outbox(limits: OutboxLimits, ops: &[Op]) -> Result<u64, TestCaseError> {
    let mut outbox = Outbox::with_limits(SELF, limits);
    let mut expected = Expected::new();
    let (mut dropped, mut serial) = (0u64, 0i32);
    for op in ops.iter().chain([&Op::Drain]) {
        let Op::Push { peer, group, shape } = *op else {
            drain_and_check(&mut outbox, &limits, &mut expected)?;
            continue;
        };
        let (to, group) = (PEERS[peer], outbox_group(group));
        serial += 1;
        let message = outbox_message(to, shape, serial);
        match outbox.push(group, message.clone()) {
            Pushed::Queued => {
                let groups = expected.entry(to).or_default();
                match groups.iter_mut().find(|(g, _)| *g == group) {
                    Some((_, messages)) => messages.push(message),
                    None => groups.push((group, vec![message])),
                }
            }
            Pushed::Dropped(_) => dropped += 1,
        }
        let pending: u64 = PEERS.iter().map(|p| outbox.pending_bytes(*p)).sum();
        prop_assert!(outbox.pending_bytes(to) <= u64::from(limits.peer_pending_bytes_max));
        prop_assert!(pending <= u64::from(limits.pending_bytes_max));
        prop_assert!(expected.len() as u64 <= u64::from(limits.peers_max));
        let held = expected.get(&to).map_or(0, |groups| groups.iter().map(|(_, m)| m.len()).sum::<usize>());
        prop_assert!(held as u64 <= u64::from(limits.peer_pending_messages_max));
    }
    let stats = outbox.stats();
    prop_assert_eq!(stats.messages_dropped_total, dropped);
    prop_assert_eq!(stats.messages_queued_total + dropped, serial as u64);
    Ok(dropped)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Small limits: RPCs split and messages drop; what is queued comes out exactly once, in order.
    #[test]
    fn the_outbox_delivers_what_it_queued_and_counts_what_it_dropped(
        limits in small_limits(),
        ops in proptest::collection::vec(op(), 0..OUTBOX_OPS_MAX),
    ) {
        run_outbox(limits, &ops)?;
    }

    /// Default limits: nothing drops, and one drain is one RPC per peer.
    #[test]
    fn within_the_default_limits_nothing_drops_and_each_peer_gets_one_rpc(
        ops in proptest::collection::vec(op(), 0..OUTBOX_OPS_MAX),
    ) {
        prop_assert_eq!(run_outbox(OutboxLimits::DEFAULT, &ops)?, 0);
        let mut outbox = Outbox::new(SELF);
        let mut peers = BTreeSet::new();
        for (serial, op) in (1..).zip(&ops) {
            if let Op::Push { peer, group, shape } = *op {
                let queued = outbox.push(outbox_group(group), outbox_message(PEERS[peer], shape, serial));
                prop_assert_eq!(queued, Pushed::Queued);
                peers.insert(PEERS[peer]);
            }
        }
        let rpcs = outbox.drain();
        prop_assert_eq!(rpcs.iter().map(|r| r.to).collect::<Vec<_>>(), peers.into_iter().collect::<Vec<_>>());
    }
}
