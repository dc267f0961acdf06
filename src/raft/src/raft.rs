//! `Raft`: one replica's consensus state machine. Role dispatch and the inputs live here;
//! elections are in `election.rs`, the leader's replication in `replication.rs`.
//!
//! Sans-IO: `step` takes an input and returns ordered effects (see `effect.rs` for the
//! contract). Nothing here reads a clock, draws randomness or does I/O: time is `Tick`, and
//! the randomized election timeout arrives with each tick, drawn by the shell's seeded RNG.

use crate::config::Config;
use crate::effect::{Effect, HardState, Role};
use crate::membership::Membership;
use crate::message::{EntryKind, EntryMeta, Envelope, LogPosition, Message};
use crate::progress::Progress;
use crate::raft_log::RaftLog;
use crate::trace::{TRACE_EVENTS_PENDING_MAX, TraceEvent};
use sluice_types::{NodeId, Offset, Term};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// One unit of time. `randomized_election_timeout_ticks` is a fresh random draw in
    /// `[election_timeout_ticks_min, 2 * election_timeout_ticks_min)`; the first tick after the
    /// election timer is reset (or the replica starts) adopts it (Raft §5.2).
    Tick {
        randomized_election_timeout_ticks: u32,
    },
    Receive(Envelope),
    /// The local log is durable up to and including the entry at `last` (index and term). A
    /// position this log no longer holds (a report that raced a truncation) is ignored.
    Persisted {
        last: LogPosition,
    },
    /// Retention or DeleteRecords moved the local log start (committed prefix only).
    LogStartMoved {
        log_start: Offset,
    },
    /// Leader: hand leadership to `to` (Raft thesis §3.10).
    TransferLeadership {
        to: NodeId,
    },
    /// Start an election now (bootstrap and tests).
    Campaign,
}

/// Why a proposal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposeError {
    NotLeader {
        leader: Option<NodeId>,
    },
    /// A leadership transfer is in progress.
    Transferring,
    /// Too many entries are not yet committed.
    Backpressure,
    /// The previous membership change is not committed yet (Raft thesis §4.1).
    MembershipChangeInProgress,
    /// The change does not apply to the current membership, would remove the leader itself or
    /// the last voter, or promotes a learner that has not caught up.
    InvalidMembershipChange,
}

pub struct Raft {
    pub(crate) config: Config,
    pub(crate) hard: HardState,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) voters: BTreeSet<NodeId>,
    pub(crate) learners: BTreeSet<NodeId>,
    pub(crate) log: RaftLog,
    pub(crate) election_elapsed_ticks: u32,
    /// The current randomized election timeout; 0 until the first tick after a reset draws it
    /// (so even the first election after start uses a random timeout, Raft §5.2).
    pub(crate) election_timeout_ticks: u32,
    pub(crate) heartbeat_elapsed_ticks: u32,
    /// Candidate and pre-candidate: the answers so far.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    /// Leader: every other member's progress.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Leader: a transfer in progress, and ticks since it began.
    pub(crate) transfer: Option<(NodeId, u32)>,
    /// (index of a membership entry, the membership before it), oldest first.
    pub(crate) membership_history: Vec<(Offset, Membership)>,
    pub(crate) effects: Vec<Effect>,
    /// `Some` once `enable_trace` was called: the events not yet taken by the shell.
    trace: Option<Vec<TraceEvent>>,
}

impl Raft {
    /// A replica restarting with its persisted hard state and log. `voters` and `learners` are
    /// the membership at the log start; membership entries in `log` are applied on top. It
    /// starts as a follower (or learner) that knows no leader.
    pub fn new(
        config: Config,
        voters: BTreeSet<NodeId>,
        learners: BTreeSet<NodeId>,
        hard: HardState,
        log: RaftLog,
    ) -> Raft {
        config.validate();
        assert!(voters.is_disjoint(&learners), "a member is a voter or a learner, not both");
        log.validate();
        let role = if learners.contains(&config.id) { Role::Learner } else { Role::Follower };
        let entries: Vec<EntryMeta> = log.entries().copied().collect();
        let mut raft = Raft {
            config,
            hard,
            role,
            leader: None,
            voters,
            learners,
            log,
            election_elapsed_ticks: 0,
            election_timeout_ticks: 0,
            heartbeat_elapsed_ticks: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            transfer: None,
            membership_history: Vec::new(),
            effects: Vec::new(),
            trace: None,
        };
        raft.apply_membership_entries(&entries);
        raft
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn term(&self) -> Term {
        self.hard.term
    }

    pub fn hard_state(&self) -> HardState {
        self.hard
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }

    /// Leader: every other member's replication progress (empty otherwise).
    pub fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        &self.progress
    }

    /// The learners of the current membership.
    pub fn learners(&self) -> &BTreeSet<NodeId> {
        &self.learners
    }

    /// The commit index: the high watermark.
    pub fn committed(&self) -> Offset {
        self.log.committed()
    }

    pub(crate) fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Every other member (voters and learners), in id order.
    pub(crate) fn peers(&self) -> Vec<NodeId> {
        self.voters.iter().chain(self.learners.iter()).copied().filter(|id| *id != self.config.id).collect()
    }

    pub(crate) fn emit(&mut self, effect: Effect) {
        if let Some(trace) = &mut self.trace {
            let log = &self.log;
            if let Some(event) = TraceEvent::of_effect(&effect, |index| log.term_at(index)) {
                assert!(trace.len() < TRACE_EVENTS_PENDING_MAX, "trace events not drained by the shell");
                trace.push(event);
            }
        }
        self.effects.push(effect);
    }

    /// Starts recording a `TraceEvent` per state transition, opening with `Restart`.
    pub fn enable_trace(&mut self) {
        let restart = TraceEvent::Restart {
            term: self.hard.term,
            voted_for: self.hard.voted_for,
            last: self.log.last(),
            committed: self.log.committed(),
        };
        self.trace = Some(vec![restart]);
    }

    /// The events recorded since the last call (empty when tracing is off).
    pub fn take_trace(&mut self) -> Vec<TraceEvent> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub(crate) fn send(&mut self, to: NodeId, message: Message) {
        let envelope = Envelope { from: self.config.id, to, message };
        self.emit(Effect::Send(envelope));
    }

    /// Feeds one input; returns the effects it produced, in order.
    pub fn step(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Tick { randomized_election_timeout_ticks } => {
                if self.election_timeout_ticks == 0 {
                    self.election_timeout_ticks =
                        randomized_election_timeout_ticks.max(self.config.election_timeout_ticks_min);
                }
                self.tick();
            }
            Input::Receive(envelope) => self.receive(envelope),
            Input::Persisted { last } => {
                self.log.mark_persisted(last);
                if self.role == Role::Leader {
                    self.maybe_commit();
                }
            }
            Input::LogStartMoved { log_start } => {
                self.log.move_start(log_start);
                let before_start = self.log.before_start().index;
                self.membership_history.retain(|(index, _)| *index > before_start);
            }
            Input::TransferLeadership { to } => self.start_transfer(to),
            Input::Campaign => {
                if self.role != Role::Learner && self.role != Role::Leader && self.voters.contains(&self.config.id) {
                    self.campaign(false);
                }
            }
        }
        self.check_invariants();
        std::mem::take(&mut self.effects)
    }

    /// Leader: appends a producer batch covering `offsets` offsets. Returns the entry (its
    /// index is the batch's last offset; the shell stamps base offset `index - offsets + 1` and
    /// leader epoch `term`) and the effects (the Append, then replication).
    pub fn propose(&mut self, offsets: u32, size_bytes: u32) -> Result<(EntryMeta, Vec<Effect>), ProposeError> {
        assert!(offsets > 0, "a batch covers at least one offset");
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader: self.leader });
        }
        if self.transfer.is_some() {
            return Err(ProposeError::Transferring);
        }
        if self.log.uncommitted_len() >= self.config.uncommitted_entries_max as usize {
            return Err(ProposeError::Backpressure);
        }
        let entry = self.append_own(EntryKind::Data, offsets, size_bytes);
        self.broadcast_append();
        self.check_invariants();
        Ok((entry, std::mem::take(&mut self.effects)))
    }

    /// Appends an entry created by this leader at the end of its log.
    pub(crate) fn append_own(&mut self, kind: EntryKind, offsets: u32, size_bytes: u32) -> EntryMeta {
        assert_eq!(self.role, Role::Leader);
        let index = Offset(self.log.last().index.0 + i64::from(offsets));
        let entry = EntryMeta { index, term: self.hard.term, kind, size_bytes };
        self.log.append(&[entry]);
        self.apply_membership_entries(&[entry]);
        self.emit(Effect::Append { entries: vec![entry] });
        entry
    }

    fn tick(&mut self) {
        // Saturating: a leader's count is not reset while it leads (it is its own lease).
        self.election_elapsed_ticks = self.election_elapsed_ticks.saturating_add(1);
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Learner => {}
            Role::Follower | Role::PreCandidate | Role::Candidate => {
                let is_voter = self.voters.contains(&self.config.id);
                if is_voter && self.election_elapsed_ticks >= self.election_timeout_ticks {
                    self.campaign(false);
                }
            }
        }
    }

    /// Moves to `term` as a follower (or learner) of `leader`, persisting the new term.
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.hard.term, "terms never go back");
        if term > self.hard.term {
            self.hard = HardState { term, voted_for: None };
            self.emit(Effect::PersistHardState(self.hard));
        }
        let role = if self.learners.contains(&self.config.id) { Role::Learner } else { Role::Follower };
        let changed = self.role != role || self.leader != leader;
        self.role = role;
        self.leader = leader;
        self.votes.clear();
        self.progress.clear();
        self.transfer = None;
        self.reset_election_timer();
        if changed {
            self.emit(Effect::LeaderChanged { leader, term: self.hard.term, role });
        }
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed_ticks = 0;
        self.election_timeout_ticks = 0; // Drawn on the next tick.
    }

    fn receive(&mut self, envelope: Envelope) {
        let Envelope { from, to, message } = envelope;
        assert_eq!(to, self.config.id, "message delivered to the wrong replica");
        let term = message.term();
        if term > self.hard.term && !self.handle_higher_term(from, &message) {
            return;
        }
        if term < self.hard.term {
            self.handle_stale(from, &message);
            return;
        }
        match message {
            Message::PreVote { term, last } => self.handle_pre_vote(from, term, last),
            Message::Vote { term, last, .. } => self.handle_vote(from, term, last),
            Message::PreVoteResponse { granted, .. } => self.handle_vote_response(from, granted, true),
            Message::VoteResponse { granted, .. } => self.handle_vote_response(from, granted, false),
            Message::AppendEntries { prev, entries, commit, .. } => self.handle_append(from, prev, entries, commit),
            Message::AppendResponse { success, matched, .. } => self.handle_append_response(from, success, matched),
            Message::LogStart { log_start, log_start_term, membership, .. } => {
                self.handle_log_start(from, log_start, log_start_term, membership)
            }
            Message::TimeoutNow { .. } => {
                if self.voters.contains(&self.config.id) && self.role != Role::Leader {
                    self.campaign(true);
                }
            }
        }
    }

    /// A message from a later term. Returns whether to go on processing it.
    fn handle_higher_term(&mut self, from: NodeId, message: &Message) -> bool {
        let term = message.term();
        match message {
            // Pre-votes never change terms; they are answered below at the sender's term.
            Message::PreVote { .. } => true,
            // A granted pre-vote answer carries the term the sender would vote in.
            Message::PreVoteResponse { granted: true, .. } => true,
            Message::Vote { transfer, .. } => {
                // Raft thesis §4.2.3: ignore vote requests while a leader is known to be alive,
                // so a partitioned node rejoining cannot depose a healthy leader.
                if !transfer && self.in_leader_lease() {
                    return false;
                }
                self.become_follower(term, None);
                true
            }
            Message::AppendEntries { .. } | Message::LogStart { .. } | Message::TimeoutNow { .. } => {
                self.become_follower(term, Some(from));
                true
            }
            _ => {
                self.become_follower(term, None);
                true
            }
        }
    }

    /// A message from an earlier term: tell a stale leader or candidate the current term.
    fn handle_stale(&mut self, from: NodeId, message: &Message) {
        match message {
            Message::AppendEntries { .. } | Message::LogStart { .. } => {
                let matched = LogPosition::EMPTY;
                self.send(from, Message::AppendResponse { term: self.hard.term, success: false, matched });
            }
            Message::PreVote { .. } => {
                self.send(from, Message::PreVoteResponse { term: self.hard.term, granted: false });
            }
            _ => {}
        }
    }

    /// Whether this replica leads, or heard from a leader within the minimum election timeout
    /// (leader stickiness, thesis §4.2.3; it needs check-quorum, which makes a leader that lost
    /// its majority step down, so the lease cannot outlive it).
    pub(crate) fn in_leader_lease(&self) -> bool {
        self.config.check_quorum
            && (self.role == Role::Leader
                || (self.leader.is_some() && self.election_elapsed_ticks < self.config.election_timeout_ticks_min))
    }

    fn check_invariants(&self) {
        if self.role == Role::Leader {
            assert_eq!(self.leader, Some(self.config.id));
            assert_eq!(self.hard.voted_for, Some(self.config.id), "a leader voted for itself");
        }
        assert!(self.log.committed() <= self.log.last().index);
    }
}
