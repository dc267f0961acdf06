//! The group workload (issue 6): consumers in one consumer group that join, split the topics
//! with the range assignor, poll, commit their positions and fail over, against the simulated
//! brokers, recording every commit and every committed-offset read for `GroupOffsetsDurable`.
//!
//! Each member runs the classic protocol's loop as Kafka's consumer does: JoinGroup (KIP-394's
//! member id round), the leader assigns (Kafka's `RangeAssignor`), SyncGroup, OffsetFetch of the
//! assigned partitions (a Seek to each committed offset), then polls with a Heartbeat every
//! [`HEARTBEAT_INTERVAL`] and a commit every [`COMMIT_INTERVAL`]. REBALANCE_IN_PROGRESS sends it
//! back to JoinGroup; ILLEGAL_GENERATION and UNKNOWN_MEMBER_ID too, the latter as a new member.
//!
//! Faults of its own: a member may crash (it vanishes without LeaveGroup, and the coordinator
//! expires it after `SESSION_TIMEOUT_MS`) or leave (LeaveGroup, then rejoin as a new member).
//!
//! Reading back: before every commit the member reads its partitions' committed offsets
//! (OffsetFetch), so a commit the coordinator lost in a failover shows as a stale read before
//! the next commit hides it. Each commit's metadata is unique (`g{process}-{n}`), so a read
//! names the commit it saw.
//!
//! Outcomes (Kafka protocol, OffsetCommit errors): a fencing error is answered before anything
//! is written, so the commit definitely failed; any other error (NOT_COORDINATOR,
//! COORDINATOR_NOT_AVAILABLE, a timeout) may follow a write still in flight: indeterminate.

use crate::workload::{CALL_TIMEOUT, ClientFailed, Recorder, Target, connect, poll_partition};
use rand::Rng;
use sluice_checker::{CommitOutcome, Op, PartitionKey};
use sluice_client::{Assignment, Client, ClientError, JoinOptions, JoinedGroup, Offset, PartitionId, range_assignment};
use sluice_protocol::error_code::{
    FENCED_INSTANCE_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS, STALE_MEMBER_EPOCH, UNKNOWN_MEMBER_ID,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The one group every member joins.
pub const GROUP_ID: &str = "sim-group";
/// Process ids of group members start here (producers from 0, plain consumers from 1000).
pub const GROUP_PROCESS_BASE: u64 = 2_000;
/// The process id of the final committed-offset reader.
pub const GROUP_FINAL_PROCESS: u64 = 9_998;
/// Kafka's `session.timeout.ms` (its default is 45 s; shorter makes expiry happen in a run).
pub const SESSION_TIMEOUT_MS: i32 = 10_000;
/// Kafka's `max.poll.interval.ms`, the rebalance timeout.
pub const REBALANCE_TIMEOUT_MS: i32 = 10_000;
/// Kafka's `heartbeat.interval.ms` default is a third of the session timeout.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(3_000);
/// How often a member commits its positions.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(1_000);
/// JoinGroup waits at the broker up to the rebalance timeout, then the request's own.
const JOIN_TIMEOUT: Duration = Duration::from_millis(REBALANCE_TIMEOUT_MS as u64 + 10_000);
/// The chance, per poll, that a member crashes (vanishes without leaving).
pub(crate) const CRASH_PER_POLL: f64 = 0.002;
/// The chance, per poll, that a member leaves the group and rejoins as a new member.
pub(crate) const LEAVE_PER_POLL: f64 = 0.002;
/// The pause after a failed group call before the next one.
pub(crate) const GROUP_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Committed-offset reads of every partition at the end, at most.
const FINAL_READ_ATTEMPTS_MAX: u32 = 100;

/// Every error code of OffsetCommit that the coordinator answers before it writes (KIP-848
/// adds STALE_MEMBER_EPOCH for a consumer group member's commit with another epoch).
const FENCING_CODES: [i16; 5] =
    [ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, FENCED_INSTANCE_ID, STALE_MEMBER_EPOCH];

/// What a member does after a call failed.
enum Next {
    /// JoinGroup again, as the same member.
    Rejoin,
    /// JoinGroup again as a new member (the coordinator no longer knows this one).
    Forget,
    /// The connection is gone: a new client, then rejoin.
    Reconnect,
}

fn next_after(error: &ClientError) -> Next {
    match error {
        ClientError::Kafka { error, .. } if error.code == UNKNOWN_MEMBER_ID || error.code == FENCED_INSTANCE_ID => {
            Next::Forget
        }
        ClientError::Kafka { .. } => Next::Rejoin,
        _ => Next::Reconnect,
    }
}

/// One member's identity and the partitions it holds.
struct Member {
    process: u64,
    client_id: String,
    bootstrap: String,
    client: Client,
    member_id: String,
    commits: u64,
    recorder: Recorder,
}

/// One group member process: joins `GROUP_ID` subscribed to every target topic and consumes
/// until `stop`; then commits once more and leaves.
pub async fn group_consumer(
    process: u64,
    bootstrap: String,
    targets: Vec<Target>,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    let client_id = format!("group-member-{process}");
    let client = connect(&bootstrap, &client_id).await;
    let mut member = Member { process, client_id, bootstrap, client, member_id: String::new(), commits: 0, recorder };
    let topics: Vec<String> = targets.iter().map(|t| t.topic.clone()).collect();
    let counts: BTreeMap<String, i32> = targets.iter().map(|t| (t.topic.clone(), t.partitions)).collect();
    while !stop.load(Ordering::Relaxed) {
        let next = match member.join_and_sync(&topics, &counts).await {
            Ok((joined, assignment)) => member.consume(&joined, &assignment, &stop).await,
            Err(next) => next,
        };
        match next {
            Next::Rejoin => {}
            Next::Forget => member.member_id.clear(),
            Next::Reconnect => member.client = connect(&member.bootstrap, &member.client_id).await,
        }
        tokio::time::sleep(GROUP_RETRY_PAUSE).await;
    }
}

impl Member {
    fn options() -> JoinOptions {
        JoinOptions {
            session_timeout_ms: SESSION_TIMEOUT_MS,
            rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
            group_instance_id: None,
        }
    }

    /// JoinGroup and SyncGroup: the generation and this member's partitions.
    async fn join_and_sync(
        &mut self,
        topics: &[String],
        counts: &BTreeMap<String, i32>,
    ) -> Result<(JoinedGroup, Vec<PartitionKey>), Next> {
        let options = Member::options();
        let join = self.client.join_group(GROUP_ID, &self.member_id, topics, &options);
        let joined = match tokio::time::timeout(JOIN_TIMEOUT, join).await {
            Ok(Ok(joined)) => joined,
            Ok(Err(error)) => return Err(next_after(&error)),
            Err(_) => return Err(Next::Reconnect),
        };
        self.member_id = joined.member_id.clone();
        let plan: BTreeMap<String, Assignment> = if joined.is_leader() {
            let members: Vec<(String, Vec<String>)> =
                joined.members.iter().map(|m| (m.member_id.clone(), m.topics.clone())).collect();
            range_assignment(&members, counts)
        } else {
            BTreeMap::new()
        };
        let sync = self.client.sync_group(GROUP_ID, &joined, None, &plan);
        let assignment = match tokio::time::timeout(CALL_TIMEOUT, sync).await {
            Ok(Ok(assignment)) => assignment,
            Ok(Err(error)) => return Err(next_after(&error)),
            Err(_) => return Err(Next::Reconnect),
        };
        let partitions = assignment
            .iter()
            .flat_map(|(topic, partitions)| partitions.iter().map(|p| PartitionKey::new(topic.clone(), p.0)))
            .collect();
        tracing::info!(target: "sluice_sim", process = self.process, generation = joined.generation_id,
            member = %self.member_id, ?assignment, "group member assigned");
        Ok((joined, partitions))
    }

    /// Polls `partitions` from their committed offsets, heartbeating and committing, until the
    /// generation ends, a fault of its own, or `stop` (then a last commit and LeaveGroup).
    async fn consume(&mut self, joined: &JoinedGroup, partitions: &[PartitionKey], stop: &AtomicBool) -> Next {
        let generation = joined.generation_id;
        let Ok(committed) = self.read_committed(partitions).await else { return Next::Reconnect };
        let mut positions: Vec<(PartitionKey, i64)> = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let position = committed.get(partition).copied().flatten().unwrap_or(0);
            let at_ms = self.recorder.now_ms();
            let seek = Op::Seek { process: self.process, partition: partition.clone(), offset: position, at_ms };
            self.recorder.record(seek);
            positions.push((partition.clone(), position));
        }
        let mut heartbeat_due = Instant::now() + HEARTBEAT_INTERVAL;
        let mut commit_due = Instant::now() + COMMIT_INTERVAL;
        // Bounded by `stop`, the generation's end and the member's own faults.
        loop {
            if stop.load(Ordering::Relaxed) {
                let _ = self.commit(generation, &positions).await;
                let leave = self.client.leave_group(GROUP_ID, &self.member_id);
                let _ = tokio::time::timeout(CALL_TIMEOUT, leave).await;
                return Next::Forget;
            }
            if positions.is_empty() {
                // Nothing assigned: only heartbeats, which must not spin without time passing.
                tokio::time::sleep(HEARTBEAT_INTERVAL.min(COMMIT_INTERVAL)).await;
            }
            for (partition, position) in positions.iter_mut() {
                let polled = poll_partition(&mut self.client, self.process, partition, position, &self.recorder).await;
                if let Err(ClientFailed) = polled {
                    return Next::Reconnect;
                }
                let (crash, leave) = {
                    let mut rng = madsim::rand::thread_rng();
                    (rng.gen_bool(CRASH_PER_POLL), rng.gen_bool(LEAVE_PER_POLL))
                };
                if crash {
                    tracing::info!(target: "sluice_sim", process = self.process, member = %self.member_id,
                        "group member crashes");
                    self.member_id.clear();
                    return Next::Reconnect;
                }
                if leave {
                    tracing::info!(target: "sluice_sim", process = self.process, member = %self.member_id,
                        "group member leaves");
                    let leave = self.client.leave_group(GROUP_ID, &self.member_id);
                    let _ = tokio::time::timeout(CALL_TIMEOUT, leave).await;
                    return Next::Forget;
                }
            }
            if Instant::now() >= commit_due {
                commit_due = Instant::now() + COMMIT_INTERVAL;
                if self.read_committed(partitions).await.is_err() {
                    return Next::Reconnect;
                }
                if let Err(next) = self.commit(generation, &positions).await {
                    return next;
                }
            }
            if Instant::now() >= heartbeat_due {
                heartbeat_due = Instant::now() + HEARTBEAT_INTERVAL;
                let beat = self.client.heartbeat(GROUP_ID, generation, &self.member_id);
                match tokio::time::timeout(CALL_TIMEOUT, beat).await {
                    Ok(Ok(())) => {}
                    Ok(Err(ClientError::Kafka { error, .. })) if error.code == REBALANCE_IN_PROGRESS => {
                        // Kafka's consumer commits before it gives its partitions up.
                        let _ = self.commit(generation, &positions).await;
                        return Next::Rejoin;
                    }
                    Ok(Err(error)) => return next_after(&error),
                    Err(_) => return Next::Reconnect,
                }
            }
        }
    }

    /// OffsetFetch of `partitions`, each answer recorded. `Err` when the call failed.
    async fn read_committed(
        &mut self,
        partitions: &[PartitionKey],
    ) -> Result<BTreeMap<PartitionKey, Option<i64>>, ClientFailed> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        read_committed(&mut self.client, self.process, partitions, &self.recorder).await
    }

    /// One OffsetCommit of every position, each partition recorded with its outcome.
    async fn commit(&mut self, generation: i32, positions: &[(PartitionKey, i64)]) -> Result<(), Next> {
        let member = CommittingMember { process: self.process, member_id: &self.member_id, epoch: generation };
        match commit_positions(&mut self.client, &member, &mut self.commits, positions, &self.recorder).await {
            Committed::Ok => Ok(()),
            Committed::Fenced(UNKNOWN_MEMBER_ID | FENCED_INSTANCE_ID) => Err(Next::Forget),
            Committed::Fenced(_) => Err(Next::Rejoin),
            Committed::Failed(error) => Err(next_after(&error)),
            Committed::TimedOut => Err(Next::Reconnect),
        }
    }
}

/// Who commits: a classic member with its generation, or a KIP-848 member with its epoch.
pub(crate) struct CommittingMember<'a> {
    pub process: u64,
    pub member_id: &'a str,
    /// The generation (classic) or member epoch (KIP-848) sent as `generation_id_or_member_epoch`.
    pub epoch: i32,
}

/// What an OffsetCommit did, as far as the member can tell.
pub(crate) enum Committed {
    Ok,
    /// Refused before anything was written, with this code (`FENCING_CODES`).
    Fenced(i16),
    Failed(ClientError),
    TimedOut,
}

/// One OffsetCommit of every position, each partition recorded with its outcome (metadata
/// `g{process}-{n}`, `n` counting in `commits`).
pub(crate) async fn commit_positions(
    client: &mut Client,
    member: &CommittingMember<'_>,
    commits: &mut u64,
    positions: &[(PartitionKey, i64)],
    recorder: &Recorder,
) -> Committed {
    if positions.is_empty() {
        return Committed::Ok;
    }
    let offsets: Vec<(String, PartitionId, Offset, String)> = positions
        .iter()
        .map(|(partition, position)| {
            *commits += 1;
            let metadata = format!("g{}-{}", member.process, commits);
            (partition.topic.clone(), PartitionId(partition.partition), Offset(*position), metadata)
        })
        .collect();
    let invoke_ms = recorder.now_ms();
    let call = client.commit_as_member(GROUP_ID, member.epoch, member.member_id, &offsets);
    let answer = tokio::time::timeout(CALL_TIMEOUT, call).await;
    let complete_ms = recorder.now_ms();
    let outcomes: BTreeMap<(String, i32), Option<i16>> = match &answer {
        Ok(Ok(outcomes)) => {
            outcomes.iter().map(|o| ((o.topic.clone(), o.partition.0), o.error.as_ref().map(|e| e.code))).collect()
        }
        _ => BTreeMap::new(),
    };
    let mut fenced = None;
    for (topic, partition, offset, metadata) in offsets {
        let outcome = match outcomes.get(&(topic.clone(), partition.0)) {
            Some(None) => CommitOutcome::Ok,
            Some(Some(code)) if FENCING_CODES.contains(code) => {
                fenced = Some(*code);
                CommitOutcome::Failed
            }
            _ => CommitOutcome::Indeterminate,
        };
        recorder.record(Op::Commit {
            process: member.process,
            group: GROUP_ID.to_owned(),
            partition: PartitionKey::new(topic, partition.0),
            offset: offset.0,
            metadata,
            invoke_ms,
            complete_ms,
            outcome,
        });
    }
    match (answer, fenced) {
        (Ok(Ok(_)), None) => Committed::Ok,
        (Ok(Ok(_)), Some(code)) => Committed::Fenced(code),
        (Ok(Err(error)), _) => Committed::Failed(error),
        (Err(_), _) => Committed::TimedOut,
    }
}

/// OffsetFetch of `partitions` for `GROUP_ID`, each partition's answer recorded as a
/// `FetchCommitted` of `process` (a partition answered with an error is not recorded).
pub(crate) async fn read_committed(
    client: &mut Client,
    process: u64,
    partitions: &[PartitionKey],
    recorder: &Recorder,
) -> Result<BTreeMap<PartitionKey, Option<i64>>, ClientFailed> {
    let requested: Vec<(String, PartitionId)> =
        partitions.iter().map(|p| (p.topic.clone(), PartitionId(p.partition))).collect();
    let invoke_ms = recorder.now_ms();
    let call = client.fetch_committed_offsets(GROUP_ID, Some(&requested));
    let Ok(Ok(fetched)) = tokio::time::timeout(CALL_TIMEOUT, call).await else { return Err(ClientFailed) };
    let complete_ms = recorder.now_ms();
    let mut committed = BTreeMap::new();
    for answer in fetched.iter().filter(|answer| answer.error.is_none()) {
        let partition = PartitionKey::new(answer.topic.clone(), answer.partition.0);
        let offset = answer.offset.map(|o| o.0);
        recorder.record(Op::FetchCommitted {
            process,
            group: GROUP_ID.to_owned(),
            partition: partition.clone(),
            invoke_ms,
            complete_ms,
            committed: offset.map(|o| (o, answer.metadata.clone().unwrap_or_default())),
        });
        committed.insert(partition, offset);
    }
    Ok(committed)
}

/// After healing: every partition's committed offset read once more, so that a commit lost in
/// a failover shows even if no member read after it. `Err` (a Liveness failure) when the
/// coordinator did not answer for every partition within `FINAL_READ_ATTEMPTS_MAX` attempts.
pub async fn read_final_commits(
    bootstrap: &str,
    partitions: &[PartitionKey],
    recorder: &Recorder,
) -> Result<(), String> {
    let mut missing: Vec<PartitionKey> = partitions.to_vec();
    let mut client = connect(bootstrap, "group-final-reader").await;
    for _ in 0..FINAL_READ_ATTEMPTS_MAX {
        match read_committed(&mut client, GROUP_FINAL_PROCESS, &missing, recorder).await {
            Ok(read) => missing.retain(|partition| !read.contains_key(partition)),
            Err(ClientFailed) => client = connect(bootstrap, "group-final-reader").await,
        }
        if missing.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(GROUP_RETRY_PAUSE).await;
    }
    Err(format!(
        "group {GROUP_ID}: no committed offset answer for {} partitions after {FINAL_READ_ATTEMPTS_MAX} attempts (first {})",
        missing.len(),
        missing[0]
    ))
}
