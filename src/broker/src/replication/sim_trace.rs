//! The simulator's sink for Raft trace events (simulation builds only).
//!
//! Why: the simulator checks ElectionSafety, LogMatching, LeaderCompleteness and
//! CommittedNeverLost against every transition of every replica, and issue 7's TLA+ trace
//! validation replays the same events. Each replica drains its core's `TraceEvent`s here, tagged
//! with its node and group, in the order they happened. madsim runs all nodes of a seed on one OS
//! thread, so a thread-local sink holds the whole cluster's trace in one global order.
//!
//! Bounded: past `TRACE_RECORDS_MAX` records the sink stops recording and says so (`overflowed`),
//! so a checker never reasons over a silently cut trace.

use sluice_raft::TraceEvent;
use sluice_types::NodeId;
use std::cell::RefCell;

/// Records one run may collect.
pub const TRACE_RECORDS_MAX: usize = 4_000_000;

/// One transition of one replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    pub node: NodeId,
    /// The replica's directory name: `__cluster_metadata` or `topic-partition`.
    pub group: String,
    pub event: TraceEvent,
}

#[derive(Default)]
struct Sink {
    records: Vec<TraceRecord>,
    overflowed: bool,
}

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Starts collecting (replicas opened from now on trace themselves), dropping any old trace.
pub fn start() {
    SINK.with(|sink| *sink.borrow_mut() = Some(Sink::default()));
}

/// Whether a trace is being collected.
pub fn enabled() -> bool {
    SINK.with(|sink| sink.borrow().is_some())
}

/// Stops collecting; returns the records and whether the bound cut the trace.
pub fn finish() -> (Vec<TraceRecord>, bool) {
    SINK.with(|sink| sink.borrow_mut().take().map(|s| (s.records, s.overflowed)).unwrap_or_default())
}

pub(crate) fn record(node: NodeId, group: &str, events: Vec<TraceEvent>) {
    if events.is_empty() {
        return;
    }
    SINK.with(|sink| {
        let mut sink = sink.borrow_mut();
        let Some(sink) = sink.as_mut() else { return };
        for event in events {
            if sink.records.len() >= TRACE_RECORDS_MAX {
                sink.overflowed = true;
                return;
            }
            // Timestamped in the event log with SLUICE_SIM_LOG=...,sluice_raft_trace=trace.
            tracing::trace!(target: "sluice_raft_trace", node = node.0, group, ?event);
            sink.records.push(TraceRecord { node, group: group.to_owned(), event });
        }
    });
}
