//! KIP-848 through the coordinator's public API: members join with ConsumerGroupHeartbeat, the
//! server assignor splits the topic, a partition moves only after its owner revokes it, stale
//! epochs are fenced, offsets commit with member epochs, sessions expire, and a new coordinator
//! rebuilt from the records continues the group.

use sluice_group::assignor::TopicPartitions;
use sluice_group::error::*;
use sluice_group::*;
use std::collections::BTreeMap;

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;

struct Harness {
    coordinator: Coordinator,
    now: Time,
    next_token: u64,
    log: Vec<OffsetsRecord>,
}

impl Harness {
    fn new() -> Harness {
        let mut coordinator = Coordinator::new(GroupConfig::default());
        let now = Time { monotonic_ms: 1_000, wall_ms: 1_700_000_000_000 };
        coordinator.loaded(now);
        Harness { coordinator, now, next_token: 0, log: Vec::new() }
    }

    /// Runs a request to its answer, every write made durable at once.
    fn ask(&mut self, request: Request) -> Response {
        let token = Token(self.next_token);
        self.next_token += 1;
        let mut queue = vec![Input::Request(token, request)];
        let mut answer = None;
        while let Some(input) = queue.pop() {
            for output in self.coordinator.step(input, self.now) {
                match output {
                    Output::Respond(t, response) if t == token => answer = Some(response),
                    Output::Respond(..) => {}
                    Output::Persist { write, records } => {
                        self.log.extend(records);
                        queue.push(Input::Persisted { write, error: None });
                    }
                }
            }
        }
        answer.expect("answered")
    }

    fn tick(&mut self, advance_ms: i64) {
        self.now.monotonic_ms += advance_ms;
        self.now.wall_ms += advance_ms;
        let mut queue = vec![Input::Tick];
        while let Some(input) = queue.pop() {
            for output in self.coordinator.step(input, self.now) {
                if let Output::Persist { write, records } = output {
                    self.log.extend(records);
                    queue.push(Input::Persisted { write, error: None });
                }
            }
        }
    }

    fn heartbeat(&mut self, hb: ConsumerGroupHeartbeat) -> ConsumerGroupHeartbeatResponse {
        match self.ask(Request::ConsumerHeartbeat(hb)) {
            Response::ConsumerHeartbeat(response) => response,
            other => panic!("{other:?}"),
        }
    }
}

fn heartbeat(member_id: &str, epoch: i32, owned: Option<TopicPartitions>) -> ConsumerGroupHeartbeat {
    ConsumerGroupHeartbeat {
        group_id: "g".to_owned(),
        member_id: member_id.to_owned(),
        member_epoch: epoch,
        instance_id: None,
        rack_id: None,
        rebalance_timeout_ms: if epoch == 0 { 30_000 } else { -1 },
        subscribed_topic_names: (epoch == 0).then(|| vec![TOPIC.to_owned()]),
        server_assignor: None,
        owned,
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        member_id_candidate: format!("candidate-{member_id}"),
        partition_counts: BTreeMap::from([(TOPIC.to_owned(), PARTITIONS)]),
    }
}

fn count(assignment: &Option<TopicPartitions>) -> usize {
    assignment.as_ref().map_or(0, |a| a.values().map(|s| s.len()).sum())
}

#[test]
fn two_members_split_after_a_revocation_and_commit_with_their_epochs() {
    let mut h = Harness::new();
    let a = h.heartbeat(heartbeat("a", 0, Some(TopicPartitions::new())));
    assert_eq!((a.error, a.member_epoch, count(&a.assignment)), (NONE, 1, 6), "{a:?}");
    let owned_a = a.assignment.clone().unwrap();

    let b = h.heartbeat(heartbeat("b", 0, Some(TopicPartitions::new())));
    assert_eq!((b.error, b.member_epoch, count(&b.assignment)), (NONE, 2, 0), "b waits for a's partitions: {b:?}");
    assert_eq!(h.coordinator.group("g").unwrap().state_name(), "Reconciling");

    // a is told to keep three; its epoch stays until it reports the others gone.
    let a = h.heartbeat(heartbeat("a", 1, Some(owned_a.clone())));
    assert_eq!((a.member_epoch, count(&a.assignment)), (1, 3), "{a:?}");
    let kept = a.assignment.clone().unwrap();
    // A commit at a's epoch is accepted; a stale or future epoch is not (KIP-848).
    let commit = |epoch: i32| OffsetCommit {
        group_id: "g".to_owned(),
        generation_id: epoch,
        member_id: "a".to_owned(),
        group_instance_id: None,
        offsets: vec![(TopicPartition::new(TOPIC, 0), 42, -1, Some("m".to_owned()))],
    };
    let codes = |r: Response| match r {
        Response::Commit(c) => c.partitions.iter().map(|(_, code)| *code).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(codes(h.ask(Request::Commit(commit(1)))), [NONE]);
    assert_eq!(codes(h.ask(Request::Commit(commit(2)))), [STALE_MEMBER_EPOCH]);

    let a = h.heartbeat(heartbeat("a", 1, Some(kept.clone())));
    assert_eq!((a.member_epoch, a.assignment.clone()), (2, None), "{a:?}");
    let b = h.heartbeat(heartbeat("b", 2, Some(TopicPartitions::new())));
    assert_eq!((b.member_epoch, count(&b.assignment)), (2, 3), "{b:?}");
    let group = h.coordinator.group("g").unwrap();
    assert_eq!(group.state_name(), "Stable");
    assert_eq!(group.group_type(), "consumer");

    // A future epoch is fenced; so is an old one with partitions it no longer owns.
    assert_eq!(h.heartbeat(heartbeat("a", 3, None)).error, FENCED_MEMBER_EPOCH);
    assert_eq!(h.heartbeat(heartbeat("a", 1, Some(owned_a))).error, FENCED_MEMBER_EPOCH);
    assert_eq!(h.heartbeat(heartbeat("nobody", 2, None)).error, UNKNOWN_MEMBER_ID);

    // A new coordinator rebuilt from the records has the same group.
    let mut rebuilt = Coordinator::new(GroupConfig::default());
    for record in &h.log {
        let (key, value) = record.encode();
        rebuilt.replay(&OffsetsRecord::decode(&key, value.as_deref()).expect("decodes"));
    }
    rebuilt.loaded(h.now);
    let (old, new) = (h.coordinator.group("g").unwrap(), rebuilt.group("g").unwrap());
    let strip = |g: &Group| {
        let mut consumer = g.consumer.clone().unwrap();
        for m in consumer.members.values_mut() {
            m.assigned.retain(|_, s| !s.is_empty());
        }
        (consumer.group_epoch, consumer.target, consumer.members.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(strip(old), strip(new));
    assert_eq!(new.offsets.get(&TopicPartition::new(TOPIC, 0)).map(|c| c.offset), Some(42));
}

#[test]
fn a_leaving_or_silent_member_gives_its_partitions_back() {
    let mut h = Harness::new();
    h.heartbeat(heartbeat("a", 0, Some(TopicPartitions::new())));
    let b = h.heartbeat(heartbeat("b", 0, Some(TopicPartitions::new())));
    let a = h.heartbeat(heartbeat("a", 1, None));
    let kept = a.assignment.unwrap();
    h.heartbeat(heartbeat("a", 1, Some(kept)));
    let b = h.heartbeat(heartbeat("b", b.member_epoch, Some(TopicPartitions::new())));
    assert_eq!(count(&b.assignment), 3);

    // a leaves: b takes everything at the next epoch.
    let left = h.heartbeat(heartbeat("a", 2, None).tap_leave());
    assert_eq!((left.error, left.member_epoch), (NONE, -1));
    let b = h.heartbeat(heartbeat("b", 2, None));
    assert_eq!((b.member_epoch, count(&b.assignment)), (3, 6), "{b:?}");

    // b goes silent past the session timeout: the group is empty, its offsets may expire.
    h.tick(i64::from(GroupConfig::default().consumer_session_timeout_ms) + 1);
    let group = h.coordinator.group("g").unwrap();
    assert_eq!(group.state_name(), "Empty");
    assert!(group.is_empty());
    // The expired member is unknown now: it must rejoin at epoch 0.
    assert_eq!(h.heartbeat(heartbeat("b", 3, None)).error, UNKNOWN_MEMBER_ID);
}

#[test]
fn bad_heartbeats_are_refused_with_kafkas_codes() {
    let mut h = Harness::new();
    let mut bad = heartbeat("a", 0, None);
    bad.server_assignor = Some("sticky".to_owned());
    assert_eq!(h.heartbeat(bad).error, UNSUPPORTED_ASSIGNOR);
    let mut no_subscription = heartbeat("a", 0, None);
    no_subscription.subscribed_topic_names = None;
    assert_eq!(h.heartbeat(no_subscription).error, INVALID_REQUEST);
    assert_eq!(h.heartbeat(heartbeat("", 5, None)).error, UNKNOWN_MEMBER_ID);
    // v0: an empty member id joins with the coordinator's candidate.
    let joined = h.heartbeat(heartbeat("", 0, None));
    assert_eq!(joined.member_id.as_deref(), Some("candidate-"));
}

trait Leave {
    fn tap_leave(self) -> Self;
}

impl Leave for ConsumerGroupHeartbeat {
    fn tap_leave(mut self) -> Self {
        self.member_epoch = -1;
        self
    }
}
