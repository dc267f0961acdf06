//! Flush reports: how the flusher tells the multi-raft driver that a replicated log became
//! durable, without ever waiting on the driver.
//!
//! The driver enqueues a partition for the flusher after a step left its log dirty; the
//! flusher fsyncs, then records `(end, last_term)` here and wakes the driver, which feeds
//! `Input::Persisted` to the replica (Raft thesis §10.2.1: a replica counts, and answers for,
//! only what is durable). One slot per group, the latest report replacing an older one, so the
//! map is bounded by the number of groups and the flusher never blocks on a slow driver (the
//! driver may block on the flusher's queue, so the reverse would deadlock).

use sluice_rpc::GroupId;
use sluice_types::{Offset, Term};
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::sync::Notify;

#[derive(Default)]
pub struct FlushReports {
    pending: Mutex<BTreeMap<GroupId, (Offset, Term)>>,
    notify: Notify,
}

impl FlushReports {
    /// The log of `group` is durable below `end`; its last batch had leader epoch `last_term`
    /// when the flush was planned (a stale pair names an entry the log no longer holds, which
    /// the core ignores).
    pub fn report(&self, group: GroupId, end: Offset, last_term: Term) {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(group, (end, last_term));
        self.notify.notify_one();
    }

    /// Every report since the last call.
    pub fn take(&self) -> BTreeMap<GroupId, (Offset, Term)> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Resolves after the next `report` (or at once if one came since the last wait).
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}
