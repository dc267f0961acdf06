//! One consumer group's state (Kafka's `GroupMetadata`): its members, generation, chosen
//! protocol and leader, its committed offsets, and the deadlines the coordinator's tick checks.
//!
//! States (Kafka's classic protocol): `Empty` (no members; offsets may remain),
//! `PreparingRebalance` (waiting for members to JoinGroup), `CompletingRebalance` (the
//! generation is formed; waiting for the leader's SyncGroup), `Stable`. A deleted group is
//! removed from the coordinator, which is Kafka's `Dead`.

use crate::api::{CommittedOffset, Protocol, Token, TopicPartition};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name Kafka's ListGroups and DescribeGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<Protocol>,
    /// This generation's assignment, from the leader's SyncGroup.
    pub assignment: Bytes,
    /// Order of joining, for choosing a leader as Kafka does (the first member).
    pub(crate) joined_seq: u64,
    /// A JoinGroup waiting for the rebalance to complete.
    pub(crate) waiting_join: Option<Token>,
    pub(crate) waiting_sync: Option<Token>,
    /// The member is removed when monotonic time passes this without a heartbeat, unless it is
    /// waiting in a JoinGroup or SyncGroup (Kafka's `shouldKeepAlive`).
    pub(crate) session_deadline_ms: i64,
}

impl Member {
    /// The metadata this member gave for `protocol`.
    pub fn metadata_for(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| &p.metadata)
    }

    pub(crate) fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }

    /// Whether `protocols` are exactly what the member sent last time (same names, order and
    /// metadata): then a rejoin needs no rebalance.
    pub(crate) fn same_protocols(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    pub(crate) fn refresh_session(&mut self, now_ms: i64) {
        self.session_deadline_ms = now_ms + i64::from(self.session_timeout_ms);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    /// Set by the first member (for consumers "consumer"); every member must match.
    pub protocol_type: Option<String>,
    /// The protocol this generation runs (chosen when the join completes).
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Static members: group instance id to member id (KIP-345).
    pub static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline (monotonic ms) by which
    /// the member must join with it (KIP-394).
    pub(crate) pending_members: BTreeMap<String, i64>,
    /// Members of this generation that have not sent SyncGroup yet, and the deadline.
    pub(crate) pending_sync: BTreeSet<String>,
    pub(crate) sync_deadline_ms: Option<i64>,
    /// When the current PreparingRebalance completes at the latest (monotonic ms).
    pub(crate) join_deadline_ms: Option<i64>,
    /// For the first rebalance of an empty group (KIP-134): when the delay may be extended to
    /// at most, as new members keep arriving.
    pub(crate) initial_join_limit_ms: Option<i64>,
    pub(crate) next_joined_seq: u64,
    /// The metadata write of this generation's assignment, while it is not durable.
    pub(crate) assignment_write: Option<crate::api::WriteId>,
    /// Wall time of the last state change (stored; offsets of an empty group expire from it).
    pub state_timestamp_ms: i64,
    pub offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// `Some` for a KIP-848 consumer group (group type `consumer`); then the classic state is
    /// `Empty` with no classic members.
    pub consumer: Option<crate::consumer_group::ConsumerGroup>,
}

impl Group {
    pub(crate) fn new(group_id: &str, wall_ms: i64) -> Group {
        Group {
            group_id: group_id.to_owned(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            sync_deadline_ms: None,
            join_deadline_ms: None,
            initial_join_limit_ms: None,
            next_joined_seq: 0,
            assignment_write: None,
            state_timestamp_ms: wall_ms,
            offsets: BTreeMap::new(),
            consumer: None,
        }
    }

    /// No members of either protocol: offsets may be deleted and expire.
    pub fn is_empty(&self) -> bool {
        self.state == GroupState::Empty && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
    }

    /// The state ListGroups and the describe calls show.
    pub fn state_name(&self) -> &'static str {
        match &self.consumer {
            Some(consumer) => consumer.state_name(),
            None => self.state.name(),
        }
    }

    /// KIP-848's group type: `consumer` or `classic`.
    pub fn group_type(&self) -> &'static str {
        if self.consumer.is_some() { "consumer" } else { "classic" }
    }

    /// Every member is waiting in a JoinGroup and no handed-out id is still to come: the
    /// rebalance can complete (Kafka's `hasAllMembersJoined`).
    pub(crate) fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.waiting_join.is_some())
    }

    /// Whether a JoinGroup with `member_id` (empty for a new member, also a static one) may
    /// proceed under `group.max.size` (Kafka's `acceptJoiningMember`). Handed-out ids
    /// (KIP-394) do not count. While rebalancing, the members already waiting in JoinGroup are
    /// counted, not the group's size: that size may be over the limit (the limit shrank), and
    /// the members that rejoin last are the ones turned away.
    pub(crate) fn accepts_joining_member(&self, member_id: &str, group_size_max: usize) -> bool {
        let member = self.members.get(member_id);
        match self.state {
            GroupState::Empty => true,
            GroupState::PreparingRebalance => {
                let waiting = self.members.values().filter(|m| m.waiting_join.is_some()).count();
                member.is_some_and(|m| m.waiting_join.is_some()) || waiting < group_size_max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.is_some() || self.members.len() < group_size_max
            }
        }
    }

    /// The longest rebalance timeout of the members: how long a rebalance may wait for them.
    pub(crate) fn rebalance_timeout_ms(&self) -> i64 {
        self.members.values().map(|m| i64::from(m.rebalance_timeout_ms)).max().unwrap_or(0)
    }

    /// Whether `protocols` can join: same protocol type, and at least one protocol every
    /// member (and the newcomer) supports.
    pub(crate) fn accepts(&self, protocol_type: &str, protocols: &[Protocol], except: Option<&str>) -> bool {
        if protocols.is_empty() || protocol_type.is_empty() {
            return false;
        }
        let others: Vec<&Member> = self.members.values().filter(|m| Some(m.member_id.as_str()) != except).collect();
        if others.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref().is_some_and(|t| t != protocol_type) {
            return false;
        }
        protocols.iter().any(|p| others.iter().all(|m| m.supports(&p.name)))
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member votes
    /// for the first it lists; the most votes wins, ties going to the smaller name.
    pub(crate) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(choice) = member.protocols.iter().map(|p| p.name.as_str()).find(|n| candidates.contains(n)) {
                *votes.entry(choice).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes.into_iter().find(|(_, count)| *count == best).map(|(name, _)| name.to_owned())
    }

    /// The member id a static member's instance id maps to.
    pub fn static_member(&self, group_instance_id: &str) -> Option<&str> {
        self.static_members.get(group_instance_id).map(String::as_str)
    }

    /// Checks the pairing of member id and instance id: a static member whose instance id now
    /// maps to another member id was replaced (KIP-345: FENCED_INSTANCE_ID).
    pub(crate) fn is_fenced(&self, member_id: &str, group_instance_id: Option<&str>) -> bool {
        group_instance_id.is_some_and(|instance| self.static_member(instance).is_some_and(|known| known != member_id))
    }

    /// Invariants the coordinator keeps after every input. Crash if broken.
    pub(crate) fn check_invariants(&self) {
        if let Some(consumer) = &self.consumer {
            assert!(
                self.members.is_empty() && self.state == GroupState::Empty,
                "a consumer group has no classic members"
            );
            assert_eq!(self.protocol_type.as_deref(), Some("consumer"), "group {}", self.group_id);
            consumer.check_invariants();
        }
        for (instance, member_id) in &self.static_members {
            let member = self.members.get(member_id);
            assert!(
                member.is_some_and(|m| m.group_instance_id.as_deref() == Some(instance.as_str())),
                "group {}: static member {instance} maps to {member_id}, which is not its member",
                self.group_id
            );
        }
        for member in self.members.values() {
            if let Some(instance) = &member.group_instance_id {
                assert_eq!(self.static_member(instance), Some(member.member_id.as_str()), "static map is complete");
            }
            assert!(member.waiting_sync.is_none() || self.state == GroupState::CompletingRebalance);
            // Stable too, while a static takeover is written (checked by the coordinator).
            assert!(
                member.waiting_join.is_none()
                    || matches!(self.state, GroupState::PreparingRebalance | GroupState::Stable),
                "group {}: a JoinGroup waits in {:?}",
                self.group_id,
                self.state
            );
        }
        match self.state {
            GroupState::Empty => {
                assert!(self.members.is_empty(), "group {}: Empty with members", self.group_id);
                assert!(self.join_deadline_ms.is_none() && self.pending_sync.is_empty());
            }
            GroupState::PreparingRebalance => {
                assert!(self.join_deadline_ms.is_some(), "group {}: rebalancing without a deadline", self.group_id)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                assert!(!self.members.is_empty(), "group {}: {:?} without members", self.group_id, self.state);
                assert!(self.join_deadline_ms.is_none());
                let leader = self.leader_id.as_deref().expect("a formed generation has a leader");
                assert!(self.members.contains_key(leader), "group {}: leader {leader} is not a member", self.group_id);
                let protocol = self.protocol_name.as_deref().expect("a formed generation has a protocol");
                assert!(self.members.values().all(|m| m.supports(protocol)), "every member runs {protocol}");
            }
        }
        assert!(self.pending_sync.iter().all(|id| self.members.contains_key(id)));
    }
}
