//! A KIP-848 consumer group (group type `consumer`): members that heartbeat with
//! ConsumerGroupHeartbeat, a target assignment the broker computes with a server assignor, and
//! each member's reconciliation towards its target.
//!
//! Epochs (KIP-848): the *group epoch* moves when membership, subscriptions, the chosen assignor
//! or the subscribed topics' partition counts change; the target assignment is recomputed at
//! once, so the *assignment epoch* equals the group epoch after every input. A *member epoch*
//! reaches the assignment epoch once the member holds no partition outside its target.
//!
//! Reconciliation (Kafka's `CurrentAssignmentBuilder`): a member behind the target first gives
//! up what it must revoke (state `UnrevokedPartitions`, epoch unchanged, until it reports it owns
//! none of them); then it takes its target's partitions that no other member still holds, and
//! its epoch moves to the assignment epoch (`UnreleasedPartitions` while some are still held
//! elsewhere, else `Stable`). So a partition is never assigned to two members at once.
//!
//! Subscriptions (KIP-848): a member subscribes to topic names, a regular expression, or both;
//! it is subscribed to the union. The regex (RE2/J syntax in Kafka; the `regex` crate's RE2-like
//! syntax here) must match a whole topic name, and is matched against every topic the broker
//! knows, internal ones included, as Kafka's `GroupMetadataManager.refreshRegularExpressions`
//! scans every topic of the metadata image. A topic that appears or goes away and changes what
//! a regex matches changes the subscribed topics, so it bumps the group epoch like a partition
//! count change. Kafka resolves regexes asynchronously, at most every 10 s
//! (`REGEX_BATCH_REFRESH_INTERVAL_MS`); here they resolve inside the heartbeat, memoized while
//! the broker's topic names stay the same, so a joining member gets its partitions at once.

use crate::assignor::{ServerAssignor, TopicPartitions};
use regex::{Regex, RegexBuilder};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// Longest subscription regex, in bytes. Kafka sets no bound; this one bounds what a member adds
/// to the group's record (librdkafka joins all of a consumer's patterns into one regex).
pub const SUBSCRIBED_TOPIC_REGEX_BYTES_MAX: usize = 4_096;
/// Largest compiled form of one regex, and of its lazy DFA's cache (the `regex` crate's size
/// limits), so that a short pattern such as `(a{100}){100}` cannot take much memory.
pub const SUBSCRIBED_TOPIC_REGEX_COMPILED_BYTES_MAX: usize = 1 << 20;
/// Topics one regex resolves to at most: the first ones in name order (a bound of Sluice's, the
/// same as the topic names one subscription may list).
pub const REGEX_TOPICS_MATCHED_MAX: usize = 10_000;

/// Where a member is in its reconciliation (Kafka's `MemberState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemberState {
    Stable,
    /// It must revoke `pending_revocation` before it moves on.
    UnrevokedPartitions,
    /// Its epoch is the assignment epoch, but part of its target is still held by others.
    UnreleasedPartitions,
}

impl MemberState {
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

/// One member of a consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    /// The epoch before the last move: a member whose answer was lost may heartbeat with it.
    pub previous_member_epoch: i32,
    pub state: MemberState,
    /// The topic names it subscribes to (whether or not they exist).
    pub subscribed_topics: BTreeSet<String>,
    /// Its subscription regex as it sent it; never empty (KIP-848: an empty regex is none).
    pub subscribed_topic_regex: Option<String>,
    /// The assignor it asked for (`group.remote.assignor`), if any.
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// The partitions it may consume now.
    pub assigned: TopicPartitions,
    /// Partitions it must give up before its epoch moves.
    pub pending_revocation: TopicPartitions,
    /// Removed when monotonic time passes this without a heartbeat (not stored).
    pub(crate) session_deadline_ms: i64,
    /// Fenced when its revocation takes longer than its rebalance timeout (not stored).
    pub(crate) revocation_deadline_ms: Option<i64>,
}

/// The consumer group part of a group (Kafka's `ConsumerGroup`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConsumerGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// Each member's target assignment of `assignment_epoch`.
    pub target: BTreeMap<String, TopicPartitions>,
    /// The subscribed topics' partition counts the target was computed from: every member's
    /// names (0 for a topic that does not exist) and every topic a member's regex matched.
    pub partition_counts: BTreeMap<String, i32>,
    pub assignor: Option<ServerAssignor>,
    /// What the members' regexes match (derived, not stored).
    pub(crate) regex_matches: RegexMatches,
}

/// Compiles a subscription regex so that it matches whole topic names, as Kafka resolves it
/// with RE2/J's `matches()` (KIP-848). The error is the message of INVALID_REGULAR_EXPRESSION,
/// worded as Kafka's `throwIfRegularExpressionIsInvalid`.
pub fn compile_topic_regex(pattern: &str) -> Result<Regex, String> {
    assert!(!pattern.is_empty(), "an empty regex is no regex");
    if pattern.len() > SUBSCRIBED_TOPIC_REGEX_BYTES_MAX {
        return Err(format!("SubscribedTopicRegex is longer than {SUBSCRIBED_TOPIC_REGEX_BYTES_MAX} bytes."));
    }
    let build = |source: &str| {
        RegexBuilder::new(source)
            .size_limit(SUBSCRIBED_TOPIC_REGEX_COMPILED_BYTES_MAX)
            .dfa_size_limit(SUBSCRIBED_TOPIC_REGEX_COMPILED_BYTES_MAX)
            .build()
            .map_err(|e| {
                // The crate's message ends with its one-line reason ("error: unclosed group").
                let text = e.to_string();
                let reason = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid").trim();
                let reason = reason.strip_prefix("error: ").unwrap_or(reason).to_owned();
                format!("SubscribedTopicRegex `{pattern}` is not a valid regular expression: {reason}.")
            })
    };
    // As written first, so the reason is about the member's own pattern; then anchored at both
    // ends (a `(?x)` comment that swallows the closing anchor fails here: RE2/J has no `x`).
    build(pattern)?;
    build(&format!("^(?:{pattern})$"))
}

/// What each distinct regex of a group matched, and the topic names it was matched against.
/// Derived from the members and the broker's topics, so neither stored nor compared (two
/// groups equal in everything else resolve alike); cheap to clone, as the group is cloned into
/// every record it writes.
#[derive(Clone, Default)]
pub(crate) struct RegexMatches(Option<Arc<ResolvedRegexes>>);

struct ResolvedRegexes {
    /// The existing topics (a partition count above 0), in name order.
    topics: Arc<Vec<String>>,
    /// By regex: its compiled form (`None`: it no longer compiles, so it matches nothing) and
    /// the topics it matched, at most `REGEX_TOPICS_MATCHED_MAX`.
    regexes: BTreeMap<String, (Option<Regex>, BTreeSet<String>)>,
}

impl RegexMatches {
    /// The topics `regex` matched when last resolved.
    fn topics(&self, regex: &str) -> Option<&BTreeSet<String>> {
        self.0.as_ref()?.regexes.get(regex).map(|(_, topics)| topics)
    }
}

impl PartialEq for RegexMatches {
    fn eq(&self, _: &RegexMatches) -> bool {
        true
    }
}

impl Eq for RegexMatches {}

impl fmt::Debug for RegexMatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let regexes = self.0.as_ref().map_or(0, |r| r.regexes.len());
        write!(f, "RegexMatches({regexes} regexes)")
    }
}

/// The topics `regex` matches, the first `REGEX_TOPICS_MATCHED_MAX` in name order.
fn match_topics(regex: Option<&Regex>, topics: &[String]) -> BTreeSet<String> {
    let Some(regex) = regex else { return BTreeSet::new() };
    let matched: BTreeSet<String> =
        topics.iter().filter(|t| regex.is_match(t)).take(REGEX_TOPICS_MATCHED_MAX).cloned().collect();
    assert!(matched.len() <= REGEX_TOPICS_MATCHED_MAX);
    matched
}

/// How many partitions a set holds.
pub fn partition_count(partitions: &TopicPartitions) -> usize {
    partitions.values().map(BTreeSet::len).sum()
}

fn contains(partitions: &TopicPartitions, topic: &str, partition: i32) -> bool {
    partitions.get(topic).is_some_and(|set| set.contains(&partition))
}

fn intersection(a: &TopicPartitions, b: &TopicPartitions) -> TopicPartitions {
    let mut out = TopicPartitions::new();
    for (topic, set) in a {
        let common: BTreeSet<i32> = set.iter().copied().filter(|p| contains(b, topic, *p)).collect();
        if !common.is_empty() {
            out.insert(topic.clone(), common);
        }
    }
    out
}

fn difference(a: &TopicPartitions, b: &TopicPartitions) -> TopicPartitions {
    let mut out = TopicPartitions::new();
    for (topic, set) in a {
        let rest: BTreeSet<i32> = set.iter().copied().filter(|p| !contains(b, topic, *p)).collect();
        if !rest.is_empty() {
            out.insert(topic.clone(), rest);
        }
    }
    out
}

fn overlaps(a: &TopicPartitions, b: &TopicPartitions) -> bool {
    a.iter().any(|(topic, set)| set.iter().any(|p| contains(b, topic, *p)))
}

impl ConsumerGroup {
    /// Kafka's consumer group states: `Empty`, `Reconciling` (a member is behind the
    /// assignment epoch or not stable), `Stable` (`Assigning` never shows: targets are computed
    /// at once).
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self
            .members
            .values()
            .all(|m| m.member_epoch == self.assignment_epoch && m.state == MemberState::Stable)
        {
            "Stable"
        } else {
            "Reconciling"
        }
    }

    /// The assignor the target uses: the one most members ask for (ties: Kafka's order), or
    /// the default, uniform (Kafka's `group.consumer.assignors`, first listed).
    pub fn preferred_assignor(&self) -> ServerAssignor {
        let mut votes: BTreeMap<ServerAssignor, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(assignor) = member.server_assignor.as_deref().and_then(ServerAssignor::parse) {
                *votes.entry(assignor).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        ServerAssignor::ALL
            .into_iter()
            .find(|a| best > 0 && votes.get(a) == Some(&best))
            .unwrap_or(ServerAssignor::Uniform)
    }

    /// Every subscribed topic's partition count in `counts`, the partition count of every topic
    /// the broker knows: each member's names (0 for a topic that does not exist) and the topics
    /// its regex matches among them (Kafka's `subscribedTopicNames`, which counts both).
    pub fn subscribed_counts(&mut self, counts: &BTreeMap<String, i32>) -> BTreeMap<String, i32> {
        self.resolve_regexes(counts);
        let mut topics: BTreeSet<&String> = BTreeSet::new();
        for member in self.members.values() {
            topics.extend(&member.subscribed_topics);
            if let Some(matched) = member.subscribed_topic_regex.as_deref().and_then(|r| self.regex_matches.topics(r)) {
                topics.extend(matched);
            }
        }
        topics.into_iter().map(|t| (t.clone(), counts.get(t).copied().unwrap_or(0))).collect()
    }

    /// The topics one member subscribes to: its names and its regex's matches, as of the last
    /// `subscribed_counts`.
    fn member_topics(&self, member: &ConsumerMember) -> BTreeSet<String> {
        let mut topics = member.subscribed_topics.clone();
        if let Some(matched) = member.subscribed_topic_regex.as_deref().and_then(|r| self.regex_matches.topics(r)) {
            topics.extend(matched.iter().cloned());
        }
        topics
    }

    /// Matches every member's regex against the existing topics in `counts`, unless neither the
    /// topic names nor the group's regexes changed since the last time (a regex is compiled
    /// once, and a topic list scanned once per change rather than once per heartbeat).
    fn resolve_regexes(&mut self, counts: &BTreeMap<String, i32>) {
        let wanted: BTreeSet<&str> =
            self.members.values().filter_map(|m| m.subscribed_topic_regex.as_deref()).collect();
        if wanted.is_empty() {
            self.regex_matches = RegexMatches::default();
            return;
        }
        let existing = || counts.iter().filter(|(_, count)| **count > 0).map(|(topic, _)| topic);
        let old = self.regex_matches.0.take();
        let same_topics = old.as_ref().is_some_and(|o| o.topics.iter().eq(existing()));
        if same_topics && old.as_ref().is_some_and(|o| o.regexes.keys().map(String::as_str).eq(wanted.iter().copied()))
        {
            self.regex_matches.0 = old;
            return;
        }
        let topics = match &old {
            Some(o) if same_topics => Arc::clone(&o.topics),
            _ => Arc::new(existing().cloned().collect()),
        };
        let mut regexes = BTreeMap::new();
        for regex in wanted {
            let kept = old.as_ref().and_then(|o| o.regexes.get(regex));
            let entry = match kept {
                Some(entry) if same_topics => entry.clone(),
                _ => {
                    // Accepted regexes compiled when they arrived; one from an older record that
                    // no longer does matches nothing, as Kafka ignores a regex it cannot parse.
                    let compiled = kept.map_or_else(|| compile_topic_regex(regex).ok(), |(c, _)| c.clone());
                    let matched = match_topics(compiled.as_ref(), &topics);
                    (compiled, matched)
                }
            };
            regexes.insert(regex.to_owned(), entry);
        }
        self.regex_matches = RegexMatches(Some(Arc::new(ResolvedRegexes { topics, regexes })));
    }

    /// Removes a member and its target (so a member rejoining under the same id starts from
    /// nothing); the caller recomputes. Returns whether it was a member.
    pub fn remove_member(&mut self, member_id: &str) -> bool {
        self.target.remove(member_id);
        self.members.remove(member_id).is_some()
    }

    /// Bumps the group epoch and computes the new target assignment (KIP-848).
    pub fn recompute(&mut self, counts: &BTreeMap<String, i32>) {
        self.group_epoch += 1;
        self.partition_counts = self.subscribed_counts(counts);
        let assignor = self.preferred_assignor();
        self.assignor = Some(assignor);
        let members: BTreeMap<String, BTreeSet<String>> =
            self.members.values().map(|m| (m.member_id.clone(), self.member_topics(m))).collect();
        for topics in members.values() {
            assert!(topics.iter().all(|t| self.partition_counts.contains_key(t)), "a member's topics are subscribed");
        }
        let existing: BTreeMap<String, i32> =
            self.partition_counts.iter().filter(|(_, n)| **n > 0).map(|(t, n)| (t.clone(), *n)).collect();
        self.target = crate::assignor::assign(assignor, &members, &existing, &self.target);
        self.assignment_epoch = self.group_epoch;
        self.check_invariants();
    }

    /// Whether another member than `member_id` holds (or must still revoke) the partition.
    fn held_elsewhere(&self, member_id: &str, topic: &str, partition: i32) -> bool {
        self.members.values().any(|m| {
            m.member_id != member_id
                && (contains(&m.assigned, topic, partition) || contains(&m.pending_revocation, topic, partition))
        })
    }

    /// One step of `member_id`'s reconciliation, given what it reported owning (`None`: not
    /// reported in this heartbeat). Returns whether anything about the member changed.
    pub fn reconcile(&mut self, member_id: &str, owned: Option<&TopicPartitions>, now_ms: i64) -> bool {
        let before = self.members[member_id].clone();
        let member = &self.members[member_id];
        if member.state == MemberState::UnrevokedPartitions {
            // KIP-848: the member moves on once it reports owning none of the revoked partitions.
            let revoked = owned.is_some_and(|owned| !overlaps(owned, &member.pending_revocation));
            if !revoked {
                return false;
            }
            let member = self.members.get_mut(member_id).expect("checked");
            member.pending_revocation.clear();
            member.revocation_deadline_ms = None;
            member.state = MemberState::Stable;
        }
        let member = &self.members[member_id];
        if member.member_epoch == self.assignment_epoch && member.state == MemberState::Stable {
            return *member != before;
        }
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let revoke = difference(&member.assigned, &target);
        if !revoke.is_empty() {
            let member = self.members.get_mut(member_id).expect("checked");
            member.assigned = intersection(&member.assigned, &target);
            member.pending_revocation = revoke;
            member.state = MemberState::UnrevokedPartitions;
            member.revocation_deadline_ms = Some(now_ms + i64::from(member.rebalance_timeout_ms));
        } else {
            let wanted = difference(&target, &member.assigned);
            let mut assigned = member.assigned.clone();
            let mut unreleased = false;
            for (topic, set) in &wanted {
                for partition in set {
                    if self.held_elsewhere(member_id, topic, *partition) {
                        unreleased = true;
                    } else {
                        assigned.entry(topic.clone()).or_default().insert(*partition);
                    }
                }
            }
            let epoch = self.assignment_epoch;
            let member = self.members.get_mut(member_id).expect("checked");
            member.assigned = assigned;
            if member.member_epoch != epoch {
                member.previous_member_epoch = member.member_epoch;
                member.member_epoch = epoch;
            }
            member.state = if unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
        }
        self.check_invariants();
        self.members[member_id] != before
    }

    /// KIP-848's guarantees, checked after every change. Crash if broken.
    pub fn check_invariants(&self) {
        assert_eq!(self.assignment_epoch, self.group_epoch, "targets are computed at once");
        let mut holders: BTreeMap<(&str, i32), &str> = BTreeMap::new();
        for member in self.members.values() {
            assert!(member.member_epoch <= self.assignment_epoch, "{}: epoch ahead of the group", member.member_id);
            assert_eq!(
                member.state == MemberState::UnrevokedPartitions,
                !member.pending_revocation.is_empty(),
                "{}: revocation state and pending set agree",
                member.member_id
            );
            let held = member.assigned.iter().chain(&member.pending_revocation);
            for (topic, set) in held {
                for partition in set {
                    // KIP-848: a partition is owned by at most one member at a time.
                    let previous = holders.insert((topic.as_str(), *partition), member.member_id.as_str());
                    assert!(previous.is_none(), "{topic}-{partition} held by {previous:?} and {}", member.member_id);
                }
            }
        }
        for member_id in self.target.keys() {
            assert!(self.members.contains_key(member_id), "a target for {member_id}, who is not a member");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str]) -> ConsumerMember {
        ConsumerMember {
            member_id: id.to_owned(),
            instance_id: None,
            rack_id: None,
            client_id: "c".to_owned(),
            client_host: "/127.0.0.1".to_owned(),
            member_epoch: 0,
            previous_member_epoch: -1,
            state: MemberState::Stable,
            subscribed_topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            subscribed_topic_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: 10_000,
            assigned: TopicPartitions::new(),
            pending_revocation: TopicPartitions::new(),
            session_deadline_ms: 0,
            revocation_deadline_ms: None,
        }
    }

    fn parts(topic: &str, ids: &[i32]) -> TopicPartitions {
        [(topic.to_owned(), ids.iter().copied().collect())].into()
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_revokes_it() {
        let counts: BTreeMap<String, i32> = [("t".to_owned(), 4)].into();
        let mut group = ConsumerGroup::default();
        group.members.insert("a".into(), member("a", &["t"]));
        group.recompute(&counts);
        assert!(group.reconcile("a", None, 0));
        assert_eq!(group.members["a"].assigned, parts("t", &[0, 1, 2, 3]));
        assert_eq!((group.members["a"].member_epoch, group.state_name()), (1, "Stable"));

        group.members.insert("b".into(), member("b", &["t"]));
        group.recompute(&counts);
        assert_eq!(group.state_name(), "Reconciling");
        // b's target is held by a: b moves to the new epoch but gets nothing yet.
        group.reconcile("b", Some(&TopicPartitions::new()), 0);
        assert_eq!(group.members["b"].state, MemberState::UnreleasedPartitions);
        assert!(group.members["b"].assigned.is_empty());
        // a must revoke two partitions; until it says it dropped them, its epoch stays.
        group.reconcile("a", None, 0);
        let a = &group.members["a"];
        assert_eq!((a.state, a.member_epoch, partition_count(&a.assigned)), (MemberState::UnrevokedPartitions, 1, 2));
        let still = parts("t", &[0, 1, 2, 3]);
        assert!(!group.reconcile("a", Some(&still), 0), "still owning them changes nothing");
        let kept = group.members["a"].assigned.clone();
        group.reconcile("a", Some(&kept), 0);
        assert_eq!((group.members["a"].state, group.members["a"].member_epoch), (MemberState::Stable, 2));
        group.reconcile("b", None, 0);
        assert_eq!(group.members["b"].state, MemberState::Stable);
        assert_eq!(partition_count(&group.members["b"].assigned), 2);
        assert_eq!(group.state_name(), "Stable");
    }

    #[test]
    fn a_regex_matches_whole_topic_names() {
        let regex = compile_topic_regex("rx-.*").expect("compiles");
        assert!(regex.is_match("rx-a") && regex.is_match("rx-"));
        assert!(!regex.is_match("xrx-a"), "anchored at the start, as RE2/J's matches()");
        let regex = compile_topic_regex("rx|rx-a").expect("compiles");
        assert!(regex.is_match("rx-a"), "the whole name, not the leftmost alternative");
        assert!(!compile_topic_regex("rx").expect("compiles").is_match("rx-a"), "anchored at the end");
        // librdkafka sends its `^`-prefixed patterns joined as `(^a)|(^b)`.
        let joined = compile_topic_regex("(^rx-.*)|(^other$)").expect("compiles");
        assert!(joined.is_match("rx-b") && joined.is_match("other") && !joined.is_match("others"));
    }

    #[test]
    fn a_bad_regex_is_refused_with_kafkas_message() {
        let message = compile_topic_regex("[").expect_err("unclosed");
        assert_eq!(message, "SubscribedTopicRegex `[` is not a valid regular expression: unclosed character class.");
        assert!(compile_topic_regex("(?<=a)b").is_err(), "no look-around, as in RE2/J");
        assert!(compile_topic_regex(r"(a)\1").is_err(), "no backreferences, as in RE2/J");
        let too_long = "a".repeat(SUBSCRIBED_TOPIC_REGEX_BYTES_MAX + 1);
        assert!(compile_topic_regex(&too_long).expect_err("long").contains("longer than"));
        let too_big = compile_topic_regex("((a{100}){100}){100}").expect_err("too big");
        assert!(too_big.contains("size limit"), "{too_big}");
    }

    #[test]
    fn regexes_resolve_against_existing_topics_and_are_memoized() {
        let mut group = ConsumerGroup::default();
        let mut a = member("a", &["named", "ghost"]);
        a.subscribed_topic_regex = Some("rx-.*".into());
        group.members.insert("a".into(), a);
        let mut counts: BTreeMap<String, i32> = [("rx-a".to_owned(), 2), ("named".to_owned(), 1)].into();
        counts.insert("rx-empty".into(), 0); // not a topic: a regex matches only existing ones
        let subscribed = group.subscribed_counts(&counts);
        let expected: BTreeMap<String, i32> =
            [("ghost".to_owned(), 0), ("named".to_owned(), 1), ("rx-a".to_owned(), 2)].into();
        assert_eq!(subscribed, expected);
        let resolved = Arc::clone(group.regex_matches.0.as_ref().expect("resolved"));
        group.subscribed_counts(&counts);
        assert!(Arc::ptr_eq(&resolved, group.regex_matches.0.as_ref().expect("kept")), "same topics: memoized");
        counts.insert("rx-b".into(), 3);
        assert_eq!(group.subscribed_counts(&counts).get("rx-b"), Some(&3), "a new topic that matches");
        group.recompute(&counts);
        assert_eq!(group.target["a"].keys().collect::<Vec<_>>(), ["named", "rx-a", "rx-b"]);
        group.members.get_mut("a").expect("a").subscribed_topic_regex = None;
        assert!(!group.subscribed_counts(&counts).contains_key("rx-a"));
        assert!(group.regex_matches.0.is_none(), "no regex left: nothing kept");
    }

    #[test]
    fn the_most_asked_for_assignor_wins() {
        let mut group = ConsumerGroup::default();
        assert_eq!(group.preferred_assignor(), ServerAssignor::Uniform);
        let mut a = member("a", &["t"]);
        a.server_assignor = Some("range".into());
        group.members.insert("a".into(), a);
        group.members.insert("b".into(), member("b", &["t"]));
        assert_eq!(group.preferred_assignor(), ServerAssignor::Range);
    }
}
