//! The group workload's KIP-848 variant: the same consumers, commits and read-backs as
//! `group_workload.rs`, but members speak the consumer group protocol
//! (ConsumerGroupHeartbeat), so the broker computes assignments and members reconcile to them.
//!
//! A member's loop, as Kafka's consumer (`ConsumerMembershipManager`) runs it:
//! - join: a heartbeat at epoch 0 with the subscription, the rebalance timeout and a server
//!   assignor (drawn per member: `uniform` or `range`); the member id is the member's own
//!   (KIP-1082), new for each incarnation;
//! - every heartbeat reports the partitions owned; an answer with an assignment is reconciled
//!   at once: revoked partitions are committed, then dropped; new partitions are read from
//!   their committed offsets (a Seek); the next heartbeat acknowledges without waiting;
//! - UNKNOWN_MEMBER_ID or FENCED_MEMBER_EPOCH: the partitions are lost (no commit, as Kafka's
//!   `onPartitionsLost`) and the member rejoins at epoch 0 under the same id;
//! - commits carry the member epoch; STALE_MEMBER_EPOCH is a definite failure, and the member
//!   goes on (its next heartbeat brings the epoch);
//! - crash (vanish, a new incarnation later) and leave (epoch -1) at random, as the classic
//!   members do.
//!
//! GroupOffsetsDurable judges the commits and reads exactly as for classic members.

use crate::group_workload::{
    CRASH_PER_POLL, Committed, CommittingMember, GROUP_ID, GROUP_RETRY_PAUSE, LEAVE_PER_POLL, REBALANCE_TIMEOUT_MS,
    commit_positions, read_committed,
};
use crate::workload::{CALL_TIMEOUT, ClientFailed, Recorder, Target, connect, poll_partition};
use rand::Rng;
use sluice_checker::{Op, PartitionKey};
use sluice_client::{
    Client, ConsumerHeartbeat, ConsumerHeartbeatAnswer, JOIN_MEMBER_EPOCH, LEAVE_MEMBER_EPOCH, NamedPartitions,
};
use sluice_protocol::error_code::{FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The server assignors a member may ask for (KIP-848).
const SERVER_ASSIGNORS: [&str; 2] = ["uniform", "range"];
/// How often a member commits its positions (as classic members do).
const COMMIT_INTERVAL: Duration = crate::group_workload::COMMIT_INTERVAL;
/// The heartbeat interval until the coordinator names one.
const HEARTBEAT_INTERVAL_INITIAL: Duration = Duration::from_millis(1_000);
/// The shortest pause of a member with nothing to poll.
const IDLE_PAUSE: Duration = Duration::from_millis(100);

/// Why a member's session ended.
enum Ended {
    /// Fenced: rejoin at epoch 0 with the same member id.
    Rejoin,
    /// Crashed or left: a new incarnation with a new member id (and a new client).
    NewIncarnation,
}

struct Member {
    process: u64,
    client_id: String,
    bootstrap: String,
    client: Client,
    incarnation: u32,
    member_id: String,
    member_epoch: i32,
    assignor: &'static str,
    /// The partitions this member owns and its position in each.
    positions: BTreeMap<PartitionKey, i64>,
    commits: u64,
    recorder: Recorder,
}

/// One KIP-848 member process: joins `GROUP_ID` subscribed to every target topic and consumes
/// until `stop`; then commits once more and leaves.
pub async fn consumer_group_member(
    process: u64,
    bootstrap: String,
    targets: Vec<Target>,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    let client_id = format!("consumer-member-{process}");
    let client = connect(&bootstrap, &client_id).await;
    let assignor = SERVER_ASSIGNORS[madsim::rand::thread_rng().gen_range(0..SERVER_ASSIGNORS.len())];
    let mut member = Member {
        process,
        client_id,
        bootstrap,
        client,
        incarnation: 0,
        member_id: String::new(),
        member_epoch: JOIN_MEMBER_EPOCH,
        assignor,
        positions: BTreeMap::new(),
        commits: 0,
        recorder,
    };
    member.new_incarnation();
    let topics: Vec<String> = targets.iter().map(|t| t.topic.clone()).collect();
    while !stop.load(Ordering::Relaxed) {
        match member.session(&topics, &stop).await {
            Ended::Rejoin => {}
            Ended::NewIncarnation => {
                member.client = connect(&member.bootstrap, &member.client_id).await;
                member.new_incarnation();
            }
        }
        member.member_epoch = JOIN_MEMBER_EPOCH;
        member.positions.clear();
        tokio::time::sleep(GROUP_RETRY_PAUSE).await;
    }
}

impl Member {
    /// A member id of its own (KIP-1082), unique per process and incarnation.
    fn new_incarnation(&mut self) {
        self.incarnation += 1;
        self.member_id = format!("sim-member-{}-{}", self.process, self.incarnation);
    }

    fn owned(&self) -> NamedPartitions {
        let mut owned = NamedPartitions::new();
        for partition in self.positions.keys() {
            owned.entry(partition.topic.clone()).or_default().insert(partition.partition);
        }
        owned
    }

    /// One heartbeat; `None` when the call failed (timeout or transport), which the caller
    /// retries with a new client.
    async fn heartbeat(&mut self, topics: &[String], epoch: i32) -> Option<ConsumerHeartbeatAnswer> {
        let joining = epoch == JOIN_MEMBER_EPOCH;
        let heartbeat = ConsumerHeartbeat {
            member_id: self.member_id.clone(),
            member_epoch: epoch,
            instance_id: None,
            rebalance_timeout_ms: if joining { REBALANCE_TIMEOUT_MS } else { -1 },
            subscribed_topics: joining.then(|| topics.to_vec()),
            server_assignor: joining.then(|| self.assignor.to_owned()),
            owned: (epoch >= 0).then(|| self.owned()),
        };
        let call = self.client.consumer_group_heartbeat(GROUP_ID, &heartbeat);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(answer)) => Some(answer),
            _ => None,
        }
    }

    /// Joins, then polls, heartbeats, reconciles and commits until fenced, a fault of its own,
    /// or `stop` (then a last commit and a leave).
    async fn session(&mut self, topics: &[String], stop: &AtomicBool) -> Ended {
        let mut heartbeat_due = Instant::now();
        let mut heartbeat_interval = HEARTBEAT_INTERVAL_INITIAL;
        let mut commit_due = Instant::now() + COMMIT_INTERVAL;
        // Bounded by `stop`, fencing and the member's own faults.
        loop {
            if stop.load(Ordering::Relaxed) {
                let _ = self.commit().await;
                let _ = self.heartbeat(topics, LEAVE_MEMBER_EPOCH).await;
                return Ended::NewIncarnation;
            }
            if Instant::now() >= heartbeat_due {
                let Some(answer) = self.heartbeat(topics, self.member_epoch).await else {
                    self.client = connect(&self.bootstrap, &self.client_id).await;
                    heartbeat_due = Instant::now() + GROUP_RETRY_PAUSE;
                    continue;
                };
                match answer.error.as_ref().map(|e| e.code) {
                    None => {}
                    Some(UNKNOWN_MEMBER_ID | FENCED_MEMBER_EPOCH) => {
                        tracing::info!(target: "sluice_sim", process = self.process, member = %self.member_id,
                            epoch = self.member_epoch, error = ?answer.error, "consumer member fenced");
                        return Ended::Rejoin;
                    }
                    Some(_) => {
                        heartbeat_due = Instant::now() + GROUP_RETRY_PAUSE;
                        continue;
                    }
                }
                self.member_epoch = answer.member_epoch;
                if answer.heartbeat_interval_ms > 0 {
                    heartbeat_interval = Duration::from_millis(answer.heartbeat_interval_ms as u64);
                }
                heartbeat_due = Instant::now() + heartbeat_interval;
                if let Some(assignment) = answer.assignment {
                    if let Err(ended) = self.reconcile(&assignment).await {
                        return ended;
                    }
                    // Acknowledge the reconciled assignment at once (Kafka's consumer does).
                    heartbeat_due = Instant::now();
                }
            }
            if self.positions.is_empty() {
                // Nothing to poll: wait for the next heartbeat without spinning.
                let until = heartbeat_due.min(commit_due).max(Instant::now() + IDLE_PAUSE);
                tokio::time::sleep_until(until).await;
            }
            let partitions: Vec<PartitionKey> = self.positions.keys().cloned().collect();
            for partition in partitions {
                let position = self.positions.get_mut(&partition).expect("owned");
                let polled = poll_partition(&mut self.client, self.process, &partition, position, &self.recorder).await;
                if let Err(ClientFailed) = polled {
                    self.client = connect(&self.bootstrap, &self.client_id).await;
                    break;
                }
                let (crash, leave) = {
                    let mut rng = madsim::rand::thread_rng();
                    (rng.gen_bool(CRASH_PER_POLL), rng.gen_bool(LEAVE_PER_POLL))
                };
                if crash {
                    tracing::info!(target: "sluice_sim", process = self.process, member = %self.member_id,
                        "consumer member crashes");
                    return Ended::NewIncarnation;
                }
                if leave {
                    tracing::info!(target: "sluice_sim", process = self.process, member = %self.member_id,
                        "consumer member leaves");
                    let _ = self.heartbeat(topics, LEAVE_MEMBER_EPOCH).await;
                    return Ended::NewIncarnation;
                }
            }
            if Instant::now() >= commit_due {
                commit_due = Instant::now() + COMMIT_INTERVAL;
                let owned: Vec<PartitionKey> = self.positions.keys().cloned().collect();
                if !owned.is_empty()
                    && read_committed(&mut self.client, self.process, &owned, &self.recorder).await.is_err()
                {
                    self.client = connect(&self.bootstrap, &self.client_id).await;
                    continue;
                }
                if let Err(ended) = self.commit().await {
                    return ended;
                }
            }
        }
    }

    /// Moves to `assignment`: commits and drops what was revoked, reads the committed offsets
    /// of what was added and starts there.
    async fn reconcile(&mut self, assignment: &NamedPartitions) -> Result<(), Ended> {
        let target: Vec<PartitionKey> = assignment
            .iter()
            .flat_map(|(topic, partitions)| partitions.iter().map(|p| PartitionKey::new(topic.clone(), *p)))
            .collect();
        let revoked: Vec<PartitionKey> = self.positions.keys().filter(|p| !target.contains(p)).cloned().collect();
        if !revoked.is_empty() {
            // Kafka's consumer commits before it gives partitions up (auto-commit on revoke).
            let _ = self.commit_partitions(&revoked).await?;
            for partition in &revoked {
                self.positions.remove(partition);
            }
        }
        let added: Vec<PartitionKey> = target.iter().filter(|p| !self.positions.contains_key(*p)).cloned().collect();
        if !added.is_empty() {
            let Ok(committed) = read_committed(&mut self.client, self.process, &added, &self.recorder).await else {
                // Not owned yet: the next heartbeat reports what is owned, and the broker
                // sends the assignment again only when it changes, so start over cleanly.
                self.client = connect(&self.bootstrap, &self.client_id).await;
                let _ = self.heartbeat(&[], LEAVE_MEMBER_EPOCH).await;
                return Err(Ended::NewIncarnation);
            };
            for partition in added {
                let position = committed.get(&partition).copied().flatten().unwrap_or(0);
                let at_ms = self.recorder.now_ms();
                self.recorder.record(Op::Seek {
                    process: self.process,
                    partition: partition.clone(),
                    offset: position,
                    at_ms,
                });
                self.positions.insert(partition, position);
            }
        }
        tracing::info!(target: "sluice_sim", process = self.process, member = %self.member_id,
            epoch = self.member_epoch, ?assignment, "consumer member assigned");
        Ok(())
    }

    /// Commits every owned position.
    async fn commit(&mut self) -> Result<(), Ended> {
        let owned: Vec<PartitionKey> = self.positions.keys().cloned().collect();
        self.commit_partitions(&owned).await.map(|_| ())
    }

    /// Commits the positions of `partitions` with the member epoch. A fenced member ends its
    /// session; STALE_MEMBER_EPOCH and indeterminate outcomes do not.
    async fn commit_partitions(&mut self, partitions: &[PartitionKey]) -> Result<bool, Ended> {
        let positions: Vec<(PartitionKey, i64)> =
            partitions.iter().filter_map(|p| self.positions.get(p).map(|position| (p.clone(), *position))).collect();
        let member = CommittingMember { process: self.process, member_id: &self.member_id, epoch: self.member_epoch };
        match commit_positions(&mut self.client, &member, &mut self.commits, &positions, &self.recorder).await {
            Committed::Ok => Ok(true),
            Committed::Fenced(UNKNOWN_MEMBER_ID) => Err(Ended::Rejoin),
            Committed::Fenced(_) | Committed::Failed(_) => Ok(false),
            Committed::TimedOut => {
                self.client = connect(&self.bootstrap, &self.client_id).await;
                Ok(false)
            }
        }
    }
}
