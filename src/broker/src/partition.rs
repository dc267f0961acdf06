//! A partition as the broker serves it: its log behind an async lock, plus published watermarks
//! that produce and fetch waiters watch without taking the lock.
//!
//! The high watermark is the offset below which data is committed. On one node that is the
//! flushed offset when the topic fsyncs before acknowledging (the default, `flush.messages=1`),
//! and the log end offset otherwise; with replication it becomes the Raft commit index
//! (DESIGN.md, Replication). Invariant: the published high watermark never decreases and never
//! exceeds the log end offset.
//!
//! A replicated partition (cluster mode) also carries a [`ReplicaView`]: what the multi-raft
//! driver last published about its Raft group (leader, epoch, commit, ISR). Handlers read it
//! to answer NOT_LEADER_OR_FOLLOWER and Metadata; only the driver writes it.

use sluice_io::Disk;
use sluice_rpc::GroupId;
use sluice_storage::PartitionLog;
use sluice_types::{NodeId, Offset, Term};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Mutex, MutexGuard, watch};

/// The leader epoch of every partition on a single node (no elections yet).
pub const SINGLE_NODE_LEADER_EPOCH: Term = Term(0);

/// KIP-320 fencing of a request's `current_leader_epoch` (-1 = not given) against ours: a
/// client that knows a newer epoch than ours gets UNKNOWN_LEADER_EPOCH (it must wait for us),
/// an older one gets FENCED_LEADER_EPOCH (it must refresh its metadata). `None` when the epoch
/// is acceptable.
pub fn leader_epoch_error(current_leader_epoch: i32, ours: Term) -> Option<i16> {
    use sluice_protocol::error_code::{FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH};
    let ours = ours.0;
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
    /// The leader epoch (Raft term) the watermarks were published in; an acks=-1 waiter whose
    /// append was made in another epoch cannot know whether it survived (KIP-101).
    pub leader_epoch: Term,
}

/// What the multi-raft driver last published about a replicated partition's group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaView {
    pub group: GroupId,
    /// The assigned replicas, preferred leader first (from the controller's metadata).
    pub replicas: Vec<NodeId>,
    /// Whether this broker hosts a replica (and so a Raft group) of the partition.
    pub local: bool,
    pub leader: Option<NodeId>,
    pub leader_epoch: Term,
    /// Leader only: it has committed an entry of its own term, so `commit` is the group's
    /// high watermark. Before that a new leader's commit index can lag the old leader's, and
    /// serving would show clients a high watermark going back (Raft §8: a leader commits its
    /// no-op before it answers reads; found by the simulator, seed 14 of the first sweep).
    pub leader_ready: bool,
    /// The commit index: the high watermark is `commit + 1`.
    pub commit: Offset,
    /// Leader only: the replicas caught up within `replica.lag.time.max.ms`, leader included.
    pub isr: Vec<NodeId>,
    /// The replica's role (for `/v1/partitions`); its term is `leader_epoch`.
    pub role: &'static str,
    /// Leader only: each follower's acknowledged (durable) last offset.
    pub matched: Vec<(NodeId, Offset)>,
    /// The latest leader report for this partition (`cluster/leader_reports.rs`): how a broker
    /// that does not lead learns the leader (without a replica here) and the ISR.
    pub reported: Option<LeaderReport>,
}

/// What a partition's leader last told the other brokers about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderReport {
    pub leader: NodeId,
    pub leader_epoch: Term,
    pub isr: Vec<NodeId>,
    /// When it arrived (monotonic: a wall clock that jumps back would keep a dead leader's
    /// report fresh); a report older than `LEADER_REPORT_STALE_MS` is ignored.
    pub received: tokio::time::Instant,
}

/// What Metadata says of one partition: (leader, leader epoch, ISR).
pub type LeadershipView = (Option<NodeId>, Term, Vec<NodeId>);

impl ReplicaView {
    pub fn new(group: GroupId, replicas: Vec<NodeId>, local: bool) -> ReplicaView {
        ReplicaView {
            group,
            replicas,
            local,
            leader: None,
            leader_epoch: Term(0),
            leader_ready: false,
            commit: Offset(-1),
            isr: Vec::new(),
            role: "none",
            matched: Vec::new(),
            reported: None,
        }
    }

    /// The leader, its epoch and the ISR as this broker knows them: its own when it leads, else
    /// the leader's latest report when that is fresh and not older than this broker's own Raft
    /// view, else its Raft view with the replicas standing in for the ISR.
    pub fn leadership(&self, me: NodeId, now: tokio::time::Instant, stale_ms: i64) -> LeadershipView {
        if self.leader == Some(me) {
            return (self.leader, self.leader_epoch, self.isr.clone());
        }
        if let Some(report) = &self.reported
            && now.saturating_duration_since(report.received).as_millis() <= u128::from(stale_ms.unsigned_abs())
            && report.leader_epoch >= self.leader_epoch
        {
            return (Some(report.leader), report.leader_epoch, report.isr.clone());
        }
        (self.leader, self.leader_epoch, self.replicas.clone())
    }
}

pub struct Partition<D: Disk> {
    pub topic: String,
    pub index: i32,
    log: Mutex<PartitionLog<D>>,
    watermarks: watch::Sender<Watermarks>,
    /// Set when the partition is queued for the flusher; cleared when the flusher takes it.
    pub(crate) flush_queued: AtomicBool,
    /// `Some` in cluster mode. Lock order: the log lock, then this (never the reverse).
    replica: Option<std::sync::Mutex<ReplicaView>>,
}

impl<D: Disk> Partition<D> {
    pub fn new(topic: String, index: i32, log: PartitionLog<D>) -> Partition<D> {
        let initial = watermarks_of(&log);
        Partition::with(topic, index, log, initial, None)
    }

    fn with(
        topic: String,
        index: i32,
        log: PartitionLog<D>,
        initial: Watermarks,
        replica: Option<ReplicaView>,
    ) -> Partition<D> {
        Partition {
            topic,
            index,
            log: Mutex::new(log),
            watermarks: watch::Sender::new(initial),
            flush_queued: AtomicBool::new(false),
            replica: replica.map(std::sync::Mutex::new),
        }
    }

    /// A partition whose high watermark is its Raft group's commit index. It starts at the log
    /// start: nothing is known to be committed until the group says so.
    pub fn replicated(topic: String, index: i32, log: PartitionLog<D>, view: ReplicaView) -> Partition<D> {
        let mut initial = watermarks_of(&log);
        initial.high_watermark = log.log_start_offset();
        initial.leader_epoch = view.leader_epoch;
        Partition::with(topic, index, log, initial, Some(view))
    }

    /// The replication view; `None` on a single node.
    pub fn replica_view(&self) -> Option<ReplicaView> {
        self.replica.as_ref().map(|view| view.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }

    pub fn is_replicated(&self) -> bool {
        self.replica.is_some()
    }

    /// Changes the replication view (the driver only), then publishes the watermarks.
    pub fn update_view(&self, log: &PartitionLog<D>, change: impl FnOnce(&mut ReplicaView)) {
        self.update_view_only(change);
        self.publish(log);
    }

    /// After this broker's replica was deleted (`Topics::wipe_partition`): the view forgets the
    /// group, and the watermarks restart from the empty log. The one place a high watermark
    /// may go back: this broker serves nothing of the partition from now on (not the leader).
    pub fn reset_after_wipe(&self, log: &PartitionLog<D>) {
        self.update_view_only(|view| {
            view.local = false;
            view.leader = None;
            view.leader_ready = false;
            view.commit = Offset(-1);
            view.isr.clear();
            view.matched.clear();
            view.role = "none";
        });
        let mut next = watermarks_of(log);
        next.high_watermark = log.log_start_offset();
        next.leader_epoch = self.leader_epoch();
        self.watermarks.send_replace(next);
    }

    /// Changes view fields the watermarks do not depend on (ISR, progress), without publishing.
    pub fn update_view_only(&self, change: impl FnOnce(&mut ReplicaView)) {
        let view = self.replica.as_ref().expect("only a replicated partition has a view");
        change(&mut view.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Why this broker cannot serve a client's produce, fetch or offset request for this
    /// partition: NOT_LEADER_OR_FOLLOWER unless it leads the partition's group (clients then
    /// refresh their metadata), else the KIP-320 epoch fence. `None`: serve it.
    pub fn serve_error(&self, me: NodeId, current_leader_epoch: i32) -> Option<i16> {
        if let Some(view) = self.replica_view()
            && (view.leader != Some(me) || !view.leader_ready)
        {
            return Some(sluice_protocol::error_code::NOT_LEADER_OR_FOLLOWER);
        }
        leader_epoch_error(current_leader_epoch, self.leader_epoch())
    }

    /// The leader epoch handlers fence requests with (KIP-320).
    pub fn leader_epoch(&self) -> Term {
        self.watermarks().leader_epoch
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
        let mut next = watermarks_of(log);
        if let Some(view) = &self.replica {
            let view = view.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Kafka's high watermark is the first offset not yet committed (Raft §5.3 commit).
            next.high_watermark = Offset(view.commit.0 + 1).max(log.log_start_offset());
            next.leader_epoch = view.leader_epoch;
        }
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
        leader_epoch: SINGLE_NODE_LEADER_EPOCH,
    }
}
