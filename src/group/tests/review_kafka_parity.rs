//! Fine points of the coordinator checked against Apache Kafka's group coordinators (the
//! classic `core/.../GroupCoordinator.scala` and `GroupMetadata.scala`, and the newer
//! `group-coordinator/.../GroupMetadataManager.java`, `ClassicGroup.java`,
//! `OffsetMetadataManager.java` and `ConsumerGroup.java`):
//!
//! 1. KIP-394: a member id handed out with MEMBER_ID_REQUIRED stays pending for the session
//!    timeout of that JoinGroup (not the 5-minute new-member join timeout), and a completed
//!    rebalance does not drop it.
//! 2. `group.max.size`: Kafka's `acceptJoiningMember` (pending ids do not count; a rebalance
//!    counts the members waiting in JoinGroup; a group loaded over the limit rebalances).
//! 3. KIP-496: a Stable group's offsets of topics it no longer subscribes to expire.
//! 4. KIP-848: OffsetFetch v9 names a member and epoch (`ConsumerGroup.validateOffsetFetch`);
//!    OffsetCommit with epoch -1 to an empty consumer group is an admin commit
//!    (`ConsumerGroup.validateOffsetCommit`).

use bytes::Bytes;
use sluice_group::assignor::TopicPartitions;
use sluice_group::error::*;
use sluice_group::*;
use std::collections::BTreeMap;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;
/// A short `offsets.retention.minutes` so that tests reach it with a few heartbeats.
const RETENTION_MS: i64 = 60_000;
/// How often the tests' members heartbeat while time passes (under both session timeouts).
const HEARTBEAT_EVERY_MS: i64 = 5_000;

/// A coordinator with a clock; every write is made durable at once and kept in `log`.
struct Harness {
    coordinator: Coordinator,
    now: Time,
    next_token: u64,
    next_member: u64,
    log: Vec<OffsetsRecord>,
    answers: Vec<(Token, Response)>,
}

impl Harness {
    fn new(config: GroupConfig) -> Harness {
        let mut coordinator = Coordinator::new(config);
        let now = Time { monotonic_ms: 1_000, wall_ms: 1_700_000_000_000 };
        coordinator.loaded(now);
        Harness { coordinator, now, next_token: 0, next_member: 0, log: Vec::new(), answers: Vec::new() }
    }

    /// A coordinator with `config` rebuilt from this one's records, loaded now.
    fn rebuilt(&self, config: GroupConfig) -> Harness {
        let mut coordinator = Coordinator::new(config);
        for record in &self.log {
            let (key, value) = record.encode();
            coordinator.replay(&OffsetsRecord::decode(&key, value.as_deref()).expect("decodes"));
        }
        coordinator.loaded(self.now);
        Harness {
            coordinator,
            now: self.now,
            next_token: 0,
            next_member: 0,
            log: self.log.clone(),
            answers: Vec::new(),
        }
    }

    fn step(&mut self, input: Input) {
        let mut queue = vec![input];
        while let Some(input) = queue.pop() {
            for output in self.coordinator.step(input, self.now) {
                match output {
                    Output::Respond(token, response) => self.answers.push((token, response)),
                    Output::Persist { write, records } => {
                        self.log.extend(records);
                        queue.push(Input::Persisted { write, error: None });
                    }
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

    fn advance(&mut self, ms: i64) {
        self.now.monotonic_ms += ms;
        self.now.wall_ms += ms;
        self.step(Input::Tick);
    }

    fn join_with(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        session_timeout_ms: i32,
        metadata: &[u8],
    ) -> Token {
        self.next_member += 1;
        self.request(Request::Join(JoinGroup {
            group_id: "g".into(),
            session_timeout_ms,
            rebalance_timeout_ms: REBALANCE_MS,
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_owned),
            protocol_type: "consumer".into(),
            protocols: vec![Protocol { name: "range".into(), metadata: Bytes::copy_from_slice(metadata) }],
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
            member_id_candidate: format!("client-{}", self.next_member),
        }))
    }

    fn join(&mut self, member_id: &str) -> Token {
        self.join_with(member_id, None, SESSION_MS, &subscription(&["t"]))
    }

    /// KIP-394's first step: the member id handed out with MEMBER_ID_REQUIRED.
    fn member_id_required(&mut self, session_timeout_ms: i32) -> String {
        let token = self.join_with("", None, session_timeout_ms, &subscription(&["t"]));
        let answer = self.join_answer(token).expect("answered at once");
        assert_eq!(answer.error, MEMBER_ID_REQUIRED);
        answer.member_id
    }

    fn sync(&mut self, member_id: &str, generation_id: i32, assignments: &[&str]) -> Token {
        self.request(Request::Sync(SyncGroup {
            group_id: "g".into(),
            generation_id,
            member_id: member_id.into(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: assignments.iter().map(|m| ((*m).to_owned(), Bytes::from_static(b"a"))).collect(),
        }))
    }

    fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> ErrorCode {
        let token = self.request(Request::Heartbeat(Heartbeat {
            group_id: "g".into(),
            generation_id,
            member_id: member_id.into(),
            group_instance_id: None,
        }));
        match self.answer(token) {
            Some(Response::Heartbeat(code)) => code,
            other => panic!("heartbeat answer: {other:?}"),
        }
    }

    /// Dynamic members (each subscribing to `metadata`) through the initial delay into a
    /// Stable generation; returns their ids and the generation.
    fn stable_group(&mut self, members: usize, metadata: &[u8]) -> (Vec<String>, i32) {
        let mut joins = Vec::new();
        for _ in 0..members {
            let token = self.join_with("", None, SESSION_MS, metadata);
            let id = self.join_answer(token).expect("MEMBER_ID_REQUIRED").member_id;
            joins.push((id.clone(), self.join_with(&id, None, SESSION_MS, metadata)));
        }
        self.advance(GroupConfig::default().initial_rebalance_delay_ms);
        let answers: Vec<JoinGroupResponse> =
            joins.iter().map(|(_, t)| self.join_answer(*t).expect("joined")).collect();
        assert!(answers.iter().all(|a| a.error == NONE), "{answers:?}");
        let generation = answers[0].generation_id;
        let ids: Vec<String> = joins.into_iter().map(|(id, _)| id).collect();
        let leader = answers[0].leader.clone();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let token = self.sync(&leader, generation, &id_refs);
        assert_eq!(self.answer(token).map(|r| matches!(r, Response::Sync(s) if s.error == NONE)), Some(true));
        for id in ids.iter().filter(|id| **id != leader) {
            let token = self.sync(id, generation, &[]);
            assert!(self.answer(token).is_some());
        }
        assert_eq!(self.state(), GroupState::Stable);
        (ids, generation)
    }

    fn state(&self) -> GroupState {
        self.coordinator.group("g").expect("group").state
    }

    fn commit(&mut self, member_id: &str, generation_id: i32, partitions: &[(&str, i32)]) -> Vec<ErrorCode> {
        let token = self.request(Request::Commit(OffsetCommit {
            group_id: "g".into(),
            generation_id,
            member_id: member_id.into(),
            group_instance_id: None,
            offsets: partitions.iter().map(|(t, p)| (TopicPartition::new(*t, *p), 7, -1, None)).collect(),
        }));
        match self.answer(token) {
            Some(Response::Commit(c)) => c.partitions.into_iter().map(|(_, code)| code).collect(),
            other => panic!("commit answer: {other:?}"),
        }
    }

    /// The committed offset of `topic` partition 0, -1 when none.
    fn committed(&self, topic: &str) -> i64 {
        self.coordinator.fetch_offsets("g", Some(&[TopicPartition::new(topic, 0)]))[0].offset
    }

    /// Lets `ms` pass in heartbeat-sized steps, the classic `members` heartbeating.
    fn advance_heartbeating(&mut self, ms: i64, members: &[String], generation_id: i32) {
        let mut left = ms;
        while left > 0 {
            let step = left.min(HEARTBEAT_EVERY_MS);
            self.advance(step);
            left -= step;
            for member in members {
                assert_eq!(self.heartbeat(member, generation_id), NONE);
            }
        }
    }

    fn consumer_heartbeat(&mut self, hb: ConsumerGroupHeartbeat) -> ConsumerGroupHeartbeatResponse {
        let token = self.request(Request::ConsumerHeartbeat(hb));
        match self.answer(token) {
            Some(Response::ConsumerHeartbeat(response)) => response,
            other => panic!("{other:?}"),
        }
    }
}

/// A consumer's JoinGroup metadata (`ConsumerProtocolSubscription` v0: topics, null user data).
fn subscription(topics: &[&str]) -> Vec<u8> {
    let mut metadata = vec![0, 0];
    metadata.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for topic in topics {
        metadata.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        metadata.extend_from_slice(topic.as_bytes());
    }
    metadata.extend_from_slice(&(-1i32).to_be_bytes());
    metadata
}

fn config() -> GroupConfig {
    GroupConfig { offsets_retention_ms: RETENTION_MS, ..GroupConfig::default() }
}

fn consumer_heartbeat(member_id: &str, epoch: i32, owned: Option<TopicPartitions>) -> ConsumerGroupHeartbeat {
    ConsumerGroupHeartbeat {
        group_id: "g".to_owned(),
        member_id: member_id.to_owned(),
        member_epoch: epoch,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: if epoch == 0 { REBALANCE_MS } else { -1 },
        subscribed_topic_names: (epoch == 0).then(|| vec!["orders".to_owned()]),
        subscribed_topic_regex: None,
        server_assignor: None,
        owned,
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        member_id_candidate: format!("candidate-{member_id}"),
        partition_counts: BTreeMap::from([("orders".to_owned(), 2)]),
    }
}

// 1. KIP-394 pending member ids.

#[test]
fn a_pending_member_id_lasts_the_session_timeout_of_its_join_group() {
    // Kafka: `doDynamicNewMemberJoinGroup` / `classicGroupJoinNewDynamicMember` schedule the
    // pending member's expiry after the request's session timeout; the 5-minute
    // `NewMemberJoinTimeoutMs` is for members already added and waiting in JoinGroup.
    let mut h = Harness::new(config());
    let long_ms = 60_000;
    let patient = h.member_id_required(long_ms);
    let hasty = h.member_id_required(SESSION_MS);
    h.advance(i64::from(SESSION_MS));
    let late = h.join(&hasty);
    assert_eq!(h.join_answer(late).expect("refused at once").error, UNKNOWN_MEMBER_ID, "expired with its session");
    h.advance(i64::from(long_ms - SESSION_MS) - 1);
    let joined = h.join(&patient);
    assert!(h.join_answer(joined).is_none(), "still pending just before its own session timeout: it joins");
    assert!(h.coordinator.group("g").unwrap().members.contains_key(&patient));
}

#[test]
fn a_pending_member_outlives_a_rebalance_that_completes_without_it() {
    // Kafka's `onCompleteJoin` removes members that did not rejoin, not pending ids: the
    // pending id stays until it joins, leaves or its session timeout passes (GroupMetadata.scala
    // `pendingMembers`, removed only by `add`/`remove`).
    let mut h = Harness::new(config());
    let (members, generation) = h.stable_group(1, &subscription(&["t"]));
    let pending = h.member_id_required(120_000);
    // The leader rejoins: a rebalance, which waits for the pending id until the rebalance
    // timeout and then completes without it.
    let rejoin = h.join(&members[0]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    h.advance(i64::from(REBALANCE_MS));
    let answer = h.join_answer(rejoin).expect("the rebalance completed");
    assert_eq!((answer.error, answer.generation_id), (NONE, generation + 1));
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    // Within its session timeout the pending member still joins with its id.
    let late = h.join(&pending);
    assert!(h.join_answer(late).is_none(), "accepted: it waits for the next rebalance");
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert!(h.coordinator.group("g").unwrap().members.contains_key(&pending));
}

// 2. group.max.size (Kafka's `acceptJoiningMember`).

fn small_group() -> GroupConfig {
    GroupConfig { group_size_max: 2, ..config() }
}

#[test]
fn pending_member_ids_do_not_count_toward_group_max_size() {
    // Kafka: an Empty group accepts every JoinGroup; pending ids are not members. In
    // PreparingRebalance a joiner is accepted while fewer than `group.max.size` members wait in
    // JoinGroup; the refused one gets GROUP_MAX_SIZE_REACHED with no member id and its pending id
    // is removed (`group.remove(memberId)`). GroupMetadataManagerTest
    // `testDynamicMembersJoinGroupWithMaxSizeAndRequiredKnownMember`.
    let mut h = Harness::new(small_group());
    let ids: Vec<String> = (0..3).map(|_| h.member_id_required(SESSION_MS)).collect();
    let first = h.join(&ids[0]);
    let second = h.join(&ids[1]);
    let third = h.join(&ids[2]);
    let refused = h.join_answer(third).expect("refused at once");
    assert_eq!((refused.error, refused.member_id.as_str()), (GROUP_MAX_SIZE_REACHED, ""));
    h.advance(GroupConfig::default().initial_rebalance_delay_ms);
    for token in [first, second] {
        assert_eq!(h.join_answer(token).expect("joined").error, NONE);
    }
    let group = h.coordinator.group("g").unwrap();
    assert_eq!((group.state, group.members.len()), (GroupState::CompletingRebalance, 2));
    // The refused member's pending id is gone: once there is room it is still unknown.
    let leave = h.request(Request::Leave(LeaveGroup {
        group_id: "g".into(),
        members: vec![LeavingMember { member_id: ids[1].clone(), group_instance_id: None }],
    }));
    assert!(h.answer(leave).is_some());
    let again = h.join(&ids[2]);
    assert_eq!(h.join_answer(again).expect("refused at once").error, UNKNOWN_MEMBER_ID);
}

#[test]
fn a_full_stable_group_refuses_newcomers_and_a_static_takeover_but_not_its_members() {
    // Kafka, CompletingRebalance and Stable: a known member id is accepted; any other join
    // (also a static member rejoining with an empty member id, since the check runs on the
    // request's member id) only while the group has fewer than `group.max.size` members.
    let mut h = Harness::new(small_group());
    let static_join = h.join_with("", Some("instance-s"), SESSION_MS, &subscription(&["t"]));
    let dynamic = h.member_id_required(SESSION_MS);
    let dynamic_join = h.join(&dynamic);
    h.advance(GroupConfig::default().initial_rebalance_delay_ms);
    let static_id = h.join_answer(static_join).unwrap().member_id;
    let generation = h.join_answer(dynamic_join).unwrap().generation_id;
    let leader = h.coordinator.group("g").unwrap().leader_id.clone().unwrap();
    let sync = h.sync(&leader, generation, &[&static_id, &dynamic]);
    assert!(h.answer(sync).is_some());
    let other = if leader == dynamic { static_id.clone() } else { dynamic.clone() };
    let sync = h.sync(&other, generation, &[]);
    assert!(h.answer(sync).is_some());
    assert_eq!(h.state(), GroupState::Stable);

    let newcomer = h.join_with("", None, SESSION_MS, &subscription(&["t"]));
    let refused = h.join_answer(newcomer).expect("refused at once");
    assert_eq!((refused.error, refused.member_id.as_str()), (GROUP_MAX_SIZE_REACHED, ""));
    let takeover = h.join_with("", Some("instance-s"), SESSION_MS, &subscription(&["t"]));
    assert_eq!(h.join_answer(takeover).expect("refused at once").error, GROUP_MAX_SIZE_REACHED);
    assert_eq!(h.coordinator.group("g").unwrap().static_member("instance-s"), Some(static_id.as_str()));
    // A member of the group rejoining with the same metadata gets the current generation.
    let known = h.join(&other);
    let answer = h.join_answer(known).expect("answered at once");
    assert_eq!((answer.error, answer.generation_id), (NONE, generation));
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn a_group_loaded_over_a_smaller_max_size_rebalances_and_keeps_the_first_rejoiners() {
    // Kafka: `onGroupLoaded` / `onLoaded` rebalance a group over `group.max.size`; while it
    // rebalances, members beyond the limit that rejoin are refused and removed
    // (GroupMetadataManagerTest `testOnLoadedExceedGroupMaxSizeTriggersRebalance`,
    // `testLastJoiningMembersAreKickedOutWhenRejoiningGroupWithMaxSize`).
    let mut big = Harness::new(config());
    let (members, generation) = big.stable_group(3, &subscription(&["t"]));
    let mut h = big.rebuilt(small_group());
    assert_eq!(h.state(), GroupState::PreparingRebalance, "over capacity: rebalance on load");
    let first = h.join(&members[0]);
    let second = h.join(&members[1]);
    let third = h.join(&members[2]);
    let refused = h.join_answer(third).expect("refused at once");
    assert_eq!((refused.error, refused.member_id.as_str()), (GROUP_MAX_SIZE_REACHED, ""));
    // The refused member is gone, so everyone left has rejoined: the rebalance completes.
    for token in [first, second] {
        let answer = h.join_answer(token).expect("the rebalance completed");
        assert_eq!((answer.error, answer.generation_id), (NONE, generation + 1));
    }
    let group = h.coordinator.group("g").unwrap();
    assert_eq!((group.state, group.members.len()), (GroupState::CompletingRebalance, 2));
    assert!(!group.members.contains_key(&members[2]));
}

// 3. KIP-496: offsets of topics a Stable consumer group no longer subscribes to expire.

#[test]
fn a_stable_consumer_group_loses_the_offsets_of_topics_it_no_longer_subscribes_to() {
    // Kafka: `GroupMetadata.removeExpiredOffsets`, case protocol type "consumer", subscribed
    // topics known and Stable: offsets of other topics expire `offsets.retention.minutes` after
    // their commit (ClassicGroup.offsetExpirationCondition, OffsetMetadataManager
    // `cleanupExpiredOffsets` skipping `isSubscribedToTopic`).
    let mut h = Harness::new(config());
    let (members, generation) = h.stable_group(2, &subscription(&["t"]));
    assert_eq!(h.commit(&members[0], generation, &[("t", 0), ("gone", 0)]), [NONE, NONE]);
    h.advance_heartbeating(RETENTION_MS - HEARTBEAT_EVERY_MS, &members, generation);
    assert_eq!((h.committed("t"), h.committed("gone")), (7, 7), "not yet retention");
    h.advance_heartbeating(HEARTBEAT_EVERY_MS, &members, generation);
    assert_eq!((h.committed("t"), h.committed("gone")), (7, -1), "the unsubscribed topic's offset expired");
    let tombstone =
        OffsetsRecord::Offset { group_id: "g".into(), partition: TopicPartition::new("gone", 0), value: None };
    assert!(h.log.contains(&tombstone));
    assert_eq!(h.state(), GroupState::Stable);
}

#[test]
fn offsets_of_a_group_with_unknown_subscriptions_do_not_expire_while_it_has_members() {
    // Kafka: subscribed topics are unknown unless every member's metadata parses as a consumer
    // subscription (`computeSubscribedTopics`), and other protocol types never know them; then
    // a group with members keeps every offset.
    for metadata in [b"not a subscription".to_vec(), Vec::new()] {
        let mut h = Harness::new(config());
        let (members, generation) = h.stable_group(1, &metadata);
        assert_eq!(h.commit(&members[0], generation, &[("gone", 0)]), [NONE]);
        h.advance_heartbeating(2 * RETENTION_MS, &members, generation);
        assert_eq!(h.committed("gone"), 7);
    }
}

#[test]
fn a_kip848_group_loses_the_offsets_of_topics_no_member_subscribes_to() {
    // Kafka: `ConsumerGroup.offsetExpirationCondition` (from the commit timestamp, in any
    // state) and `isSubscribedToTopic` (the members' subscribed topic names).
    let mut h = Harness::new(config());
    let a = h.consumer_heartbeat(consumer_heartbeat("a", 0, Some(TopicPartitions::new())));
    assert_eq!((a.error, a.member_epoch), (NONE, 1));
    assert_eq!(h.commit("a", 1, &[("orders", 0), ("gone", 0)]), [NONE, NONE]);
    let owned = a.assignment.clone();
    let mut passed = 0;
    while passed < RETENTION_MS {
        h.advance(HEARTBEAT_EVERY_MS);
        passed += HEARTBEAT_EVERY_MS;
        assert_eq!(h.consumer_heartbeat(consumer_heartbeat("a", 1, owned.clone())).error, NONE);
    }
    assert_eq!((h.committed("orders"), h.committed("gone")), (7, -1));
}

#[test]
fn an_empty_kip848_groups_offsets_expire_from_their_commit_on_a_new_coordinator_too() {
    // Kafka's consumer groups expire offsets from their commit timestamp; a consumer group
    // record carries no state timestamp, so a rebuilt coordinator must not count from 0.
    let mut h = Harness::new(config());
    let a = h.consumer_heartbeat(consumer_heartbeat("a", 0, Some(TopicPartitions::new())));
    assert_eq!(h.commit("a", a.member_epoch, &[("orders", 0)]), [NONE]);
    let left = h.consumer_heartbeat(consumer_heartbeat("a", -1, None));
    assert_eq!(left.error, NONE);
    let mut next = h.rebuilt(config());
    next.advance(1);
    assert_eq!(next.committed("orders"), 7, "kept until retention passes from the commit");
    next.advance(RETENTION_MS);
    assert_eq!(next.committed("orders"), -1);
}

// 4. KIP-848 OffsetFetch v9 and OffsetCommit validation.

fn fetch(member_id: Option<&str>, member_epoch: i32) -> OffsetFetch {
    OffsetFetch {
        group_id: "g".into(),
        partitions: Some(vec![TopicPartition::new("orders", 0)]),
        require_stable: false,
        member_id: member_id.map(str::to_owned),
        member_epoch,
    }
}

#[test]
fn offset_fetch_of_a_kip848_group_checks_the_member_and_its_epoch() {
    // Kafka: `ConsumerGroup.validateOffsetFetch`: no member id and epoch -1 (the admin client,
    // versions before 9) is always allowed; else an unknown member is UNKNOWN_MEMBER_ID and
    // another epoch STALE_MEMBER_EPOCH. Classic groups do not check (ClassicGroup).
    let mut h = Harness::new(config());
    let a = h.consumer_heartbeat(consumer_heartbeat("a", 0, Some(TopicPartitions::new())));
    assert_eq!(h.commit("a", a.member_epoch, &[("orders", 0)]), [NONE]);
    let offsets = |r: Result<Vec<FetchedOffset>, ErrorCode>| r.map(|o| o.iter().map(|f| f.offset).collect::<Vec<_>>());
    assert_eq!(offsets(h.coordinator.offset_fetch(&fetch(None, -1))), Ok(vec![7]));
    assert_eq!(offsets(h.coordinator.offset_fetch(&fetch(Some("a"), 1))), Ok(vec![7]));
    assert_eq!(offsets(h.coordinator.offset_fetch(&fetch(Some("a"), 2))), Err(STALE_MEMBER_EPOCH));
    assert_eq!(offsets(h.coordinator.offset_fetch(&fetch(Some("a"), -1))), Err(STALE_MEMBER_EPOCH));
    assert_eq!(offsets(h.coordinator.offset_fetch(&fetch(Some("b"), 1))), Err(UNKNOWN_MEMBER_ID));
    assert_eq!(offsets(h.coordinator.offset_fetch(&fetch(None, 1))), Err(UNKNOWN_MEMBER_ID));
    let unknown_group = OffsetFetch { group_id: "never".into(), ..fetch(Some("a"), 9) };
    assert_eq!(offsets(h.coordinator.offset_fetch(&unknown_group)), Ok(vec![-1]));

    let mut classic = Harness::new(config());
    let (members, generation) = classic.stable_group(1, &subscription(&["orders"]));
    assert_eq!(classic.commit(&members[0], generation, &[("orders", 0)]), [NONE]);
    assert_eq!(offsets(classic.coordinator.offset_fetch(&fetch(Some("stranger"), 42))), Ok(vec![7]));
}

#[test]
fn an_epoch_minus_one_commit_to_a_kip848_group_is_an_admin_commit_only_while_it_is_empty() {
    // Kafka: `ConsumerGroup.validateOffsetCommit`: member epoch < 0 and no members: accepted,
    // whatever the member id; otherwise the member must exist (UNKNOWN_MEMBER_ID) and the epoch
    // match (STALE_MEMBER_EPOCH).
    let mut h = Harness::new(config());
    let a = h.consumer_heartbeat(consumer_heartbeat("a", 0, Some(TopicPartitions::new())));
    assert_eq!(h.commit("", -1, &[("orders", 0)]), [UNKNOWN_MEMBER_ID]);
    assert_eq!(h.commit("a", -1, &[("orders", 0)]), [STALE_MEMBER_EPOCH]);
    assert_eq!(h.commit("b", a.member_epoch, &[("orders", 0)]), [UNKNOWN_MEMBER_ID]);
    assert_eq!(h.consumer_heartbeat(consumer_heartbeat("a", -1, None)).error, NONE);
    assert!(h.coordinator.group("g").unwrap().is_empty());
    assert_eq!(h.commit("", -1, &[("orders", 0)]), [NONE]);
    assert_eq!(h.commit("admin-tool", -1, &[("orders", 1)]), [NONE]);
    assert_eq!(h.commit("a", a.member_epoch, &[("orders", 0)]), [UNKNOWN_MEMBER_ID], "a left");
}
