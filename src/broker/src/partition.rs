//! A partition as the broker serves it: its log behind an async lock, plus published watermarks
//! that produce and fetch waiters watch without taking the lock.
//!
//! The high watermark is the offset below which data is committed. On one node that is the
//! flushed offset when the topic fsyncs before acknowledging (the default, `flush.messages=1`),
//! and the log end offset otherwise; with replication it becomes the Raft commit index
//! (DESIGN.md, Replication). Invariant: the published high watermark never decreases and never
//! exceeds the log end offset.

use sluice_io::Disk;
use sluice_storage::PartitionLog;
use sluice_types::{Offset, Term};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Mutex, MutexGuard, watch};

/// The leader epoch of every partition on a single node (no elections yet).
pub const SINGLE_NODE_LEADER_EPOCH: Term = Term(0);

/// KIP-320 fencing of a request's `current_leader_epoch` (-1 = not given): a client that knows
/// a newer epoch than ours gets UNKNOWN_LEADER_EPOCH (it must wait for us), an older one gets
/// FENCED_LEADER_EPOCH (it must refresh its metadata). `None` when the epoch is acceptable.
pub fn leader_epoch_error(current_leader_epoch: i32) -> Option<i16> {
    use sluice_protocol::error_code::{FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH};
    let ours = SINGLE_NODE_LEADER_EPOCH.0;
    match current_leader_epoch {
        requested if requested < 0 || requested == ours => None,
        requested if requested > ours => Some(UNKNOWN_LEADER_EPOCH),
        _ => Some(FENCED_LEADER_EPOCH),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watermarks {
    pub log_start_offset: Offset,
    pub high_watermark: Offset,
    pub log_end_offset: Offset,
}

pub struct Partition<D: Disk> {
    pub topic: String,
    pub index: i32,
    log: Mutex<PartitionLog<D>>,
    watermarks: watch::Sender<Watermarks>,
    /// Set when the partition is queued for the flusher; cleared when the flusher takes it.
    pub(crate) flush_queued: AtomicBool,
}

impl<D: Disk> Partition<D> {
    pub fn new(topic: String, index: i32, log: PartitionLog<D>) -> Partition<D> {
        let initial = watermarks_of(&log);
        Partition {
            topic,
            index,
            log: Mutex::new(log),
            watermarks: watch::Sender::new(initial),
            flush_queued: AtomicBool::new(false),
        }
    }

    pub async fn lock(&self) -> MutexGuard<'_, PartitionLog<D>> {
        self.log.lock().await
    }

    pub fn watermarks(&self) -> Watermarks {
        *self.watermarks.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<Watermarks> {
        self.watermarks.subscribe()
    }

    /// Publishes the log's current watermarks; wakes produce and fetch waiters on a change.
    pub fn publish(&self, log: &PartitionLog<D>) {
        let next = watermarks_of(log);
        self.watermarks.send_if_modified(|current| {
            assert!(next.high_watermark >= current.high_watermark, "high watermark went back");
            assert!(next.high_watermark <= next.log_end_offset);
            let changed = *current != next;
            *current = next;
            changed
        });
    }

    /// Marks the partition as needing the flusher; true if the caller must enqueue it.
    pub(crate) fn mark_flush_queued(&self) -> bool {
        !self.flush_queued.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn clear_flush_queued(&self) {
        self.flush_queued.store(false, Ordering::Release);
    }
}

fn watermarks_of<D: Disk>(log: &PartitionLog<D>) -> Watermarks {
    let high_watermark = if log.config().fsync_before_ack() { log.flushed_offset() } else { log.log_end_offset() };
    Watermarks {
        log_start_offset: log.log_start_offset(),
        high_watermark: high_watermark.max(log.log_start_offset()),
        log_end_offset: log.log_end_offset(),
    }
}
