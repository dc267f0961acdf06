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
//! - refusals: a refused command changes nothing but the applied index;
//! - reassignment: against a model built from the commands and answers alone, per (topic id,
//!   partition) of the live incarnation, after every command: `members` is exactly the model's
//!   group (the replicas and every target recorded since the last completion; reset to the
//!   completed replicas, started over when a topic is created again under the same id), holds
//!   `replicas` and `desired()`; `initial_voters` stay the replicas the partition was created
//!   with; `reassignment_epoch` only grows (the index of the latest accepted reassignment);
//!   replicas, target and `is_moving()` match the model; a `CompleteReassignment` is accepted
//!   exactly when it names the topic's incarnation, the latest epoch and `desired()` of a moving
//!   partition, and then leaves the partition not moving.
//!
//! Why: the controller's replicas must agree on the state bit for bit (DESIGN.md, "The seams and
//! determinism"), and a bad record from disk or network must be an error, not a crash. The
//! command generator draws from a small universe of names, ids and brokers so that commands
//! collide (duplicate names, '.'/'_' collisions, unknown topics, unregistered brokers) as often
//! as they succeed. A broker drops a partition's replica once it leaves `members`, so `members`
//! must never lose a broker the group may still count as a voter (a target recorded, even if
//! replaced or cancelled, may already have joined), and a stale or repeated completion must
//! change nothing. Random completions rarely name a real epoch, so the generator also builds
//! completions, reassignments and cancels from the state it sees (as the group leader and the
//! controller would), some exact and some spoilt (stale epoch, current replicas, another
//! incarnation, an already settled partition); a coverage test keeps enough of both kinds
//! accepted and refused.
//!
//! Replay: proptest prints the minimal failing case; the run is a pure function of it.
//! `PROPTEST_CASES` raises the case count (default: proptest's 256 per property, a few seconds
//! in a debug build). Failure persistence files are off: paste a printed case into a test to
//! pin it.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use sluice_meta::{Applied, MetaCommand, MetaError, MetaState, PartitionPlacement, TopicId, place_replicas};
use sluice_types::{NodeId, Offset};
use std::collections::{BTreeMap, BTreeSet};

/// Cases per property unless `PROPTEST_CASES` says otherwise (proptest's default).
const CASES_DEFAULT: u32 = 256;
/// Commands per generated log.
const COMMANDS_PER_CASE_MAX: usize = 40;
/// Brokers 0..this register at the head of every generated log (so placed topics usually fit).
const BROKERS_REGISTERED_FIRST: i32 = 3;
/// Placed topics the reassignment property's logs create right after the registrations, so
/// that moves, and so completions, start early in the log.
const TOPICS_CREATED_FIRST: usize = 2;
/// How often a reassignment of an existing partition names its current replicas, cancelling
/// the move in progress (a placed target hardly ever equals them).
const CANCEL_PROBABILITY: f64 = 0.25;
/// One past the last index of a generated log: the epochs random `CompleteReassignment`s name
/// are drawn from -1..this, so a few hit a real reassignment epoch by chance.
const LOG_INDEX_END: i64 = (BROKERS_REGISTERED_FIRST as usize + TOPICS_CREATED_FIRST + COMMANDS_PER_CASE_MAX) as i64;
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
/// Generator coverage check: logs sampled (from a fixed seed), and the share of them, in
/// percent, that must hold at least one accepted and at least one refused `CompleteReassignment`.
const COVERAGE_LOGS: usize = 512;
const COVERAGE_COMPLETED_PERCENT_MIN: usize = 40;
const COVERAGE_REFUSED_PERCENT_MIN: usize = 70;

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
/// sees (placement by `place_replicas`, as the controller leader does; a completion as a
/// partition's group leader reports it).
///
/// `ReassignExisting` is `ReassignPlaced` for the `pick`-th partition (modulo their count) of
/// the state, so that moves (and overlapping ones) are common enough for completions to find;
/// with `cancel`, it names the `pick`-th moving partition (any when none moves) and its current
/// replicas instead. `CompleteFromState` is a `CompleteReassignment` for the `pick`-th partition
/// among those `flaw` chooses from, built from the state (the topic's id, the partition's
/// `reassignment_epoch` and `desired()`), then spoilt as `flaw` says.
#[derive(Clone, Debug)]
enum Op {
    Raw(MetaCommand),
    CreatePlaced { name: &'static str, id_byte: u8, partitions: i32, replication_factor: i16, start: u32 },
    AddPlaced { name: &'static str, partitions: i32, start: u32 },
    ReassignPlaced { name: &'static str, partition: i32, replication_factor: i16, start: u32 },
    ReassignExisting { pick: usize, replication_factor: i16, start: u32, cancel: bool },
    CompleteFromState { pick: usize, flaw: Flaw },
}

/// How a completion built from the state departs from the one the group leader would report.
#[derive(Clone, Copy, Debug)]
enum Flaw {
    /// No flaw: a partition that is moving (any partition when none is), exactly as reported.
    Exact,
    /// A partition that is not moving, with its exact epoch and replicas: a repeated or late
    /// report of a move already completed (or of none).
    Settled,
    /// The epoch before the partition's: a report of a move a later reassignment replaced.
    StaleEpoch,
    /// The current replicas rather than `desired()` (still right for a cancelled move).
    CurrentReplicas,
    /// Another topic id: a report from an earlier incarnation of the topic.
    OtherIncarnation,
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

fn epoch() -> impl Strategy<Value = Offset> {
    (-1..LOG_INDEX_END).prop_map(Offset)
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
        1 => (topic_name(), 0..TOPIC_ID_BYTES, -1..4i32, epoch(), replica_list()).prop_map(
            |(topic, id, partition, epoch, replicas)| MetaCommand::CompleteReassignment {
                topic: topic.to_string(),
                topic_id: TopicId([id; 16]),
                partition,
                epoch,
                replicas,
            }
        ),
    ]
}

fn flaw() -> impl Strategy<Value = Flaw> {
    prop_oneof![
        6 => Just(Flaw::Exact),
        1 => Just(Flaw::Settled),
        1 => Just(Flaw::StaleEpoch),
        1 => Just(Flaw::CurrentReplicas),
        1 => Just(Flaw::OtherIncarnation),
    ]
}

fn create_placed() -> impl Strategy<Value = Op> {
    (topic_name(), 0..TOPIC_ID_BYTES, 1..6i32, 1..4i16, any::<u32>()).prop_map(
        |(name, id_byte, partitions, replication_factor, start)| Op::CreatePlaced {
            name,
            id_byte,
            partitions,
            replication_factor,
            start,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => universe_command().prop_map(Op::Raw),
        3 => create_placed(),
        2 => (topic_name(), 1..4i32, any::<u32>()).prop_map(|(name, partitions, start)| Op::AddPlaced {
            name,
            partitions,
            start,
        }),
        2 => (topic_name(), 0..4i32, 1..4i16, any::<u32>()).prop_map(|(name, partition, replication_factor, start)| {
            Op::ReassignPlaced { name, partition, replication_factor, start }
        }),
        2 => (any::<usize>(), 1..4i16, any::<u32>(), prop::bool::weighted(CANCEL_PROBABILITY)).prop_map(
            |(pick, replication_factor, start, cancel)| Op::ReassignExisting { pick, replication_factor, start, cancel }
        ),
        3 => (any::<usize>(), flaw()).prop_map(|(pick, flaw)| Op::CompleteFromState { pick, flaw }),
    ]
}

/// A log: brokers 0..`BROKERS_REGISTERED_FIRST` register first (so placed topics usually fit),
/// then the generated ops.
fn log() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..COMMANDS_PER_CASE_MAX).prop_map(|ops| {
        let mut log: Vec<Op> = (0..BROKERS_REGISTERED_FIRST).map(|id| Op::Raw(register(id))).collect();
        log.extend(ops);
        log
    })
}

/// A log as `log()` makes, with `TOPICS_CREATED_FIRST` placed topics created right after the
/// registrations (most of them succeed; the rest of the log may delete or recreate them).
fn log_with_topics() -> impl Strategy<Value = Vec<Op>> {
    (prop::collection::vec(create_placed(), TOPICS_CREATED_FIRST), log()).prop_map(|(creates, mut log)| {
        let at = BROKERS_REGISTERED_FIRST as usize;
        log.splice(at..at, creates);
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
        Op::ReassignExisting { pick, replication_factor, start, cancel } => {
            let all = partitions_of(state);
            let moving: Vec<_> = all.iter().copied().filter(|(_, _, _, placement)| placement.is_moving()).collect();
            let pool = if *cancel && !moving.is_empty() { moving } else { all };
            let Some((topic, _, partition, placement)) = pool.get(pick % pool.len().max(1)) else {
                // No topic at all: a reassignment no state accepts.
                return MetaCommand::ReassignPartition {
                    topic: TOPIC_NAMES[0].to_string(),
                    partition: 0,
                    replicas: Vec::new(),
                };
            };
            let replicas = if *cancel {
                placement.replicas.clone()
            } else {
                let target = place_replicas(1, *replication_factor, &live, state, *start).unwrap_or_default();
                target.into_iter().next().unwrap_or_default()
            };
            MetaCommand::ReassignPartition { topic: topic.to_string(), partition: *partition, replicas }
        }
        Op::CompleteFromState { pick, flaw } => complete_from_state(state, *pick, *flaw),
    }
}

/// Every partition of `state`: (topic name, topic id, partition, placement), in state order.
fn partitions_of(state: &MetaState) -> Vec<(&str, TopicId, i32, &PartitionPlacement)> {
    let mut all = Vec::new();
    for topic in state.topics().values() {
        for (p, placement) in topic.partitions.iter().enumerate() {
            all.push((topic.name.as_str(), topic.topic_id, i32::try_from(p).expect("bounded"), placement));
        }
    }
    all
}

/// The completion of `Op::CompleteFromState`: see `Flaw` for which partition it names and how.
fn complete_from_state(state: &MetaState, pick: usize, flaw: Flaw) -> MetaCommand {
    let all = partitions_of(state);
    let wanted: Vec<_> = match flaw {
        Flaw::Exact => all.iter().filter(|(_, _, _, placement)| placement.is_moving()).collect(),
        Flaw::Settled => all.iter().filter(|(_, _, _, placement)| !placement.is_moving()).collect(),
        Flaw::StaleEpoch | Flaw::CurrentReplicas | Flaw::OtherIncarnation => all.iter().collect(),
    };
    let pool: Vec<_> = if wanted.is_empty() { all.iter().collect() } else { wanted };
    let Some((name, topic_id, partition, placement)) = pool.get(pick % pool.len().max(1)) else {
        // No topic at all: a report no state accepts.
        let topic = TOPIC_NAMES[0].to_string();
        return MetaCommand::CompleteReassignment {
            topic,
            topic_id: TopicId([1; 16]),
            partition: 0,
            epoch: Offset(-1),
            replicas: Vec::new(),
        };
    };
    let mut command = (name.to_string(), *topic_id, placement.reassignment_epoch, placement.desired().to_vec());
    match flaw {
        Flaw::Exact | Flaw::Settled => {}
        Flaw::StaleEpoch => command.2 = Offset(command.2.0 - 1),
        Flaw::CurrentReplicas => command.3 = placement.replicas.clone(),
        Flaw::OtherIncarnation => command.1 = TopicId(command.1.0.map(|byte| byte ^ 1)),
    }
    let (topic, topic_id, epoch, replicas) = command;
    MetaCommand::CompleteReassignment { topic, topic_id, partition: *partition, epoch, replicas }
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
// (e) reassignment: group members against a model.
// ---------------------------------------------------------------------------------------------

/// What the model expects of one partition of one topic incarnation, built from the commands
/// and answers alone (never read from the state).
#[derive(Clone, Debug)]
struct PartitionModel {
    /// The topic's name (a completion must name it).
    name: String,
    /// The replicas the partition was created with: its `initial_voters` forever.
    created_with: Vec<NodeId>,
    replicas: Vec<NodeId>,
    target: Option<Vec<NodeId>>,
    /// The brokers that may be in the group: the replicas and every target recorded since the
    /// last completion.
    group: BTreeSet<NodeId>,
    /// The index of the latest accepted `ReassignPartition` (-1: none).
    epoch: Offset,
    /// The `reassignment_epoch` the state showed after the previous command.
    seen_epoch: Offset,
}

impl PartitionModel {
    fn new(name: &str, replicas: &[NodeId]) -> PartitionModel {
        PartitionModel {
            name: name.to_string(),
            created_with: replicas.to_vec(),
            replicas: replicas.to_vec(),
            target: None,
            group: replicas.iter().copied().collect(),
            epoch: Offset(-1),
            seen_epoch: Offset(-1),
        }
    }

    fn desired(&self) -> &[NodeId] {
        self.target.as_deref().unwrap_or(&self.replicas)
    }

    fn is_moving(&self) -> bool {
        self.target.is_some() || self.group != self.replicas.iter().copied().collect()
    }
}

/// The model: (topic id, partition) -> that partition of the live incarnation.
type GroupModel = BTreeMap<(TopicId, i32), PartitionModel>;

fn set_of(ids: &[NodeId]) -> BTreeSet<NodeId> {
    ids.iter().copied().collect()
}

/// Moves the model over `command`, applied at `index` with `result`; checks the answer of a
/// `CompleteReassignment` against the model's own verdict.
fn step_model(
    model: &mut GroupModel,
    index: Offset,
    command: &MetaCommand,
    result: &Result<Applied, MetaError>,
) -> Result<(), TestCaseError> {
    if let MetaCommand::CompleteReassignment { topic, topic_id, partition, epoch, replicas } = command {
        let in_progress = model.get(&(*topic_id, *partition)).is_some_and(|expected| {
            expected.name == *topic
                && expected.epoch == *epoch
                && expected.desired() == replicas
                && expected.is_moving()
        });
        prop_assert_eq!(result.is_ok(), in_progress, "{:?} answered {:?}", command, result);
    }
    let Ok(applied) = result else { return Ok(()) };
    match (command, applied) {
        (MetaCommand::CreateTopic { name, assignment, .. }, Applied::TopicCreated { topic_id, .. }) => {
            // A new incarnation starts over, even under an id an earlier one had (its entries
            // went at its deletion; a leftover would show in the partition count).
            for (p, replicas) in assignment.iter().enumerate() {
                model.insert((*topic_id, p as i32), PartitionModel::new(name, replicas));
            }
        }
        (MetaCommand::DeleteTopic { .. }, Applied::TopicDeleted { topic_id, .. }) => {
            model.retain(|(id, _), _| id != topic_id);
        }
        (
            MetaCommand::CreatePartitions { name, new_assignment },
            Applied::PartitionsCreated { topic_id, first_new, .. },
        ) => {
            for (i, replicas) in new_assignment.iter().enumerate() {
                model.insert((*topic_id, first_new.0 + i as i32), PartitionModel::new(name, replicas));
            }
        }
        (
            MetaCommand::ReassignPartition { topic, replicas, .. },
            Applied::ReassignmentRecorded { topic_id, partition, target },
        ) => {
            let expected = model
                .get_mut(&(*topic_id, partition.0))
                .ok_or_else(|| TestCaseError::fail(format!("{command:?} reassigned a partition the model lacks")))?;
            prop_assert_eq!(&expected.name, topic, "{:?} reassigned another topic's partition", command);
            let recorded = (*replicas != expected.replicas).then(|| replicas.clone());
            prop_assert_eq!(target, &recorded, "{:?}: cancel exactly when the target is the replicas", command);
            expected.group.extend(replicas.iter().copied());
            expected.target = recorded;
            expected.epoch = index;
        }
        (
            MetaCommand::CompleteReassignment { topic_id, partition, replicas, .. },
            Applied::ReassignmentCompleted { .. },
        ) => {
            // The model follows the command, not the answer.
            let expected = model.get_mut(&(*topic_id, *partition)).expect("the verdict above found it");
            expected.replicas = replicas.clone();
            expected.target = None;
            expected.group = set_of(replicas);
        }
        (
            MetaCommand::RegisterBroker { .. }
            | MetaCommand::DecommissionBroker { .. }
            | MetaCommand::AlterTopicConfigs { .. },
            _,
        ) => {}
        (command, applied) => prop_assert!(false, "{:?} answered {:?}", command, applied),
    }
    Ok(())
}

/// Compares every partition of `state` with the model (and the model has no other partition).
fn check_against_model(state: &MetaState, model: &mut GroupModel, step: usize) -> Result<(), TestCaseError> {
    let mut partitions = 0usize;
    for topic in state.topics().values() {
        for (p, placement) in topic.partitions.iter().enumerate() {
            partitions += 1;
            let at = format!("step {step}: {}-{p}", topic.name);
            let expected = model
                .get_mut(&(topic.topic_id, p as i32))
                .ok_or_else(|| TestCaseError::fail(format!("{at} is not in the model")))?;
            let members = set_of(&placement.members);
            prop_assert_eq!(members.len(), placement.members.len(), "{}: a member twice: {:?}", at, placement);
            prop_assert_eq!(&members, &expected.group, "{}: members are not the model's group", at);
            prop_assert!(set_of(&placement.replicas).is_subset(&members), "{}: a replica outside members", at);
            prop_assert!(set_of(placement.desired()).is_subset(&members), "{}: a target outside members", at);
            prop_assert_eq!(&placement.initial_voters, &expected.created_with, "{}: initial voters changed", at);
            prop_assert_eq!(&placement.replicas, &expected.replicas, "{}", at);
            prop_assert_eq!(&placement.target_replicas, &expected.target, "{}", at);
            prop_assert!(placement.reassignment_epoch >= expected.seen_epoch, "{}: the epoch went back", at);
            prop_assert_eq!(placement.reassignment_epoch, expected.epoch, "{}", at);
            prop_assert_eq!(placement.is_moving(), expected.is_moving(), "{}", at);
            expected.seen_epoch = placement.reassignment_epoch;
        }
    }
    prop_assert_eq!(partitions, model.len(), "step {}: the model holds partitions the state lacks", step);
    Ok(())
}

fn run_group_model(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut state = MetaState::new();
    let mut model = GroupModel::new();
    for (step, op) in ops.iter().enumerate() {
        let command = propose(op, &state);
        let index = state.applied_index().next();
        let result = state.apply(index, &command);
        step_model(&mut model, index, &command, &result)?;
        check_against_model(&state, &mut model, step)?;
        if let Ok(Applied::ReassignmentCompleted { topic_id, partition, .. }) = &result {
            let topic = state.topic_by_id(*topic_id).expect("completed a live topic");
            let placement = topic.partition(partition.0).expect("completed a live partition");
            prop_assert!(!placement.is_moving(), "step {}: still moving after {:?}", step, command);
        }
    }
    Ok(())
}

/// How many of `COVERAGE_LOGS` logs of the reassignment property (drawn from a fixed seed) hold
/// an accepted, and a refused, `CompleteReassignment`.
fn completion_coverage() -> (usize, usize) {
    let mut runner = TestRunner::deterministic();
    let strategy = log_with_topics();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..COVERAGE_LOGS {
        let ops = strategy.new_tree(&mut runner).expect("the log strategy never rejects").current();
        let mut state = MetaState::new();
        let (mut any_accepted, mut any_refused) = (false, false);
        for op in &ops {
            let command = propose(op, &state);
            let result = apply_next(&mut state, &command);
            if matches!(command, MetaCommand::CompleteReassignment { .. }) {
                any_accepted |= result.is_ok();
                any_refused |= result.is_err();
            }
        }
        accepted += usize::from(any_accepted);
        refused += usize::from(any_refused);
    }
    (accepted, refused)
}

/// The generator keeps reaching completions both ways (a change to it that starves the
/// reassignment properties fails here, not silently).
#[test]
fn generated_logs_complete_and_refuse_reassignments() {
    let (accepted, refused) = completion_coverage();
    eprintln!("of {COVERAGE_LOGS} logs, {accepted} hold an accepted completion and {refused} a refused one");
    assert!(accepted * 100 >= COVERAGE_COMPLETED_PERCENT_MIN * COVERAGE_LOGS, "{accepted} of {COVERAGE_LOGS}");
    assert!(refused * 100 >= COVERAGE_REFUSED_PERCENT_MIN * COVERAGE_LOGS, "{refused} of {COVERAGE_LOGS}");
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
        (any::<String>(), any::<[u8; 16]>(), any::<i32>(), any::<i64>(), any_ids()).prop_map(
            |(topic, id, partition, epoch, replicas)| MetaCommand::CompleteReassignment {
                topic,
                topic_id: TopicId(id),
                partition,
                epoch: Offset(epoch),
                replicas,
            }
        ),
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

    /// (e) Every partition's group members are the model's (replicas and every target since
    /// the last completion), hold the replicas and the desired set; initial voters never
    /// change, epochs only grow, a completion is accepted exactly for the move in progress and
    /// leaves the partition settled.
    #[test]
    fn group_members_follow_the_model(ops in log_with_topics()) {
        run_group_model(&ops)?;
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
