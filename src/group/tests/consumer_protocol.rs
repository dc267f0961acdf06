//! KIP-848 through the coordinator's public API: members join with ConsumerGroupHeartbeat, the
//! server assignor splits the topic, a partition moves only after its owner revokes it, stale
//! epochs are fenced, offsets commit with member epochs, sessions expire, and a new coordinator
//! rebuilt from the records continues the group. Regex subscriptions (KIP-848, v1): a regex
//! matches whole names of existing topics, internal ones included as in Kafka; a topic created
//! later that matches is assigned at the next heartbeat; names and a regex add up; a regex that
//! does not compile is INVALID_REGULAR_EXPRESSION.

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
        subscribed_topic_regex: None,
        server_assignor: None,
        owned,
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        member_id_candidate: format!("candidate-{member_id}"),
        partition_counts: BTreeMap::from([(TOPIC.to_owned(), PARTITIONS)]),
    }
}

/// A v1 member joining with `regex` and no names, the broker knowing the topics of `counts`.
fn regex_join(member_id: &str, regex: &str, counts: &[(&str, i32)]) -> ConsumerGroupHeartbeat {
    let mut hb = heartbeat(member_id, 0, Some(TopicPartitions::new()));
    hb.subscribed_topic_names = None;
    hb.subscribed_topic_regex = Some(regex.to_owned());
    hb.partition_counts = topics(counts);
    hb
}

fn topics(counts: &[(&str, i32)]) -> BTreeMap<String, i32> {
    counts.iter().map(|(topic, count)| ((*topic).to_owned(), *count)).collect()
}

/// The topics of an assignment, by name.
fn topic_names(assignment: &Option<TopicPartitions>) -> Vec<&str> {
    assignment.iter().flat_map(|a| a.iter().filter(|(_, s)| !s.is_empty()).map(|(t, _)| t.as_str())).collect()
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
    fn tap_group(self, group_id: &str) -> Self;
}

impl Leave for ConsumerGroupHeartbeat {
    fn tap_leave(mut self) -> Self {
        self.member_epoch = -1;
        self
    }

    fn tap_group(mut self, group_id: &str) -> Self {
        self.group_id = group_id.to_owned();
        self
    }
}

#[test]
fn a_regex_member_gets_the_matching_topics_and_one_created_later() {
    let mut h = Harness::new();
    let known = [("rx-a", 2), ("other", 3), ("rx", 1), ("xrx-a", 1)];
    let joined = h.heartbeat(regex_join("a", "rx-.*", &known));
    assert_eq!((joined.error, joined.member_epoch), (NONE, 1), "{joined:?}");
    // Whole names only (RE2/J's matches()): not `rx`, not `xrx-a`.
    assert_eq!(topic_names(&joined.assignment), ["rx-a"]);
    assert_eq!(count(&joined.assignment), 2);
    let owned = joined.assignment.clone().unwrap();

    // Nothing changed: a steady heartbeat keeps the epoch.
    let mut steady = heartbeat("a", 1, Some(owned.clone()));
    steady.partition_counts = topics(&known);
    let same = h.heartbeat(steady.clone());
    assert_eq!((same.member_epoch, same.assignment), (1, None));

    // rx-b is created: the next heartbeat bumps the group epoch and assigns it.
    steady.partition_counts.insert("rx-b".to_owned(), 4);
    let grown = h.heartbeat(steady.clone());
    assert_eq!(grown.member_epoch, 2, "{grown:?}");
    assert_eq!(topic_names(&grown.assignment), ["rx-a", "rx-b"]);
    assert_eq!(count(&grown.assignment), 6);

    // rx-a is deleted: it leaves the subscription; the member revokes it, then moves on.
    let mut shrink = heartbeat("a", 2, grown.assignment.clone());
    shrink.partition_counts = topics(&[("rx-b", 4), ("other", 3)]);
    let revoking = h.heartbeat(shrink.clone());
    assert_eq!(revoking.member_epoch, 2, "an epoch moves after the revocation: {revoking:?}");
    assert_eq!(topic_names(&revoking.assignment), ["rx-b"]);
    shrink.owned = revoking.assignment.clone();
    assert_eq!(h.heartbeat(shrink).member_epoch, 3);

    // The regex is in the record: a coordinator rebuilt from the log has it.
    let mut rebuilt = Coordinator::new(GroupConfig::default());
    for record in &h.log {
        let (key, value) = record.encode();
        rebuilt.replay(&OffsetsRecord::decode(&key, value.as_deref()).expect("decodes"));
    }
    rebuilt.loaded(h.now);
    let group = rebuilt.group("g").unwrap().consumer.clone().unwrap();
    assert_eq!(group.members["a"].subscribed_topic_regex.as_deref(), Some("rx-.*"));
    assert_eq!(group.members["a"].subscribed_topics.len(), 0);
    assert_eq!(group.partition_counts, topics(&[("rx-b", 4)]));
}

#[test]
fn names_and_a_regex_add_up() {
    let mut h = Harness::new();
    let known = [(TOPIC, PARTITIONS), ("rx-a", 2), ("other", 3)];
    let mut both = regex_join("a", "rx-.*", &known);
    both.subscribed_topic_names = Some(vec![TOPIC.to_owned(), "rx-a".to_owned()]);
    let joined = h.heartbeat(both);
    assert_eq!(joined.error, NONE, "{joined:?}");
    assert_eq!(topic_names(&joined.assignment), [TOPIC, "rx-a"], "rx-a by name and by regex is one topic");
    assert_eq!(count(&joined.assignment), 8);
    let owned = joined.assignment.clone().unwrap();

    // An empty regex is no regex (Kafka; librdkafka sends one with names only): the group
    // epoch moves and only the names are left.
    let mut names_only = heartbeat("a", 1, Some(owned));
    names_only.subscribed_topic_names = Some(vec![TOPIC.to_owned()]);
    names_only.subscribed_topic_regex = Some(String::new());
    names_only.partition_counts = topics(&known);
    let answer = h.heartbeat(names_only.clone());
    assert_eq!((answer.error, answer.member_epoch), (NONE, 1), "it revokes rx-a first: {answer:?}");
    assert_eq!(topic_names(&answer.assignment), [TOPIC]);
    assert_eq!(h.coordinator.group("g").unwrap().consumer.as_ref().unwrap().group_epoch, 2);
    names_only.owned = answer.assignment.clone();
    names_only.subscribed_topic_regex = None; // unchanged
    assert_eq!(h.heartbeat(names_only).member_epoch, 2);
    let member = &h.coordinator.group("g").unwrap().consumer.as_ref().unwrap().members["a"];
    assert_eq!(member.subscribed_topic_regex, None);

    // A second member with only a regex shares the group: rx-a goes to it alone.
    let b = h.heartbeat(regex_join("b", "rx-.*", &known));
    assert_eq!((b.error, b.member_epoch), (NONE, 3), "{b:?}");
    let target = &h.coordinator.group("g").unwrap().consumer.as_ref().unwrap().target;
    assert_eq!(target["b"].keys().collect::<Vec<_>>(), ["rx-a"]);
    assert!(!target["a"].contains_key("rx-a"));
}

#[test]
fn a_regex_matches_internal_topics_as_kafkas_does() {
    // Kafka resolves a regex against every topic of its metadata image, internal ones included
    // (GroupMetadataManager.refreshRegularExpressions); only ACLs filter it.
    let mut h = Harness::new();
    let known = [("__consumer_offsets", 50), ("rx-a", 1)];
    let everything = h.heartbeat(regex_join("a", ".*", &known));
    assert_eq!(topic_names(&everything.assignment), ["__consumer_offsets", "rx-a"]);
    let narrow = h.heartbeat(regex_join("b", "rx-.*", &known).tap_group("h"));
    assert_eq!(topic_names(&narrow.assignment), ["rx-a"], "only what the regex names");
}

#[test]
fn an_invalid_regex_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    let refused = h.heartbeat(regex_join("a", "rx-[", &[("rx-a", 1)]));
    assert_eq!(refused.error, INVALID_REGULAR_EXPRESSION);
    assert_eq!(
        refused.error_message.as_deref(),
        Some("SubscribedTopicRegex `rx-[` is not a valid regular expression: unclosed character class.")
    );
    assert!(h.coordinator.group("g").is_none(), "a refused join creates no group");
    assert!(h.log.is_empty());

    let joined = h.heartbeat(regex_join("a", "rx-.*", &[("rx-a", 1)]));
    let mut change = heartbeat("a", joined.member_epoch, joined.assignment.clone());
    change.subscribed_topic_regex = Some("(rx".to_owned());
    change.partition_counts = topics(&[("rx-a", 1)]);
    assert_eq!(h.heartbeat(change.clone()).error, INVALID_REGULAR_EXPRESSION);
    let member = &h.coordinator.group("g").unwrap().consumer.as_ref().unwrap().members["a"];
    assert_eq!(member.subscribed_topic_regex.as_deref(), Some("rx-.*"), "the old regex stands");
    // As in Kafka, the member's epoch is checked first.
    change.member_epoch += 7;
    assert_eq!(h.heartbeat(change).error, FENCED_MEMBER_EPOCH);
    // v1 may join with only an empty regex: a member subscribed to nothing (Kafka 4.x).
    let nothing = h.heartbeat(regex_join("b", "", &[("rx-a", 1)]));
    assert_eq!((nothing.error, count(&nothing.assignment)), (NONE, 0), "{nothing:?}");
}
