//! The classic group membership protocol (Kafka's `GroupCoordinator`): JoinGroup, SyncGroup,
//! Heartbeat and LeaveGroup, rebalances and their completion.
//!
//! A rebalance (PreparingRebalance) waits until every member has sent JoinGroup, or until the
//! longest rebalance timeout passes; members that did not rejoin are removed. The first
//! rebalance of an empty group waits `initial_rebalance_delay_ms` more while members keep
//! arriving (KIP-134). Completing it forms the next generation: the protocol most members
//! prefer, a leader (the old one if it stayed, else the first to join), and one JoinGroup
//! answer per member, the leader's listing every member. The leader's SyncGroup carries the
//! assignment, which is written to `__consumer_offsets` before any SyncGroup is answered.
//!
//! Fencing: a request from a member id the group does not know is UNKNOWN_MEMBER_ID, from an
//! old generation ILLEGAL_GENERATION, during a rebalance REBALANCE_IN_PROGRESS, and from a
//! static member whose instance id was taken over FENCED_INSTANCE_ID (KIP-345).

use crate::api::{
    Heartbeat, JoinGroup, JoinGroupResponse, JoinMember, LeaveGroup, LeaveGroupResponse, Response, SyncGroup,
    SyncGroupResponse, Token, WriteId,
};
use crate::coordinator::{Coordinator, PendingWrite};
use crate::error::{self, ErrorCode};
use crate::group::{Group, GroupState, Member};
use crate::records::OffsetsRecord;

/// The longest string a group record can hold (an i16 length, `records.rs`).
pub const STORED_STRING_BYTES_MAX: usize = i16::MAX as usize;

impl Coordinator {
    pub(crate) fn join(&mut self, token: Token, join: JoinGroup) {
        if let Err(code) = self.validate_join(&join) {
            return self.respond(token, Response::Join(JoinGroupResponse::error(code, &join.member_id)));
        }
        if !self.groups.contains_key(&join.group_id) {
            if !join.member_id.is_empty() {
                let response = JoinGroupResponse::error(error::UNKNOWN_MEMBER_ID, &join.member_id);
                return self.respond(token, Response::Join(response));
            }
            if self.groups.len() >= self.config.groups_max {
                // A bound of ours, not Kafka's: the client retries, as after a coordinator move.
                let response = JoinGroupResponse::error(error::COORDINATOR_NOT_AVAILABLE, &join.member_id);
                return self.respond(token, Response::Join(response));
            }
            self.groups.insert(join.group_id.clone(), Group::new(&join.group_id, self.now.wall_ms));
        }
        let group = self.groups.get_mut(&join.group_id).expect("inserted above");
        if let Some(consumer) = &group.consumer {
            if !consumer.members.is_empty() {
                // KIP-848: a classic member cannot join a consumer group that has members.
                let response = JoinGroupResponse::error(error::INCONSISTENT_GROUP_PROTOCOL, &join.member_id);
                return self.respond(token, Response::Join(response));
            }
            // An empty consumer group becomes a classic one, keeping its offsets.
            group.consumer = None;
            group.protocol_type = None;
            let tombstone = OffsetsRecord::ConsumerGroup { group_id: join.group_id.clone(), value: None };
            self.persist(vec![tombstone], PendingWrite::Unanswered);
        }
        let group = self.groups.get(&join.group_id).expect("exists");
        if !group.accepts_joining_member(&join.member_id, self.config.group_size_max) {
            return self.refuse_over_max_size(token, &join.group_id, &join.member_id);
        }
        if join.member_id.is_empty() {
            self.join_unknown_member(token, join);
        } else {
            self.join_known_member(token, join);
        }
    }

    fn validate_join(&self, join: &JoinGroup) -> Result<(), ErrorCode> {
        if join.group_id.is_empty() {
            return Err(error::INVALID_GROUP_ID);
        }
        let timeouts = self.config.session_timeout_ms_min..=self.config.session_timeout_ms_max;
        if !timeouts.contains(&join.session_timeout_ms) {
            return Err(error::INVALID_SESSION_TIMEOUT);
        }
        // Every string is stored in an i16-length field of the group's record.
        let strings = [&join.member_id_candidate, &join.client_id, &join.client_host, &join.protocol_type]
            .into_iter()
            .chain(join.group_instance_id.as_ref())
            .chain(join.protocols.iter().map(|p| &p.name));
        if strings.into_iter().any(|text| text.len() > STORED_STRING_BYTES_MAX) {
            return Err(error::INVALID_REQUEST);
        }
        if join.protocol_type.is_empty() || join.protocols.is_empty() {
            return Err(error::INCONSISTENT_GROUP_PROTOCOL);
        }
        Ok(())
    }

    /// GROUP_MAX_SIZE_REACHED, with no member id, as Kafka's `handleJoinGroup` answers when
    /// `acceptJoiningMember` refuses; the refused member id is removed from the group (a
    /// handed-out id, or a member that had not rejoined this rebalance), so it is unknown next.
    fn refuse_over_max_size(&mut self, token: Token, group_id: &str, member_id: &str) {
        let response = JoinGroupResponse::error(error::GROUP_MAX_SIZE_REACHED, "");
        self.respond(token, Response::Join(response));
        let group = self.groups.get_mut(group_id).expect("exists");
        group.pending_members.remove(member_id);
        if let Some(member) = group.members.get(member_id) {
            // Only a rebalance turns a member away, and only one not waiting in a JoinGroup.
            assert!(group.state == GroupState::PreparingRebalance && member.waiting_join.is_none());
            self.remove_members(group_id, &[member_id.to_owned()]);
        } else {
            // A rebalance may have waited only for the dropped id (Kafka completes the join
            // after every JoinGroup if it can).
            self.try_complete_join(group_id);
        }
    }

    fn join_unknown_member(&mut self, token: Token, join: JoinGroup) {
        let group = &self.groups[&join.group_id];
        if !group.accepts(&join.protocol_type, &join.protocols, None) {
            let response = JoinGroupResponse::error(error::INCONSISTENT_GROUP_PROTOCOL, "");
            return self.respond(token, Response::Join(response));
        }
        let new_id = join.member_id_candidate.clone();
        assert!(!new_id.is_empty(), "the shell gives every JoinGroup a member id candidate");
        if let Some(instance) = &join.group_instance_id {
            if let Some(old_id) = group.static_member(instance).map(str::to_owned) {
                return self.replace_static_member(token, join, &old_id);
            }
            return self.add_member(token, join, new_id);
        }
        if join.require_known_member_id {
            // KIP-394: hand out the id; the member joins again with it within the session
            // timeout of this JoinGroup (Kafka's `addPendingMemberExpiration`), not the 5-minute
            // new-member join timeout, which bounds members already added and waiting.
            let deadline = self.now.monotonic_ms + i64::from(join.session_timeout_ms);
            let group = self.groups.get_mut(&join.group_id).expect("created above");
            group.pending_members.insert(new_id.clone(), deadline);
            let response = JoinGroupResponse::error(error::MEMBER_ID_REQUIRED, &new_id);
            return self.respond(token, Response::Join(response));
        }
        self.add_member(token, join, new_id);
    }

    fn join_known_member(&mut self, token: Token, join: JoinGroup) {
        let group = self.groups.get_mut(&join.group_id).expect("exists");
        let member_id = join.member_id.clone();
        if group.is_fenced(&member_id, join.group_instance_id.as_deref()) {
            let response = JoinGroupResponse::error(error::FENCED_INSTANCE_ID, &member_id);
            return self.respond(token, Response::Join(response));
        }
        let now_ms = self.now.monotonic_ms;
        // A handed-out id past its deadline is unknown even before a tick drops it.
        if group.pending_members.remove(&member_id).is_some_and(|deadline| now_ms < deadline) {
            if !group.accepts(&join.protocol_type, &join.protocols, None) {
                let response = JoinGroupResponse::error(error::INCONSISTENT_GROUP_PROTOCOL, &member_id);
                return self.respond(token, Response::Join(response));
            }
            return self.add_member(token, join, member_id);
        }
        let Some(member) = group.members.get(&member_id) else {
            let response = JoinGroupResponse::error(error::UNKNOWN_MEMBER_ID, &member_id);
            return self.respond(token, Response::Join(response));
        };
        if !group.accepts(&join.protocol_type, &join.protocols, Some(&member_id)) {
            let response = JoinGroupResponse::error(error::INCONSISTENT_GROUP_PROTOCOL, &member_id);
            return self.respond(token, Response::Join(response));
        }
        let unchanged = member.same_protocols(&join.protocols);
        let is_leader = group.leader_id.as_deref() == Some(member_id.as_str());
        match group.state {
            GroupState::Empty => unreachable!("an Empty group has no members"),
            GroupState::PreparingRebalance => {
                self.update_member(&join, token);
                self.try_complete_join(&join.group_id);
            }
            GroupState::CompletingRebalance if unchanged => {
                // A retried JoinGroup: the same answer again (the leader's lists the members).
                let response = join_answer(group, &member_id);
                let member = group.members.get_mut(&member_id).expect("known");
                member.refresh_session(self.now.monotonic_ms);
                self.respond(token, Response::Join(response));
            }
            GroupState::Stable if unchanged && !is_leader => {
                let response = join_answer(group, &member_id);
                let member = group.members.get_mut(&member_id).expect("known");
                member.refresh_session(self.now.monotonic_ms);
                self.respond(token, Response::Join(response));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                // New protocols, or the leader rejoining (it wants to reassign): rebalance.
                self.update_member(&join, token);
                self.prepare_rebalance(&join.group_id);
            }
        }
    }

    /// A known member's JoinGroup during a rebalance: its protocols and timeouts may change,
    /// and it now waits for the join to complete.
    fn update_member(&mut self, join: &JoinGroup, token: Token) {
        let group = self.groups.get_mut(&join.group_id).expect("exists");
        let member = group.members.get_mut(&join.member_id).expect("known member");
        member.protocols = join.protocols.clone();
        member.session_timeout_ms = join.session_timeout_ms;
        member.rebalance_timeout_ms = join.rebalance_timeout_ms;
        member.client_id = join.client_id.clone();
        member.client_host = join.client_host.clone();
        member.refresh_session(self.now.monotonic_ms);
        let superseded = member.waiting_join.replace(token);
        if let Some(old) = superseded {
            // The client gave up on that request and sent this one; the old one gets an error.
            let response = JoinGroupResponse::error(error::REBALANCE_IN_PROGRESS, &join.member_id);
            self.respond(old, Response::Join(response));
        }
    }

    fn add_member(&mut self, token: Token, join: JoinGroup, member_id: String) {
        let now_ms = self.now.monotonic_ms;
        let group = self.groups.get_mut(&join.group_id).expect("exists");
        assert!(!group.members.contains_key(&member_id), "member id {member_id} reused");
        assert!(!group.pending_members.contains_key(&member_id), "a pending id joins once");
        if group.members.is_empty() {
            group.protocol_type = Some(join.protocol_type.clone());
        }
        let mut member = Member {
            member_id: member_id.clone(),
            group_instance_id: join.group_instance_id.clone(),
            client_id: join.client_id,
            client_host: join.client_host,
            session_timeout_ms: join.session_timeout_ms,
            rebalance_timeout_ms: join.rebalance_timeout_ms,
            protocols: join.protocols,
            assignment: bytes::Bytes::new(),
            joined_seq: group.next_joined_seq,
            waiting_join: Some(token),
            waiting_sync: None,
            session_deadline_ms: 0,
        };
        member.refresh_session(now_ms);
        group.next_joined_seq += 1;
        if let Some(instance) = &join.group_instance_id {
            group.static_members.insert(instance.clone(), member_id.clone());
        }
        group.members.insert(member_id, member);
        match group.state {
            GroupState::PreparingRebalance => {
                if let Some(limit) = group.initial_join_limit_ms {
                    // KIP-134: another member arrived during the initial delay: wait again.
                    let delay = self.config.initial_rebalance_delay_ms;
                    group.join_deadline_ms = Some((now_ms + delay).min(limit.max(now_ms)));
                }
                self.try_complete_join(&join.group_id);
            }
            _ => self.prepare_rebalance(&join.group_id),
        }
    }

    /// KIP-345: a static member rejoining with a new member id takes over its instance id; the
    /// old member id is fenced. In a stable group with unchanged protocols there is no
    /// rebalance: the new id is stored, and the member gets the current generation.
    fn replace_static_member(&mut self, token: Token, join: JoinGroup, old_id: &str) {
        let new_id = join.member_id_candidate.clone();
        let group = self.groups.get_mut(&join.group_id).expect("exists");
        let mut member = group.members.remove(old_id).expect("static map points at a member");
        let fenced = [member.waiting_join.take(), member.waiting_sync.take()];
        let current_leader = group.leader_id.clone().unwrap_or_default();
        member.member_id = new_id.clone();
        member.client_id = join.client_id.clone();
        member.client_host = join.client_host.clone();
        member.session_timeout_ms = join.session_timeout_ms;
        member.rebalance_timeout_ms = join.rebalance_timeout_ms;
        member.protocols = join.protocols.clone();
        member.refresh_session(self.now.monotonic_ms);
        let instance = join.group_instance_id.clone().expect("static join");
        group.static_members.insert(instance, new_id.clone());
        if group.leader_id.as_deref() == Some(old_id) {
            group.leader_id = Some(new_id.clone());
        }
        if group.pending_sync.remove(old_id) {
            group.pending_sync.insert(new_id.clone());
        }
        let state = group.state;
        group.members.insert(new_id.clone(), member);
        // Kafka's updateStaticMemberAndRebalance: no rebalance unless the next generation's
        // protocol would change (the metadata bytes may differ: they carry owned partitions).
        let unchanged = group.select_protocol() == group.protocol_name;
        for old_token in fenced.into_iter().flatten() {
            let response = match state {
                GroupState::CompletingRebalance => Response::Sync(SyncGroupResponse::error(error::FENCED_INSTANCE_ID)),
                _ => Response::Join(JoinGroupResponse::error(error::FENCED_INSTANCE_ID, old_id)),
            };
            self.respond(old_token, response);
        }
        match state {
            GroupState::Stable if unchanged => {
                let group = self.groups.get_mut(&join.group_id).expect("exists");
                let mut response = join_answer(group, &new_id);
                // The old leader id and no member list: a restarted leader must not run an
                // assignment a stable group would ignore (Kafka, for JoinGroup before v9).
                response.leader = current_leader;
                response.members.clear();
                // The member waits in its JoinGroup while its new id is written, so that a
                // rebalance starting meanwhile includes it.
                group.members.get_mut(&new_id).expect("inserted").waiting_join = Some(token);
                let then = PendingWrite::StaticRejoin {
                    group_id: join.group_id.clone(),
                    member_id: new_id.clone(),
                    token,
                    response,
                };
                let record = self.group_record(&join.group_id);
                self.persist(vec![record], then);
            }
            GroupState::PreparingRebalance => {
                let group = self.groups.get_mut(&join.group_id).expect("exists");
                group.members.get_mut(&new_id).expect("inserted").waiting_join = Some(token);
                self.try_complete_join(&join.group_id);
            }
            _ => {
                let group = self.groups.get_mut(&join.group_id).expect("exists");
                group.members.get_mut(&new_id).expect("inserted").waiting_join = Some(token);
                self.prepare_rebalance(&join.group_id);
            }
        }
    }

    /// Starts a rebalance: SyncGroups waiting for the old generation's assignment fail with
    /// REBALANCE_IN_PROGRESS, and members have until the rebalance timeout to rejoin.
    pub(crate) fn prepare_rebalance(&mut self, group_id: &str) {
        let now = self.now;
        let initial_delay_ms = self.config.initial_rebalance_delay_ms;
        let group = self.groups.get_mut(group_id).expect("exists");
        assert_ne!(group.state, GroupState::PreparingRebalance, "already rebalancing");
        let failed_syncs: Vec<Token> = group.members.values_mut().filter_map(|m| m.waiting_sync.take()).collect();
        for member in group.members.values_mut() {
            member.assignment = bytes::Bytes::new();
        }
        group.assignment_write = None;
        group.pending_sync.clear();
        group.sync_deadline_ms = None;
        let rebalance_timeout_ms = group.rebalance_timeout_ms();
        if group.state == GroupState::Empty && initial_delay_ms > 0 {
            // KIP-134: the first rebalance of an empty group waits for more members.
            group.join_deadline_ms = Some(now.monotonic_ms + initial_delay_ms.min(rebalance_timeout_ms));
            group.initial_join_limit_ms = Some(now.monotonic_ms + rebalance_timeout_ms);
        } else {
            group.join_deadline_ms = Some(now.monotonic_ms + rebalance_timeout_ms);
            group.initial_join_limit_ms = None;
        }
        group.state = GroupState::PreparingRebalance;
        group.state_timestamp_ms = now.wall_ms;
        for token in failed_syncs {
            self.respond(token, Response::Sync(SyncGroupResponse::error(error::REBALANCE_IN_PROGRESS)));
        }
        self.try_complete_join(group_id);
    }

    /// Completes the rebalance now if nobody else is expected (not during an initial delay,
    /// which only its deadline ends).
    pub(crate) fn try_complete_join(&mut self, group_id: &str) {
        let Some(group) = self.groups.get(group_id) else { return };
        if group.state == GroupState::PreparingRebalance
            && group.initial_join_limit_ms.is_none()
            && group.all_members_joined()
        {
            self.complete_join(group_id);
        }
    }

    /// Forms the next generation from the members that rejoined (Kafka's `onCompleteJoin`).
    /// Dynamic members that did not rejoin are removed; static members stay (KIP-345: a
    /// restarting static member keeps its place until its session ends). If nobody rejoined
    /// but static members remain, the rebalance waits another rebalance timeout.
    pub(crate) fn complete_join(&mut self, group_id: &str) {
        let now = self.now;
        let group = self.groups.get_mut(group_id).expect("exists");
        assert_eq!(group.state, GroupState::PreparingRebalance);
        let absent: Vec<String> = group
            .members
            .values()
            .filter(|m| m.waiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in &absent {
            group.members.remove(member_id).expect("listed");
        }
        // Handed-out ids stay pending until they join, leave or their session ends, as in
        // Kafka's `onCompleteJoin` (KIP-394): a member may use its id in the next generation.
        group.initial_join_limit_ms = None;
        let joined: Vec<&Member> = group.members.values().filter(|m| m.waiting_join.is_some()).collect();
        if joined.is_empty() && !group.members.is_empty() {
            group.join_deadline_ms = Some(now.monotonic_ms + group.rebalance_timeout_ms());
            return;
        }
        let leader_rejoined = group.leader_id.as_ref().is_some_and(|l| joined.iter().any(|m| &m.member_id == l));
        if !leader_rejoined {
            group.leader_id = joined.iter().min_by_key(|m| m.joined_seq).map(|m| m.member_id.clone());
        }
        group.join_deadline_ms = None;
        group.generation_id = group.generation_id.checked_add(1).unwrap_or(1);
        group.state_timestamp_ms = now.wall_ms;
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.protocol_name = None;
            group.leader_id = None;
            let record = self.group_record(group_id);
            self.persist(vec![record], PendingWrite::Unanswered);
            return;
        }
        group.protocol_name = Some(group.select_protocol().expect("members share a protocol (checked on join)"));
        group.state = GroupState::CompletingRebalance;
        group.pending_sync = group.members.keys().cloned().collect();
        group.sync_deadline_ms = Some(now.monotonic_ms + group.rebalance_timeout_ms());
        let mut answers = Vec::new();
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for member_id in ids {
            let response = join_answer(group, &member_id);
            let member = group.members.get_mut(&member_id).expect("listed");
            if let Some(token) = member.waiting_join.take() {
                member.refresh_session(now.monotonic_ms);
                answers.push((token, response));
            }
        }
        for (token, response) in answers {
            self.respond(token, Response::Join(response));
        }
    }

    pub(crate) fn sync(&mut self, token: Token, sync: SyncGroup) {
        let now_ms = self.now.monotonic_ms;
        let fail = |code| Response::Sync(SyncGroupResponse::error(code));
        let Some(group) = self.groups.get_mut(&sync.group_id) else {
            return self.respond(token, fail(error::UNKNOWN_MEMBER_ID));
        };
        if group.is_fenced(&sync.member_id, sync.group_instance_id.as_deref()) {
            return self.respond(token, fail(error::FENCED_INSTANCE_ID));
        }
        if !group.members.contains_key(&sync.member_id) {
            return self.respond(token, fail(error::UNKNOWN_MEMBER_ID));
        }
        if sync.generation_id != group.generation_id {
            return self.respond(token, fail(error::ILLEGAL_GENERATION));
        }
        let type_differs = sync.protocol_type.as_ref().is_some_and(|t| Some(t) != group.protocol_type.as_ref());
        let name_differs = sync.protocol_name.as_ref().is_some_and(|n| Some(n) != group.protocol_name.as_ref());
        if type_differs || name_differs {
            return self.respond(token, fail(error::INCONSISTENT_GROUP_PROTOCOL));
        }
        match group.state {
            GroupState::Empty => unreachable!("an Empty group has no members"),
            GroupState::PreparingRebalance => self.respond(token, fail(error::REBALANCE_IN_PROGRESS)),
            GroupState::Stable => {
                group.pending_sync.remove(&sync.member_id);
                let member = group.members.get_mut(&sync.member_id).expect("checked");
                member.refresh_session(now_ms);
                let response = SyncGroupResponse {
                    error: error::NONE,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                self.respond(token, Response::Sync(response));
            }
            GroupState::CompletingRebalance => {
                group.pending_sync.remove(&sync.member_id);
                let member = group.members.get_mut(&sync.member_id).expect("checked");
                member.refresh_session(now_ms);
                let superseded = member.waiting_sync.replace(token);
                let is_leader = group.leader_id.as_deref() == Some(sync.member_id.as_str());
                if let Some(old) = superseded {
                    self.respond(old, fail(error::REBALANCE_IN_PROGRESS));
                }
                let group = self.groups.get_mut(&sync.group_id).expect("exists");
                if is_leader && group.assignment_write.is_none() {
                    for (member_id, assignment) in sync.assignments {
                        if let Some(member) = group.members.get_mut(&member_id) {
                            member.assignment = assignment;
                        }
                    }
                    let generation_id = group.generation_id;
                    let record = self.group_record(&sync.group_id);
                    let then = PendingWrite::Assignment { group_id: sync.group_id.clone(), generation_id };
                    let write = self.persist(vec![record], then);
                    self.groups.get_mut(&sync.group_id).expect("exists").assignment_write = Some(write);
                }
            }
        }
    }

    /// The generation's assignment is durable (or failed): answer the waiting SyncGroups.
    pub(crate) fn assignment_persisted(
        &mut self,
        group_id: &str,
        generation_id: i32,
        write: WriteId,
        error: Option<ErrorCode>,
    ) {
        let Some(group) = self.groups.get_mut(group_id) else { return };
        if group.generation_id != generation_id || group.assignment_write != Some(write) {
            return; // A rebalance superseded this generation; its SyncGroups were answered.
        }
        assert_eq!(group.state, GroupState::CompletingRebalance);
        group.assignment_write = None;
        if let Some(code) = error {
            let failed: Vec<Token> = group.members.values_mut().filter_map(|m| m.waiting_sync.take()).collect();
            for token in failed {
                self.respond(token, Response::Sync(SyncGroupResponse::error(code)));
            }
            return self.prepare_rebalance(group_id);
        }
        group.state = GroupState::Stable;
        group.state_timestamp_ms = self.now.wall_ms;
        let mut answers = Vec::new();
        for member in group.members.values_mut() {
            if let Some(token) = member.waiting_sync.take() {
                let response = SyncGroupResponse {
                    error: error::NONE,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                answers.push((token, response));
            }
        }
        for (token, response) in answers {
            self.respond(token, Response::Sync(response));
        }
    }

    pub(crate) fn heartbeat(&mut self, heartbeat: &Heartbeat) -> ErrorCode {
        let now_ms = self.now.monotonic_ms;
        let Some(group) = self.groups.get_mut(&heartbeat.group_id) else {
            return error::UNKNOWN_MEMBER_ID;
        };
        if group.is_fenced(&heartbeat.member_id, heartbeat.group_instance_id.as_deref()) {
            return error::FENCED_INSTANCE_ID;
        }
        let state = group.state;
        let generation_id = group.generation_id;
        let Some(member) = group.members.get_mut(&heartbeat.member_id) else {
            return error::UNKNOWN_MEMBER_ID;
        };
        if heartbeat.generation_id != generation_id {
            return error::ILLEGAL_GENERATION;
        }
        member.refresh_session(now_ms);
        match state {
            GroupState::Empty => unreachable!("an Empty group has no members"),
            GroupState::PreparingRebalance => error::REBALANCE_IN_PROGRESS,
            GroupState::CompletingRebalance | GroupState::Stable => error::NONE,
        }
    }

    pub(crate) fn leave(&mut self, leave: LeaveGroup) -> LeaveGroupResponse {
        let mut results = Vec::with_capacity(leave.members.len());
        let mut leaving = Vec::new();
        for who in leave.members {
            let code = match self.groups.get_mut(&leave.group_id) {
                None => error::UNKNOWN_MEMBER_ID,
                Some(group) => {
                    let member_id = match (&who.group_instance_id, who.member_id.is_empty()) {
                        // KIP-345: a static member may leave by instance id alone.
                        (Some(instance), true) => group.static_member(instance).map(str::to_owned),
                        _ => Some(who.member_id.clone()),
                    };
                    match member_id {
                        None => error::UNKNOWN_MEMBER_ID,
                        Some(id) if group.is_fenced(&id, who.group_instance_id.as_deref()) => error::FENCED_INSTANCE_ID,
                        Some(id) if group.pending_members.remove(&id).is_some() => error::NONE,
                        Some(id) if group.members.contains_key(&id) && !leaving.contains(&id) => {
                            leaving.push(id);
                            error::NONE
                        }
                        Some(_) => error::UNKNOWN_MEMBER_ID,
                    }
                }
            };
            results.push((who, code));
        }
        if !leaving.is_empty() {
            self.remove_members(&leave.group_id, &leaving);
        } else {
            self.try_complete_join(&leave.group_id);
        }
        LeaveGroupResponse { error: error::NONE, members: results }
    }

    /// Removes members (they left, their session ended, or they never synced) and moves the
    /// group on: a formed generation rebalances; a rebalance may now be complete.
    pub(crate) fn remove_members(&mut self, group_id: &str, member_ids: &[String]) {
        let group = self.groups.get_mut(group_id).expect("exists");
        let mut answers = Vec::new();
        for member_id in member_ids {
            let member = group.members.remove(member_id).expect("a member");
            if let Some(instance) = &member.group_instance_id {
                group.static_members.remove(instance);
            }
            group.pending_sync.remove(member_id);
            if let Some(token) = member.waiting_join {
                answers.push((token, Response::Join(JoinGroupResponse::error(error::UNKNOWN_MEMBER_ID, member_id))));
            }
            if let Some(token) = member.waiting_sync {
                answers.push((token, Response::Sync(SyncGroupResponse::error(error::UNKNOWN_MEMBER_ID))));
            }
        }
        let state = group.state;
        for (token, response) in answers {
            self.respond(token, response);
        }
        match state {
            GroupState::CompletingRebalance | GroupState::Stable => self.prepare_rebalance(group_id),
            GroupState::PreparingRebalance => self.try_complete_join(group_id),
            GroupState::Empty => unreachable!("members removed from an Empty group"),
        }
    }
}

/// The JoinGroup answer of the current generation for `member_id`: the leader's lists every
/// member with its metadata for the chosen protocol.
fn join_answer(group: &Group, member_id: &str) -> JoinGroupResponse {
    let protocol = group.protocol_name.clone().expect("a formed generation has a protocol");
    let leader = group.leader_id.clone().expect("a formed generation has a leader");
    let members = if leader == member_id {
        group
            .members
            .values()
            .map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol).cloned().expect("every member supports the protocol"),
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinGroupResponse {
        error: error::NONE,
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.clone(),
        protocol_name: Some(protocol),
        leader,
        member_id: member_id.to_owned(),
        members,
    }
}
