//! Property tests of KIP-848's server assignors (`sluice_group::assignor`) against their
//! specification.
//!
//! What: random groups (1..=8 members, 1..=4 topics of 1..=16 partitions, plus a subscribed topic
//! that does not exist and one with no partitions), random subscriptions, and a random previous
//! target naming departed members, unsubscribed topics and partitions out of range. Properties:
//! - every subscribed partition is assigned exactly once, only to a subscriber, and every member
//!   (only members) has an entry, with no empty sets (both assignors);
//! - range is the classic RangeAssignor's arithmetic, per topic over its subscribers by id;
//! - uniform with homogeneous subscriptions is balanced: ⌊T/M⌋ or ⌈T/M⌉, exactly T mod M ceilings;
//!   it keeps a balanced previous target unchanged, and keeps as many previous partitions as any
//!   balanced target could;
//! - uniform with heterogeneous subscriptions is locally balanced: no partition's owner holds two
//!   more than another subscriber of its topic;
//! - determinism and stability: the same inputs give the same target, and a target fed back as
//!   the previous one comes back unchanged.
//!
//! Why: the target is what every member reconciles towards (KIP-848); a partition assigned twice
//! or never is a consumer group reading twice or not at all. `PROPTEST_CASES` raises the count.

use proptest::prelude::*;
use sluice_group::assignor::{ServerAssignor, TopicPartitions, assign};
use std::collections::{BTreeMap, BTreeSet};

/// Members per group at most.
const MEMBERS_MAX: usize = 8;
/// Topics that exist per group at most.
const TOPICS_MAX: usize = 4;
/// Partitions per topic at most.
const PARTITIONS_MAX: i32 = 16;
/// A subscribed topic missing from the partition counts.
const GONE: &str = "gone";
/// A subscribed topic with 0 partitions.
const EMPTY: &str = "empty";
/// A member of the previous target that has left.
const LEFT: &str = "left";

type Target = BTreeMap<String, TopicPartitions>;

#[derive(Clone, Debug)]
struct Group {
    members: BTreeMap<String, BTreeSet<String>>,
    partition_counts: BTreeMap<String, i32>,
    current: Target,
}

impl Group {
    fn assign(&self, assignor: ServerAssignor) -> Target {
        assign(assignor, &self.members, &self.partition_counts, &self.current)
    }

    /// The topics some member subscribes to that exist with partitions, and their counts.
    fn assigned_topics(&self) -> BTreeMap<&str, i32> {
        let subscribed: BTreeSet<&String> = self.members.values().flatten().collect();
        let counts = subscribed.into_iter().filter_map(|t| Some((t.as_str(), *self.partition_counts.get(t)?)));
        counts.filter(|(_, count)| *count > 0).collect()
    }
}

fn member_id(m: usize) -> String {
    format!("m{m}")
}

/// Topic names a subscription draws from: the existing ones, `GONE` and `EMPTY`.
fn topic_pool(topic_count: usize) -> Vec<String> {
    (0..topic_count).map(|t| format!("t{t}")).chain([GONE.to_owned(), EMPTY.to_owned()]).collect()
}

fn partition_counts(counts: &[i32]) -> BTreeMap<String, i32> {
    let existing = counts.iter().enumerate().map(|(t, count)| (format!("t{t}"), *count));
    existing.chain([(EMPTY.to_owned(), 0)]).collect()
}

fn pick(pool: &[String], mask: u8) -> BTreeSet<String> {
    pool.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, t)| t.clone()).collect()
}

/// A previous target, messy: any member (and `LEFT`), any pool topic, partitions -1..20.
fn messy_current(member_count: usize, pool: Vec<String>) -> impl Strategy<Value = Target> {
    let ids: Vec<String> = (0..member_count).map(member_id).chain([LEFT.to_owned()]).collect();
    let topic = prop::sample::select(pool);
    let partitions = prop::collection::btree_set(-1..PARTITIONS_MAX + 4, 0..6);
    let assigned = prop::collection::btree_map(topic, partitions, 0..4);
    prop::collection::btree_map(prop::sample::select(ids), assigned, 0..=member_count + 1)
}

/// A group with any subscriptions (homogeneous ones too) and a messy previous target.
fn any_group() -> impl Strategy<Value = Group> {
    let shape = (1..=MEMBERS_MAX, prop::collection::vec(1..=PARTITIONS_MAX, 1..=TOPICS_MAX));
    shape.prop_flat_map(|(member_count, counts)| {
        let pool = topic_pool(counts.len());
        let masks = prop::collection::vec(any::<u8>(), member_count);
        (masks, messy_current(member_count, pool.clone())).prop_map(move |(masks, current)| {
            let members = masks.iter().enumerate().map(|(m, mask)| (member_id(m), pick(&pool, *mask))).collect();
            Group { members, partition_counts: partition_counts(&counts), current }
        })
    })
}

/// A group whose members all subscribe to the same topics (at least one that exists), and a
/// previous target that is a partial assignment: each partition held by one member, `LEFT`, or
/// nobody.
fn homogeneous_group() -> impl Strategy<Value = Group> {
    let shape = (1..=MEMBERS_MAX, prop::collection::vec(1..=PARTITIONS_MAX, 1..=TOPICS_MAX), any::<u8>());
    shape.prop_flat_map(|(member_count, counts, mask)| {
        let pool = topic_pool(counts.len());
        let subscription: BTreeSet<String> = pick(&pool, mask | 1);
        let members: BTreeMap<String, BTreeSet<String>> =
            (0..member_count).map(|m| (member_id(m), subscription.clone())).collect();
        let group = Group { members, partition_counts: partition_counts(&counts), current: Target::new() };
        let partitions = partitions_of(&group);
        // Owner index member_count is `LEFT`; member_count + 1 is nobody.
        prop::collection::vec(0..member_count + 2, partitions.len()).prop_map(move |owners| {
            let mut group = group.clone();
            for ((topic, p), owner) in partitions.iter().zip(owners) {
                let id = if owner < member_count { member_id(owner) } else { LEFT.to_owned() };
                if owner <= member_count {
                    group.current.entry(id).or_default().entry(topic.clone()).or_default().insert(*p);
                }
            }
            group
        })
    })
}

/// A homogeneous group whose previous target is itself balanced over its members.
fn balanced_group() -> impl Strategy<Value = Group> {
    homogeneous_group().prop_flat_map(|group| {
        let partitions = partitions_of(&group);
        let ids: Vec<String> = group.members.keys().cloned().collect();
        (Just(partitions).prop_shuffle(), Just(ids).prop_shuffle()).prop_map(move |(partitions, ids)| {
            let mut group = group.clone();
            let (quota_min, ceilings) = (partitions.len() / ids.len(), partitions.len() % ids.len());
            group.current = Target::new();
            let mut rest = partitions.as_slice();
            for (i, id) in ids.iter().enumerate() {
                let (mine, after) = rest.split_at(quota_min + usize::from(i < ceilings));
                for (topic, p) in mine {
                    group.current.entry(id.clone()).or_default().entry(topic.clone()).or_default().insert(*p);
                }
                rest = after;
            }
            group.current.entry(ids[0].clone()).or_default();
            group
        })
    })
}

/// Every partition to assign, in (topic, partition) order.
fn partitions_of(group: &Group) -> Vec<(String, i32)> {
    group.assigned_topics().into_iter().flat_map(|(t, count)| (0..count).map(move |p| (t.to_owned(), p))).collect()
}

fn load(assigned: &TopicPartitions) -> usize {
    assigned.values().map(BTreeSet::len).sum()
}

/// Partitions `target` leaves with their owner in `current`.
fn kept(current: &Target, target: &Target) -> usize {
    let mut kept = 0;
    for (id, assigned) in target {
        let Some(previous) = current.get(id) else { continue };
        for (topic, partitions) in assigned {
            kept += previous.get(topic).map_or(0, |before| partitions.intersection(before).count());
        }
    }
    kept
}

/// The invariants of every target: each subscribed partition exactly once, to a subscriber.
fn check_valid(group: &Group, target: &Target) -> Result<(), TestCaseError> {
    prop_assert!(target.keys().eq(group.members.keys()), "an entry for every member only: {target:?}");
    let mut owners: BTreeMap<(String, i32), &String> = BTreeMap::new();
    for (member, assigned) in target {
        for (topic, partitions) in assigned {
            prop_assert!(group.members[member].contains(topic), "{member} holds unsubscribed {topic}");
            prop_assert!(!partitions.is_empty(), "{member} holds an empty set of {topic}");
            for p in partitions {
                prop_assert!(owners.insert((topic.clone(), *p), member).is_none(), "{topic}-{p} twice");
            }
        }
    }
    let expected: Vec<(String, i32)> = partitions_of(group);
    prop_assert!(owners.keys().cloned().eq(expected), "exactly the subscribed partitions: {target:?}");
    Ok(())
}

/// What the classic RangeAssignor gives: per topic, subscribers by id, P/M each, the first P mod
/// M one more, consecutive.
fn range_expected(group: &Group) -> Target {
    let mut target: Target = group.members.keys().map(|id| (id.clone(), TopicPartitions::new())).collect();
    for (topic, count) in group.assigned_topics() {
        let subscribers: Vec<&String> =
            group.members.iter().filter(|(_, s)| s.contains(topic)).map(|(id, _)| id).collect();
        let (per, extra) = (count / subscribers.len() as i32, count % subscribers.len() as i32);
        let mut start = 0;
        for (i, id) in subscribers.into_iter().enumerate() {
            let length = per + i32::from((i as i32) < extra);
            target.get_mut(id).unwrap().insert(topic.to_owned(), (start..start + length).collect());
            start += length;
        }
    }
    target.values_mut().for_each(|assigned| assigned.retain(|_, partitions| !partitions.is_empty()));
    target
}

proptest! {
    #[test]
    fn every_subscribed_partition_is_assigned_once_to_a_subscriber(group in any_group()) {
        for assignor in ServerAssignor::ALL {
            check_valid(&group, &group.assign(assignor))?;
        }
    }

    #[test]
    fn assign_is_deterministic_and_its_target_a_fixed_point(group in any_group()) {
        for assignor in ServerAssignor::ALL {
            let target = group.assign(assignor);
            prop_assert_eq!(&group.assign(assignor), &target, "the same inputs, the same target");
            let again = Group { current: target.clone(), ..group.clone() };
            prop_assert_eq!(again.assign(assignor), target, "fed back, the target is kept");
        }
    }

    #[test]
    fn range_follows_the_classic_arithmetic(group in any_group()) {
        prop_assert_eq!(group.assign(ServerAssignor::Range), range_expected(&group));
    }

    #[test]
    fn uniform_is_locally_balanced(group in any_group()) {
        let target = group.assign(ServerAssignor::Uniform);
        for (topic, _) in group.assigned_topics() {
            let subscribers = group.members.iter().filter(|(_, s)| s.contains(topic)).map(|(id, _)| load(&target[id]));
            let least = subscribers.min().expect("an assigned topic has a subscriber");
            for (member, assigned) in &target {
                prop_assert!(!assigned.contains_key(topic) || load(assigned) <= least + 1, "{member} on {topic}");
            }
        }
    }

    #[test]
    fn uniform_homogeneous_is_balanced_and_keeps_all_it_can(group in homogeneous_group()) {
        let target = group.assign(ServerAssignor::Uniform);
        check_valid(&group, &target)?;
        let (total, member_count) = (partitions_of(&group).len(), group.members.len());
        let (quota_min, ceilings) = (total / member_count, total % member_count);
        prop_assert!(target.values().all(|a| load(a) == quota_min || load(a) == quota_min + 1), "{target:?}");
        prop_assert_eq!(target.values().filter(|a| load(a) > quota_min).count(), ceilings);
        // No balanced target keeps more: each member keeps at most its floor, or its ceiling if
        // it holds one, and there are T mod M ceilings.
        let held: Vec<usize> = group.members.keys().map(|id| group.current.get(id).map_or(0, load)).collect();
        let over = held.iter().filter(|h| **h > quota_min).count();
        let kept_max = held.iter().map(|h| (*h).min(quota_min)).sum::<usize>() + over.min(ceilings);
        prop_assert_eq!(kept(&group.current, &target), kept_max, "kept as many as a balanced target can");
    }

    #[test]
    fn uniform_keeps_a_balanced_current_unchanged(group in balanced_group()) {
        let target = group.assign(ServerAssignor::Uniform);
        let mut expected = group.current.clone();
        group.members.keys().for_each(|id| { expected.entry(id.clone()).or_default(); });
        expected.values_mut().for_each(|assigned| assigned.retain(|_, partitions| !partitions.is_empty()));
        prop_assert_eq!(target, expected);
    }
}
