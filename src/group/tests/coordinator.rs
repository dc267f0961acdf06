//! The coordinator through its public API: rebalances, fencing, static members, offsets,
//! writes that fail, and a new coordinator rebuilt from the records of an old one.

use bytes::Bytes;
use sluice_group::error::*;
use sluice_group::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

/// A coordinator with a clock, request tokens, and a log the writes go to.
struct Harness {
    coordinator: Coordinator,
    now: Time,
    next_token: u64,
    next_member: u64,
    /// Every record persisted so far, in order.
    log: Vec<OffsetsRecord>,
    /// Writes not yet acknowledged (when `auto_persist` is off).
    pending: Vec<(WriteId, Vec<OffsetsRecord>)>,
    auto_persist: bool,
    /// Answers not yet claimed by a test.
    answers: Vec<(Token, Response)>,
}

impl Harness {
    fn new() -> Harness {
        let mut coordinator = Coordinator::new(GroupConfig::default());
        let now = Time { monotonic_ms: 1_000, wall_ms: 1_700_000_000_000 };
        coordinator.loaded(now);
        Harness {
            coordinator,
            now,
            next_token: 0,
            next_member: 0,
            log: Vec::new(),
            pending: Vec::new(),
            auto_persist: true,
            answers: Vec::new(),
        }
    }

    fn step(&mut self, input: Input) {
        let mut queue = vec![input];
        while let Some(input) = queue.pop() {
            for output in self.coordinator.step(input, self.now) {
                match output {
                    Output::Respond(token, response) => self.answers.push((token, response)),
                    Output::Persist { write, records } if self.auto_persist => {
                        self.log.extend(records);
                        queue.push(Input::Persisted { write, error: None });
                    }
                    Output::Persist { write, records } => self.pending.push((write, records)),
                }
            }
        }
    }

    fn request(&mut self, request: Request) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        self.step(Input::Request(token, request));
        token
    }

    fn answer(&mut self, token: Token) -> Option<Response> {
        let index = self.answers.iter().position(|(t, _)| *t == token)?;
        Some(self.answers.remove(index).1)
    }

    fn join_answer(&mut self, token: Token) -> Option<JoinGroupResponse> {
        match self.answer(token)? {
            Response::Join(join) => Some(join),
            other => panic!("not a join answer: {other:?}"),
        }
    }

    fn sync_answer(&mut self, token: Token) -> Option<SyncGroupResponse> {
        match self.answer(token)? {
            Response::Sync(sync) => Some(sync),
            other => panic!("not a sync answer: {other:?}"),
        }
    }

    fn advance(&mut self, ms: i64) {
        self.now.monotonic_ms += ms;
        self.now.wall_ms += ms;
        self.step(Input::Tick);
    }

    fn join(&mut self, member_id: &str, instance: Option<&str>, protocols: &[(&str, &[u8])]) -> Token {
        self.next_member += 1;
        let join = JoinGroup {
            group_id: "g".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_owned),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|(name, metadata)| Protocol { name: (*name).into(), metadata: Bytes::copy_from_slice(metadata) })
                .collect(),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
            member_id_candidate: format!("client-{}", self.next_member),
        };
        self.request(Request::Join(join))
    }

    /// A dynamic member's two-step join (KIP-394): returns its member id and the waiting token.
    fn join_new(&mut self) -> (String, Token) {
        let first = self.join("", None, &[("range", b"r")]);
        let answer = self.join_answer(first).expect("MEMBER_ID_REQUIRED at once");
        assert_eq!(answer.error, MEMBER_ID_REQUIRED);
        let token = self.join(&answer.member_id, None, &[("range", b"r")]);
        (answer.member_id, token)
    }

    fn sync(&mut self, member_id: &str, generation_id: i32, assignments: &[(&str, &[u8])]) -> Token {
        self.request(Request::Sync(SyncGroup {
            group_id: "g".into(),
            generation_id,
            member_id: member_id.into(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: assignments
                .iter()
                .map(|(member, assignment)| ((*member).into(), Bytes::copy_from_slice(assignment)))
                .collect(),
        }))
    }

    fn heartbeat(&mut self, member_id: &str, generation_id: i32, instance: Option<&str>) -> ErrorCode {
        let token = self.request(Request::Heartbeat(Heartbeat {
            group_id: "g".into(),
            generation_id,
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_owned),
        }));
        match self.answer(token) {
            Some(Response::Heartbeat(code)) => code,
            other => panic!("heartbeat answer: {other:?}"),
        }
    }

    fn commit(&mut self, member_id: &str, generation_id: i32, offset: i64) -> Token {
        self.request(Request::Commit(OffsetCommit {
            group_id: "g".into(),
            generation_id,
            member_id: member_id.into(),
            group_instance_id: None,
            offsets: vec![(TopicPartition::new("t", 0), offset, -1, Some("meta".into()))],
        }))
    }

    fn committed(&self) -> i64 {
        self.coordinator.fetch_offsets("g", Some(&[TopicPartition::new("t", 0)]))[0].offset
    }

    fn state(&self) -> GroupState {
        self.coordinator.group("g").expect("group").state
    }

    /// Three members through the initial delay into a stable generation; returns their ids
    /// (the leader first) and the generation.
    fn stable_group_of_three(&mut self) -> (Vec<String>, i32) {
        let joins: Vec<(String, Token)> = (0..3).map(|_| self.join_new()).collect();
        assert_eq!(self.state(), GroupState::PreparingRebalance);
        assert!(joins.iter().all(|(_, t)| self.answers.iter().all(|(a, _)| a != t)), "joins wait");
        self.advance(3_000); // group.initial.rebalance.delay.ms
        let answers: Vec<JoinGroupResponse> = joins.iter().map(|(_, t)| self.join_answer(*t).unwrap()).collect();
        let generation = answers[0].generation_id;
        assert!(answers.iter().all(|a| a.error == NONE && a.generation_id == generation && a.leader == joins[0].0));
        assert_eq!(answers[0].members.len(), 3, "the leader sees every member");
        assert!(answers[1].members.is_empty() && answers[2].members.is_empty());
        assert_eq!(self.state(), GroupState::CompletingRebalance);

        let follower = self.sync(&joins[1].0, generation, &[]);
        assert!(self.sync_answer(follower).is_none(), "followers wait for the leader's assignment");
        let plan: Vec<(String, Vec<u8>)> = joins.iter().map(|(id, _)| (id.clone(), id.as_bytes().to_vec())).collect();
        let plan_refs: Vec<(&str, &[u8])> = plan.iter().map(|(id, a)| (id.as_str(), a.as_slice())).collect();
        let leader = self.sync(&joins[0].0, generation, &plan_refs);
        for (token, id) in [(leader, &joins[0].0), (follower, &joins[1].0)] {
            let answer = self.sync_answer(token).expect("answered once the assignment is durable");
            assert_eq!((answer.error, answer.assignment.as_ref()), (NONE, id.as_bytes()));
        }
        let late = self.sync(&joins[2].0, generation, &[]);
        assert_eq!(self.sync_answer(late).unwrap().assignment.as_ref(), joins[2].0.as_bytes());
        assert_eq!(self.state(), GroupState::Stable);
        (joins.into_iter().map(|(id, _)| id).collect(), generation)
    }
}

#[test]
fn three_members_form_a_generation_and_get_their_assignments() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group_of_three();
    assert_eq!(generation, 1);
    for member in &members {
        assert_eq!(h.heartbeat(member, generation, None), NONE);
    }
    assert_eq!(h.heartbeat(&members[0], generation - 1, None), ILLEGAL_GENERATION);
    assert_eq!(h.heartbeat("stranger", generation, None), UNKNOWN_MEMBER_ID);
    // The assignment is in the log before anyone was told.
    assert!(matches!(h.log.last(), Some(OffsetsRecord::Group { value: Some(g), .. }) if g.members.len() == 3));
}

#[test]
fn a_member_whose_session_ends_is_removed_and_the_rest_rebalance() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group_of_three();
    for _ in 0..4 {
        assert_eq!(h.heartbeat(&members[0], generation, None), NONE);
        assert_eq!(h.heartbeat(&members[1], generation, None), NONE);
        h.advance(i64::from(SESSION_MS) / 4);
    }
    assert_eq!(h.state(), GroupState::PreparingRebalance, "member 2 expired");
    assert_eq!(h.heartbeat(&members[2], generation, None), UNKNOWN_MEMBER_ID);
    assert_eq!(h.heartbeat(&members[0], generation, None), REBALANCE_IN_PROGRESS);
    let first = h.join(&members[0], None, &[("range", b"r")]);
    assert!(h.join_answer(first).is_none(), "waits for member 1");
    let second = h.join(&members[1], None, &[("range", b"r")]);
    let (a, b) = (h.join_answer(first).unwrap(), h.join_answer(second).unwrap());
    assert_eq!((a.generation_id, b.generation_id), (generation + 1, generation + 1));
    assert_eq!(a.members.len(), 2);
    // A stale SyncGroup from the old generation is fenced.
    let stale = h.sync(&members[1], generation, &[]);
    assert_eq!(h.sync_answer(stale).unwrap().error, ILLEGAL_GENERATION);
}

#[test]
fn members_that_do_not_rejoin_within_the_rebalance_timeout_are_removed() {
    let mut h = Harness::new();
    let (members, _) = h.stable_group_of_three();
    let leave = h.request(Request::Leave(LeaveGroup {
        group_id: "g".into(),
        members: vec![LeavingMember { member_id: members[2].clone(), group_instance_id: None }],
    }));
    let Some(Response::Leave(left)) = h.answer(leave) else { panic!("leave answer") };
    assert_eq!(left.members[0].1, NONE);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let rejoin = h.join(&members[0], None, &[("range", b"r")]);
    // Member 1 keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
    // Member 1 heartbeats well within its session (so it stays a member) but never rejoins.
    for _ in 0..5 {
        assert_eq!(h.heartbeat(&members[1], 1, None), REBALANCE_IN_PROGRESS);
        h.advance(5_999);
    }
    assert_eq!(h.heartbeat(&members[1], 1, None), REBALANCE_IN_PROGRESS);
    assert!(h.join_answer(rejoin).is_none(), "member 1 is still alive, so the join waits");
    h.advance(i64::from(REBALANCE_MS) - 5 * 5_999);
    let answer = h.join_answer(rejoin).expect("the rebalance timeout completes the join");
    assert_eq!((answer.error, answer.members.len()), (NONE, 1));
    let group = h.coordinator.group("g").unwrap();
    assert_eq!(group.members.keys().collect::<Vec<_>>(), [&members[0]], "{group:#?}");
}

#[test]
fn a_leader_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let mut h = Harness::new();
    let a = h.join_new();
    let b = h.join_new();
    h.advance(3_000);
    let (ja, jb) = (h.join_answer(a.1).unwrap(), h.join_answer(b.1).unwrap());
    assert_eq!(ja.leader, a.0);
    let follower = h.sync(&b.0, jb.generation_id, &[]);
    for _ in 0..3 {
        h.advance(i64::from(REBALANCE_MS) / 3);
    }
    assert_eq!(h.sync_answer(follower).unwrap().error, REBALANCE_IN_PROGRESS);
    assert!(!h.coordinator.group("g").unwrap().members.contains_key(&a.0), "the silent leader is gone");
}

#[test]
fn a_static_member_rejoining_takes_over_without_a_rebalance_and_fences_its_old_id() {
    let mut h = Harness::new();
    let first = h.join("", Some("instance-a"), &[("range", b"r")]);
    h.advance(3_000);
    let joined = h.join_answer(first).unwrap();
    assert_eq!(joined.error, NONE, "static members skip MEMBER_ID_REQUIRED");
    let sync = h.sync(&joined.member_id, joined.generation_id, &[(&joined.member_id, b"p0")]);
    assert_eq!(h.sync_answer(sync).unwrap().error, NONE);

    // The process restarts: a new member id for the same instance, same protocols.
    let again = h.join("", Some("instance-a"), &[("range", b"r")]);
    let rejoined = h.join_answer(again).expect("answered after the new id is stored");
    assert_eq!((rejoined.error, rejoined.generation_id), (NONE, joined.generation_id), "no rebalance");
    assert_ne!(rejoined.member_id, joined.member_id);
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(h.heartbeat(&joined.member_id, joined.generation_id, Some("instance-a")), FENCED_INSTANCE_ID);
    assert_eq!(h.heartbeat(&rejoined.member_id, joined.generation_id, Some("instance-a")), NONE);
    let sync = h.sync(&rejoined.member_id, rejoined.generation_id, &[]);
    assert_eq!(h.sync_answer(sync).unwrap().assignment.as_ref(), b"p0", "it keeps its assignment");
}

#[test]
fn joins_with_bad_arguments_are_refused() {
    let mut h = Harness::new();
    let (members, _) = h.stable_group_of_three();
    let other = h.join("", None, &[("roundrobin", b"x")]);
    assert_eq!(h.join_answer(other).unwrap().error, INCONSISTENT_GROUP_PROTOCOL);
    let unknown = h.join("nobody", None, &[("range", b"r")]);
    assert_eq!(h.join_answer(unknown).unwrap().error, UNKNOWN_MEMBER_ID);
    let mut join = JoinGroup {
        group_id: "g".into(),
        session_timeout_ms: 10,
        rebalance_timeout_ms: REBALANCE_MS,
        member_id: members[0].clone(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol { name: "range".into(), metadata: Bytes::new() }],
        client_id: "c".into(),
        client_host: "h".into(),
        require_known_member_id: true,
        member_id_candidate: "c-x".into(),
    };
    let token = h.request(Request::Join(join.clone()));
    assert_eq!(h.join_answer(token).unwrap().error, INVALID_SESSION_TIMEOUT);
    join.session_timeout_ms = SESSION_MS;
    join.group_id = String::new();
    let token = h.request(Request::Join(join));
    assert_eq!(h.join_answer(token).unwrap().error, INVALID_GROUP_ID);
    assert_eq!(h.state(), GroupState::Stable, "refusals change nothing");
}

#[test]
fn commits_are_visible_only_once_durable_and_fenced_by_generation() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group_of_three();
    h.auto_persist = false;
    let token = h.commit(&members[1], generation, 42);
    assert!(h.answer(token).is_none());
    assert_eq!(h.committed(), -1, "not durable yet");
    let (write, _) = h.pending.remove(0);
    h.auto_persist = true;
    h.step(Input::Persisted { write, error: None });
    let Some(Response::Commit(answer)) = h.answer(token) else { panic!("commit answer") };
    assert_eq!(answer.partitions[0].1, NONE);
    assert_eq!(h.committed(), 42);

    let stale = h.commit(&members[1], generation - 1, 50);
    let Some(Response::Commit(answer)) = h.answer(stale) else { panic!() };
    assert_eq!(answer.partitions[0].1, ILLEGAL_GENERATION);
    let stranger = h.commit("stranger", generation, 50);
    let Some(Response::Commit(answer)) = h.answer(stranger) else { panic!() };
    assert_eq!(answer.partitions[0].1, UNKNOWN_MEMBER_ID);

    // A write that fails (leadership moved) is never applied.
    h.auto_persist = false;
    let token = h.commit(&members[0], generation, 60);
    let (write, _) = h.pending.remove(0);
    h.step(Input::Persisted { write, error: Some(NOT_COORDINATOR) });
    let Some(Response::Commit(answer)) = h.answer(token) else { panic!() };
    assert_eq!(answer.partitions[0].1, NOT_COORDINATOR);
    assert_eq!(h.committed(), 42);
}

#[test]
fn a_new_coordinator_rebuilt_from_the_log_has_the_offsets_and_the_generation() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group_of_three();
    let token = h.commit(&members[0], generation, 7);
    assert!(h.answer(token).is_some());
    let standalone = h.request(Request::Commit(OffsetCommit {
        group_id: "solo".into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: vec![(TopicPartition::new("t", 3), 99, 2, None)],
    }));
    assert!(h.answer(standalone).is_some());

    let mut next = Coordinator::new(GroupConfig::default());
    for record in &h.log {
        let (key, value) = record.encode();
        next.replay(&OffsetsRecord::decode(&key, value.as_deref()).unwrap());
    }
    next.loaded(h.now);
    assert_eq!(next.fetch_offsets("g", Some(&[TopicPartition::new("t", 0)]))[0].offset, 7);
    assert_eq!(next.fetch_offsets("solo", None)[0].offset, 99);
    let group = next.group("g").unwrap();
    assert_eq!((group.state, group.generation_id, group.members.len()), (GroupState::Stable, generation, 3));
    // Members carry on with the new coordinator: heartbeats of this generation succeed.
    let mut h2 = Harness { coordinator: next, ..Harness::new() };
    h2.now = h.now;
    assert_eq!(h2.heartbeat(&members[1], generation, None), NONE);
}

#[test]
fn groups_are_deleted_only_when_empty_and_offsets_expire_after_retention() {
    let mut h = Harness::new();
    let (members, generation) = h.stable_group_of_three();
    let token = h.commit(&members[0], generation, 5);
    assert!(h.answer(token).is_some());
    let delete = h.request(Request::DeleteGroups(vec!["g".into(), "missing".into()]));
    let Some(Response::DeleteGroups(answer)) = h.answer(delete) else { panic!() };
    assert_eq!(answer.groups, [("g".to_owned(), NON_EMPTY_GROUP), ("missing".to_owned(), GROUP_ID_NOT_FOUND)]);

    let leave = h.request(Request::Leave(LeaveGroup {
        group_id: "g".into(),
        members: members.iter().map(|m| LeavingMember { member_id: m.clone(), group_instance_id: None }).collect(),
    }));
    assert!(h.answer(leave).is_some());
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(h.committed(), 5, "offsets outlive membership");
    h.advance(GroupConfig::default().offsets_retention_ms);
    assert!(h.coordinator.group("g").is_none(), "expired offsets, then the empty group");
    assert!(matches!(h.log.last(), Some(OffsetsRecord::Group { value: None, .. })));
}

#[test]
fn a_static_member_that_misses_a_rebalance_keeps_its_place() {
    let mut h = Harness::new();
    let static_join = h.join("", Some("instance-s"), &[("range", b"r")]);
    let (dynamic_id, dynamic_join) = h.join_new();
    h.advance(3_000);
    let s = h.join_answer(static_join).unwrap();
    let d = h.join_answer(dynamic_join).unwrap();
    assert_eq!((s.error, d.error), (NONE, NONE));
    let leader = h.sync(&s.leader, s.generation_id, &[(&s.member_id, b"s"), (&dynamic_id, b"d")]);
    assert_eq!(h.sync_answer(leader).unwrap().error, NONE);
    let follower_id = if s.leader == s.member_id { dynamic_id.clone() } else { s.member_id.clone() };
    let follower = h.sync(&follower_id, s.generation_id, &[]);
    assert_eq!(h.sync_answer(follower).unwrap().error, NONE);

    // The dynamic member changes its subscription: a rebalance the static member sleeps through.
    let rejoin = h.join(&dynamic_id, None, &[("range", b"r2")]);
    // Its session is still live (a long session timeout would do the same): only the
    // rebalance timeout ends the wait.
    for _ in 0..6 {
        let code = h.heartbeat(&s.member_id, s.generation_id, Some("instance-s"));
        assert_eq!(code, REBALANCE_IN_PROGRESS);
        h.advance(i64::from(REBALANCE_MS) / 6);
    }
    let answer = h.join_answer(rejoin).expect("the rebalance timeout completes the join");
    assert_eq!((answer.error, answer.generation_id), (NONE, s.generation_id + 1));
    let group = h.coordinator.group("g").unwrap();
    assert!(group.members.contains_key(&s.member_id), "KIP-345: the static member stays");
    assert_eq!(group.static_member("instance-s"), Some(s.member_id.as_str()));
}
