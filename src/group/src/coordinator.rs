//! The coordinator of the groups on one `__consumer_offsets` partition: a state machine driven
//! by [`Input`]s, answering with ordered [`Output`]s. The broker runs one on each partition it
//! leads, built from the partition's records ([`Coordinator::replay`], then
//! [`Coordinator::loaded`]), and drops it when leadership moves (Kafka's
//! `GroupMetadataManager` load and unload).
//!
//! Pure and deterministic: no I/O, no clock (time comes with each input), no randomness (new
//! member ids come with the JoinGroup), ordered maps only.
//!
//! Durability: a write's effect on what is stored is applied only when the write is durable
//! (commits, offset deletes), or is fenced so that a failed write cannot be acknowledged
//! (the assignment of a generation: its SyncGroups are answered after the write). Kafka
//! applies group deletes and offset expiry in memory before the write; so does this; if such a
//! write fails, the shell must reload the coordinator from the log (it fails when leadership
//! moved, and then the coordinator is dropped anyway).

use crate::api::{Input, Output, Request, Response, Time, Token, WriteId};
use crate::config::GroupConfig;
use crate::error::{self, ErrorCode};
use crate::group::{Group, GroupState, Member};
use crate::records::{OffsetsRecord, StoredGroup, StoredMember};
use std::collections::BTreeMap;

/// Offsets expired in one tick at most (the rest wait for the next tick).
pub const EXPIRED_OFFSETS_PER_TICK_MAX: usize = 10_000;

/// What a write in flight will do when it completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PendingWrite {
    /// A generation's assignment: answer its SyncGroups.
    Assignment {
        group_id: String,
        generation_id: i32,
    },
    /// A static member took over its instance id in a stable group: answer its JoinGroup.
    StaticRejoin {
        group_id: String,
        member_id: String,
        token: Token,
        response: crate::api::JoinGroupResponse,
    },
    /// Records no request waits for (an emptied group, expired offsets).
    Unanswered,
    /// Committed offsets, applied when durable.
    Commit {
        token: Token,
        group_id: String,
        commit: Vec<crate::offsets::PendingCommit>,
    },
    /// Offset tombstones, applied when durable.
    OffsetDelete {
        token: Token,
        response: crate::api::OffsetDeleteResponse,
    },
    DeleteGroups {
        token: Token,
        response: crate::api::DeleteGroupsResponse,
    },
    /// A ConsumerGroupHeartbeat's answer, sent once the group's record is durable.
    ConsumerHeartbeat {
        token: Token,
        response: crate::api::ConsumerGroupHeartbeatResponse,
    },
}

/// The coordinator of one `__consumer_offsets` partition.
#[derive(Debug)]
pub struct Coordinator {
    pub(crate) config: GroupConfig,
    pub(crate) groups: BTreeMap<String, Group>,
    pub(crate) writes: BTreeMap<WriteId, PendingWrite>,
    next_write: u64,
    pub(crate) out: Vec<Output>,
    pub(crate) now: Time,
    loaded: bool,
}

impl Coordinator {
    /// An empty coordinator, loading: feed it the partition's records with
    /// [`Coordinator::replay`], then call [`Coordinator::loaded`].
    pub fn new(config: GroupConfig) -> Coordinator {
        assert!(config.session_timeout_ms_min <= config.session_timeout_ms_max);
        assert!(config.group_size_max > 0 && config.groups_max > 0);
        Coordinator {
            config,
            groups: BTreeMap::new(),
            writes: BTreeMap::new(),
            next_write: 0,
            out: Vec::new(),
            now: Time { monotonic_ms: 0, wall_ms: 0 },
            loaded: false,
        }
    }

    /// Applies one record of the partition, in log order, while loading.
    pub fn replay(&mut self, record: &OffsetsRecord) {
        assert!(!self.loaded, "replay after load: a leader applies its own writes");
        match record {
            OffsetsRecord::Offset { group_id, partition, value } => match value {
                Some(value) => {
                    let group = self.groups.entry(group_id.clone()).or_insert_with(|| Group::new(group_id, 0));
                    group.offsets.insert(partition.clone(), value.clone());
                }
                None => {
                    if let Some(group) = self.groups.get_mut(group_id) {
                        group.offsets.remove(partition);
                    }
                }
            },
            OffsetsRecord::ConsumerGroup { group_id, value } => match value {
                Some(stored) => {
                    let group = self.groups.entry(group_id.clone()).or_insert_with(|| Group::new(group_id, 0));
                    *group = Group { offsets: std::mem::take(&mut group.offsets), ..Group::new(group_id, 0) };
                    group.protocol_type = Some("consumer".to_owned());
                    group.consumer = Some(stored.clone());
                }
                None => {
                    if let Some(group) = self.groups.get_mut(group_id) {
                        group.consumer = None;
                        group.protocol_type = None;
                    }
                }
            },
            OffsetsRecord::Group { group_id, value } => match value {
                Some(stored) => {
                    let offsets = self.groups.remove(group_id).map(|g| g.offsets).unwrap_or_default();
                    let mut group = group_from_record(group_id, stored);
                    group.offsets = offsets;
                    self.groups.insert(group_id.clone(), group);
                }
                None => {
                    self.groups.remove(group_id);
                }
            },
        }
    }

    /// Loading is done: groups with members are Stable at their stored generation (or
    /// rebalancing, if more than `group.max.size`), and every member's session starts now
    /// (Kafka's `loadGroup` schedules each member's heartbeat).
    pub fn loaded(&mut self, time: Time) {
        assert!(!self.loaded, "loaded twice");
        self.loaded = true;
        self.now = time;
        for group in self.groups.values_mut() {
            for member in group.members.values_mut() {
                member.refresh_session(time.monotonic_ms);
            }
            let session_ms = i64::from(self.config.consumer_session_timeout_ms);
            for member in group.consumer.iter_mut().flat_map(|c| c.members.values_mut()) {
                member.session_deadline_ms = time.monotonic_ms + session_ms;
                if member.state == crate::consumer_group::MemberState::UnrevokedPartitions {
                    member.revocation_deadline_ms = Some(time.monotonic_ms + i64::from(member.rebalance_timeout_ms));
                }
            }
        }
        // Kafka's `onGroupLoaded`: a group over `group.max.size` (the limit shrank) rebalances,
        // and the members that rejoin last are turned away (`accepts_joining_member`).
        let over: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.members.len() > self.config.group_size_max)
            .map(|g| g.group_id.clone())
            .collect();
        for group_id in &over {
            self.prepare_rebalance(group_id);
        }
        assert!(self.out.is_empty(), "a group just loaded has no requests to answer");
        for group in self.groups.values() {
            group.check_invariants();
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Runs one input and returns what to do, in order.
    pub fn step(&mut self, input: Input, time: Time) -> Vec<Output> {
        assert!(self.loaded, "step before the partition is loaded");
        assert!(time.monotonic_ms >= self.now.monotonic_ms, "monotonic time went back");
        self.now = time;
        match input {
            Input::Request(token, request) => self.request(token, request),
            Input::Tick => self.tick(),
            Input::Persisted { write, error } => self.persisted(write, error),
        }
        std::mem::take(&mut self.out)
    }

    fn request(&mut self, token: Token, request: Request) {
        match request {
            Request::Join(join) => {
                let group_id = join.group_id.clone();
                self.join(token, join);
                self.check_group(&group_id);
            }
            Request::Sync(sync) => {
                let group_id = sync.group_id.clone();
                self.sync(token, sync);
                self.check_group(&group_id);
            }
            Request::Heartbeat(heartbeat) => {
                let code = self.heartbeat(&heartbeat);
                self.respond(token, Response::Heartbeat(code));
            }
            Request::Leave(leave) => {
                let group_id = leave.group_id.clone();
                let response = self.leave(leave);
                self.respond(token, Response::Leave(response));
                self.check_group(&group_id);
            }
            Request::Commit(commit) => self.commit(token, commit),
            Request::OffsetDelete(delete) => self.offset_delete(token, delete),
            Request::DeleteGroups(groups) => self.delete_groups(token, groups),
            Request::ConsumerHeartbeat(heartbeat) => {
                let group_id = heartbeat.group_id.clone();
                self.consumer_heartbeat(token, heartbeat);
                self.check_group(&group_id);
            }
        }
    }

    pub(crate) fn respond(&mut self, token: Token, response: Response) {
        self.out.push(Output::Respond(token, response));
    }

    /// Emits a write and remembers what its completion does.
    pub(crate) fn persist(&mut self, records: Vec<OffsetsRecord>, then: PendingWrite) -> WriteId {
        assert!(!records.is_empty(), "an empty write");
        let write = WriteId(self.next_write);
        self.next_write += 1;
        self.writes.insert(write, then);
        self.out.push(Output::Persist { write, records });
        write
    }

    /// The group's membership record as of now.
    pub(crate) fn group_record(&self, group_id: &str) -> OffsetsRecord {
        let group = &self.groups[group_id];
        let protocol = group.protocol_name.as_deref();
        let members = group
            .members
            .values()
            .map(|m| StoredMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: protocol.and_then(|p| m.metadata_for(p)).cloned().unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect();
        let stored = StoredGroup {
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            generation_id: group.generation_id,
            protocol_name: group.protocol_name.clone(),
            leader: group.leader_id.clone(),
            state_timestamp_ms: group.state_timestamp_ms,
            members,
        };
        OffsetsRecord::Group { group_id: group_id.to_owned(), value: Some(stored) }
    }

    fn persisted(&mut self, write: WriteId, error: Option<ErrorCode>) {
        let pending = self.writes.remove(&write).unwrap_or_else(|| panic!("completion of unknown write {write:?}"));
        match pending {
            PendingWrite::Assignment { group_id, generation_id } => {
                self.assignment_persisted(&group_id, generation_id, write, error);
                self.check_group(&group_id);
            }
            PendingWrite::StaticRejoin { group_id, member_id, token, mut response } => {
                // Answered here only if the member still waits in this JoinGroup in a stable
                // group; a rebalance that began meanwhile answers it when it completes.
                let group = self.groups.get_mut(&group_id);
                let member =
                    group.filter(|g| g.state == GroupState::Stable).and_then(|g| g.members.get_mut(&member_id));
                if let Some(member) = member.filter(|m| m.waiting_join == Some(token)) {
                    member.waiting_join = None;
                    if let Some(code) = error {
                        response = crate::api::JoinGroupResponse::error(code, "");
                    }
                    self.respond(token, Response::Join(response));
                }
                self.check_group(&group_id);
            }
            // A failed write no request waits for changes nothing here: failed writes mean lost
            // leadership, and the shell then drops this coordinator.
            PendingWrite::Unanswered => {}
            PendingWrite::Commit { token, group_id, commit } => self.commit_persisted(token, &group_id, commit, error),
            PendingWrite::OffsetDelete { token, response } => self.offset_delete_persisted(token, response, error),
            PendingWrite::DeleteGroups { token, mut response } => {
                if let Some(code) = error {
                    for (_, result) in response.groups.iter_mut().filter(|(_, r)| *r == error::NONE) {
                        *result = code;
                    }
                }
                self.respond(token, Response::DeleteGroups(response));
            }
            PendingWrite::ConsumerHeartbeat { token, response } => {
                let response = match error {
                    Some(code) => crate::api::ConsumerGroupHeartbeatResponse::error(code, ""),
                    None => response,
                };
                self.respond(token, Response::ConsumerHeartbeat(response));
            }
        }
    }

    /// Time passed: sessions, handed-out member ids, rebalance and sync deadlines, offset
    /// retention.
    fn tick(&mut self) {
        let now_ms = self.now.monotonic_ms;
        let group_ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in &group_ids {
            if let Some(record) = self.expire_consumer_members(group_id, now_ms) {
                self.persist(vec![record], PendingWrite::Unanswered);
            }
            self.expire_members(group_id, now_ms);
            let Some(group) = self.groups.get(group_id) else { continue };
            if group.state == GroupState::PreparingRebalance && group.join_deadline_ms.is_some_and(|d| now_ms >= d) {
                self.complete_join(group_id);
            }
            self.expire_pending_sync(group_id, now_ms);
            self.check_group(group_id);
        }
        self.expire_offsets();
    }

    /// Removes members whose session ended (unless they wait in a JoinGroup or SyncGroup,
    /// which their rebalance and sync deadlines bound) and handed-out ids never used.
    fn expire_members(&mut self, group_id: &str, now_ms: i64) {
        let Some(group) = self.groups.get_mut(group_id) else { return };
        group.pending_members.retain(|_, deadline| now_ms < *deadline);
        let expired: Vec<String> = group
            .members
            .values()
            .filter(|m| m.waiting_join.is_none() && m.waiting_sync.is_none() && now_ms >= m.session_deadline_ms)
            .map(|m| m.member_id.clone())
            .collect();
        if expired.is_empty() {
            // A rebalance may have waited only for the ids just dropped.
            self.try_complete_join(group_id);
        } else {
            self.remove_members(group_id, &expired);
        }
    }

    /// Kafka's pending-sync timeout: members of a new generation that never sent SyncGroup
    /// within the rebalance timeout are removed, and the group rebalances without them.
    fn expire_pending_sync(&mut self, group_id: &str, now_ms: i64) {
        let Some(group) = self.groups.get(group_id) else { return };
        if !matches!(group.state, GroupState::CompletingRebalance | GroupState::Stable) {
            return;
        }
        if group.sync_deadline_ms.is_none_or(|d| now_ms < d) {
            return;
        }
        let late: Vec<String> = group.pending_sync.iter().cloned().collect();
        let group = self.groups.get_mut(group_id).expect("checked above");
        group.sync_deadline_ms = None;
        if !late.is_empty() {
            self.remove_members(group_id, &late);
        }
    }

    /// Checks one group's invariants, if it exists.
    pub(crate) fn check_group(&self, group_id: &str) {
        if let Some(group) = self.groups.get(group_id) {
            group.check_invariants();
            if let Some(write) = group.assignment_write {
                assert!(self.writes.contains_key(&write), "the assignment write is pending");
                assert_eq!(group.state, GroupState::CompletingRebalance);
            }
            if group.state == GroupState::Stable {
                // A member waits in a JoinGroup of a stable group only while its static
                // takeover is being written (KIP-345).
                for member in group.members.values() {
                    let Some(waiting) = member.waiting_join else { continue };
                    let written = self.writes.values().any(|w| {
                        matches!(w, PendingWrite::StaticRejoin { member_id, token, .. }
                            if *member_id == member.member_id && *token == waiting)
                    });
                    assert!(written, "group {group_id}: {} waits in a stable group", member.member_id);
                }
            }
        }
        assert!(self.groups.len() <= self.config.groups_max + 1, "groups bounded by groups_max");
    }

    /// A read-only view of one group.
    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    /// Every group, by id.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Writes in flight.
    pub fn writes_in_flight(&self) -> usize {
        self.writes.len()
    }
}

fn group_from_record(group_id: &str, stored: &StoredGroup) -> Group {
    let mut group = Group::new(group_id, stored.state_timestamp_ms);
    group.generation_id = stored.generation_id;
    group.protocol_type = (!stored.protocol_type.is_empty()).then(|| stored.protocol_type.clone());
    if stored.members.is_empty() {
        return group;
    }
    group.protocol_name = stored.protocol_name.clone();
    group.state = GroupState::Stable;
    for (seq, m) in stored.members.iter().enumerate() {
        let protocols = match &stored.protocol_name {
            Some(name) => vec![crate::api::Protocol { name: name.clone(), metadata: m.subscription.clone() }],
            None => Vec::new(),
        };
        let member = Member {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocols,
            assignment: m.assignment.clone(),
            joined_seq: seq as u64,
            waiting_join: None,
            waiting_sync: None,
            session_deadline_ms: 0,
        };
        if let Some(instance) = &m.group_instance_id {
            group.static_members.insert(instance.clone(), m.member_id.clone());
        }
        group.members.insert(m.member_id.clone(), member);
    }
    group.next_joined_seq = stored.members.len() as u64;
    group.leader_id = stored.leader.clone().filter(|l| group.members.contains_key(l));
    if group.leader_id.is_none() {
        group.leader_id = group.members.keys().next().cloned();
    }
    group
}
