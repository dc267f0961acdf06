//! The trace hook: one event per state transition of a replica.
//!
//! Why: the simulator checks Raft's safety properties (ElectionSafety, LogMatching,
//! LeaderCompleteness, CommittedNeverLost) against what each replica actually did, and TLA+
//! trace validation (etcd raft's method) replays the same events against the spec. Tracing is
//! off unless the shell calls `Raft::enable_trace`, and costs nothing then.
//!
//! Each event is derived from the effect that makes the transition visible to the shell, so the
//! trace cannot drift from what the core did: a role change from `LeaderChanged`, a term or
//! vote from `PersistHardState`, log changes from `Append`, `Truncate` and `ResetLog`, a commit
//! from `Committed` (with the committed entry's term, read from the log at that moment).
//!
//! Two events come from the shell, not the core, when a message actually leaves the replica
//! (`TraceEvent::sent`): `Vote`, a granting `VoteResponse`, and `Ack`, a successful
//! `AppendResponse`. `HardState` and `Append` are only requests to persist, which the core
//! emits before the shell runs any effect; a crash before they are durable loses them
//! harmlessly, because the answers go out only after they are (Raft Figure 2: "updated on
//! stable storage before responding to RPCs"). So the double-vote check reads `Vote`, and
//! DurableBeforeAck compares `Ack` with what a restart recovers.
//! `Restart` opens every incarnation with the recovered state.
//!
//! Invariant: the shell drains the buffer after every step (`Raft::take_trace`); more than
//! `TRACE_EVENTS_PENDING_MAX` undrained events is a shell bug and panics.

use crate::effect::{Effect, Role};
use crate::message::{Envelope, LogPosition, Message};
use sluice_types::{NodeId, Offset, Term};

/// Undrained trace events a replica may hold (one step emits a few dozen at most).
pub const TRACE_EVENTS_PENDING_MAX: usize = 1 << 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    /// The replica (re)started from its persisted state.
    Restart { term: Term, voted_for: Option<NodeId>, last: LogPosition, committed: Offset },
    /// Role, known leader or term changed (Raft §5.2).
    Role { term: Term, role: Role, leader: Option<NodeId> },
    /// The term and vote are to be persisted (Raft Figure 2).
    HardState { term: Term, voted_for: Option<NodeId> },
    /// The replica granted its vote in `term` to `candidate`: the VoteResponse went out
    /// (recorded by the shell as it sends, `sent`).
    Vote { term: Term, candidate: NodeId },
    /// The replica told its leader it holds the log through `matched`: a successful
    /// AppendResponse went out (recorded by the shell as it sends, `sent`).
    Ack { matched: LogPosition },
    /// Entries appended at the end of the log, by index and term.
    Append { entries: Vec<LogPosition> },
    /// Every entry after `after` was removed (Raft §5.3).
    Truncate { after: LogPosition },
    /// The log was restarted empty after `before_start` (snapshot-style catch-up).
    ResetLog { before_start: LogPosition },
    /// The commit index (high watermark) advanced to `index`, whose entry has `term`.
    Commit { index: Offset, term: Term },
}

impl TraceEvent {
    /// The event of a message leaving a replica: `Vote` for a granted vote, `Ack` for a
    /// successful append response, nothing for the rest.
    pub fn sent(envelope: &Envelope) -> Option<TraceEvent> {
        match envelope.message {
            Message::VoteResponse { term, granted: true } => Some(TraceEvent::Vote { term, candidate: envelope.to }),
            Message::AppendResponse { success: true, matched, .. } => Some(TraceEvent::Ack { matched }),
            _ => None,
        }
    }

    /// The event an effect stands for, if it changes state. `term_at` looks up an entry's term.
    pub(crate) fn of_effect(effect: &Effect, term_at: impl Fn(Offset) -> Option<Term>) -> Option<TraceEvent> {
        Some(match effect {
            Effect::PersistHardState(hard) => TraceEvent::HardState { term: hard.term, voted_for: hard.voted_for },
            Effect::Truncate { after } => TraceEvent::Truncate { after: *after },
            Effect::Append { entries } => TraceEvent::Append {
                entries: entries.iter().map(|e| LogPosition { term: e.term, index: e.index }).collect(),
            },
            Effect::ResetLog { before_start, .. } => TraceEvent::ResetLog { before_start: *before_start },
            Effect::Committed { index } => {
                TraceEvent::Commit { index: *index, term: term_at(*index).expect("a committed index is in the log") }
            }
            Effect::LeaderChanged { leader, term, role } => {
                TraceEvent::Role { term: *term, role: *role, leader: *leader }
            }
            Effect::Send(_) | Effect::Replicate(_) => return None,
        })
    }
}
