//! `sluice-raft`: the consensus core every partition and the controller run.
//!
//! A sans-IO state machine in the style of etcd raft's Ready and openraft's Engine: inputs are
//! ticks, received messages, proposals, persistence progress and log start movement; outputs
//! are ordered effects (persist hard state, truncate or append entries, send messages, commit
//! index advanced, leadership changes). Nothing here does I/O, reads a clock or draws random
//! numbers, and the crate depends on neither tokio nor madsim.
//!
//! Entries are Kafka record batches: an entry's index is its batch's last offset and its term
//! is the batch's `partitionLeaderEpoch` (DESIGN.md, "one log format end to end"). The core
//! handles entry metadata only; batch bytes stay with the shell.
//!
//! Map: `raft.rs` (state, inputs, role dispatch), `election.rs` (pre-vote, votes),
//! `replication.rs` (append, commit rule, log start, check-quorum, transfer), `membership.rs`
//! (single-server changes), `raft_log.rs`
//! (the log's metadata), `progress.rs` (per-follower pipeline), `effect.rs` (the contract),
//! `trace.rs` (one event per state transition, for the simulator's checkers and TLA+).

mod config;
mod effect;
mod election;
mod membership;
mod message;
mod progress;
mod raft;
mod raft_log;
mod replication;
mod trace;

pub use config::Config;
pub use effect::{Effect, HardState, Role};
pub use membership::Membership;
pub use message::{EntryKind, EntryMeta, Envelope, LogPosition, MembershipChange, Message};
pub use progress::{Progress, ProgressState};
pub use raft::{Input, ProposeError, Raft};
pub use raft_log::RaftLog;
pub use replication::{LEADER_NOOP_BYTES, MEMBERSHIP_ENTRY_BYTES};
pub use trace::{TRACE_EVENTS_PENDING_MAX, TraceEvent};
