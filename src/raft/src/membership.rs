//! Membership: who votes and who only learns, changed one server at a time (Raft thesis §4.1;
//! KIP-853 for KRaft).
//!
//! A change is a log entry; each replica uses the latest configuration in its log, committed
//! or not (thesis §4.1). Because a truncated change must be undone, replicas keep the history
//! of configurations by the index of the entry that made them. Rules that keep single-server
//! changes safe, each enforced here:
//! - at most one change is uncommitted at a time (thesis §4.1, "the leader may not begin
//!   another change until the previous one is committed");
//! - a learner is promoted only once it holds everything committed (thesis §4.2.1);
//! - the last voter cannot be removed, and a leader does not remove itself (it transfers
//!   leadership first, thesis §3.10).

use crate::effect::Role;
use crate::message::{EntryKind, MembershipChange};
use crate::progress::Progress;
use crate::raft::{ProposeError, Raft};
use sluice_types::{NodeId, Offset};
use std::collections::BTreeSet;

/// Voters and learners, disjoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// The configuration after `change`; `None` when the change makes no sense here.
    pub fn apply(&self, change: MembershipChange) -> Option<Membership> {
        let mut next = self.clone();
        let valid = match change {
            MembershipChange::AddLearner(id) => !self.voters.contains(&id) && next.learners.insert(id),
            MembershipChange::PromoteLearner(id) => next.learners.remove(&id) && next.voters.insert(id),
            MembershipChange::Remove(id) => {
                (next.voters.remove(&id) && !next.voters.is_empty()) || next.learners.remove(&id)
            }
        };
        valid.then_some(next)
    }
}

impl Raft {
    /// Leader: proposes a membership change (an entry of one offset, a Kafka control batch).
    pub fn propose_membership(
        &mut self,
        change: MembershipChange,
    ) -> Result<(crate::message::EntryMeta, Vec<crate::effect::Effect>), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader });
        }
        if self.membership_changed_at() > self.log.committed() {
            return Err(ProposeError::MembershipChangeInProgress);
        }
        // A new leader first commits an entry of its own term (its no-op): otherwise a change
        // it proposes can be decided by a majority that misses an uncommitted change of an
        // earlier leader, and two leaders of different configurations can coexist (Ongaro,
        // raft-dev 2015, "bug in single-server membership changes"; fixed in thesis §4.1).
        if self.log.term_at(self.log.committed()) != Some(self.hard.term) {
            return Err(ProposeError::MembershipChangeInProgress);
        }
        let current = self.membership();
        let invalid = current.apply(change).is_none()
            || matches!(change, MembershipChange::Remove(id) if id == self.config.id)
            || matches!(change, MembershipChange::PromoteLearner(id)
                if self.progress.get(&id).is_none_or(|p| p.matched < self.log.committed()));
        if invalid {
            return Err(ProposeError::InvalidMembershipChange);
        }
        let entry = self.append_own(EntryKind::Membership(change), 1, crate::replication::MEMBERSHIP_ENTRY_BYTES);
        self.broadcast_append();
        Ok((entry, std::mem::take(&mut self.effects)))
    }

    /// The membership as of the entry at `index` (after applying it). The shell persists it for
    /// the position before the log start after retention (`effect.rs`, rule 5).
    pub fn membership_at(&self, index: Offset) -> Membership {
        self.membership_history
            .iter()
            .find(|(changed_at, _)| *changed_at > index)
            .map_or_else(|| self.membership(), |(_, before)| before.clone())
    }

    pub fn membership(&self) -> Membership {
        Membership { voters: self.voters.clone(), learners: self.learners.clone() }
    }

    /// Whether the entry that made the current configuration is committed (no change pending).
    pub fn membership_committed(&self) -> bool {
        self.membership_changed_at() <= self.log.committed()
    }

    /// The index of the entry that made the current configuration (-1: the initial one).
    pub(crate) fn membership_changed_at(&self) -> Offset {
        self.membership_history.last().map_or(Offset(-1), |(index, _)| *index)
    }

    /// Applies membership entries just appended to the log.
    pub(crate) fn apply_membership_entries(&mut self, entries: &[crate::message::EntryMeta]) {
        for entry in entries {
            let EntryKind::Membership(change) = entry.kind else { continue };
            let next = self.membership().apply(change).expect("a membership entry valid when proposed stays valid");
            self.membership_history.push((entry.index, self.membership()));
            self.set_membership(next);
        }
    }

    /// Undoes membership entries removed by a truncation after `kept`.
    pub(crate) fn revert_membership_after(&mut self, kept: Offset) {
        while let Some((index, previous)) = self.membership_history.last().cloned() {
            if index <= kept {
                break;
            }
            self.membership_history.pop();
            self.set_membership(previous);
        }
    }

    pub(crate) fn set_membership(&mut self, next: Membership) {
        assert!(next.voters.is_disjoint(&next.learners));
        let last = self.log.last().index;
        if self.role == Role::Leader {
            for peer in next.voters.iter().chain(next.learners.iter()) {
                if *peer != self.config.id && !self.progress.contains_key(peer) {
                    self.progress.insert(*peer, Progress::new(last));
                }
            }
            let members: BTreeSet<NodeId> = next.voters.union(&next.learners).copied().collect();
            self.progress.retain(|peer, _| members.contains(peer));
        }
        self.voters = next.voters;
        self.learners = next.learners;
        let is_voter = self.voters.contains(&self.config.id);
        match self.role {
            Role::Learner if is_voter => self.role = Role::Follower,
            Role::Follower if self.learners.contains(&self.config.id) => self.role = Role::Learner,
            _ => {}
        }
    }
}
