//! One Raft group as the driver holds it: the replica shell, the partition it replicates, and
//! what the group publishes for handlers after every step (commit, leader, ISR).
//!
//! Every step takes the partition's log lock for its duration and publishes the new view and
//! watermarks before releasing it, so a handler never sees a high watermark ahead of the log
//! that holds it. Outgoing messages go to the driver's `Outbox` (coalesced per peer).

use crate::partition::Partition;
use crate::replication::{Executed, Outgoing, Replica, ReplicaError};
use bytes::{Bytes, BytesMut};
use sluice_io::Disk;
use sluice_raft::{Input, MembershipChange, ProposeError, Role};
use sluice_rpc::{GroupId, Outbox, Pushed, RaftMessage};
use sluice_storage::PartitionLog;
use sluice_types::{NodeId, Offset, Term};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::MutexGuard;

pub(super) struct Group<D: Disk> {
    pub id: GroupId,
    pub replica: Replica,
    pub partition: Arc<Partition<D>>,
    /// Leader: when each follower last held the leader's whole log (ISR, KIP-537's
    /// `replica.lag.time.max.ms`: "caught up to the leader's log end within the lag time").
    /// Leader: when each follower was last caught up (monotonic ms, `Now::monotonic_ms`).
    pub caught_up_ms: BTreeMap<NodeId, i64>,
    /// `replica.lag.time.max.ms`.
    pub lag_max_ms: i64,
}

/// What a step changed that the driver acts on once the log lock is released.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Stepped {
    pub committed: bool,
    pub leader_changed: bool,
    pub needs_flush: bool,
}

pub(super) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre_candidate",
        Role::Learner => "learner",
    }
}

/// A replica cannot continue past a storage failure: memory and disk may disagree.
fn fatal(id: GroupId, error: ReplicaError) -> ! {
    panic!("replica of {id:?} failed ({error}); stopping the broker rather than risk an acknowledged record")
}

/// The time of a step: wall time stamps what Raft writes (no-op batches), monotonic time
/// measures the ISR's lag (a wall clock may jump; `sluice_io::Clock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub wall_ms: i64,
    /// Milliseconds since the driver started, on the monotonic clock.
    pub monotonic_ms: i64,
}

impl<D: Disk> Group<D> {
    pub async fn step(
        &mut self,
        input: Input,
        received: &BTreeMap<Offset, Bytes>,
        disk: &D,
        now: Now,
        outbox: &mut Outbox,
    ) -> Stepped {
        let partition = self.partition.clone();
        let mut log = partition.lock().await;
        let mut out = Vec::new();
        let executed = self.replica.step(input, disk, &mut log, received, now.wall_ms, &mut out).await;
        self.finish(log, executed, out, outbox, now.monotonic_ms)
    }

    /// The flusher made the log durable below `end`.
    pub async fn flushed(&mut self, end: Offset, last_term: Term, disk: &D, now: Now, outbox: &mut Outbox) -> Stepped {
        let partition = self.partition.clone();
        let mut log = partition.lock().await;
        let mut out = Vec::new();
        let executed = self.replica.flushed(end, last_term, disk, &mut log, now.wall_ms, &mut out).await;
        self.finish(log, executed, out, outbox, now.monotonic_ms)
    }

    /// Leader: proposes a batch. `check` runs under the log lock first (the idempotent
    /// producer's sequence check, KIP-98) and may answer without proposing. Also returns
    /// whether the topic stamps LogAppendTime.
    pub async fn propose(
        &mut self,
        batch: BytesMut,
        record_offsets: u32,
        disk: &D,
        now: Now,
        outbox: &mut Outbox,
        check: impl FnOnce(&PartitionLog<D>) -> Option<Result<(Offset, Offset), i16>>,
    ) -> (Result<(Offset, Offset), i16>, Stepped, bool) {
        let partition = self.partition.clone();
        let mut log = partition.lock().await;
        let log_append_time = log.config().log_append_time;
        if let Some(answer) = check(&log) {
            return (answer, Stepped::default(), log_append_time);
        }
        let mut out = Vec::new();
        let proposed = match self.replica.propose(batch, record_offsets, disk, &mut log, now.wall_ms, &mut out).await {
            Ok(proposed) => proposed,
            Err(error) => fatal(self.id, error),
        };
        let (answer, executed) = match proposed {
            Ok((base, last, executed)) => (Ok((base, last)), executed),
            Err(refused) => (Err(propose_error_code(refused)), Executed::default()),
        };
        (answer, self.finish(log, Ok(executed), out, outbox, now.monotonic_ms), log_append_time)
    }

    /// Leader: proposes one membership change driven by reassignment `epoch` (`reassign.rs`).
    pub async fn propose_membership(
        &mut self,
        change: MembershipChange,
        epoch: Offset,
        disk: &D,
        now: Now,
        outbox: &mut Outbox,
    ) -> (Result<(), ProposeError>, Stepped) {
        let partition = self.partition.clone();
        let mut log = partition.lock().await;
        let mut out = Vec::new();
        let proposed = self.replica.propose_membership(change, epoch, disk, &mut log, now.wall_ms, &mut out).await;
        match proposed {
            Ok(Ok(executed)) => (Ok(()), self.finish(log, Ok(executed), out, outbox, now.monotonic_ms)),
            Ok(Err(refused)) => (Err(refused), Stepped::default()),
            Err(error) => fatal(self.id, error),
        }
    }

    /// After a replica call: publish what changed while the log is still locked, release the
    /// lock, then queue the outgoing messages.
    fn finish(
        &mut self,
        log: MutexGuard<'_, PartitionLog<D>>,
        executed: Result<Executed, ReplicaError>,
        out: Vec<Outgoing>,
        outbox: &mut Outbox,
        monotonic_ms: i64,
    ) -> Stepped {
        let executed = executed.unwrap_or_else(|error| fatal(self.id, error));
        let stepped = self.publish(&log, &executed, monotonic_ms);
        drop(log);
        self.send(out, outbox);
        stepped
    }

    fn send(&self, out: Vec<Outgoing>, outbox: &mut Outbox) {
        for Outgoing { envelope, batches } in out {
            let to = envelope.to;
            if let Pushed::Dropped(reason) = outbox.push(self.id, RaftMessage::new(envelope, batches)) {
                // Raft tolerates loss: the leader resends on its next heartbeat.
                tracing::debug!(group = ?self.id, to = %to.0, ?reason, "outbox dropped a message");
                metrics::counter!("sluice_raft_messages_dropped_total").increment(1);
            }
        }
    }

    /// Publishes what the step changed: commit (the high watermark), leadership, the view.
    fn publish(&mut self, log: &PartitionLog<D>, executed: &Executed, monotonic_ms: i64) -> Stepped {
        let raft = self.replica.raft();
        let me = raft.id();
        let became_leader = matches!(executed.leader, Some((Some(leader), _)) if leader == me);
        if became_leader {
            // A new leader starts with every member in sync (Kafka's new leader keeps the ISR
            // it was elected from); laggards drop out after the lag time.
            let members: Vec<NodeId> = raft.voters().iter().copied().filter(|n| *n != me).collect();
            self.caught_up_ms = members.into_iter().map(|n| (n, monotonic_ms)).collect();
            metrics::counter!("sluice_raft_elections_won_total").increment(1);
        }
        let stepped = Stepped {
            committed: executed.committed.is_some(),
            leader_changed: executed.leader.is_some(),
            needs_flush: executed.needs_flush,
        };
        if stepped.committed || stepped.leader_changed {
            let (commit, leader, term, role) = (raft.committed(), raft.leader(), raft.term(), raft.role());
            let leader_ready = role == Role::Leader && raft.log().term_at(commit) == Some(term);
            let isr = self.isr(monotonic_ms);
            self.partition.update_view(log, |view| {
                view.leader_ready = leader_ready;
                view.commit = commit;
                view.leader = leader;
                view.leader_epoch = term;
                view.role = role_name(role);
                view.isr = isr;
            });
        }
        stepped
    }

    /// Leader upkeep every tick: who is caught up, the ISR and each follower's progress.
    pub fn refresh_leader_view(&mut self, monotonic_ms: i64) {
        let raft = self.replica.raft();
        if raft.role() != Role::Leader {
            return;
        }
        let last = raft.log().last().index;
        let matched: Vec<(NodeId, Offset)> = raft.progress().iter().map(|(n, p)| (*n, p.matched)).collect();
        for (node, offset) in &matched {
            if *offset >= last {
                self.caught_up_ms.insert(*node, monotonic_ms);
            }
        }
        let isr = self.isr(monotonic_ms);
        self.partition.update_view_only(|view| {
            view.isr = isr;
            view.matched = matched;
        });
    }

    /// Leader: itself and every voter caught up within the lag time; empty elsewhere.
    fn isr(&self, monotonic_ms: i64) -> Vec<NodeId> {
        let raft = self.replica.raft();
        if raft.role() != Role::Leader {
            return Vec::new();
        }
        let me = raft.id();
        let mut isr = vec![me];
        // Only voters: a learner (a reassignment's new replica) does not count toward commits.
        let in_sync = |(n, at): &(&NodeId, &i64)| {
            **n != me && raft.voters().contains(*n) && monotonic_ms - **at <= self.lag_max_ms
        };
        isr.extend(self.caught_up_ms.iter().filter(in_sync).map(|(n, _)| *n));
        isr.sort();
        isr
    }
}

/// The Kafka error a refused proposal answers with (all retriable: the producer refreshes its
/// metadata or backs off).
fn propose_error_code(refused: ProposeError) -> i16 {
    use sluice_protocol::error_code;
    match refused {
        ProposeError::NotLeader { .. } | ProposeError::Transferring => error_code::NOT_LEADER_OR_FOLLOWER,
        ProposeError::Backpressure => error_code::REQUEST_TIMED_OUT,
        ProposeError::MembershipChangeInProgress | ProposeError::InvalidMembershipChange => error_code::INVALID_REQUEST,
    }
}
