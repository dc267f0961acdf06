//! Elections: pre-vote (Raft thesis §9.6), votes (Raft §5.2, §5.4.1), becoming leader.
//!
//! Pre-vote: a node that times out first asks whether it *would* win at `term + 1`, without
//! changing any term. Only with a majority of yes does it start a real election, so a node
//! that was partitioned away (and kept timing out) cannot force a healthy cluster into a new
//! term when it rejoins. Voters refuse pre-votes and votes while they hear from a leader
//! (leader stickiness, §4.2.3), unless the vote comes from a leadership transfer.

use crate::effect::{Effect, HardState, Role};
use crate::message::{EntryKind, LogPosition, Message};
use crate::progress::Progress;
use crate::raft::Raft;
use sluice_types::{NodeId, Term};

impl Raft {
    /// Starts an election: a pre-vote round first when enabled, unless this is a transfer.
    pub(crate) fn campaign(&mut self, transfer: bool) {
        assert!(self.voters.contains(&self.config.id), "only voters campaign");
        if self.config.pre_vote && !transfer {
            self.role = Role::PreCandidate;
            self.leader = None;
            self.votes.clear();
            self.reset_election_timer();
            self.emit(Effect::LeaderChanged { leader: None, term: self.hard.term, role: Role::PreCandidate });
            self.record_vote(self.config.id, true, true);
            let term = Term(self.hard.term.0 + 1);
            let last = self.log.last();
            for peer in self.voting_peers() {
                self.send(peer, Message::PreVote { term, last });
            }
            return;
        }
        self.become_candidate(transfer);
    }

    fn become_candidate(&mut self, transfer: bool) {
        let term = Term(self.hard.term.0.checked_add(1).expect("term overflow"));
        self.hard = HardState { term, voted_for: Some(self.config.id) };
        // The vote for ourselves must be durable before any vote request goes out (§5.2).
        self.emit(Effect::PersistHardState(self.hard));
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        self.emit(Effect::LeaderChanged { leader: None, term, role: Role::Candidate });
        self.record_vote(self.config.id, true, false);
        let last = self.log.last();
        for peer in self.voting_peers() {
            self.send(peer, Message::Vote { term, last, transfer });
        }
    }

    fn voting_peers(&self) -> Vec<NodeId> {
        self.voters.iter().copied().filter(|id| *id != self.config.id).collect()
    }

    /// Raft §5.4.1: a candidate's log is at least as up-to-date as ours.
    fn up_to_date(&self, last: LogPosition) -> bool {
        last >= self.log.last()
    }

    /// Whether this replica may grant `from` a (pre-)vote, before the log check (etcd raft's
    /// canVote): it already voted for `from`, or has voted for no one and knows no leader, or
    /// (pre-vote only) the asked term is past ours.
    fn can_vote(&self, from: NodeId, term: Term, pre_vote: bool) -> bool {
        self.hard.voted_for == Some(from)
            || (self.hard.voted_for.is_none() && self.leader.is_none())
            || (pre_vote && term > self.hard.term)
    }

    pub(crate) fn handle_pre_vote(&mut self, from: NodeId, term: Term, last: LogPosition) {
        // Leader stickiness (§4.2.3): while a leader is heard from, a pre-vote for a later
        // term is ignored; this is what keeps a flapping node from disturbing the group.
        if term > self.hard.term && self.in_leader_lease() {
            return;
        }
        let granted = self.voters.contains(&from) && self.can_vote(from, term, true) && self.up_to_date(last);
        // A granted answer carries the asked term, so the asker can count it.
        let answer_term = if granted { term } else { self.hard.term };
        self.send(from, Message::PreVoteResponse { term: answer_term, granted });
    }

    pub(crate) fn handle_vote(&mut self, from: NodeId, term: Term, last: LogPosition) {
        assert_eq!(term, self.hard.term, "votes are answered in the current term");
        let granted = self.voters.contains(&from) && self.can_vote(from, term, false) && self.up_to_date(last);
        if granted && self.hard.voted_for.is_none() {
            self.hard.voted_for = Some(from);
            // Raft §5.2: the vote is durable before it is answered (Send waits for persists).
            self.emit(Effect::PersistHardState(self.hard));
        }
        if granted {
            self.reset_election_timer();
        }
        self.send(from, Message::VoteResponse { term: self.hard.term, granted });
    }

    pub(crate) fn handle_vote_response(&mut self, from: NodeId, granted: bool, pre_vote: bool) {
        let expected = if pre_vote { Role::PreCandidate } else { Role::Candidate };
        if self.role != expected {
            return;
        }
        self.record_vote(from, granted, pre_vote);
    }

    /// Counts a vote; wins or loses the round when a majority has decided.
    fn record_vote(&mut self, from: NodeId, granted: bool, pre_vote: bool) {
        if !self.voters.contains(&from) {
            return;
        }
        self.votes.entry(from).or_insert(granted);
        let yes = self.votes.values().filter(|g| **g).count();
        let no = self.votes.values().filter(|g| !**g).count();
        if yes >= self.quorum() {
            if pre_vote {
                self.become_candidate(false);
            } else {
                self.become_leader();
            }
        } else if no >= self.quorum() {
            self.become_follower(self.hard.term, None);
        }
    }

    fn become_leader(&mut self) {
        assert_eq!(self.role, Role::Candidate);
        assert_eq!(self.hard.voted_for, Some(self.config.id));
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        self.votes.clear();
        self.heartbeat_elapsed_ticks = 0;
        self.election_elapsed_ticks = 0;
        let last = self.log.last().index;
        self.progress = self.peers().into_iter().map(|peer| (peer, Progress::new(last))).collect();
        self.emit(Effect::LeaderChanged { leader: Some(self.config.id), term: self.hard.term, role: Role::Leader });
        // Raft §8 / §5.4.2: a new leader appends an entry of its own term at once, so entries
        // of earlier terms can commit. It is a Kafka control batch of one offset.
        self.append_own(EntryKind::LeaderNoop, 1, crate::replication::LEADER_NOOP_BYTES);
        self.broadcast_append();
    }
}
