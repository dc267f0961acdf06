//! Property tests of the cluster metadata state machine (`sluice-meta`).
//!
//! What:
//! - placement: for random broker sets (some decommissioning), existing load, partition counts,
//!   replication factors and rotation seeds, `place_replicas` refuses exactly the impossible
//!   requests, and otherwise gives every partition `rf` distinct eligible brokers, keeps every
//!   eligible broker's new replica count and new preferred-leader count within one of every
//!   other's, is deterministic, and yields an assignment `apply` accepts; topics placed one
//!   after another keep the brokers' total replica counts within one;
//! - determinism: two states applying the same random command sequence stay equal, answer
//!   alike, write identical snapshots, and a snapshot taken anywhere loads as an equal state
//!   that, fed the rest of the log, ends equal too; every invariant holds after every command;
//! - encoding: every command round-trips through its bytes, and no byte string (random, or a
//!   valid record or snapshot with bytes flipped, cut or inserted) makes a decoder panic;
//! - refusals: a refused command changes nothing but the applied index.
//!
//! Why: the controller's replicas must agree on the state bit for bit (DESIGN.md, "The seams and
//! determinism"), and a bad record from disk or network must be an error, not a crash. The
//! command generator draws from a small universe of names, ids and brokers so that commands
//! collide (duplicate names, '.'/'_' collisions, unknown topics, unregistered brokers) as often
//! as they succeed.
//!
//! Replay: proptest prints the minimal failing case; the run is a pure function of it.
//! `PROPTEST_CASES` raises the case count (default: proptest's 256 per property, a few seconds
//! in a debug build). Failure persistence files are off: paste a printed case into a test to
//! pin it.

use proptest::prelude::*;
use sluice_meta::{MetaCommand, MetaError, MetaState, TopicId, place_replicas};
use sluice_types::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// Cases per property unless `PROPTEST_CASES` says otherwise (proptest's default).
const CASES_DEFAULT: u32 = 256;
/// Commands per generated log.
const COMMANDS_PER_CASE_MAX: usize = 40;
/// Broker ids the command generator names: 0..BROKER_IDS (and -1, which is invalid).
const BROKER_IDS: i32 = 6;
/// Topic names the command generator uses: valid (the first ones, drawn more often), colliding
/// ("a.b" / "a_b") and invalid.
const TOPIC_NAMES: [&str; 9] = ["a", "a", "b", "b", "c", "a.b", "a_b", "bad name", ""];
/// Topic ids the command generator uses: `TopicId([k; 16])` for k below this (0 is reserved).
const TOPIC_ID_BYTES: u8 = 8;
/// Placement: brokers in the cluster, partitions per topic, replication factors tried.
const PLACEMENT_BROKERS_MAX: usize = 12;
const PLACEMENT_PARTITIONS_MAX: i32 = 40;
const PLACEMENT_RF_MAX: i16 = 8;
/// Topics placed one after another in the balance-over-time property.
const PLACED_TOPICS_MAX: usize = 8;
/// Bytes of random input for the decoders, and edits applied to a valid record.
const RANDOM_BYTES_MAX: usize = 512;
const EDITS_MAX: usize = 8;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(CASES_DEFAULT)
}

fn register(id: i32) -> MetaCommand {
    MetaCommand::RegisterBroker {
        node_id: NodeId(id),
        kafka_host: format!("broker-{id}"),
        kafka_port: 9092,
        rpc_addr: format!("broker-{id}:9093"),
        rack: None,
    }
}

/// Applies `command` at the next index of a log whose last index is `state.applied_index()`.
fn apply_next(state: &mut MetaState, command: &MetaCommand) -> Result<sluice_meta::Applied, MetaError> {
    let index = state.applied_index().next();
    state.apply(index, command)
}

// ---------------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------------

/// One step of a generated log: a raw command, or one the proposer builds from the state it
/// sees (placement by `place_replicas`, as the controller leader does).
#[derive(Clone, Debug)]
enum Op {
    Raw(MetaCommand),
    CreatePlaced { name: &'static str, id_byte: u8, partitions: i32, replication_factor: i16, start: u32 },
    AddPlaced { name: &'static str, partitions: i32, start: u32 },
    ReassignPlaced { name: &'static str, partition: i32, replication_factor: i16, start: u32 },
}

fn broker_id() -> impl Strategy<Value = NodeId> {
    (-1..BROKER_IDS).prop_map(NodeId)
}

fn replica_list() -> impl Strategy<Value = Vec<NodeId>> {
    prop::collection::vec(broker_id(), 0..4)
}

fn assignment() -> impl Strategy<Value = Vec<Vec<NodeId>>> {
    prop::collection::vec(replica_list(), 0..5)
}

fn topic_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(TOPIC_NAMES.to_vec())
}

fn small_configs() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(prop::sample::select(vec!["x", "y", ""]).prop_map(String::from), "[a-z0-9]{0,3}", 0..3)
}

fn universe_command() -> impl Strategy<Value = MetaCommand> {
    prop_oneof![
        3 => (broker_id(), prop::sample::select(vec!["h1", "h2", ""]), prop::sample::select(vec![9092, 0])).prop_map(
            |(node_id, host, kafka_port)| MetaCommand::RegisterBroker {
                node_id,
                kafka_host: host.to_string(),
                kafka_port,
                rpc_addr: format!("{host}:9093"),
                rack: None,
            }
        ),
        3 => (topic_name(), 0..TOPIC_ID_BYTES, assignment(), small_configs()).prop_map(|(name, id, assignment, configs)| {
            MetaCommand::CreateTopic { name: name.to_string(), topic_id: TopicId([id; 16]), assignment, configs }
        }),
        2 => topic_name().prop_map(|name| MetaCommand::DeleteTopic { name: name.to_string() }),
        2 => (topic_name(), assignment())
            .prop_map(|(name, new_assignment)| MetaCommand::CreatePartitions { name: name.to_string(), new_assignment }),
        2 => (topic_name(), small_configs(), prop::collection::vec(prop::sample::select(vec!["x", "y", ""]), 0..3))
            .prop_map(|(name, set, delete)| MetaCommand::AlterTopicConfigs {
                name: name.to_string(),
                set,
                delete: delete.into_iter().map(String::from).collect(),
            }),
        2 => (topic_name(), -1..4i32, replica_list()).prop_map(|(topic, partition, replicas)| {
            MetaCommand::ReassignPartition { topic: topic.to_string(), partition, replicas }
        }),
        1 => broker_id().prop_map(|node_id| MetaCommand::DecommissionBroker { node_id }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => universe_command().prop_map(Op::Raw),
        3 => (topic_name(), 0..TOPIC_ID_BYTES, 1..6i32, 1..4i16, any::<u32>()).prop_map(
            |(name, id_byte, partitions, replication_factor, start)| Op::CreatePlaced {
                name,
                id_byte,
                partitions,
                replication_factor,
                start,
            }
        ),
        2 => (topic_name(), 1..4i32, any::<u32>()).prop_map(|(name, partitions, start)| Op::AddPlaced {
            name,
            partitions,
            start,
        }),
        2 => (topic_name(), 0..4i32, 1..4i16, any::<u32>()).prop_map(|(name, partition, replication_factor, start)| {
            Op::ReassignPlaced { name, partition, replication_factor, start }
        }),
    ]
}

/// A log: brokers 0..3 register first (so placed topics usually fit), then the generated ops.
fn log() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..COMMANDS_PER_CASE_MAX).prop_map(|ops| {
        let mut log: Vec<Op> = (0..3).map(|id| Op::Raw(register(id))).collect();
        log.extend(ops);
        log
    })
}

/// The command the proposer would propose for `op`, given the state it sees.
fn propose(op: &Op, state: &MetaState) -> MetaCommand {
    let live: Vec<NodeId> = state.brokers().keys().copied().collect();
    match op {
        Op::Raw(command) => command.clone(),
        Op::CreatePlaced { name, id_byte, partitions, replication_factor, start } => {
            let assignment = place_replicas(*partitions, *replication_factor, &live, state, *start).unwrap_or_default();
            let topic_id = TopicId([*id_byte; 16]);
            MetaCommand::CreateTopic { name: name.to_string(), topic_id, assignment, configs: BTreeMap::new() }
        }
        Op::AddPlaced { name, partitions, start } => {
            let rf = state.topic(name).map_or(1, |topic| topic.replication_factor() as i16);
            let new_assignment = place_replicas(*partitions, rf, &live, state, *start).unwrap_or_default();
            MetaCommand::CreatePartitions { name: name.to_string(), new_assignment }
        }
        Op::ReassignPlaced { name, partition, replication_factor, start } => {
            let target = place_replicas(1, *replication_factor, &live, state, *start).unwrap_or_default();
            let replicas = target.into_iter().next().unwrap_or_default();
            MetaCommand::ReassignPartition { topic: name.to_string(), partition: *partition, replicas }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (b) determinism and snapshots, (d) refusals change nothing.
// ---------------------------------------------------------------------------------------------

/// The content a command may change (everything but the applied index).
fn content(state: &MetaState) -> (Vec<u8>, u32) {
    let brokers = format!("{:?}", state.brokers());
    let topics = format!("{:?}", state.topics());
    ([brokers.as_bytes(), topics.as_bytes()].concat(), state.partitions_total())
}

fn run_log(ops: &[Op], snapshot_at: usize) -> Result<(), TestCaseError> {
    let (mut a, mut b) = (MetaState::new(), MetaState::new());
    let mut from_snapshot: Option<MetaState> = None;
    let mut accepted = 0usize;
    for (step, op) in ops.iter().enumerate() {
        let command = propose(op, &a);
        let before = content(&a);
        let result_a = apply_next(&mut a, &command);
        let result_b = apply_next(&mut b, &command);
        prop_assert_eq!(&result_a, &result_b, "replicas answered differently at step {}", step);
        prop_assert_eq!(&a, &b, "replicas diverged at step {}", step);
        a.validate().map_err(|broken| TestCaseError::fail(format!("step {step}: {broken}")))?;
        match &result_a {
            Ok(_) => accepted += 1,
            Err(error) => {
                // (d) A refusal changes nothing but the applied index.
                prop_assert_eq!(&content(&a), &before, "refused {:?} ({}) changed the state", command, error);
                prop_assert!(error.kafka_error_code() != 0);
            }
        }
        if let Some(loaded) = from_snapshot.as_mut() {
            prop_assert_eq!(apply_next(loaded, &command), result_a);
        }
        if step == snapshot_at % ops.len() {
            let bytes = a.to_snapshot_bytes();
            prop_assert_eq!(&bytes, &b.to_snapshot_bytes(), "equal states wrote different snapshots");
            let loaded = MetaState::from_snapshot_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&loaded, &a, "the snapshot did not load as the state");
            from_snapshot = Some(loaded);
        }
    }
    prop_assert_eq!(from_snapshot.as_ref(), Some(&a), "the state loaded from a snapshot ended elsewhere");
    let reloaded =
        MetaState::from_snapshot_bytes(&a.to_snapshot_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(reloaded, a);
    // The three registrations at least are accepted; the rest is the generator's business.
    prop_assert!(accepted >= 3);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (a) placement.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct PlacementCase {
    /// Registered broker ids, sorted and distinct.
    brokers: Vec<i32>,
    /// Which of them are decommissioning.
    decommissioning: Vec<bool>,
    /// Topics already there, as (partitions, rf, start) placed before any broker leaves.
    existing: Vec<(i32, i16, u32)>,
    partitions: i32,
    replication_factor: i16,
    start: u32,
}

fn placement_case() -> impl Strategy<Value = PlacementCase> {
    (
        prop::collection::btree_set(0..64i32, 1..=PLACEMENT_BROKERS_MAX),
        prop::collection::vec(any::<bool>(), PLACEMENT_BROKERS_MAX),
        prop::collection::vec((1..20i32, 1..4i16, any::<u32>()), 0..4),
        0..=PLACEMENT_PARTITIONS_MAX,
        0..=PLACEMENT_RF_MAX,
        any::<u32>(),
    )
        .prop_map(|(brokers, leaving, existing, partitions, replication_factor, start)| {
            // Mostly live clusters: a broker leaves with probability about 1/4.
            let decommissioning =
                leaving.iter().zip(brokers.iter()).map(|(leaves, id)| *leaves && id % 2 == 0).collect();
            PlacementCase {
                brokers: brokers.into_iter().collect(),
                decommissioning,
                existing,
                partitions,
                replication_factor,
                start,
            }
        })
}

/// A cluster with `case`'s brokers and existing topics (each on a prefix of the brokers, so
/// the existing load is uneven), then the decommissioning marks.
fn placement_cluster(case: &PlacementCase) -> MetaState {
    let mut state = MetaState::new();
    for id in &case.brokers {
        apply_next(&mut state, &register(*id)).expect("valid registration");
    }
    let all: Vec<NodeId> = case.brokers.iter().copied().map(NodeId).collect();
    for (at, (partitions, rf, start)) in case.existing.iter().enumerate() {
        // Uneven load: each existing topic lives on a prefix of the brokers only.
        let some = &all[..=(*start as usize % all.len())];
        let Ok(assignment) = place_replicas(*partitions, *rf, some, &state, *start) else { continue };
        let command = MetaCommand::CreateTopic {
            name: format!("existing-{at}"),
            topic_id: TopicId([at as u8 + 10; 16]),
            assignment,
            configs: BTreeMap::new(),
        };
        apply_next(&mut state, &command).expect("a placement applies");
    }
    for (id, leaving) in case.brokers.iter().zip(&case.decommissioning) {
        if *leaving {
            apply_next(&mut state, &MetaCommand::DecommissionBroker { node_id: NodeId(*id) }).expect("registered");
        }
    }
    state
}

fn spread(counts: &BTreeMap<NodeId, u32>) -> u32 {
    counts.values().max().copied().unwrap_or(0) - counts.values().min().copied().unwrap_or(0)
}

fn check_placement(case: &PlacementCase) -> Result<(), TestCaseError> {
    let mut state = placement_cluster(case);
    let brokers: Vec<NodeId> = case.brokers.iter().copied().map(NodeId).collect();
    let eligible: BTreeSet<NodeId> =
        brokers.iter().copied().filter(|id| !state.broker(*id).expect("registered").decommissioning).collect();
    let result = place_replicas(case.partitions, case.replication_factor, &brokers, &state, case.start);
    prop_assert_eq!(&result, &place_replicas(case.partitions, case.replication_factor, &brokers, &state, case.start));
    let rf = case.replication_factor;
    let possible = case.partitions >= 1 && rf >= 1 && rf as usize <= eligible.len();
    let placement = match result {
        Err(error) => {
            prop_assert!(!possible, "refused a possible placement: {}", error);
            let expected = if case.partitions < 1 {
                sluice_meta::code::INVALID_PARTITIONS
            } else {
                sluice_meta::code::INVALID_REPLICATION_FACTOR
            };
            prop_assert_eq!(error.kafka_error_code(), expected);
            return Ok(());
        }
        Ok(placement) => placement,
    };
    prop_assert!(possible, "placed an impossible request");
    prop_assert_eq!(placement.len(), case.partitions as usize);
    let mut replicas: BTreeMap<NodeId, u32> = eligible.iter().map(|id| (*id, 0)).collect();
    let mut leaders = replicas.clone();
    for partition in &placement {
        prop_assert_eq!(partition.len(), rf as usize);
        prop_assert_eq!(
            partition.iter().collect::<BTreeSet<_>>().len(),
            partition.len(),
            "a broker twice: {:?}",
            partition
        );
        for id in partition {
            *replicas.get_mut(id).ok_or_else(|| TestCaseError::fail(format!("{id} is not eligible")))? += 1;
        }
        *leaders.get_mut(&partition[0]).expect("eligible") += 1;
    }
    prop_assert!(spread(&replicas) <= 1, "replica counts {:?}", replicas);
    prop_assert!(spread(&leaders) <= 1, "preferred leader counts {:?}", leaders);
    let command = MetaCommand::CreateTopic {
        name: "placed".to_string(),
        topic_id: TopicId([2; 16]),
        assignment: placement,
        configs: BTreeMap::new(),
    };
    prop_assert!(apply_next(&mut state, &command).is_ok(), "apply refused the placement");
    Ok(())
}

/// Topics placed one after another on a fixed set of live brokers keep the brokers' total
/// replica counts within one (placement takes the least-loaded brokers first).
fn check_balance_over_time(brokers: &[i32], topics: &[(i32, i16, u32)]) -> Result<(), TestCaseError> {
    let mut state = MetaState::new();
    for id in brokers {
        apply_next(&mut state, &register(*id)).expect("valid registration");
    }
    let ids: Vec<NodeId> = brokers.iter().copied().map(NodeId).collect();
    for (at, (partitions, rf, start)) in topics.iter().enumerate() {
        let rf = (*rf).min(ids.len() as i16);
        let assignment = place_replicas(*partitions, rf, &ids, &state, *start).expect("fits");
        let command = MetaCommand::CreateTopic {
            name: format!("t{at}"),
            topic_id: TopicId([at as u8 + 2; 16]),
            assignment,
            configs: BTreeMap::new(),
        };
        apply_next(&mut state, &command).expect("a placement applies");
        let loads: BTreeMap<NodeId, u32> =
            state.broker_loads().into_iter().map(|(id, load)| (id, load.replicas)).collect();
        prop_assert!(spread(&loads) <= 1, "after topic {}: {:?}", at, loads);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (c) encoding.
// ---------------------------------------------------------------------------------------------

fn any_ids() -> impl Strategy<Value = Vec<NodeId>> {
    prop::collection::vec(any::<i32>().prop_map(NodeId), 0..4)
}

fn any_configs() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(any::<String>(), any::<String>(), 0..3)
}

/// Commands with arbitrary field values (any string, any id), most of which `apply` would
/// refuse: encoding must not care.
fn any_command() -> impl Strategy<Value = MetaCommand> {
    prop_oneof![
        (any::<i32>(), any::<String>(), any::<i32>(), any::<String>(), any::<Option<String>>()).prop_map(
            |(id, kafka_host, kafka_port, rpc_addr, rack)| MetaCommand::RegisterBroker {
                node_id: NodeId(id),
                kafka_host,
                kafka_port,
                rpc_addr,
                rack,
            }
        ),
        (any::<String>(), any::<[u8; 16]>(), prop::collection::vec(any_ids(), 0..4), any_configs()).prop_map(
            |(name, id, assignment, configs)| MetaCommand::CreateTopic {
                name,
                topic_id: TopicId(id),
                assignment,
                configs
            }
        ),
        any::<String>().prop_map(|name| MetaCommand::DeleteTopic { name }),
        (any::<String>(), prop::collection::vec(any_ids(), 0..4))
            .prop_map(|(name, new_assignment)| MetaCommand::CreatePartitions { name, new_assignment }),
        (any::<String>(), any_configs(), prop::collection::vec(any::<String>(), 0..3))
            .prop_map(|(name, set, delete)| MetaCommand::AlterTopicConfigs { name, set, delete }),
        (any::<String>(), any::<i32>(), any_ids())
            .prop_map(|(topic, partition, replicas)| MetaCommand::ReassignPartition { topic, partition, replicas }),
        any::<i32>().prop_map(|id| MetaCommand::DecommissionBroker { node_id: NodeId(id) }),
    ]
}

#[derive(Clone, Debug)]
enum Edit {
    Flip { at: usize, bits: u8 },
    Cut { at: usize },
    Insert { at: usize, byte: u8 },
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, bits)| Edit::Flip { at, bits }),
        any::<usize>().prop_map(|at| Edit::Cut { at }),
        (any::<usize>(), prop::sample::select(b"{}[]\",:0123456789-e.nulltruefalse \\".to_vec()))
            .prop_map(|(at, byte)| Edit::Insert { at, byte }),
    ];
    prop::collection::vec(edit, 1..=EDITS_MAX)
}

fn edited(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    for edit in edits {
        match *edit {
            Edit::Flip { at, bits } if !bytes.is_empty() => {
                let at = at % bytes.len();
                bytes[at] ^= bits;
            }
            Edit::Cut { at } => bytes.truncate(at % (bytes.len() + 1)),
            Edit::Insert { at, byte } => bytes.insert(at % (bytes.len() + 1), byte),
            Edit::Flip { .. } => {}
        }
    }
    bytes
}

/// A small valid state for snapshot mutations.
fn snapshot_of(ops: &[Op]) -> MetaState {
    let mut state = MetaState::new();
    for op in ops {
        let command = propose(op, &state);
        let _ = apply_next(&mut state, &command);
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// (a) Every possible placement is balanced within one, valid and deterministic.
    #[test]
    fn placement_spreads_replicas_and_leaders_within_one(case in placement_case()) {
        check_placement(&case)?;
    }

    /// (a) Placing topic after topic keeps every broker's total within one of the others'.
    #[test]
    fn placement_keeps_totals_within_one_over_time(
        brokers in prop::collection::btree_set(0..64i32, 1..=PLACEMENT_BROKERS_MAX),
        topics in prop::collection::vec((1..=PLACEMENT_PARTITIONS_MAX, 1..=PLACEMENT_RF_MAX, any::<u32>()), 1..=PLACED_TOPICS_MAX),
    ) {
        check_balance_over_time(&brokers.into_iter().collect::<Vec<_>>(), &topics)?;
    }

    /// (b) and (d) Replicas applying one log agree; snapshots load as the state; refusals
    /// change nothing.
    #[test]
    fn replicas_applying_one_log_agree(ops in log(), snapshot_at in any::<usize>()) {
        run_log(&ops, snapshot_at)?;
    }

    /// (c) Every command reads back as itself.
    #[test]
    fn commands_round_trip_through_bytes(command in any_command()) {
        let bytes = command.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(MetaCommand::decode(&bytes), Ok(command));
    }

    /// (c) Random bytes never make the decoders panic.
    #[test]
    fn random_bytes_never_panic_the_decoders(bytes in prop::collection::vec(any::<u8>(), 0..RANDOM_BYTES_MAX)) {
        let _ = MetaCommand::decode(&bytes);
        let _ = MetaState::from_snapshot_bytes(&bytes);
    }

    /// (c) A damaged record is an error or another valid command, never a panic; whatever
    /// decodes encodes back to itself.
    #[test]
    fn damaged_records_never_panic(command in any_command(), edits in edits()) {
        let bytes = command.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Ok(decoded) = MetaCommand::decode(&edited(&bytes, &edits)) {
            let again = decoded.encode().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(MetaCommand::decode(&again), Ok(decoded));
        }
    }

    /// (c) A damaged snapshot is an error or a state that passes every invariant.
    #[test]
    fn damaged_snapshots_never_panic(ops in log(), edits in edits()) {
        let bytes = snapshot_of(&ops).to_snapshot_bytes();
        if let Ok(loaded) = MetaState::from_snapshot_bytes(&edited(&bytes, &edits)) {
            loaded.validate().map_err(TestCaseError::fail)?;
            prop_assert_eq!(MetaState::from_snapshot_bytes(&loaded.to_snapshot_bytes()), Ok(loaded));
        }
    }
}
