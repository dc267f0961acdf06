//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete, DeleteGroups and offset
//! retention (Kafka's `GroupCoordinator.handleCommitOffsets` and `GroupMetadataManager`).
//!
//! A commit is validated against the group (a member of the current generation, or a
//! standalone consumer with generation -1 on a group without members), written, and applied
//! only when durable, so OffsetFetch never returns an offset a failover could lose
//! (GroupOffsetsDurable). Retention (KIP-211): a group's offsets expire
//! `offsets_retention_ms` after the group became empty; a standalone group's, per offset, that
//! long after its commit. KIP-496: a Stable group of protocol type "consumer" whose members'
//! subscriptions are known loses, that long after their commit, the offsets of topics no member
//! subscribes to; a KIP-848 consumer group likewise, in any state (Kafka's
//! `offsetExpirationCondition` and `isSubscribedToTopic`).
//!
//! KIP-848: OffsetCommit and OffsetFetch (v9) of a consumer group name a member and its epoch
//! (Kafka's `ConsumerGroup.validateOffsetCommit` and `validateOffsetFetch`); member epoch -1
//! is an admin or standalone request, which a commit may make only to a group without members.

use crate::api::{
    CommittedOffset, DeleteGroupsResponse, FetchedOffset, OffsetCommit, OffsetCommitResponse, OffsetDelete,
    OffsetDeleteResponse, OffsetFetch, Response, Token, TopicPartition,
};
use crate::consumer_protocol::subscribed_topics;
use crate::coordinator::{Coordinator, EXPIRED_OFFSETS_PER_TICK_MAX, PendingWrite};
use crate::error::{self, ErrorCode};
use crate::group::{Group, GroupState};
use crate::records::OffsetsRecord;
use std::collections::{BTreeMap, BTreeSet};

/// The protocol type of Kafka consumers: its members' metadata lists subscribed topics.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// One partition of a commit in flight: the offset to apply when durable, or the error it
/// already has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingCommit {
    pub partition: TopicPartition,
    pub result: Result<CommittedOffset, ErrorCode>,
}

impl Coordinator {
    pub(crate) fn commit(&mut self, token: Token, commit: OffsetCommit) {
        let all_fail = |code: ErrorCode, commit: &OffsetCommit| {
            let partitions = commit.offsets.iter().map(|(partition, ..)| (partition.clone(), code)).collect();
            Response::Commit(OffsetCommitResponse { partitions })
        };
        if let Err(code) = self.validate_commit(&commit) {
            let response = all_fail(code, &commit);
            return self.respond(token, response);
        }
        if !self.groups.contains_key(&commit.group_id) {
            // A standalone consumer's first commit creates its (Empty) group.
            self.groups.insert(commit.group_id.clone(), Group::new(&commit.group_id, self.now.wall_ms));
        }
        let group = self.groups.get_mut(&commit.group_id).expect("exists");
        if let Some(member) = group.members.get_mut(&commit.member_id) {
            member.refresh_session(self.now.monotonic_ms);
        }
        let metadata_max = self.config.offset_metadata_bytes_max;
        let pending: Vec<PendingCommit> = commit
            .offsets
            .into_iter()
            .map(|(partition, offset, leader_epoch, metadata)| {
                let metadata = metadata.unwrap_or_default();
                let result = if metadata.len() > metadata_max {
                    Err(error::OFFSET_METADATA_TOO_LARGE)
                } else {
                    Ok(CommittedOffset { offset, leader_epoch, metadata, commit_timestamp_ms: self.now.wall_ms })
                };
                PendingCommit { partition, result }
            })
            .collect();
        let records: Vec<OffsetsRecord> = pending
            .iter()
            .filter_map(|p| {
                let value = p.result.as_ref().ok()?.clone();
                Some(OffsetsRecord::Offset {
                    group_id: commit.group_id.clone(),
                    partition: p.partition.clone(),
                    value: Some(value),
                })
            })
            .collect();
        if records.is_empty() {
            return self.commit_persisted(token, &commit.group_id, pending, None);
        }
        self.persist(records, PendingWrite::Commit { token, group_id: commit.group_id, commit: pending });
    }

    /// Kafka's `validateOffsetCommit` then `doCommitOffsets`, in their order. An empty group id
    /// is valid for OffsetCommit (Kafka's `isValidGroupId`).
    fn validate_commit(&self, commit: &OffsetCommit) -> Result<(), ErrorCode> {
        let Some(group) = self.groups.get(&commit.group_id) else {
            if commit.generation_id < 0 {
                if self.groups.len() >= self.config.groups_max {
                    return Err(error::COORDINATOR_NOT_AVAILABLE);
                }
                return Ok(()); // Standalone commit: the group is created.
            }
            return Err(error::ILLEGAL_GENERATION);
        };
        if let Some(consumer) = &group.consumer {
            // KIP-848 (`ConsumerGroup.validateOffsetCommit`): epoch -1 to a group without
            // members is an admin or standalone commit, whatever the member id; else a member
            // commits with its member epoch.
            if commit.generation_id < 0 && consumer.members.is_empty() {
                return Ok(());
            }
            let member = consumer.members.get(&commit.member_id).ok_or(error::UNKNOWN_MEMBER_ID)?;
            return if commit.generation_id == member.member_epoch { Ok(()) } else { Err(error::STALE_MEMBER_EPOCH) };
        }
        let claims_membership =
            commit.generation_id >= 0 || !commit.member_id.is_empty() || commit.group_instance_id.is_some();
        if !claims_membership {
            // A standalone commit: only while the group has no members.
            return if group.is_empty() { Ok(()) } else { Err(error::UNKNOWN_MEMBER_ID) };
        }
        if group.is_fenced(&commit.member_id, commit.group_instance_id.as_deref()) {
            return Err(error::FENCED_INSTANCE_ID);
        }
        if !group.members.contains_key(&commit.member_id) {
            return Err(error::UNKNOWN_MEMBER_ID);
        }
        if commit.generation_id != group.generation_id {
            return Err(error::ILLEGAL_GENERATION);
        }
        if group.state == GroupState::CompletingRebalance {
            return Err(error::REBALANCE_IN_PROGRESS);
        }
        Ok(())
    }

    /// A commit's records are durable (or failed): apply and answer.
    pub(crate) fn commit_persisted(
        &mut self,
        token: Token,
        group_id: &str,
        commit: Vec<PendingCommit>,
        error: Option<ErrorCode>,
    ) {
        let mut partitions = Vec::with_capacity(commit.len());
        for PendingCommit { partition, result } in commit {
            let code = match (result, error) {
                (Err(code), _) | (Ok(_), Some(code)) => code,
                (Ok(offset), None) => {
                    // A group deleted while the commit was written has tombstones after it in
                    // the log, so a replay drops it too: apply only to a group that exists.
                    if let Some(group) = self.groups.get_mut(group_id) {
                        group.offsets.insert(partition.clone(), offset);
                    }
                    error::NONE
                }
            };
            partitions.push((partition, code));
        }
        self.respond(token, Response::Commit(OffsetCommitResponse { partitions }));
    }

    /// OffsetFetch of one group, with its member check (v9, KIP-848): the offsets as
    /// [`Coordinator::fetch_offsets_stable`] gives them, or the group's error.
    pub fn offset_fetch(&self, fetch: &OffsetFetch) -> Result<Vec<FetchedOffset>, ErrorCode> {
        self.validate_offset_fetch(fetch)?;
        Ok(self.fetch_offsets_stable(&fetch.group_id, fetch.partitions.as_deref(), fetch.require_stable))
    }

    /// Kafka's `ConsumerGroup.validateOffsetFetch`: a fetch naming a member of a consumer group
    /// must name a member (UNKNOWN_MEMBER_ID) at its epoch (STALE_MEMBER_EPOCH); one naming no
    /// member with epoch -1 (the admin client, versions before 9) is allowed. Classic groups
    /// and unknown groups check nothing (`ClassicGroup.validateOffsetFetch`).
    fn validate_offset_fetch(&self, fetch: &OffsetFetch) -> Result<(), ErrorCode> {
        let Some(consumer) = self.groups.get(&fetch.group_id).and_then(|g| g.consumer.as_ref()) else {
            return Ok(());
        };
        if fetch.member_id.is_none() && fetch.member_epoch < 0 {
            return Ok(());
        }
        let member = fetch.member_id.as_deref().and_then(|id| consumer.members.get(id));
        let member = member.ok_or(error::UNKNOWN_MEMBER_ID)?;
        if member.member_epoch == fetch.member_epoch { Ok(()) } else { Err(error::STALE_MEMBER_EPOCH) }
    }

    /// OffsetFetch: the durable committed offsets of `partitions`, or of every partition the
    /// group has committed when `None`. Unknown partitions answer offset -1 with no error.
    pub fn fetch_offsets(&self, group_id: &str, partitions: Option<&[TopicPartition]>) -> Vec<FetchedOffset> {
        self.fetch_offsets_stable(group_id, partitions, false)
    }

    /// OffsetFetch v7+ with `require_stable` (KIP-447; the Java consumer always sets it): a
    /// partition with a commit still being written answers UNSTABLE_OFFSET_COMMIT, and the
    /// client retries, rather than read the offset that commit is about to replace.
    pub fn fetch_offsets_stable(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
        require_stable: bool,
    ) -> Vec<FetchedOffset> {
        let group = self.groups.get(group_id);
        let unstable = if require_stable {
            self.commits_in_flight().remove(group_id).unwrap_or_default()
        } else {
            BTreeSet::new()
        };
        let fetched = |partition: &TopicPartition, committed: Option<&CommittedOffset>| FetchedOffset {
            partition: partition.clone(),
            offset: committed.map_or(-1, |c| c.offset),
            leader_epoch: committed.map_or(-1, |c| c.leader_epoch),
            metadata: Some(committed.map(|c| c.metadata.clone()).unwrap_or_default()),
            error: if unstable.contains(partition) { error::UNSTABLE_OFFSET_COMMIT } else { error::NONE },
        };
        match partitions {
            Some(partitions) => partitions.iter().map(|p| fetched(p, group.and_then(|g| g.offsets.get(p)))).collect(),
            None => group.map_or_else(Vec::new, |g| g.offsets.iter().map(|(p, c)| fetched(p, Some(c))).collect()),
        }
    }

    pub(crate) fn offset_delete(&mut self, token: Token, delete: OffsetDelete) {
        let Some(group) = self.groups.get(&delete.group_id) else {
            let response = OffsetDeleteResponse { error: error::GROUP_ID_NOT_FOUND, partitions: Vec::new() };
            return self.respond(token, Response::OffsetDelete(response));
        };
        let consumer = group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE);
        if !group.is_empty() && !consumer {
            let response = OffsetDeleteResponse { error: error::NON_EMPTY_GROUP, partitions: Vec::new() };
            return self.respond(token, Response::OffsetDelete(response));
        }
        // Unknown subscriptions (no protocol chosen yet, metadata that does not parse) count as
        // subscribed to everything, as Kafka's `isSubscribedToTopic` does.
        let subscribed = subscribed_topic_names(group);
        let mut records = Vec::new();
        let mut partitions = Vec::with_capacity(delete.partitions.len());
        for partition in delete.partitions {
            let in_use = subscribed.as_ref().is_none_or(|topics| topics.contains(&partition.topic));
            let code = if !group.is_empty() && in_use {
                error::GROUP_SUBSCRIBED_TO_TOPIC
            } else {
                if group.offsets.contains_key(&partition) {
                    let tombstone = OffsetsRecord::Offset {
                        group_id: delete.group_id.clone(),
                        partition: partition.clone(),
                        value: None,
                    };
                    records.push(tombstone);
                }
                error::NONE
            };
            partitions.push((partition, code));
        }
        let response = OffsetDeleteResponse { error: error::NONE, partitions };
        if records.is_empty() {
            return self.respond(token, Response::OffsetDelete(response));
        }
        // Kafka removes the offsets before the tombstones are written; so does this (the shell
        // reloads from the log if the write fails).
        let group = self.groups.get_mut(&delete.group_id).expect("exists");
        for record in &records {
            if let OffsetsRecord::Offset { partition, .. } = record {
                group.offsets.remove(partition);
            }
        }
        self.persist(records, PendingWrite::OffsetDelete { token, response });
    }

    pub(crate) fn offset_delete_persisted(
        &mut self,
        token: Token,
        mut response: OffsetDeleteResponse,
        error: Option<ErrorCode>,
    ) {
        if let Some(code) = error {
            response.error = code;
        }
        self.respond(token, Response::OffsetDelete(response));
    }

    /// DeleteGroups: every group must be empty (NON_EMPTY_GROUP) and known
    /// (GROUP_ID_NOT_FOUND); a deleted group's offsets and record get tombstones.
    pub(crate) fn delete_groups(&mut self, token: Token, group_ids: Vec<String>) {
        let mut records = Vec::new();
        let mut groups = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            let code = match self.groups.get(&group_id) {
                None => error::GROUP_ID_NOT_FOUND,
                Some(group) if !group.is_empty() => error::NON_EMPTY_GROUP,
                Some(_) => {
                    let group = self.groups.remove(&group_id).expect("exists");
                    if group.consumer.is_some() {
                        records.push(OffsetsRecord::ConsumerGroup { group_id: group_id.clone(), value: None });
                    }
                    for partition in group.offsets.into_keys() {
                        records.push(OffsetsRecord::Offset { group_id: group_id.clone(), partition, value: None });
                    }
                    records.push(OffsetsRecord::Group { group_id: group_id.clone(), value: None });
                    error::NONE
                }
            };
            groups.push((group_id, code));
        }
        let response = DeleteGroupsResponse { groups };
        if records.is_empty() {
            return self.respond(token, Response::DeleteGroups(response));
        }
        self.persist(records, PendingWrite::DeleteGroups { token, response });
    }

    /// Offset retention (KIP-211, KIP-496), at most [`EXPIRED_OFFSETS_PER_TICK_MAX`] offsets per
    /// tick (Kafka's `GroupMetadata.removeExpiredOffsets`). An empty group left with no offsets
    /// is deleted, as Kafka's cleanup does.
    pub(crate) fn expire_offsets(&mut self) {
        let wall_ms = self.now.wall_ms;
        let retention_ms = self.config.offsets_retention_ms;
        let mut records = Vec::new();
        let mut emptied = Vec::new();
        let in_flight = self.commits_in_flight();
        let no_commits = BTreeSet::new();
        for (group_id, group) in self.groups.iter_mut() {
            if records.len() >= EXPIRED_OFFSETS_PER_TICK_MAX {
                break;
            }
            let Some(since) = expire_since(group) else { continue };
            // A partition with a commit being written is not expired (Kafka skips pending
            // commits): the tombstone would land after the commit and erase it.
            let pending = in_flight.get(group_id).unwrap_or(&no_commits);
            let is_old = |partition: &TopicPartition, committed: &CommittedOffset| {
                !pending.contains(partition) && wall_ms.saturating_sub(since.of(committed)) >= retention_ms
            };
            // KIP-496: a group with members keeps the offsets of topics it subscribes to, and all
            // of them while that is unknown (Kafka's `subscribedTopics` is `None` when a member's
            // metadata does not parse). Read only when some offset is old enough.
            let subscribed = if group.is_empty() || !group.offsets.iter().any(|(p, c)| is_old(p, c)) {
                Some(BTreeSet::new())
            } else {
                subscribed_topic_names(group)
            };
            let expired: Vec<TopicPartition> = match &subscribed {
                None => Vec::new(),
                Some(subscribed) => group
                    .offsets
                    .iter()
                    .filter(|(p, c)| is_old(p, c) && !subscribed.contains(&p.topic))
                    .map(|(p, _)| p.clone())
                    .take(EXPIRED_OFFSETS_PER_TICK_MAX - records.len())
                    .collect(),
            };
            for partition in expired {
                group.offsets.remove(&partition);
                records.push(OffsetsRecord::Offset { group_id: group_id.clone(), partition, value: None });
            }
            let standalone = group.protocol_type.is_none();
            let old_enough = wall_ms.saturating_sub(group.state_timestamp_ms) >= retention_ms;
            if group.is_empty()
                && group.offsets.is_empty()
                && (old_enough || standalone)
                && group.pending_members.is_empty()
            {
                emptied.push(group_id.clone());
            }
        }
        assert!(records.len() <= EXPIRED_OFFSETS_PER_TICK_MAX);
        let emptied: Vec<String> = emptied.into_iter().filter(|g| !in_flight.contains_key(g)).collect();
        for group_id in emptied {
            if self.groups.remove(&group_id).is_some_and(|g| g.consumer.is_some()) {
                records.push(OffsetsRecord::ConsumerGroup { group_id: group_id.clone(), value: None });
            }
            records.push(OffsetsRecord::Group { group_id, value: None });
        }
        if !records.is_empty() {
            self.persist(records, PendingWrite::Unanswered);
        }
    }
}

/// From when a group's offsets age (Kafka's `offsetExpirationCondition`).
#[derive(Clone, Copy)]
enum ExpireSince {
    /// Each offset from its commit.
    Commit,
    /// Every offset from when the group became empty (its state timestamp).
    GroupEmptied(i64),
}

impl ExpireSince {
    fn of(self, committed: &CommittedOffset) -> i64 {
        match self {
            ExpireSince::Commit => committed.commit_timestamp_ms,
            ExpireSince::GroupEmptied(state_timestamp_ms) => state_timestamp_ms,
        }
    }
}

/// Whether and how `group`'s offsets expire (Kafka's `ClassicGroup` and `ConsumerGroup`
/// `offsetExpirationCondition`); `None`: none of them do now. Where the group has members, only
/// offsets of topics it does not subscribe to may expire (the caller checks).
fn expire_since(group: &Group) -> Option<ExpireSince> {
    if group.consumer.is_some() {
        // KIP-848: from the commit, whatever the state (a consumer group record has no state
        // timestamp: counting from one would expire everything on a new coordinator).
        return Some(ExpireSince::Commit);
    }
    let Some(protocol_type) = group.protocol_type.as_deref() else {
        return Some(ExpireSince::Commit); // A standalone consumer (offsets only).
    };
    match group.state {
        // Records from before state timestamps (group value v0/v1) read -1: count from the
        // commit then.
        GroupState::Empty if group.state_timestamp_ms < 0 => Some(ExpireSince::Commit),
        GroupState::Empty => Some(ExpireSince::GroupEmptied(group.state_timestamp_ms)),
        // KIP-496: a Stable consumer group, for topics it does not subscribe to.
        GroupState::Stable if protocol_type == CONSUMER_PROTOCOL_TYPE => Some(ExpireSince::Commit),
        GroupState::Stable | GroupState::PreparingRebalance | GroupState::CompletingRebalance => None,
    }
}

impl Coordinator {
    /// The partitions with a commit being written, by group (only groups that have some).
    pub(crate) fn commits_in_flight(&self) -> BTreeMap<String, BTreeSet<TopicPartition>> {
        let mut in_flight: BTreeMap<String, BTreeSet<TopicPartition>> = BTreeMap::new();
        for write in self.writes.values() {
            if let PendingWrite::Commit { group_id, commit, .. } = write {
                let partitions = commit.iter().filter(|c| c.result.is_ok()).map(|c| c.partition.clone());
                in_flight.entry(group_id.clone()).or_default().extend(partitions);
            }
        }
        in_flight.retain(|_, partitions| !partitions.is_empty());
        in_flight
    }
}

/// The topics any member of a consumer group subscribes to, from its chosen protocol's
/// metadata; `None` when that is unknown. For a KIP-848 group: every member's topic names and
/// the topics its target was last computed for (which include what a regex matched).
fn subscribed_topic_names(group: &Group) -> Option<std::collections::BTreeSet<String>> {
    if let Some(consumer) = &group.consumer {
        let names = consumer.members.values().flat_map(|m| m.subscribed_topics.iter());
        return Some(names.chain(consumer.partition_counts.keys()).cloned().collect());
    }
    let protocol = group.protocol_name.as_deref()?;
    let mut topics = std::collections::BTreeSet::new();
    for member in group.members.values() {
        topics.extend(subscribed_topics(member.metadata_for(protocol)?)?);
    }
    Some(topics)
}
