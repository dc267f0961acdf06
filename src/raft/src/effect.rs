//! The ordered effects a step produces, and the contract the shell must keep.
//!
//! Contract (etcd raft's Ready; openraft's Engine commands):
//! 1. Effects are executed in order.
//! 2. `PersistHardState`, `Truncate`, `Append` and `ResetLog` must be durable before any `Send`
//!    that comes after them is sent: a vote or an append acknowledgement must never be sent for
//!    state a crash could lose (Raft §5.2, §5.3; "NoAckBeyondMajorityPersisted").
//!    `Replicate` messages (a leader's AppendEntries) do not wait: a leader may replicate
//!    entries while it writes them itself (Raft thesis §10.2.1), because it counts itself
//!    toward a majority only through `Input::Persisted`.
//! 3. Appends become durable asynchronously (group commit): the shell reports progress with
//!    `Input::Persisted`, naming the last durable entry by index *and* term, so a report that
//!    raced a truncation cannot vouch for different entries at the same index; the leader counts itself toward a majority only for what it has
//!    persisted, and a follower acknowledges only what it has persisted.
//! 4. `Committed` is the high watermark: the shell may acknowledge acks=all producers and serve
//!    reads up to it. It never decreases.
//! 5. Retention: after `Input::LogStartMoved`, the shell persists `Raft::membership_at` of the
//!    new `before_start` beside the log start, because `Raft::new` needs the configuration as of
//!    the log start and the entries that changed it may be gone.

use crate::membership::Membership;
use crate::message::{EntryMeta, Envelope, LogPosition};
use sluice_types::{NodeId, Offset, Term};

/// The persisted vote and term (Raft Figure 2, "Persistent state on all servers").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: Term,
    pub voted_for: Option<NodeId>,
}

/// A replica's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
    /// Receives the log but does not vote or count toward a majority (Raft thesis §4.2.1).
    Learner,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Make the term and vote durable.
    PersistHardState(HardState),
    /// Remove every entry after `after` (keep `after` itself): a follower's conflicting suffix
    /// (Raft §5.3). Never below the commit index (asserted).
    Truncate { after: LogPosition },
    /// Append these entries after the current last entry. For a follower they come from an
    /// `AppendEntries` (the shell has their bytes); for a leader, `LeaderNoop` entries are
    /// created by the shell as Kafka control batches at the given offsets.
    Append { entries: Vec<EntryMeta> },
    /// Drop the log and start it empty after `before_start` (a follower behind the leader's
    /// log start). The shell must persist `before_start` (its term too: it is the log's first
    /// `prev` for consistency checks) and `membership`, the configuration as of the new start,
    /// which `Raft::new` takes on restart (membership changes in the skipped prefix are gone).
    /// A `Committed { index: before_start.index }` follows when it raises the commit index.
    ResetLog { before_start: LogPosition, membership: Membership },
    /// Send a message once every earlier persist effect is durable (rule 2).
    Send(Envelope),
    /// A leader's AppendEntries (or LogStart): may be sent at once. The shell attaches the
    /// entries' batch bytes.
    Replicate(Envelope),
    /// The commit index (high watermark) advanced to this index.
    Committed { index: Offset },
    /// The known leader or term changed.
    LeaderChanged { leader: Option<NodeId>, term: Term, role: Role },
}
