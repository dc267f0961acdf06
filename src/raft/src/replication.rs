//! Log replication (Raft §5.3), the commit rule (§5.4.2), log start movement, check-quorum
//! (thesis §6.2) and leadership transfer (thesis §3.10).
//!
//! Leader side: per follower, AppendEntries are pipelined within a window bounded in messages
//! and bytes (`progress.rs`); a rejection carries a hint (the follower's last entry at or below
//! the leader's `prev` with a term no later than it), so the leader skips a whole term of
//! mismatched entries per round trip instead of one entry. A follower whose next entry is
//! below the leader's log start is told the start and resumes from there.
//!
//! Commit: the leader commits index N when a majority of voters (itself counted only for what
//! it has persisted) hold N and N's term is the current term. Entries of earlier terms commit
//! only through such an entry (§5.4.2, Figure 8).

use crate::effect::{Effect, Role};
use crate::membership::Membership;
use crate::message::{EntryMeta, Envelope, LogPosition, Message};
use crate::raft::Raft;
use sluice_types::defect::{self, Defect};
use sluice_types::{NodeId, Offset, Term};

/// The size of Raft's own entries (a leader's no-op, a membership change): Kafka control batches
/// of one record that the shell builds to exactly this size (the broker's
/// `replication/entries.rs` asserts it), so the entry metadata the core records is the batch's.
pub const LEADER_NOOP_BYTES: u32 = 79;
/// The size of a membership change entry: the same control batch with an 8-byte field more (the
/// controller epoch that drove the change, which only the shell reads).
pub const MEMBERSHIP_ENTRY_BYTES: u32 = LEADER_NOOP_BYTES + 8;

impl Raft {
    pub(crate) fn tick_leader(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        if self.heartbeat_elapsed_ticks >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed_ticks = 0;
            self.broadcast_heartbeat();
        }
        if let Some((target, elapsed)) = self.transfer {
            let elapsed = elapsed + 1;
            self.transfer = Some((target, elapsed));
            // Give up after one election timeout (thesis §3.10; etcd raft does the same).
            if elapsed >= self.config.election_timeout_ticks_min {
                self.transfer = None; // The target did not take over in time: abort.
            }
        }
        for progress in self.progress.values_mut() {
            progress.heard_ticks_ago = progress.heard_ticks_ago.saturating_add(1);
        }
        if self.config.check_quorum && !self.quorum_active() {
            // Thesis §6.2: a leader that has not heard from a majority within an election
            // timeout steps down, so clients stop writing to it and a partitioned old leader
            // cannot linger.
            self.become_follower(self.hard.term, None);
        }
    }

    /// Whether a majority of voters (this leader included) answered within the last election
    /// timeout.
    fn quorum_active(&self) -> bool {
        let window = self.config.election_timeout_ticks_min;
        let heard = self
            .voters
            .iter()
            .filter(|voter| {
                **voter == self.config.id || self.progress.get(voter).is_some_and(|p| p.heard_ticks_ago < window)
            })
            .count();
        heard >= self.quorum()
    }

    pub(crate) fn broadcast_append(&mut self) {
        for peer in self.peers() {
            self.send_append(peer, false);
        }
    }

    fn broadcast_heartbeat(&mut self) {
        for peer in self.peers() {
            self.send_append(peer, true);
        }
    }

    /// Sends `peer` what it lacks, within its window; with `heartbeat`, sends an (empty)
    /// AppendEntries even when there is nothing new or the window is full.
    pub(crate) fn send_append(&mut self, peer: NodeId, heartbeat: bool) {
        let Some(progress) = self.progress.get(&peer) else { return };
        let term = self.hard.term;
        let before_start = self.log.before_start();
        if progress.next_prev < before_start.index {
            // The follower needs entries retention removed: move its log start up.
            let membership = self.membership_at(before_start.index);
            let message = Message::LogStart {
                term,
                log_start: self.log.log_start(),
                log_start_term: before_start.term,
                membership,
            };
            self.replicate(peer, message);
            return;
        }
        let prev_index = progress.next_prev;
        let full = progress.window_full(self.config.inflight_messages_max, self.config.inflight_bytes_max);
        let entries = if full { Vec::new() } else { self.log.entries_after(prev_index, self.config.append_bytes_max) };
        if entries.is_empty() && !heartbeat {
            return;
        }
        let prev_term = self.log.term_at(prev_index).expect("the leader holds every entry it replicates from");
        let prev = LogPosition { term: prev_term, index: prev_index };
        // A heartbeat resends nothing; its commit index is capped at what the follower is
        // known to hold, so a follower never commits past its own log (etcd raft).
        let (commit, sent) = match entries.last() {
            Some(last) => {
                (self.log.committed(), Some((last.index, entries.iter().map(|e| u64::from(e.size_bytes)).sum())))
            }
            None => (self.log.committed().min(progress.matched.max(prev_index)), None),
        };
        let log_start = self.log.log_start();
        let message = Message::AppendEntries { term, prev, entries, commit, log_start };
        if let Some((last_index, bytes)) = sent {
            self.progress.get_mut(&peer).expect("present").sent(last_index, bytes);
        }
        self.replicate(peer, message);
    }

    fn replicate(&mut self, to: NodeId, message: Message) {
        let envelope = Envelope { from: self.config.id, to, message };
        self.emit(Effect::Replicate(envelope));
    }

    /// Follower: Raft §5.3's AppendEntries receiver.
    pub(crate) fn handle_append(&mut self, from: NodeId, prev: LogPosition, entries: Vec<EntryMeta>, commit: Offset) {
        self.become_follower(self.hard.term, Some(from));
        let term = self.hard.term;
        let before_start = self.log.before_start();
        // Entries we already removed from our prefix are committed, hence identical (Leader
        // Completeness, §5.4): skip them.
        let (prev, entries) = if prev.index < before_start.index {
            let kept: Vec<EntryMeta> = entries.into_iter().filter(|e| e.index > before_start.index).collect();
            (before_start, kept)
        } else {
            (prev, entries)
        };
        if !self.log.matches(prev) {
            let hint = self.log.hint_at_or_below(prev.index.min(self.log.last().index), prev.term);
            self.send(from, Message::AppendResponse { term, success: false, matched: hint });
            return;
        }
        let mut last_new = prev;
        let mut to_append = Vec::new();
        for entry in entries {
            let position = LogPosition { term: entry.term, index: entry.index };
            if to_append.is_empty() && self.log.matches(position) {
                last_new = position;
                continue; // Already have it.
            }
            if to_append.is_empty() && self.log.last().index > last_new.index {
                // Raft §5.3: a conflicting entry: delete it and all that follow.
                self.log.truncate_after(last_new);
                self.revert_membership_after(last_new.index);
                self.emit(Effect::Truncate { after: last_new });
            }
            to_append.push(entry);
            last_new = position;
        }
        if to_append.is_empty()
            && defect::active(Defect::TruncateOnStaleAppend)
            && self.log.last().index > last_new.index
            && last_new.index >= self.log.committed()
        {
            // Planted defect (simulation only): the stale append's end is taken as the log end.
            self.log.truncate_after(last_new);
            self.revert_membership_after(last_new.index);
            self.emit(Effect::Truncate { after: last_new });
        }
        if !to_append.is_empty() {
            self.log.append(&to_append);
            self.apply_membership_entries(&to_append);
            self.emit(Effect::Append { entries: to_append });
        }
        let commit_to = commit.min(last_new.index);
        if self.log.commit_to(commit_to) {
            self.emit(Effect::Committed { index: commit_to });
        }
        self.send(from, Message::AppendResponse { term, success: true, matched: last_new });
    }

    /// Leader: a follower's answer to an AppendEntries.
    pub(crate) fn handle_append_response(&mut self, from: NodeId, success: bool, matched: LogPosition) {
        if self.role != Role::Leader {
            return;
        }
        let Some(progress) = self.progress.get_mut(&from) else { return };
        progress.heard_ticks_ago = 0;
        if success {
            if progress.acknowledged(matched.index) {
                self.maybe_commit();
            }
        } else {
            // Resume after our last entry at or below the hint whose term is no later than the
            // hint's: every entry in between is known not to match. Resuming at our log start
            // works only if the follower holds the entry before it; unless its hint says so,
            // resume below our log start, so `send_append` sends LogStart (an AppendEntries from
            // our log start would be refused again, forever).
            let before_start = self.log.before_start();
            let resume = self.log.hint_at_or_below(matched.index, matched.term);
            let resume = if resume == before_start && matched != before_start && before_start.index >= Offset(0) {
                Offset(before_start.index.0 - 1)
            } else {
                resume.index
            };
            self.progress.get_mut(&from).expect("present").rejected(resume);
        }
        self.send_append(from, false);
        if let Some((target, _)) = self.transfer
            && target == from
        {
            self.maybe_finish_transfer();
        }
    }

    /// Raft §5.4.2: commit the highest index a majority holds, if it is from the current term.
    pub(crate) fn maybe_commit(&mut self) {
        let mut matched: Vec<Offset> = self
            .voters
            .iter()
            .map(|voter| {
                if *voter == self.config.id {
                    self.log.persisted()
                } else {
                    self.progress.get(voter).expect("a leader tracks every voter's progress").matched
                }
            })
            .collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let majority_index = matched[self.quorum() - 1];
        let current_term_rule = !defect::active(Defect::CommitOldTerm);
        if majority_index <= self.log.committed()
            || (current_term_rule && self.log.term_at(majority_index) != Some(self.hard.term))
        {
            return;
        }
        self.log.commit_to(majority_index);
        self.emit(Effect::Committed { index: majority_index });
        // Followers learn the new commit index promptly.
        for peer in self.peers() {
            self.send_append(peer, true);
        }
    }

    /// Follower: the leader's log starts after our log ends or diverges: start over there.
    pub(crate) fn handle_log_start(
        &mut self,
        from: NodeId,
        log_start: Offset,
        log_start_term: Term,
        membership: Membership,
    ) {
        self.become_follower(self.hard.term, Some(from));
        let before_start = LogPosition { term: log_start_term, index: Offset(log_start.0 - 1) };
        if !self.log.matches(before_start) && before_start.index >= self.log.committed() {
            let committed_before = self.log.committed();
            self.log.reset(before_start);
            // The skipped prefix held any membership changes up to the log start.
            self.membership_history.clear();
            self.set_membership(membership.clone());
            self.emit(Effect::ResetLog { before_start, membership });
            if before_start.index > committed_before {
                // Everything behind the leader's log start is committed (only committed entries
                // are removed from a prefix), so the high watermark moves with it.
                self.emit(Effect::Committed { index: before_start.index });
            }
        }
        // Acknowledge only what is known to match the leader: the leader's `before_start`, or
        // our commit index, whichever is later. Committed entries are in every later leader's
        // log (Leader Completeness, Raft §5.4); an uncommitted suffix may not be, and claiming
        // it would let the leader count entries we do not hold toward a majority.
        let committed = self.log.committed();
        let committed_at =
            LogPosition { term: self.log.term_at(committed).expect("the commit index is held"), index: committed };
        let matched = if self.log.matches(before_start) { before_start.max(committed_at) } else { committed_at };
        self.send(from, Message::AppendResponse { term: self.hard.term, success: true, matched });
    }

    pub(crate) fn start_transfer(&mut self, to: NodeId) {
        if self.role != Role::Leader || to == self.config.id || !self.voters.contains(&to) {
            return;
        }
        self.transfer = Some((to, 0));
        self.maybe_finish_transfer();
        if self.transfer.is_some() {
            self.send_append(to, true);
        }
    }

    /// Thesis §3.10: once the target has the whole log, tell it to campaign now.
    fn maybe_finish_transfer(&mut self) {
        let Some((target, _)) = self.transfer else { return };
        let caught_up = self.progress.get(&target).is_some_and(|p| p.matched == self.log.last().index);
        if caught_up {
            self.send(target, Message::TimeoutNow { term: self.hard.term });
        }
    }
}
