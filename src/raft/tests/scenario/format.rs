//! Compact, stable text for effects, messages and log entries.
//!
//! Notation: a log position is `(term,index)`; an entry is `(term,index,kind)` with kind `data`,
//! `noop` (a new leader's control batch), `add-learner:N`, `promote:N` or `remove:N`; the empty
//! log's position is `(-1,-1)`; member sets are `(1,2,3)`.

use sluice_raft::{Effect, EntryKind, EntryMeta, Envelope, HardState, LogPosition, MembershipChange, Message, Role};
use sluice_types::NodeId;
use std::collections::BTreeSet;

pub fn position(p: LogPosition) -> String {
    format!("({},{})", p.term, p.index)
}

pub fn entry(e: &EntryMeta) -> String {
    let kind = match e.kind {
        EntryKind::Data => "data".to_string(),
        EntryKind::LeaderNoop => "noop".to_string(),
        EntryKind::Membership(MembershipChange::AddLearner(id)) => format!("add-learner:{id}"),
        EntryKind::Membership(MembershipChange::PromoteLearner(id)) => format!("promote:{id}"),
        EntryKind::Membership(MembershipChange::Remove(id)) => format!("remove:{id}"),
    };
    format!("({},{},{kind})", e.term, e.index)
}

pub fn entries<'a>(list: impl IntoIterator<Item = &'a EntryMeta>) -> String {
    let items: Vec<String> = list.into_iter().map(entry).collect();
    format!("[{}]", items.join(" "))
}

pub fn ids(set: &BTreeSet<NodeId>) -> String {
    let items: Vec<String> = set.iter().map(|id| id.to_string()).collect();
    format!("({})", items.join(","))
}

pub fn role(role: Role) -> &'static str {
    match role {
        Role::Follower => "Follower",
        Role::PreCandidate => "PreCandidate",
        Role::Candidate => "Candidate",
        Role::Leader => "Leader",
        Role::Learner => "Learner",
    }
}

pub fn leader(leader: Option<NodeId>) -> String {
    leader.map_or_else(|| "none".to_string(), |id| id.to_string())
}

pub fn hard_state(hard: HardState) -> String {
    format!("term={} vote={}", hard.term, leader(hard.voted_for))
}

/// `1->2 AppendEntries term=2 prev=(1,4) entries=[(2,5,data)] commit=4`.
pub fn envelope(envelope: &Envelope) -> String {
    let body = match &envelope.message {
        Message::PreVote { term, last } => format!("PreVote term={term} last={}", position(*last)),
        Message::PreVoteResponse { term, granted } => {
            format!("PreVoteResponse term={term} {}", if *granted { "granted" } else { "rejected" })
        }
        Message::Vote { term, last, transfer } => {
            format!("Vote term={term} last={}{}", position(*last), if *transfer { " transfer" } else { "" })
        }
        Message::VoteResponse { term, granted } => {
            format!("VoteResponse term={term} {}", if *granted { "granted" } else { "rejected" })
        }
        Message::AppendEntries { term, prev, entries: list, commit, log_start } => {
            let start = if log_start.0 == 0 { String::new() } else { format!(" start={log_start}") };
            format!(
                "AppendEntries term={term} prev={} entries={} commit={commit}{start}",
                position(*prev),
                entries(list)
            )
        }
        Message::AppendResponse { term, success: true, matched } => {
            format!("AppendResponse term={term} ok matched={}", position(*matched))
        }
        Message::AppendResponse { term, success: false, matched } => {
            format!("AppendResponse term={term} reject hint={}", position(*matched))
        }
        Message::LogStart { term, log_start, log_start_term, membership } => format!(
            "LogStart term={term} start={log_start} start-term={log_start_term} voters={} learners={}",
            ids(&membership.voters),
            ids(&membership.learners)
        ),
        Message::TimeoutNow { term } => format!("TimeoutNow term={term}"),
    };
    format!("{}->{} {body}", envelope.from, envelope.to)
}

/// A non-message effect of node `id`: `2: append [(2,5,data)]`. Messages: `None`.
pub fn local_effect(id: NodeId, effect: &Effect) -> Option<String> {
    let text = match effect {
        Effect::PersistHardState(hard) => format!("persist {}", hard_state(*hard)),
        Effect::Truncate { after } => format!("truncate after={}", position(*after)),
        Effect::Append { entries: list } => format!("append {}", entries(list)),
        Effect::ResetLog { before_start, .. } => format!("reset-log start={}", before_start.index.next()),
        Effect::Committed { index } => format!("commit={index}"),
        Effect::LeaderChanged { leader: l, term, role: r } => {
            format!("{} term={term} leader={}", role(*r), leader(*l))
        }
        Effect::Send(_) | Effect::Replicate(_) => return None,
    };
    Some(format!("{id}: {text}"))
}
