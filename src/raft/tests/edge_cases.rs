//! Single-replica edge cases of the Raft core, each driven by hand-built inputs: the places where
//! a plausible shortcut is unsafe. The scenarios (tests/scenarios.rs) and the property tests
//! (proptests/tests/raft_model.rs) cover whole groups; these pin one decision each.

use sluice_raft::{
    Config, Effect, EntryKind, EntryMeta, Envelope, HardState, Input, LogPosition, MembershipChange, Message,
    ProposeError, Raft, RaftLog, Role,
};
use sluice_types::{NodeId, Offset, Term};
use std::collections::BTreeSet;

fn ids(list: &[i32]) -> BTreeSet<NodeId> {
    list.iter().copied().map(NodeId).collect()
}

fn data(index: i64, term: i32) -> EntryMeta {
    EntryMeta { index: Offset(index), term: Term(term), kind: EntryKind::Data, size_bytes: 100 }
}

fn at(index: i64, term: i32) -> LogPosition {
    LogPosition { term: Term(term), index: Offset(index) }
}

fn receive(raft: &mut Raft, from: i32, message: Message) -> Vec<Effect> {
    raft.step(Input::Receive(Envelope { from: NodeId(from), to: raft.id(), message }))
}

/// An AppendEntries from a leader whose log starts at offset 0.
fn append_entries(term: Term, prev: LogPosition, entries: Vec<EntryMeta>, commit: Offset) -> Message {
    Message::AppendEntries { term, prev, entries, commit, log_start: Offset(0) }
}

fn answers(effects: &[Effect]) -> Vec<Message> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Send(envelope) | Effect::Replicate(envelope) => Some(envelope.message.clone()),
            _ => None,
        })
        .collect()
}

/// Effect contract rule 3 (effect.rs): a durability report names the entry, not just the
/// index. Here a report for the old entry at index 8 arrives after a new leader replaced it
/// with a different entry at the same index; counting it would let a leader (or this follower's
/// acknowledgement) treat an undurable entry as durable (Raft Figure 2: "respond after entries
/// are stored").
#[test]
fn a_durability_report_for_a_truncated_entry_is_ignored() {
    let hard = HardState { term: Term(1), voted_for: None };
    let log = RaftLog::starting_at(LogPosition::EMPTY);
    let mut raft = Raft::new(Config::new(NodeId(2)), ids(&[1, 2, 3]), BTreeSet::new(), hard, log);
    let first = append_entries(Term(1), LogPosition::EMPTY, vec![data(4, 1), data(8, 1)], Offset(-1));
    receive(&mut raft, 1, first);
    // A new leader of term 2 replaces (1,8) with (2,8).
    let second = append_entries(Term(2), at(4, 1), vec![data(8, 2)], Offset(-1));
    let effects = receive(&mut raft, 3, second);
    assert!(effects.contains(&Effect::Truncate { after: at(4, 1) }), "{effects:?}");
    assert_eq!(raft.log().last(), at(8, 2));

    raft.step(Input::Persisted { last: at(8, 1) });
    assert_eq!(raft.log().persisted(), Offset(-1), "a report about the replaced entry counted");
    raft.step(Input::Persisted { last: at(4, 1) });
    assert_eq!(raft.log().persisted(), Offset(4));
    raft.step(Input::Persisted { last: at(8, 2) });
    assert_eq!(raft.log().persisted(), Offset(8));
}

/// Raft §5.4 (Leader Completeness) and §5.3: a follower told a log start below its own commit
/// index cannot reset, and must acknowledge only what it knows matches the leader: its commit
/// index, not its last entry, which is an uncommitted suffix the leader may not hold.
#[test]
fn a_log_start_below_the_commit_index_acknowledges_the_commit_index_not_the_suffix() {
    let hard = HardState { term: Term(2), voted_for: None };
    let log = RaftLog::recovered(at(3, 1), vec![data(8, 1)], Offset(3));
    let mut raft = Raft::new(Config::new(NodeId(2)), ids(&[1, 2, 3]), BTreeSet::new(), hard, log);
    assert_eq!(raft.committed(), Offset(3));
    let membership = raft.membership();
    let message = Message::LogStart { term: Term(2), log_start: Offset(2), log_start_term: Term(1), membership };
    let effects = receive(&mut raft, 1, message);
    assert!(!effects.iter().any(|e| matches!(e, Effect::ResetLog { .. })), "{effects:?}");
    let expected = Message::AppendResponse { term: Term(2), success: true, matched: at(3, 1) };
    assert_eq!(answers(&effects), vec![expected]);
    assert_eq!(raft.log().last(), at(8, 1), "the suffix stays until a leader's append decides it");
}

/// Behind the leader's log start, a follower resets its log, adopts the membership as of the
/// start (the changes in the skipped prefix are skipped too), reports the new commit index
/// (everything behind a log start is committed) and acknowledges the position before the start.
#[test]
fn a_reset_names_the_start_and_membership_and_commits_the_skipped_prefix() {
    let hard = HardState { term: Term(1), voted_for: None };
    let log = RaftLog::recovered(LogPosition::EMPTY, vec![data(2, 1)], Offset(-1));
    let mut raft = Raft::new(Config::new(NodeId(4)), ids(&[1, 2, 3]), ids(&[4]), hard, log);
    assert_eq!(raft.role(), Role::Learner);
    let membership = sluice_raft::Membership { voters: ids(&[1, 2, 3, 4]), learners: BTreeSet::new() };
    let message = Message::LogStart {
        term: Term(3),
        log_start: Offset(10),
        log_start_term: Term(2),
        membership: membership.clone(),
    };
    let effects = receive(&mut raft, 1, message);
    let reset = Effect::ResetLog { before_start: at(9, 2), membership: membership.clone() };
    let position = effects.iter().position(|e| *e == reset).expect("a reset");
    assert_eq!(effects[position + 1], Effect::Committed { index: Offset(9) });
    assert_eq!(raft.committed(), Offset(9));
    assert_eq!(raft.membership(), membership);
    assert_eq!(raft.role(), Role::Follower, "promoted in the skipped prefix: now a voter");
    assert_eq!(raft.membership_at(Offset(9)), membership);
    let expected = Message::AppendResponse { term: Term(3), success: true, matched: at(9, 2) };
    assert_eq!(answers(&effects), vec![expected]);
}

/// Raft thesis §4.1 (after Ongaro's 2015 correction to single-server changes): a new leader may
/// not propose a membership change until an entry of its own term has committed.
#[test]
fn a_new_leader_proposes_no_membership_change_before_its_noop_commits() {
    let mut raft =
        Raft::new(Config::new(NodeId(1)), ids(&[1]), BTreeSet::new(), HardState::default(), RaftLog::default());
    let effects = raft.step(Input::Campaign);
    assert_eq!(raft.role(), Role::Leader, "{effects:?}");
    let noop = raft.log().last();
    assert_eq!(raft.committed(), Offset(-1));
    let refused = raft.propose_membership(MembershipChange::AddLearner(NodeId(2)));
    assert_eq!(refused.err(), Some(ProposeError::MembershipChangeInProgress));

    let effects = raft.step(Input::Persisted { last: noop });
    assert_eq!(effects, vec![Effect::Committed { index: noop.index }]);
    let (entry, _) = raft.propose_membership(MembershipChange::AddLearner(NodeId(2))).expect("accepted");
    assert_eq!(entry.kind, EntryKind::Membership(MembershipChange::AddLearner(NodeId(2))));
    assert_eq!(raft.membership().learners, ids(&[2]));
    let second = raft.propose_membership(MembershipChange::Remove(NodeId(2)));
    assert_eq!(second.err(), Some(ProposeError::MembershipChangeInProgress), "one change in flight at most");
}

fn follower(id: i32, voters: &[i32], hard: HardState, log: RaftLog) -> Raft {
    let mut config = Config::new(NodeId(id));
    config.pre_vote = true;
    Raft::new(config, ids(voters), BTreeSet::new(), hard, log)
}

fn granted(effects: &[Effect]) -> Vec<bool> {
    answers(effects)
        .into_iter()
        .filter_map(|m| match m {
            Message::VoteResponse { granted, .. } | Message::PreVoteResponse { granted, .. } => Some(granted),
            _ => None,
        })
        .collect()
}

/// Raft §5.2 (Election Safety): a voter grants at most one vote per term, and answers a retried
/// request from the same candidate the same way.
#[test]
fn a_voter_grants_one_vote_per_term() {
    let mut raft = follower(3, &[1, 2, 3], HardState { term: Term(1), voted_for: None }, RaftLog::default());
    let vote = |term| Message::Vote { term: Term(term), last: LogPosition::EMPTY, transfer: false };
    let effects = receive(&mut raft, 1, vote(2));
    assert_eq!(granted(&effects), vec![true]);
    assert!(effects.contains(&Effect::PersistHardState(HardState { term: Term(2), voted_for: Some(NodeId(1)) })));
    assert_eq!(granted(&receive(&mut raft, 2, vote(2))), vec![false], "a second vote in term 2");
    assert_eq!(granted(&receive(&mut raft, 1, vote(2))), vec![true], "the same candidate's retry");
    assert_eq!(raft.hard_state(), HardState { term: Term(2), voted_for: Some(NodeId(1)) });
}

/// Raft thesis §9.6: a pre-vote is granted only for a term later than ours, to a voter, whose
/// log is at least as up to date as ours (§5.4.1); granting never changes our term or vote.
#[test]
fn a_pre_vote_needs_a_later_term_a_voter_and_an_up_to_date_log() {
    let hard = HardState { term: Term(2), voted_for: Some(NodeId(1)) };
    let log = RaftLog::recovered(LogPosition::EMPTY, vec![data(5, 1)], Offset(-1));
    let mut raft = follower(3, &[1, 2, 3], hard, log);
    let pre_vote = |term, last| Message::PreVote { term: Term(term), last };
    assert_eq!(granted(&receive(&mut raft, 2, pre_vote(2, at(5, 1)))), vec![false], "not a later term");
    assert_eq!(granted(&receive(&mut raft, 2, pre_vote(3, at(2, 1)))), vec![false], "a stale log");
    assert_eq!(granted(&receive(&mut raft, 9, pre_vote(3, at(5, 1)))), vec![false], "not a voter");
    let effects = receive(&mut raft, 2, pre_vote(3, at(5, 1)));
    let expected = Message::PreVoteResponse { term: Term(3), granted: true };
    assert_eq!(answers(&effects), vec![expected], "the answer carries the asked term");
    assert_eq!(raft.hard_state(), hard, "a pre-vote changes nothing durable");
    assert!(!effects.iter().any(|e| matches!(e, Effect::PersistHardState(_))));
}

/// Raft thesis §4.2.3 (leader stickiness): while a leader is heard from, a pre-vote for a later
/// term gets no answer at all; one for the current term is answered (and refused).
#[test]
fn a_follower_hearing_its_leader_ignores_pre_votes_for_later_terms() {
    let mut raft = follower(3, &[1, 2, 3], HardState { term: Term(2), voted_for: None }, RaftLog::default());
    let heartbeat = append_entries(Term(2), LogPosition::EMPTY, Vec::new(), Offset(-1));
    receive(&mut raft, 1, heartbeat);
    assert_eq!(raft.leader(), Some(NodeId(1)));
    let later = receive(&mut raft, 2, Message::PreVote { term: Term(3), last: LogPosition::EMPTY });
    assert!(answers(&later).is_empty(), "{later:?}");
    let current = receive(&mut raft, 2, Message::PreVote { term: Term(2), last: LogPosition::EMPTY });
    assert_eq!(granted(&current), vec![false]);
}

/// Raft §5.2: a candidate that a majority refuses stops being a candidate at once (it does not
/// wait for its election timeout to learn it lost).
#[test]
fn a_candidate_refused_by_a_majority_steps_down() {
    let mut config = Config::new(NodeId(1));
    config.pre_vote = false;
    let mut raft = Raft::new(config, ids(&[1, 2, 3]), BTreeSet::new(), HardState::default(), RaftLog::default());
    raft.step(Input::Campaign);
    assert_eq!(raft.role(), Role::Candidate);
    let refusal = Message::VoteResponse { term: Term(1), granted: false };
    receive(&mut raft, 2, refusal.clone());
    assert_eq!(raft.role(), Role::Candidate, "one refusal of three is not a majority");
    receive(&mut raft, 3, refusal);
    assert_eq!(raft.role(), Role::Follower);
    assert_eq!(raft.term(), Term(1));
}

/// Raft thesis §4.1: single-server changes that make no sense are refused: removing a stranger
/// or the last voter, adding a voter as a learner, promoting a non-learner.
#[test]
fn membership_changes_that_make_no_sense_are_refused() {
    let membership = sluice_raft::Membership { voters: ids(&[1]), learners: ids(&[2]) };
    assert_eq!(membership.apply(MembershipChange::Remove(NodeId(9))), None);
    assert_eq!(membership.apply(MembershipChange::Remove(NodeId(1))), None, "the last voter");
    assert_eq!(membership.apply(MembershipChange::AddLearner(NodeId(1))), None);
    assert_eq!(membership.apply(MembershipChange::AddLearner(NodeId(2))), None);
    assert_eq!(membership.apply(MembershipChange::PromoteLearner(NodeId(1))), None);
    let promoted = membership.apply(MembershipChange::PromoteLearner(NodeId(2))).expect("valid");
    assert_eq!(promoted, sluice_raft::Membership { voters: ids(&[1, 2]), learners: BTreeSet::new() });
    let removed = membership.apply(MembershipChange::Remove(NodeId(2))).expect("valid");
    assert_eq!(removed, sluice_raft::Membership { voters: ids(&[1]), learners: BTreeSet::new() });
}

/// Raft thesis §3.10 and §4.2.1: a leader does not remove itself (it transfers leadership
/// first), and promotes a learner only once the learner holds everything committed.
#[test]
fn a_leader_refuses_to_remove_itself_or_promote_a_learner_that_lags() {
    let mut raft = Raft::new(Config::new(NodeId(1)), ids(&[1, 3]), ids(&[2]), HardState::default(), RaftLog::default());
    raft.step(Input::Campaign);
    receive(&mut raft, 3, Message::PreVoteResponse { term: Term(1), granted: true });
    receive(&mut raft, 3, Message::VoteResponse { term: Term(1), granted: true });
    assert_eq!(raft.role(), Role::Leader);
    let noop = raft.log().last();
    raft.step(Input::Persisted { last: noop });
    receive(&mut raft, 3, Message::AppendResponse { term: Term(1), success: true, matched: noop });
    assert_eq!(raft.committed(), noop.index);

    let remove_self = raft.propose_membership(MembershipChange::Remove(NodeId(1)));
    assert_eq!(remove_self.err(), Some(ProposeError::InvalidMembershipChange));
    let early = raft.propose_membership(MembershipChange::PromoteLearner(NodeId(2)));
    assert_eq!(early.err(), Some(ProposeError::InvalidMembershipChange), "the learner holds nothing yet");
    receive(&mut raft, 2, Message::AppendResponse { term: Term(1), success: true, matched: noop });
    let (entry, _) = raft.propose_membership(MembershipChange::PromoteLearner(NodeId(2))).expect("caught up");
    assert_eq!(entry.kind, EntryKind::Membership(MembershipChange::PromoteLearner(NodeId(2))));
    assert_eq!(raft.voters(), &ids(&[1, 2, 3]));
}

#[test]
#[should_panic(expected = "election timeout must exceed heartbeats")]
fn a_config_whose_election_timeout_does_not_exceed_heartbeats_is_refused() {
    let mut config = Config::new(NodeId(1));
    config.election_timeout_ticks_min = config.heartbeat_interval_ticks;
    Raft::new(config, ids(&[1]), BTreeSet::new(), HardState::default(), RaftLog::default());
}

#[test]
#[should_panic(expected = "flow control limits must be positive")]
fn a_config_with_an_empty_inflight_window_is_refused() {
    let mut config = Config::new(NodeId(1));
    config.inflight_messages_max = 0;
    Raft::new(config, ids(&[1]), BTreeSet::new(), HardState::default(), RaftLog::default());
}

fn membership_entry(index: i64, term: i32, change: MembershipChange) -> EntryMeta {
    EntryMeta { index: Offset(index), term: Term(term), kind: EntryKind::Membership(change), size_bytes: 80 }
}

/// Raft thesis §4.1: a replica uses the latest configuration in its log, committed or not, so a
/// truncation that removes a membership entry must restore the configuration before it.
#[test]
fn truncating_an_uncommitted_membership_entry_restores_the_previous_membership() {
    let mut raft = follower(3, &[1, 2, 3], HardState { term: Term(1), voted_for: None }, RaftLog::default());
    let add = append_entries(
        Term(1),
        LogPosition::EMPTY,
        vec![data(0, 1), membership_entry(1, 1, MembershipChange::AddLearner(NodeId(4)))],
        Offset(0),
    );
    receive(&mut raft, 1, add);
    assert_eq!(raft.membership().learners, ids(&[4]), "in effect as soon as it is in the log");
    assert_eq!(raft.membership_at(Offset(1)).learners, ids(&[4]), "as of the entry, after applying it");
    assert_eq!(raft.membership_at(Offset(0)).learners, BTreeSet::new(), "before the entry");
    let replace = append_entries(Term(2), at(0, 1), vec![data(1, 2)], Offset(0));
    let effects = receive(&mut raft, 2, replace);
    assert!(effects.contains(&Effect::Truncate { after: at(0, 1) }), "{effects:?}");
    assert_eq!(raft.membership().learners, BTreeSet::new());
    assert_eq!(raft.voters(), &ids(&[1, 2, 3]));
}

/// A leader of voters {1, 2} whose follower 2 has acknowledged the no-op (so it is in the
/// pipelined state) and whose no-op is committed.
fn leader_of_two(config: Config) -> Raft {
    let mut raft = Raft::new(config, ids(&[1, 2]), BTreeSet::new(), HardState::default(), RaftLog::default());
    raft.step(Input::Campaign);
    receive(&mut raft, 2, Message::PreVoteResponse { term: Term(1), granted: true });
    receive(&mut raft, 2, Message::VoteResponse { term: Term(1), granted: true });
    assert_eq!(raft.role(), Role::Leader);
    let noop = raft.log().last();
    raft.step(Input::Persisted { last: noop });
    receive(&mut raft, 2, Message::AppendResponse { term: Term(1), success: true, matched: noop });
    assert_eq!(raft.committed(), noop.index);
    raft
}

/// AppendEntries carrying entries in these effects.
fn appends_with_entries(effects: &[Effect]) -> usize {
    answers(effects)
        .iter()
        .filter(|m| matches!(m, Message::AppendEntries { entries, .. } if !entries.is_empty()))
        .count()
}

/// Flow control (etcd raft's inflights; issue 3: bounded in messages per follower): at most
/// `inflight_messages_max` unacknowledged AppendEntries to one follower.
#[test]
fn a_follower_gets_at_most_the_inflight_message_limit_unacknowledged() {
    let mut config = Config::new(NodeId(1));
    config.inflight_messages_max = 2;
    let mut raft = leader_of_two(config);
    let mut sent = 0;
    for _ in 0..4 {
        let (_, effects) = raft.propose(1, 100).expect("accepted");
        sent += appends_with_entries(&effects);
    }
    assert_eq!(sent, 2);
}

/// Flow control bounded in bytes: once `inflight_bytes_max` entry bytes are unacknowledged the
/// window is full; an acknowledgement frees exactly the acknowledged bytes.
#[test]
fn a_follower_gets_at_most_the_inflight_byte_limit_unacknowledged() {
    let mut config = Config::new(NodeId(1));
    config.inflight_bytes_max = 150;
    config.append_bytes_max = 100;
    let mut raft = leader_of_two(config);
    let mut sent = Vec::new();
    for _ in 0..4 {
        let (entry, effects) = raft.propose(1, 100).expect("accepted");
        if appends_with_entries(&effects) > 0 {
            sent.push(entry);
        }
    }
    assert_eq!(sent.len(), 2, "100 then 200 bytes in flight: full");
    let first = LogPosition { term: sent[0].term, index: sent[0].index };
    let effects = receive(&mut raft, 2, Message::AppendResponse { term: Term(1), success: true, matched: first });
    assert_eq!(appends_with_entries(&effects), 1, "100 bytes freed: one more 100-byte entry fits");
    let (_, effects) = raft.propose(1, 100).expect("accepted");
    assert_eq!(appends_with_entries(&effects), 0, "200 bytes in flight again: full");
}

/// Propose backpressure: at most `uncommitted_entries_max` entries wait for commitment.
#[test]
fn a_leader_refuses_proposals_beyond_the_uncommitted_limit() {
    let mut config = Config::new(NodeId(1));
    config.uncommitted_entries_max = 2;
    let mut raft = Raft::new(config, ids(&[1]), BTreeSet::new(), HardState::default(), RaftLog::default());
    raft.step(Input::Campaign);
    assert_eq!(raft.log().len(), 1, "the no-op, uncommitted");
    assert!(!raft.log().is_empty());
    raft.propose(1, 100).expect("two uncommitted entries allowed");
    assert_eq!(raft.propose(1, 100).err(), Some(ProposeError::Backpressure));
    raft.step(Input::Persisted { last: raft.log().last() });
    assert_eq!(raft.log().uncommitted_len(), 0);
    raft.propose(1, 100).expect("room again after the commit");
    assert_eq!(raft.log().len(), 3, "the no-op and two batches");
    assert!(RaftLog::default().is_empty());
    assert_eq!(RaftLog::default().len(), 0);
}

/// Raft thesis §4.1, §4.2.1: a learner stays a learner while changes concern others.
#[test]
fn a_learner_stays_a_learner_when_another_member_changes() {
    let log = RaftLog::default();
    let mut raft = Raft::new(Config::new(NodeId(4)), ids(&[1, 2, 3]), ids(&[4]), HardState::default(), log);
    let message = append_entries(
        Term(1),
        LogPosition::EMPTY,
        vec![membership_entry(0, 1, MembershipChange::AddLearner(NodeId(5)))],
        Offset(-1),
    );
    receive(&mut raft, 1, message);
    assert_eq!(raft.role(), Role::Learner);
    assert_eq!(raft.membership().learners, ids(&[4, 5]));
}

/// Retention past a membership entry's predecessor keeps the history of later entries:
/// `membership_at` still answers for every retained position (effect.rs, rule 5).
#[test]
fn moving_the_log_start_keeps_later_membership_history() {
    let mut raft =
        Raft::new(Config::new(NodeId(1)), ids(&[1]), BTreeSet::new(), HardState::default(), RaftLog::default());
    raft.step(Input::Campaign);
    raft.step(Input::Persisted { last: raft.log().last() });
    let (change, _) = raft.propose_membership(MembershipChange::AddLearner(NodeId(2))).expect("accepted");
    let (data, _) = raft.propose(1, 100).expect("accepted");
    raft.step(Input::Persisted { last: LogPosition { term: data.term, index: data.index } });
    assert_eq!(raft.committed(), data.index);
    let effects = raft.step(Input::LogStartMoved { log_start: change.index });
    assert!(effects.is_empty());
    assert_eq!(raft.log().before_start().index, Offset(0));
    assert_eq!(raft.membership_at(Offset(0)).learners, BTreeSet::new(), "before the change");
    assert_eq!(raft.membership_at(change.index).learners, ids(&[2]));
}

/// Only a voter that is not leading campaigns, on `Campaign` or a leader's `TimeoutNow`
/// (thesis §3.10): a learner or a leader ignores both.
#[test]
fn only_a_voter_that_does_not_lead_campaigns() {
    let log = RaftLog::default();
    let mut learner = Raft::new(Config::new(NodeId(4)), ids(&[1, 2, 3]), ids(&[4]), HardState::default(), log);
    assert!(learner.step(Input::Campaign).is_empty());
    receive(&mut learner, 1, Message::TimeoutNow { term: Term(0) });
    assert_eq!((learner.role(), learner.term()), (Role::Learner, Term(0)));

    let mut leader = leader_of_two(Config::new(NodeId(1)));
    let term = leader.term();
    assert!(leader.step(Input::Campaign).is_empty());
    receive(&mut leader, 2, Message::TimeoutNow { term });
    assert_eq!((leader.role(), leader.term()), (Role::Leader, term));
}

/// A stale pre-vote is answered with our term, so the asker learns it is behind (etcd raft).
#[test]
fn a_stale_pre_vote_is_refused_with_the_current_term() {
    let mut raft = follower(3, &[1, 2, 3], HardState { term: Term(5), voted_for: None }, RaftLog::default());
    let effects = receive(&mut raft, 2, Message::PreVote { term: Term(3), last: LogPosition::EMPTY });
    assert_eq!(answers(&effects), vec![Message::PreVoteResponse { term: Term(5), granted: false }]);
}

/// Thesis §4.2.3: the leader lease lasts exactly the minimum election timeout: at that many
/// ticks without hearing the leader, a pre-vote is answered again.
#[test]
fn the_leader_lease_ends_after_the_minimum_election_timeout() {
    let mut raft = follower(3, &[1, 2, 3], HardState { term: Term(2), voted_for: None }, RaftLog::default());
    let heartbeat = append_entries(Term(2), LogPosition::EMPTY, Vec::new(), Offset(-1));
    receive(&mut raft, 1, heartbeat);
    let min = Config::new(NodeId(3)).election_timeout_ticks_min;
    for _ in 0..min - 1 {
        raft.step(Input::Tick { randomized_election_timeout_ticks: 2 * min - 1 });
    }
    let in_lease = receive(&mut raft, 2, Message::PreVote { term: Term(3), last: LogPosition::EMPTY });
    assert!(answers(&in_lease).is_empty(), "one tick before the lease ends");
    raft.step(Input::Tick { randomized_election_timeout_ticks: 2 * min - 1 });
    let after = receive(&mut raft, 2, Message::PreVote { term: Term(3), last: LogPosition::EMPTY });
    assert_eq!(answers(&after).len(), 1, "the lease ended: answered");
}

/// Flow control bounded in bytes per message: an AppendEntries carries entries while their
/// bytes stay within `append_bytes_max` (at least one entry always).
#[test]
fn an_append_carries_entries_up_to_the_byte_limit() {
    let entries: Vec<EntryMeta> = (0..4).map(|i| data(i, 1)).collect();
    let log = RaftLog::recovered(LogPosition::EMPTY, entries, Offset(-1));
    assert_eq!(log.entries_after(Offset(-1), 200).len(), 2, "100 + 100 bytes is within 200");
    assert_eq!(log.entries_after(Offset(-1), 199).len(), 1);
    assert_eq!(log.entries_after(Offset(-1), 1).len(), 1, "one entry even beyond the limit");
    assert_eq!(log.entries_after(Offset(2), 1_000).len(), 1);
}

/// Retention forgets whole committed entries up to the new start, the committed one included.
#[test]
fn moving_the_log_start_forgets_committed_entries_only() {
    let entries: Vec<EntryMeta> = (0..5).map(|i| data(i, 1)).collect();
    let mut log = RaftLog::recovered(LogPosition::EMPTY, entries, Offset(4));
    log.move_start(Offset(5));
    assert_eq!(log.before_start(), at(4, 1), "the committed last entry goes too");
    let entries: Vec<EntryMeta> = (0..5).map(|i| data(i, 1)).collect();
    let mut log = RaftLog::recovered(LogPosition::EMPTY, entries, Offset(2));
    log.move_start(Offset(5));
    assert_eq!(log.before_start(), at(2, 1), "never past the commit index");
}

/// Raft §5.4 (committed entries are identical everywhere): entries an AppendEntries resends
/// from below the follower's log start are skipped, and the rest is appended.
#[test]
fn a_follower_skips_resent_entries_below_its_log_start() {
    let hard = HardState { term: Term(1), voted_for: None };
    let log = RaftLog::recovered(at(3, 1), Vec::new(), Offset(3));
    let mut raft = follower(2, &[1, 2, 3], hard, log);
    let message = append_entries(Term(1), at(1, 1), vec![data(3, 1), data(5, 1)], Offset(5));
    let effects = receive(&mut raft, 1, message);
    assert_eq!(answers(&effects), vec![Message::AppendResponse { term: Term(1), success: true, matched: at(5, 1) }]);
    assert_eq!(raft.log().last(), at(5, 1));
}

/// A leader whose log starts after (1,2), holding (1,5) and (1,8), elected in term 2 by voters
/// {1, 2}; its no-op went to 2 after (1,8).
fn leader_with_a_moved_start() -> Raft {
    let log = RaftLog::recovered(at(2, 1), vec![data(5, 1), data(8, 1)], Offset(8));
    let hard = HardState { term: Term(1), voted_for: None };
    let mut raft = Raft::new(Config::new(NodeId(1)), ids(&[1, 2]), BTreeSet::new(), hard, log);
    raft.step(Input::Campaign);
    receive(&mut raft, 2, Message::PreVoteResponse { term: Term(2), granted: true });
    receive(&mut raft, 2, Message::VoteResponse { term: Term(2), granted: true });
    assert_eq!(raft.role(), Role::Leader);
    raft
}

fn first_append_prev(effects: &[Effect]) -> Option<LogPosition> {
    answers(effects).into_iter().find_map(|m| match m {
        Message::AppendEntries { prev, .. } => Some(prev),
        _ => None,
    })
}

/// Fast backtracking (Raft §5.3 optimization; etcd raft findConflictByTerm): a rejection whose
/// hint is an entry the leader holds resumes right after it, with entries, not with LogStart.
#[test]
fn a_rejection_hinting_a_held_entry_resumes_after_it() {
    let mut raft = leader_with_a_moved_start();
    let effects = receive(&mut raft, 2, Message::AppendResponse { term: Term(2), success: false, matched: at(5, 1) });
    assert_eq!(first_append_prev(&effects), Some(at(5, 1)), "{effects:?}");
}

/// A follower that holds exactly the entry before the leader's log start resumes from there;
/// only a follower that lacks it is sent LogStart.
#[test]
fn a_rejection_hinting_the_leaders_start_resumes_at_the_start() {
    let mut raft = leader_with_a_moved_start();
    let effects = receive(&mut raft, 2, Message::AppendResponse { term: Term(2), success: false, matched: at(2, 1) });
    assert_eq!(first_append_prev(&effects), Some(at(2, 1)), "{effects:?}");
    let mut raft = leader_with_a_moved_start();
    let effects =
        receive(&mut raft, 2, Message::AppendResponse { term: Term(2), success: false, matched: LogPosition::EMPTY });
    assert!(answers(&effects).iter().any(|m| matches!(m, Message::LogStart { .. })), "{effects:?}");
}

/// Raft thesis §3.10: a leader transfers only to another voter; once the target holds the whole
/// log it is told to campaign (TimeoutNow), and proposals wait meanwhile.
#[test]
fn leadership_transfers_only_to_another_voter() {
    let mut raft = leader_of_two(Config::new(NodeId(1)));
    let timeout_now = |effects: &[Effect]| answers(effects).iter().any(|m| matches!(m, Message::TimeoutNow { .. }));
    for to in [1, 9] {
        let effects = raft.step(Input::TransferLeadership { to: NodeId(to) });
        assert!(effects.is_empty(), "transfer to {to}: {effects:?}");
        raft.propose(1, 100).expect("no transfer in progress");
        let last = raft.log().last();
        receive(&mut raft, 2, Message::AppendResponse { term: Term(1), success: true, matched: last });
    }
    let effects = raft.step(Input::TransferLeadership { to: NodeId(2) });
    assert!(timeout_now(&effects), "{effects:?}");
    assert_eq!(raft.propose(1, 100).err(), Some(ProposeError::Transferring));
    // The target never takes over: the transfer is abandoned after one election timeout.
    let min = Config::new(NodeId(1)).election_timeout_ticks_min;
    for tick in 0..min {
        assert_eq!(raft.propose(1, 100).err(), Some(ProposeError::Transferring), "tick {tick}");
        raft.step(Input::Tick { randomized_election_timeout_ticks: min });
        let matched = raft.log().last();
        receive(&mut raft, 2, Message::AppendResponse { term: Term(1), success: true, matched });
    }
    raft.propose(1, 100).expect("the transfer was abandoned");
    let mut follower = follower(2, &[1, 2], HardState { term: Term(1), voted_for: None }, RaftLog::default());
    let effects = follower.step(Input::TransferLeadership { to: NodeId(1) });
    assert!(effects.is_empty(), "only a leader transfers");
}
