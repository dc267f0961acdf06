//! Property tests of the consumer group coordinator (`sluice-group`) against a model of what
//! its clients were told.
//!
//! What: random schedules of JoinGroup (new, rejoining, static), SyncGroup, Heartbeat (of the
//! current or a stale generation), LeaveGroup, OffsetCommit (members, stale members, standalone),
//! time passing (sessions and rebalance timeouts expire), writes becoming durable or failing in
//! any order of arrival, and coordinator failover (the coordinator is dropped and rebuilt from
//! the records that were durable). After every step:
//! - the coordinator's own invariants hold (it asserts them after every input);
//! - every request is answered at most once;
//! - GroupOffsetsDurable: the committed offsets, live and after every failover, are exactly the
//!   last acknowledged commit of each partition (a commit is acknowledged only when durable);
//! - fencing: a Heartbeat or OffsetCommit answered NONE came from a member of the group's
//!   current generation, and one of another generation is never answered NONE;
//! - a SyncGroup answered NONE gave the member the assignment its leader sent, and that
//!   assignment is in the log for that generation;
//! - liveness: once every write is durable and the rebalance and session timeouts pass, no
//!   request is left unanswered.
//!
//! Why: the group state machine interleaves client retries, timeouts and writes; the answers
//! clients act on must never contradict what a failover brings back (issue 6).
//! `PROPTEST_CASES` raises the case count.

use bytes::Bytes;
use proptest::prelude::*;
use sluice_group::error::*;
use sluice_group::*;
use std::collections::BTreeMap;

const GROUP: &str = "g";
const SOLO: &str = "solo";
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 20_000;
const CLIENTS: u8 = 4;
const PARTITIONS: i32 = 3;
/// Steps per schedule at most.
const STEPS_MAX: usize = 120;

#[derive(Clone, Debug)]
enum Step {
    Join { client: u8, forget_id: bool, static_member: bool, alternate_protocol: bool },
    Sync { client: u8 },
    Heartbeat { client: u8, stale: bool },
    Leave { client: u8 },
    Commit { client: u8, partition: i32, stale: bool },
    StandaloneCommit { partition: i32 },
    Advance { ms: i64 },
    Persist { fail: bool },
    Failover,
}

fn step() -> impl Strategy<Value = Step> {
    let client = 0..CLIENTS;
    prop_oneof![
        4 => (client.clone(), prop::bool::weighted(0.1), any::<bool>(), prop::bool::weighted(0.1)).prop_map(
            |(client, forget_id, static_member, alternate_protocol)| Step::Join {
                client,
                forget_id,
                static_member,
                alternate_protocol
            }
        ),
        3 => client.clone().prop_map(|client| Step::Sync { client }),
        3 => (client.clone(), prop::bool::weighted(0.15)).prop_map(|(client, stale)| Step::Heartbeat { client, stale }),
        1 => client.clone().prop_map(|client| Step::Leave { client }),
        3 => (client, 0..PARTITIONS, prop::bool::weighted(0.15))
            .prop_map(|(client, partition, stale)| Step::Commit { client, partition, stale }),
        1 => (0..PARTITIONS).prop_map(|partition| Step::StandaloneCommit { partition }),
        3 => (0i64..12_000).prop_map(|ms| Step::Advance { ms }),
        4 => prop::bool::weighted(0.1).prop_map(|fail| Step::Persist { fail }),
        1 => Just(Step::Failover),
    ]
}

/// What one client believes: its member id and generation, from its answers.
#[derive(Clone, Debug, Default)]
struct ClientView {
    member_id: String,
    generation_id: i32,
    instance: Option<String>,
}

#[derive(Debug)]
enum Waiting {
    Join(u8),
    /// `key`: how `sent_assignments` knows this member (its instance id if static).
    Sync {
        client: u8,
        member_id: String,
        generation_id: i32,
        key: String,
    },
    /// The commit, and whether fencing lets it through (`None`: a standalone commit).
    Commit(Vec<(String, TopicPartition, i64)>, Option<bool>),
    Other,
}

struct World {
    coordinator: Coordinator,
    now: Time,
    next_token: u64,
    next_candidate: u64,
    clients: Vec<ClientView>,
    /// Requests not answered yet, by token.
    waiting: BTreeMap<Token, Waiting>,
    answered: std::collections::BTreeSet<Token>,
    /// Writes the coordinator asked for, in order, not yet durable or failed.
    pending: Vec<(WriteId, Vec<OffsetsRecord>)>,
    /// The durable records, in log order.
    log: Vec<OffsetsRecord>,
    /// GroupOffsetsDurable's model: the last acknowledged commit per (group, partition).
    acked: BTreeMap<(String, TopicPartition), i64>,
    /// The assignment each leader sent, per (generation, member): a static member by its
    /// instance id, since a static member that takes over keeps its assignment (KIP-345).
    sent_assignments: BTreeMap<(i32, String), Bytes>,
    next_offset: i64,
    last_heartbeat_code: Option<ErrorCode>,
}

impl World {
    fn new() -> World {
        let now = Time { monotonic_ms: 0, wall_ms: 1_000_000 };
        World {
            coordinator: World::load(&[], now),
            now,
            next_token: 0,
            next_candidate: 0,
            clients: (0..CLIENTS).map(|_| ClientView::default()).collect(),
            waiting: BTreeMap::new(),
            answered: Default::default(),
            pending: Vec::new(),
            log: Vec::new(),
            acked: BTreeMap::new(),
            sent_assignments: BTreeMap::new(),
            next_offset: 0,
            last_heartbeat_code: None,
        }
    }

    fn load(log: &[OffsetsRecord], now: Time) -> Coordinator {
        let mut coordinator = Coordinator::new(GroupConfig::default());
        for record in log {
            let (key, value) = record.encode();
            coordinator.replay(&OffsetsRecord::decode(&key, value.as_deref()).expect("our own records decode"));
        }
        coordinator.loaded(now);
        coordinator
    }

    fn input(&mut self, input: Input) {
        let outputs = self.coordinator.step(input, self.now);
        for output in outputs {
            match output {
                Output::Persist { write, records } => self.pending.push((write, records)),
                Output::Respond(token, response) => self.answer(token, response),
            }
        }
    }

    fn request(&mut self, request: Request, waiting: Waiting) {
        let token = Token(self.next_token);
        self.next_token += 1;
        self.waiting.insert(token, waiting);
        self.input(Input::Request(token, request));
    }

    fn answer(&mut self, token: Token, response: Response) {
        assert!(self.answered.insert(token), "{token:?} answered twice");
        let waiting = self.waiting.remove(&token).expect("an answer to a request we sent");
        match (waiting, response) {
            (Waiting::Join(client), Response::Join(join)) => {
                let view = &mut self.clients[client as usize];
                match join.error {
                    NONE => {
                        view.member_id = join.member_id.clone();
                        view.generation_id = join.generation_id;
                        if join.leader == join.member_id {
                            assert!(!join.members.is_empty(), "the leader sees the members");
                        }
                    }
                    MEMBER_ID_REQUIRED => view.member_id = join.member_id.clone(),
                    UNKNOWN_MEMBER_ID | FENCED_INSTANCE_ID => view.member_id.clear(),
                    _ => {}
                }
            }
            (Waiting::Sync { client, member_id, generation_id, key }, Response::Sync(sync)) => {
                if sync.error == NONE {
                    let static_member = key != member_id;
                    let sent = self.sent_assignments.get(&(generation_id, key)).cloned();
                    assert_eq!(Some(sync.assignment.clone()), sent, "sync of {member_id} in {generation_id}");
                    let in_log = self.log.iter().rev().find_map(|r| match r {
                        OffsetsRecord::Group { group_id, value: Some(g) }
                            if group_id == GROUP && g.generation_id == generation_id =>
                        {
                            Some(g.members.iter().find(|m| m.member_id == member_id).map(|m| m.assignment.clone()))
                        }
                        _ => None,
                    });
                    // A static member that took over keeps the assignment under its new id.
                    if !static_member {
                        assert_eq!(in_log, Some(Some(sync.assignment)), "the assignment is durable before it is given");
                    }
                } else if sync.error == UNKNOWN_MEMBER_ID || sync.error == FENCED_INSTANCE_ID {
                    self.clients[client as usize].member_id.clear();
                }
            }
            (Waiting::Commit(parts, member_ok), Response::Commit(commit)) => {
                for ((group_id, partition, offset), (answered, code)) in parts.into_iter().zip(commit.partitions) {
                    assert_eq!(partition, answered);
                    if code == NONE {
                        assert_ne!(
                            member_ok,
                            Some(false),
                            "fencing: a commit from outside the generation was accepted"
                        );
                    }
                    if code == NONE {
                        self.acked.insert((group_id, partition), offset);
                    }
                }
            }
            (Waiting::Other, Response::Heartbeat(code)) => self.last_heartbeat_code = Some(code),
            (Waiting::Other, _) => {}
            (waiting, response) => panic!("{waiting:?} answered with {response:?}"),
        }
    }

    fn group_generation(&self) -> Option<(i32, Vec<String>)> {
        self.coordinator.group(GROUP).map(|g| (g.generation_id, g.members.keys().cloned().collect()))
    }

    fn run(&mut self, step: Step) {
        match step {
            Step::Join { client, forget_id, static_member, alternate_protocol } => {
                if forget_id {
                    self.clients[client as usize].member_id.clear();
                }
                let view = &mut self.clients[client as usize];
                if static_member && view.member_id.is_empty() {
                    view.instance = Some(format!("instance-{client}"));
                }
                self.next_candidate += 1;
                let protocol = if alternate_protocol { "roundrobin" } else { "range" };
                let join = JoinGroup {
                    group_id: GROUP.into(),
                    session_timeout_ms: SESSION_MS,
                    rebalance_timeout_ms: REBALANCE_MS,
                    member_id: view.member_id.clone(),
                    group_instance_id: view.instance.clone(),
                    protocol_type: "consumer".into(),
                    protocols: vec![
                        Protocol { name: protocol.into(), metadata: Bytes::from(format!("sub-{client}")) },
                        Protocol { name: "range".into(), metadata: Bytes::from(format!("sub-{client}")) },
                    ],
                    client_id: format!("client-{client}"),
                    client_host: "/127.0.0.1".into(),
                    require_known_member_id: true,
                    member_id_candidate: format!("client-{client}-{}", self.next_candidate),
                };
                self.request(Request::Join(join), Waiting::Join(client));
            }
            Step::Sync { client } => {
                let view = self.clients[client as usize].clone();
                if view.member_id.is_empty() {
                    return;
                }
                let leader = self.coordinator.group(GROUP).and_then(|g| g.leader_id.clone());
                let assignments: Vec<(String, Bytes)> = if leader.as_deref() == Some(view.member_id.as_str()) {
                    let members = self.group_generation().map(|(_, m)| m).unwrap_or_default();
                    members.iter().map(|m| (m.clone(), Bytes::from(format!("{m}@{}", view.generation_id)))).collect()
                } else {
                    Vec::new()
                };
                let group = self.coordinator.group(GROUP);
                let will_record = group.is_some_and(|g| {
                    g.state == GroupState::CompletingRebalance && g.generation_id == view.generation_id
                });
                if will_record && !assignments.is_empty() {
                    let members = &self.coordinator.group(GROUP).expect("checked").members;
                    for (member, assignment) in &assignments {
                        let key = members[member].group_instance_id.clone().unwrap_or_else(|| member.clone());
                        self.sent_assignments.entry((view.generation_id, key)).or_insert(assignment.clone());
                    }
                }
                let sync = SyncGroup {
                    group_id: GROUP.into(),
                    generation_id: view.generation_id,
                    member_id: view.member_id.clone(),
                    group_instance_id: view.instance.clone(),
                    protocol_type: Some("consumer".into()),
                    protocol_name: None,
                    assignments,
                };
                let key = self
                    .coordinator
                    .group(GROUP)
                    .and_then(|g| g.members.get(&view.member_id))
                    .and_then(|m| m.group_instance_id.clone())
                    .unwrap_or_else(|| view.member_id.clone());
                let waiting =
                    Waiting::Sync { client, member_id: view.member_id.clone(), generation_id: view.generation_id, key };
                self.request(Request::Sync(sync), waiting);
            }
            Step::Heartbeat { client, stale } => {
                let view = self.clients[client as usize].clone();
                let generation_id = if stale { view.generation_id - 1 } else { view.generation_id };
                let heartbeat = Heartbeat {
                    group_id: GROUP.into(),
                    generation_id,
                    member_id: view.member_id.clone(),
                    group_instance_id: view.instance.clone(),
                };
                let before = self.group_generation();
                let token = Token(self.next_token);
                self.request(Request::Heartbeat(heartbeat), Waiting::Other);
                assert!(self.answered.contains(&token), "heartbeats are answered at once");
                let code = self.last_heartbeat_code.take().expect("a heartbeat code");
                if code == NONE {
                    let (generation, members) = before.expect("a NONE heartbeat needs a group");
                    assert_eq!(generation, generation_id, "fencing: NONE only for the current generation");
                    assert!(members.contains(&view.member_id), "fencing: NONE only for a member");
                }
            }
            Step::Leave { client } => {
                let view = self.clients[client as usize].clone();
                let leave = LeaveGroup {
                    group_id: GROUP.into(),
                    members: vec![LeavingMember { member_id: view.member_id, group_instance_id: view.instance }],
                };
                self.request(Request::Leave(leave), Waiting::Other);
                self.clients[client as usize].member_id.clear();
            }
            Step::Commit { client, partition, stale } => {
                let view = self.clients[client as usize].clone();
                let generation_id = if stale { view.generation_id + 1 } else { view.generation_id };
                self.next_offset += 1;
                let partition = TopicPartition::new("t", partition);
                let before = self.group_generation();
                let state = self.coordinator.group(GROUP).map(|g| g.state);
                let commit = OffsetCommit {
                    group_id: GROUP.into(),
                    generation_id,
                    member_id: view.member_id.clone(),
                    group_instance_id: view.instance.clone(),
                    offsets: vec![(partition.clone(), self.next_offset, -1, None)],
                };
                // Fencing is decided when the commit arrives: a member of this generation,
                // or generation -1 on a group with no members.
                let member_ok =
                    before.as_ref().is_some_and(|(g, m)| *g == generation_id && m.contains(&view.member_id))
                        && state != Some(GroupState::CompletingRebalance);
                let waiting = Waiting::Commit(vec![(GROUP.into(), partition, self.next_offset)], Some(member_ok));
                self.request(Request::Commit(commit), waiting);
            }
            Step::StandaloneCommit { partition } => {
                self.next_offset += 1;
                let partition = TopicPartition::new("t", partition);
                let commit = OffsetCommit {
                    group_id: SOLO.into(),
                    generation_id: -1,
                    member_id: String::new(),
                    group_instance_id: None,
                    offsets: vec![(partition.clone(), self.next_offset, -1, None)],
                };
                self.request(
                    Request::Commit(commit),
                    Waiting::Commit(vec![(SOLO.into(), partition, self.next_offset)], None),
                );
            }
            Step::Advance { ms } => {
                self.now.monotonic_ms += ms;
                self.now.wall_ms += ms;
                self.input(Input::Tick);
            }
            Step::Persist { fail } => {
                if self.pending.is_empty() {
                    return;
                }
                // Writes become durable in log order (one Raft log); a failed write means
                // leadership moved, and every later write fails with it.
                let (write, records) = self.pending.remove(0);
                if fail {
                    self.input(Input::Persisted { write, error: Some(NOT_COORDINATOR) });
                    // A failed write means the coordinator is dropped: fail over.
                    self.failover();
                } else {
                    self.log.extend(records);
                    self.input(Input::Persisted { write, error: None });
                }
            }
            Step::Failover => self.failover(),
        }
    }

    fn failover(&mut self) {
        // Writes in flight are lost with their requests (the connections go with the broker).
        self.pending.clear();
        self.waiting.clear();
        self.coordinator = World::load(&self.log, self.now);
        // A generation whose assignment never became durable is formed again after a failover
        // (Kafka's too): what its leader sent before no longer binds.
        let durable = self.coordinator.group(GROUP).map_or(0, |g| g.generation_id);
        self.sent_assignments.retain(|(generation, _), _| *generation <= durable);
        self.check_offsets();
    }

    /// GroupOffsetsDurable: exactly the acknowledged commits, live and rebuilt.
    fn check_offsets(&self) {
        for group_id in [GROUP, SOLO] {
            let have: BTreeMap<TopicPartition, i64> =
                self.coordinator.fetch_offsets(group_id, None).into_iter().map(|f| (f.partition, f.offset)).collect();
            let want: BTreeMap<TopicPartition, i64> =
                self.acked.iter().filter(|((g, _), _)| g == group_id).map(|((_, p), o)| (p.clone(), *o)).collect();
            assert_eq!(have, want, "GroupOffsetsDurable: {group_id}");
        }
    }

    /// Liveness: with every write durable and the timeouts passed, nothing waits.
    fn settle(&mut self) {
        for _ in 0..4 {
            while let Some((write, records)) = (!self.pending.is_empty()).then(|| self.pending.remove(0)) {
                self.log.extend(records);
                self.input(Input::Persisted { write, error: None });
            }
            self.now.monotonic_ms += i64::from(REBALANCE_MS + SESSION_MS);
            self.now.wall_ms += i64::from(REBALANCE_MS + SESSION_MS);
            self.input(Input::Tick);
        }
        assert!(self.waiting.is_empty(), "requests left unanswered: {:?}", self.waiting);
    }
}

proptest! {
    #[test]
    fn group_coordinator_matches_what_its_clients_were_told(steps in prop::collection::vec(step(), 1..STEPS_MAX)) {
        let mut world = World::new();
        for step in steps {
            world.run(step);
            world.check_offsets();
        }
        world.settle();
        world.check_offsets();
        world.failover();
    }
}

/// The generator reaches the interesting states: formed generations, stable groups, acked
/// commits, failovers with members (a property that never gets there proves little).
#[test]
fn schedules_reach_stable_generations_and_durable_commits() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut stable, mut acked, mut synced) = (0, 0, 0);
    for _ in 0..200 {
        let steps = prop::collection::vec(step(), 1..STEPS_MAX).new_tree(&mut runner).unwrap().current();
        let mut world = World::new();
        for step in steps {
            world.run(step);
            if world.coordinator.group(GROUP).is_some_and(|g| g.state == GroupState::Stable) {
                stable += 1;
            }
        }
        acked += world.acked.len();
        synced += world.sent_assignments.len();
    }
    assert!(stable > 200, "stable states seen: {stable}");
    assert!(acked > 200, "acknowledged commits: {acked}");
    assert!(synced > 50, "assignments sent: {synced}");
}
