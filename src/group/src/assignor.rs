//! KIP-848's server-side assignors: the broker, not a consumer, computes a consumer group's
//! target assignment. Kafka ships two (`group.consumer.assignors`, the first the default):
//! `uniform` (balanced and sticky) and `range` (co-partitioned ranges per topic). Pure: the
//! broker shell maps topic ids to names and calls [`assign`] whenever the group epoch moves.
//!
//! Invariants of every target [`assign`] returns (asserted on the way out, `check_target`):
//! - every partition of every topic some member subscribes to, and that exists with at least one
//!   partition, is assigned to exactly one member, and that member subscribes to its topic;
//! - every member has an entry (possibly empty), holding no empty partition set;
//! - the same inputs give the same target (only ordered maps and sets, no randomness).
//!
//! Uniform's guarantees (each asserted where it is computed):
//! - homogeneous subscriptions (every member's subscribed, existing topics are the same): with T
//!   partitions over M members, each member holds ⌊T/M⌋ or ⌈T/M⌉ and exactly T mod M hold the
//!   ceiling; among all such targets it keeps the most partitions with their current owner;
//! - heterogeneous subscriptions: *local balance*: every partition's owner holds at most one more
//!   partition than any other member subscribed to its topic (so with equal subscriptions this is
//!   the balance above). It is not a global optimum: a chain a(t1) 3, b(t1, t2) 2, c(t2) 1 is
//!   locally balanced, though a two-step shift would give 2, 2, 2. A partition leaves its current
//!   owner only when that owner holds at least two more than the member it moves to.
//!
//! Stickiness input (`current`) is cleaned first: members no longer present, topics no longer
//! subscribed or gone, and partitions out of range are ignored; a partition two members claim
//! stays with the first by member id.

use std::collections::{BTreeMap, BTreeSet};

/// The server assignors (Kafka's `group.consumer.assignors`: uniform first, the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServerAssignor {
    Uniform,
    Range,
}

impl ServerAssignor {
    /// Kafka's order of `group.consumer.assignors`' default: the first is the default.
    pub const ALL: [ServerAssignor; 2] = [ServerAssignor::Uniform, ServerAssignor::Range];

    /// The name a consumer asks for (`group.remote.assignor`, KIP-848).
    pub fn name(self) -> &'static str {
        match self {
            ServerAssignor::Uniform => "uniform",
            ServerAssignor::Range => "range",
        }
    }

    /// The assignor named `name` (case-sensitive, as Kafka's lookup by name), if any.
    pub fn parse(name: &str) -> Option<ServerAssignor> {
        ServerAssignor::ALL.into_iter().find(|assignor| assignor.name() == name)
    }
}

/// Partitions by topic name.
pub type TopicPartitions = BTreeMap<String, BTreeSet<i32>>;

/// Members one assignment computes for, at most. The caller keeps a group within this (Kafka
/// refuses a member past `group.consumer.max.size` with GROUP_MAX_SIZE_REACHED).
pub const ASSIGNED_MEMBERS_MAX: usize = 10_000;
/// Distinct topic names the members subscribe to, at most (sluice-meta's `TOPICS_MAX`).
pub const SUBSCRIBED_TOPICS_MAX: usize = 100_000;
/// Partitions of one topic, at most (sluice-meta's `PARTITIONS_PER_TOPIC_MAX`).
pub const TOPIC_PARTITIONS_MAX: i32 = 10_000;
/// Partitions one assignment places, at most (sluice-meta's `PARTITIONS_MAX`).
pub const ASSIGNED_PARTITIONS_MAX: usize = 1_000_000;

/// Computes the target assignment (KIP-848).
/// - `members`: member id -> subscribed topic names.
/// - `partition_counts`: topic name -> partition count; a topic missing here or with 0
///   partitions is not assigned.
/// - `current`: member id -> its previous target (stickiness input; cleaned as the module says).
///
/// Returns an entry for every member in `members` (possibly empty, never with an empty set).
pub fn assign(
    assignor: ServerAssignor,
    members: &BTreeMap<String, BTreeSet<String>>,
    partition_counts: &BTreeMap<String, i32>,
    current: &BTreeMap<String, TopicPartitions>,
) -> BTreeMap<String, TopicPartitions> {
    let layout = Layout::new(members, partition_counts);
    let placement = match assignor {
        ServerAssignor::Range => range(&layout),
        ServerAssignor::Uniform => {
            let kept = sticky_claims(&layout, current);
            if layout.member_topics.windows(2).all(|pair| pair[0] == pair[1]) {
                uniform_homogeneous(&layout, &kept)
            } else {
                uniform_heterogeneous(&layout, &kept)
            }
        }
    };
    let target = placement.into_target(&layout);
    check_target(members, partition_counts, &target);
    target
}

/// The inputs, indexed: members by position in id order, topics by position in name order.
struct Layout<'a> {
    member_ids: Vec<&'a str>,
    /// The topics to assign: subscribed by some member, with a count in 1..=TOPIC_PARTITIONS_MAX.
    topics: Vec<(&'a str, i32)>,
    /// Per topic, its subscribers' indices, ascending.
    subscribers: Vec<Vec<usize>>,
    /// Per member, the indices of the topics it subscribes to that are assigned, ascending.
    member_topics: Vec<Vec<usize>>,
    /// Σ partitions of `topics`, at most ASSIGNED_PARTITIONS_MAX.
    partitions_total: usize,
}

impl<'a> Layout<'a> {
    fn new(members: &'a BTreeMap<String, BTreeSet<String>>, partition_counts: &BTreeMap<String, i32>) -> Layout<'a> {
        // DESIGN.md Style 4 (a limit on everything): the caller keeps its inputs within these.
        assert!(members.len() <= ASSIGNED_MEMBERS_MAX, "{} members to assign", members.len());
        let mut subscribed: BTreeSet<&str> = BTreeSet::new();
        for topics in members.values() {
            assert!(topics.len() <= SUBSCRIBED_TOPICS_MAX, "a subscription of {} topics", topics.len());
            subscribed.extend(topics.iter().map(String::as_str));
            assert!(subscribed.len() <= SUBSCRIBED_TOPICS_MAX, "{} subscribed topics", subscribed.len());
        }
        let mut topics = Vec::new();
        for name in subscribed {
            let Some(&count) = partition_counts.get(name) else { continue };
            // A negative count is a corrupt metadata image (sluice-meta never makes one).
            assert!((0..=TOPIC_PARTITIONS_MAX).contains(&count), "topic {name} has {count} partitions");
            if count > 0 {
                topics.push((name, count));
            }
        }
        let partitions_total: usize = topics.iter().map(|(_, count)| *count as usize).sum();
        assert!(partitions_total <= ASSIGNED_PARTITIONS_MAX, "{partitions_total} partitions to assign");
        let index: BTreeMap<&str, usize> = topics.iter().enumerate().map(|(t, (name, _))| (*name, t)).collect();
        let mut subscribers = vec![Vec::new(); topics.len()];
        let mut member_topics = Vec::with_capacity(members.len());
        for (m, names) in members.values().enumerate() {
            let mine: Vec<usize> = names.iter().filter_map(|name| index.get(name.as_str()).copied()).collect();
            mine.iter().for_each(|&t| subscribers[t].push(m));
            member_topics.push(mine);
        }
        let member_ids = members.keys().map(String::as_str).collect();
        Layout { member_ids, topics, subscribers, member_topics, partitions_total }
    }
}

/// A target under construction: each partition's owner and each member's load.
struct Placement {
    /// `owners[t][p]`: the member holding partition p of topic t.
    owners: Vec<Vec<Option<usize>>>,
    /// Partitions each member holds: Σ loads = partitions placed.
    loads: Vec<usize>,
}

impl Placement {
    fn new(layout: &Layout) -> Placement {
        let owners = layout.topics.iter().map(|(_, count)| vec![None; *count as usize]).collect();
        Placement { owners, loads: vec![0; layout.member_ids.len()] }
    }

    fn place(&mut self, topic: usize, partition: usize, member: usize) {
        let owner = &mut self.owners[topic][partition];
        assert!(owner.is_none(), "topic {topic} partition {partition} placed twice");
        *owner = Some(member);
        self.loads[member] += 1;
    }

    fn unplaced(&self) -> Vec<(usize, usize)> {
        let mut unplaced = Vec::new();
        for (t, owners) in self.owners.iter().enumerate() {
            unplaced.extend(owners.iter().enumerate().filter(|(_, owner)| owner.is_none()).map(|(p, _)| (t, p)));
        }
        unplaced
    }

    fn into_target(self, layout: &Layout) -> BTreeMap<String, TopicPartitions> {
        let mut target: Vec<TopicPartitions> = vec![TopicPartitions::new(); layout.member_ids.len()];
        for (t, owners) in self.owners.iter().enumerate() {
            for (p, owner) in owners.iter().enumerate() {
                let member = owner.expect("every partition is placed");
                target[member].entry(layout.topics[t].0.to_owned()).or_default().insert(p as i32);
            }
        }
        layout.member_ids.iter().map(|id| (*id).to_owned()).zip(target).collect()
    }
}

/// Kafka's RangeAssignor (server side, KIP-848): per topic, its subscribers in member id order;
/// with P partitions and M subscribers each takes P/M consecutive partitions, the first P mod M
/// one more (the classic RangeAssignor's arithmetic).
fn range(layout: &Layout) -> Placement {
    let mut placement = Placement::new(layout);
    for (t, (_, count)) in layout.topics.iter().enumerate() {
        let subscribers = &layout.subscribers[t];
        let (count, subscriber_count) = (*count as usize, subscribers.len());
        assert!(subscriber_count > 0, "an assigned topic has a subscriber");
        let mut start = 0;
        for (i, &member) in subscribers.iter().enumerate() {
            let length = count / subscriber_count + usize::from(i < count % subscriber_count);
            (start..start + length).for_each(|p| placement.place(t, p, member));
            start += length;
        }
        // Kafka's RangeAssignor: the ranges cover the topic, each partition once.
        assert_eq!(start, count, "the ranges cover the topic");
    }
    placement
}

/// Per member, its current partitions it may keep, in (topic, partition) order: of topics it
/// still subscribes to, in range, and not claimed by a member before it in id order.
fn sticky_claims(layout: &Layout, current: &BTreeMap<String, TopicPartitions>) -> Vec<Vec<(usize, usize)>> {
    let mut claimed: Vec<Vec<bool>> = layout.topics.iter().map(|(_, count)| vec![false; *count as usize]).collect();
    let mut kept = vec![Vec::new(); layout.member_ids.len()];
    for (m, id) in layout.member_ids.iter().enumerate() {
        let Some(previous) = current.get(*id) else { continue };
        for &t in &layout.member_topics[m] {
            let (name, count) = layout.topics[t];
            let Some(partitions) = previous.get(name) else { continue };
            for &p in partitions.range(0..count) {
                let p = p as usize;
                if !claimed[t][p] {
                    claimed[t][p] = true;
                    kept[m].push((t, p));
                }
            }
        }
    }
    kept
}

/// Uniform with homogeneous subscriptions (Kafka's `OptimizedUniformAssignmentBuilder`): each
/// member keeps its current partitions up to ⌊T/M⌋ (pass 1); members that had more keep one
/// more while ceiling slots remain, in member id order (pass 2); the rest go, in (topic,
/// partition) order, to the least loaded member, ties to the smallest id (pass 3).
fn uniform_homogeneous(layout: &Layout, kept: &[Vec<(usize, usize)>]) -> Placement {
    let mut placement = Placement::new(layout);
    let member_count = layout.member_ids.len();
    if member_count == 0 {
        return placement;
    }
    let (quota_min, mut ceilings) = (layout.partitions_total / member_count, layout.partitions_total % member_count);
    let ceilings_total = ceilings;
    for (m, partitions) in kept.iter().enumerate() {
        partitions.iter().take(quota_min).for_each(|&(t, p)| placement.place(t, p, m));
    }
    for (m, partitions) in kept.iter().enumerate() {
        if ceilings > 0 && partitions.len() > quota_min {
            let (t, p) = partitions[quota_min];
            placement.place(t, p, m);
            ceilings -= 1;
        }
    }
    let sticky_count: usize = placement.loads.iter().sum();
    let mut by_load: BTreeSet<(usize, usize)> = placement.loads.iter().enumerate().map(|(m, l)| (*l, m)).collect();
    for (t, p) in placement.unplaced() {
        let (load, m) = by_load.pop_first().expect("there are members");
        placement.place(t, p, m);
        by_load.insert((load + 1, m));
    }
    // KIP-848 (UniformAssignor): every load is the floor or the ceiling, exactly T mod M ceilings.
    assert!(placement.loads.iter().all(|load| *load == quota_min || *load == quota_min + 1));
    assert_eq!(placement.loads.iter().filter(|load| **load > quota_min).count(), ceilings_total);
    // The stickiness: no balanced target keeps more (each member keeps at most its floor, or its
    // ceiling if it holds one, and there are T mod M ceilings).
    let over = kept.iter().filter(|partitions| partitions.len() > quota_min).count();
    let sticky_max =
        kept.iter().map(|partitions| partitions.len().min(quota_min)).sum::<usize>() + over.min(ceilings_total);
    assert_eq!(sticky_count, sticky_max, "kept as many current partitions as a balanced target can");
    placement
}

/// Per topic, its subscribers ordered by (load, member index): the least loaded first.
struct LoadIndex {
    by_topic: Vec<BTreeSet<(usize, usize)>>,
}

impl LoadIndex {
    fn new(layout: &Layout, loads: &[usize]) -> LoadIndex {
        let by_topic = layout.subscribers.iter().map(|subs| subs.iter().map(|&m| (loads[m], m)).collect()).collect();
        LoadIndex { by_topic }
    }

    fn least_loaded(&self, topic: usize) -> (usize, usize) {
        *self.by_topic[topic].first().expect("an assigned topic has a subscriber")
    }

    fn reload(&mut self, layout: &Layout, member: usize, from: usize, to: usize) {
        for &t in &layout.member_topics[member] {
            assert!(self.by_topic[t].remove(&(from, member)), "member {member} indexed at load {from}");
            self.by_topic[t].insert((to, member));
        }
    }
}

/// Uniform with heterogeneous subscriptions (in the spirit of Kafka's
/// `GeneralUniformAssignmentBuilder`): every member keeps all its claimed current partitions;
/// unplaced partitions go to their topic's least loaded subscriber, topics with the fewest
/// subscribers first (they have the fewest choices); then `rebalance` restores local balance.
fn uniform_heterogeneous(layout: &Layout, kept: &[Vec<(usize, usize)>]) -> Placement {
    let mut placement = Placement::new(layout);
    for (m, partitions) in kept.iter().enumerate() {
        partitions.iter().for_each(|&(t, p)| placement.place(t, p, m));
    }
    let mut index = LoadIndex::new(layout, &placement.loads);
    let mut unplaced = placement.unplaced();
    // Stable sort: within a topic, partition order stays.
    unplaced.sort_by_key(|&(t, _)| layout.subscribers[t].len());
    let mut sticky: Vec<Vec<bool>> = placement.owners.iter().map(|o| o.iter().map(Option::is_some).collect()).collect();
    for (t, p) in unplaced {
        let (load, m) = index.least_loaded(t);
        placement.place(t, p, m);
        index.reload(layout, m, load, load + 1);
    }
    rebalance(layout, &mut placement, &mut index, &mut sticky);
    // Local balance (this module's guarantee; KIP-848 asks uniform to balance where it can): no
    // partition's owner holds two more than another subscriber of its topic.
    for (t, owners) in placement.owners.iter().enumerate() {
        let (least, _) = index.least_loaded(t);
        assert!(owners.iter().all(|owner| placement.loads[owner.expect("placed")] <= least + 1), "topic {t}");
    }
    placement
}

/// Moves partitions from an owner holding at least two more than their topic's least loaded
/// subscriber to that subscriber, in passes over (topic, partition) order, partitions still
/// with their current owner last (moving the others loses no stickiness), until a pass moves
/// none. Each move lowers Σ load² by at least 2, which bounds the moves.
fn rebalance(layout: &Layout, placement: &mut Placement, index: &mut LoadIndex, sticky: &mut [Vec<bool>]) {
    let moves_max = placement.loads.iter().map(|load| load * load).sum::<usize>() / 2;
    let mut moves = 0;
    loop {
        let moves_before = moves;
        for sticky_round in [false, true] {
            for (t, owners) in placement.owners.iter_mut().enumerate() {
                for (p, owner) in owners.iter_mut().enumerate() {
                    let from = owner.expect("placed");
                    let (to_load, to) = index.least_loaded(t);
                    let from_load = placement.loads[from];
                    if sticky[t][p] != sticky_round || to_load + 2 > from_load {
                        continue;
                    }
                    *owner = Some(to);
                    sticky[t][p] = false;
                    (placement.loads[from], placement.loads[to]) = (from_load - 1, to_load + 1);
                    index.reload(layout, from, from_load, from_load - 1);
                    index.reload(layout, to, to_load, to_load + 1);
                    moves += 1;
                    assert!(moves <= moves_max, "{moves} moves: Σ load² fell by less than 2 per move");
                }
            }
        }
        if moves == moves_before {
            return;
        }
    }
}

/// The invariants of every target, checked against the caller's inputs (not the `Layout`).
fn check_target(
    members: &BTreeMap<String, BTreeSet<String>>,
    partition_counts: &BTreeMap<String, i32>,
    target: &BTreeMap<String, TopicPartitions>,
) {
    // KIP-848: the target names every member, and gives each partition of the subscribed topics
    // to exactly one member subscribed to it.
    assert!(target.keys().eq(members.keys()), "an entry for every member, and only members");
    let mut placed: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for (member, assigned) in target {
        for (topic, partitions) in assigned {
            assert!(members[member].contains(topic), "{member} holds {topic}, which it does not subscribe to");
            let count = partition_counts.get(topic).copied().unwrap_or(0);
            assert!(!partitions.is_empty(), "{member} holds an empty set of {topic}");
            assert!(partitions.iter().all(|p| (0..count).contains(p)), "{member} holds {topic} out of 0..{count}");
            let topic_placed = placed.entry(topic).or_default();
            assert!(partitions.iter().all(|p| topic_placed.insert(*p)), "{topic}: a partition placed twice");
        }
    }
    // Every partition at least once: each placed one is in range and there are `count` of them.
    let subscribed: BTreeSet<&String> = members.values().flatten().collect();
    for topic in subscribed {
        let count = partition_counts.get(topic).copied().unwrap_or(0) as usize;
        assert_eq!(placed.remove(topic.as_str()).map_or(0, |p| p.len()), count, "{topic}: every partition placed");
    }
    assert!(placed.is_empty(), "only subscribed topics are placed");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(spec: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        spec.iter().map(|(id, topics)| (id.to_string(), topics.iter().map(|t| t.to_string()).collect())).collect()
    }

    fn counts(spec: &[(&str, i32)]) -> BTreeMap<String, i32> {
        spec.iter().map(|(topic, count)| (topic.to_string(), *count)).collect()
    }

    fn parts(spec: &[(&str, &[i32])]) -> TopicPartitions {
        spec.iter().map(|(topic, ps)| (topic.to_string(), ps.iter().copied().collect())).collect()
    }

    fn target(spec: &[(&str, TopicPartitions)]) -> BTreeMap<String, TopicPartitions> {
        spec.iter().map(|(id, assigned)| (id.to_string(), assigned.clone())).collect()
    }

    fn sizes(target: &BTreeMap<String, TopicPartitions>) -> Vec<usize> {
        target.values().map(|assigned| assigned.values().map(BTreeSet::len).sum()).collect()
    }

    #[test]
    fn names_round_trip_in_kafkas_order() {
        assert_eq!(ServerAssignor::ALL, [ServerAssignor::Uniform, ServerAssignor::Range]);
        assert_eq!((ServerAssignor::Uniform.name(), ServerAssignor::Range.name()), ("uniform", "range"));
        for assignor in ServerAssignor::ALL {
            assert_eq!(ServerAssignor::parse(assignor.name()), Some(assignor));
        }
        assert_eq!((ServerAssignor::parse("sticky"), ServerAssignor::parse("Uniform")), (None, None));
    }

    #[test]
    fn range_gives_co_partitioned_ranges() {
        // The classic RangeAssignor example: C0 takes p0, p1 of each topic, C1 p2 of each.
        let group = members(&[("c0", &["t0", "t1"]), ("c1", &["t0", "t1"])]);
        let got = assign(ServerAssignor::Range, &group, &counts(&[("t0", 3), ("t1", 3)]), &BTreeMap::new());
        let c0 = parts(&[("t0", &[0, 1]), ("t1", &[0, 1])]);
        assert_eq!(got, target(&[("c0", c0), ("c1", parts(&[("t0", &[2]), ("t1", &[2])]))]));
        // 7 partitions over 3 subscribers: 3, 2, 2 consecutive; a non-subscriber gets nothing.
        let group = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"]), ("d", &["u"])]);
        let got = assign(ServerAssignor::Range, &group, &counts(&[("t", 7)]), &BTreeMap::new());
        let (a, b) = (parts(&[("t", &[0, 1, 2])]), parts(&[("t", &[3, 4])]));
        assert_eq!(got, target(&[("a", a), ("b", b), ("c", parts(&[("t", &[5, 6])])), ("d", parts(&[]))]));
    }

    #[test]
    fn uniform_balances_within_one() {
        let group = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let got = assign(ServerAssignor::Uniform, &group, &counts(&[("t", 7)]), &BTreeMap::new());
        assert_eq!(sizes(&got), [3, 2, 2]);
        // Across topics: 3 + 2 partitions over 2 members.
        let group = members(&[("a", &["t", "u"]), ("b", &["t", "u"])]);
        let got = assign(ServerAssignor::Uniform, &group, &counts(&[("t", 3), ("u", 2)]), &BTreeMap::new());
        assert_eq!(sizes(&got), [3, 2]);
    }

    #[test]
    fn uniform_moves_only_what_a_new_member_needs() {
        let group = members(&[("a", &["t"]), ("b", &["t"])]);
        let current = target(&[("a", parts(&[("t", &[0, 1, 2, 3, 4, 5])]))]);
        let got = assign(ServerAssignor::Uniform, &group, &counts(&[("t", 6)]), &current);
        assert_eq!(got, target(&[("a", parts(&[("t", &[0, 1, 2])])), ("b", parts(&[("t", &[3, 4, 5])]))]));
        // Fed back, the target is kept as it is.
        assert_eq!(assign(ServerAssignor::Uniform, &group, &counts(&[("t", 6)]), &got), got);
    }

    #[test]
    fn uniform_keeps_every_remaining_members_partitions_when_one_leaves() {
        let current = target(&[
            ("a", parts(&[("t", &[0, 3, 6])])),
            ("b", parts(&[("t", &[1, 4])])),
            ("c", parts(&[("t", &[2, 5])])),
        ]);
        let group = members(&[("a", &["t"]), ("b", &["t"])]);
        let got = assign(ServerAssignor::Uniform, &group, &counts(&[("t", 7)]), &current);
        // c's 2 and 5 go to the least loaded: b first (a has 3), then either (a, smaller id).
        assert_eq!(got, target(&[("a", parts(&[("t", &[0, 3, 5, 6])])), ("b", parts(&[("t", &[1, 2, 4])]))]));
    }

    #[test]
    fn no_members_or_no_partitions_assign_nothing() {
        for assignor in ServerAssignor::ALL {
            let none = BTreeMap::new();
            assert_eq!(assign(assignor, &none, &counts(&[("t", 3)]), &BTreeMap::new()), BTreeMap::new());
            // Topics missing from the counts, or with none, are ignored; every member has an entry.
            let group = members(&[("a", &["gone", "empty"]), ("b", &[])]);
            let got = assign(assignor, &group, &counts(&[("empty", 0), ("other", 4)]), &BTreeMap::new());
            assert_eq!(got, target(&[("a", parts(&[])), ("b", parts(&[]))]));
            let group = members(&[("a", &["gone", "t"]), ("b", &["t"])]);
            let got = assign(assignor, &group, &counts(&[("t", 2)]), &BTreeMap::new());
            assert_eq!(got, target(&[("a", parts(&[("t", &[0])])), ("b", parts(&[("t", &[1])]))]));
        }
    }

    #[test]
    fn uniform_ignores_stale_current() {
        let group = members(&[("a", &["t"]), ("b", &["t"])]);
        let current = target(&[
            ("gone", parts(&[("t", &[0, 1])])),
            // b no longer subscribes to u; t-9 and t--1 do not exist; c is no member.
            ("b", parts(&[("t", &[-1, 2, 9]), ("u", &[0])])),
            ("c", parts(&[("t", &[2, 3])])),
        ]);
        let got = assign(ServerAssignor::Uniform, &group, &counts(&[("t", 4), ("u", 1)]), &current);
        assert_eq!(got, target(&[("a", parts(&[("t", &[0, 1])])), ("b", parts(&[("t", &[2, 3])]))]));
        // A partition two present members claim stays with the first by member id; the rest go
        // to the least loaded, ties to the smallest id: t-0 to b, t-1 to a, t-2 to b.
        let current = target(&[("a", parts(&[("t", &[3])])), ("b", parts(&[("t", &[3])]))]);
        let got = assign(ServerAssignor::Uniform, &group, &counts(&[("t", 4)]), &current);
        assert_eq!(got, target(&[("a", parts(&[("t", &[1, 3])])), ("b", parts(&[("t", &[0, 2])]))]));
    }

    #[test]
    fn uniform_heterogeneous_is_locally_balanced_and_sticky() {
        // t2 (one subscriber, b) is placed first; then t1 fills a up before b: 3 and 3.
        let group = members(&[("a", &["t1"]), ("b", &["t1", "t2"])]);
        let partition_counts = counts(&[("t1", 4), ("t2", 2)]);
        let got = assign(ServerAssignor::Uniform, &group, &partition_counts, &BTreeMap::new());
        let b = parts(&[("t1", &[3]), ("t2", &[0, 1])]);
        assert_eq!(got, target(&[("a", parts(&[("t1", &[0, 1, 2])])), ("b", b.clone())]));
        assert_eq!(assign(ServerAssignor::Uniform, &group, &partition_counts, &got), got, "a fixed point");
        // b held all of t1: it keeps what balance allows (t1-3) and a takes t1-0..=2.
        let current = target(&[("b", parts(&[("t1", &[0, 1, 2, 3])]))]);
        let got = assign(ServerAssignor::Uniform, &group, &partition_counts, &current);
        assert_eq!(sizes(&got), [3, 3]);
        assert_eq!(got["b"]["t1"], BTreeSet::from([3]), "b keeps t1-3 and takes t2");
        // Only a member whose topic it is can take a partition: c (t3 only) takes all of t3.
        let group = members(&[("a", &["t1"]), ("b", &["t1"]), ("c", &["t3"])]);
        let got = assign(ServerAssignor::Uniform, &group, &counts(&[("t1", 2), ("t3", 5)]), &BTreeMap::new());
        assert_eq!(sizes(&got), [1, 1, 5]);
    }

    #[test]
    #[should_panic(expected = "partitions")]
    fn a_negative_partition_count_is_corruption() {
        assign(ServerAssignor::Range, &members(&[("a", &["t"])]), &counts(&[("t", -1)]), &BTreeMap::new());
    }
}
