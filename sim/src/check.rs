//! The checks after a seed: the history checkers and the Raft trace checkers of
//! `sluice-checker`, and the trace hash of the determinism check.
//!
//! The trace hash covers everything a seed makes observable: every history line, every final
//! read and every Raft trace event, in order. Two runs of one seed must give the same hash
//! (FNV-1a 64 over their text; the determinism check in CI compares them).

use sluice_broker::replication::sim_trace::TraceRecord;
use sluice_checker::raft::{Position, RaftEvent, RaftRecord, RaftRole, check_raft_with_faulty_disks};
use sluice_checker::{History, Violation, check};
use sluice_raft::{LogPosition, Role, TraceEvent};

/// The cluster did not serve again within the bound after healing.
pub const LIVENESS: &str = "Liveness";
/// The simulation itself panicked (a broken invariant in a broker or the harness).
pub const PANIC: &str = "Panic";
/// A broker stopped on a storage error although its disk injects no faults.
pub const FATAL_ON_HEALTHY_DISK: &str = "FatalOnHealthyDisk";
/// A replay of the seed in a fresh process gave another trace hash.
pub const DETERMINISM: &str = "Determinism";

fn position(p: LogPosition) -> Position {
    (p.index.0, i64::from(p.term.0))
}

/// The checker's view of one broker trace record.
pub fn convert(record: &TraceRecord) -> RaftRecord {
    let event = match &record.event {
        TraceEvent::Restart { term, voted_for, last, committed } => RaftEvent::Restart {
            term: i64::from(term.0),
            voted_for: voted_for.map(|n| n.0 as u32),
            last: position(*last),
            committed: committed.0,
        },
        TraceEvent::Role { term, role, leader } => RaftEvent::Role {
            term: i64::from(term.0),
            role: match role {
                Role::Follower => RaftRole::Follower,
                Role::PreCandidate => RaftRole::PreCandidate,
                Role::Candidate => RaftRole::Candidate,
                Role::Leader => RaftRole::Leader,
                Role::Learner => RaftRole::Learner,
            },
            leader: leader.map(|n| n.0 as u32),
        },
        TraceEvent::HardState { term, voted_for } => {
            RaftEvent::HardState { term: i64::from(term.0), voted_for: voted_for.map(|n| n.0 as u32) }
        }
        TraceEvent::Ack { matched } => RaftEvent::Ack { matched: position(*matched) },
        TraceEvent::Vote { term, candidate } => {
            RaftEvent::Vote { term: i64::from(term.0), candidate: candidate.0 as u32 }
        }
        TraceEvent::Append { entries } => {
            RaftEvent::Append { entries: entries.iter().copied().map(position).collect() }
        }
        TraceEvent::Truncate { after } => RaftEvent::Truncate { after: position(*after) },
        TraceEvent::ResetLog { before_start } => RaftEvent::ResetLog { before_start: position(*before_start) },
        TraceEvent::Commit { index, term } => RaftEvent::Commit { index: index.0, term: i64::from(term.0) },
    };
    RaftRecord { node: record.node.0 as u32, group: record.group.clone(), event }
}

/// Every checker over the seed's history and trace (`faulty_disk_nodes`: brokers whose disks
/// inject faults, which may lose synced data).
pub fn check_all(history: &History, trace: &[RaftRecord], faulty_disk_nodes: &[u32]) -> Vec<Violation> {
    let mut violations = check(history).violations;
    violations.extend(check_raft_with_faulty_disks(trace, &faulty_disk_nodes.iter().copied().collect()));
    violations
}

/// FNV-1a 64 of the history and the trace.
pub fn trace_hash(history: &History, trace: &[RaftRecord]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(history.to_jsonl().as_bytes());
    for record in trace {
        feed(format!("{record:?}\n").as_bytes());
    }
    hash
}
