//! Applying the controller log, and making this broker's partitions match what it says.
//!
//! Committed controller entries are applied in log order to the local `MetaState` (control
//! batches only advance the applied index). A proposal this broker made as leader is answered
//! when its entry applies. Then `reconcile` opens what is new (topics, added partitions, a
//! Raft group for each partition this broker hosts), applies config changes, and deletes what
//! is gone. On restart the whole committed log is applied again, so the local topics are
//! always a function of the committed log (KRaft brokers replay `__cluster_metadata` too).

use super::driver::{Driver, raft_config};
use super::groups::Group;
use super::limits::{APPLY_READ_BYTES, COMMAND_RECORD_BYTES_MAX};
use super::reassign;
use super::{ControllerReply, stop_broker};
use crate::partition::{Partition, ReplicaView};
use crate::replication::Replica;
use crate::topic_config::TopicConfig;
use crate::topics::Topic;
use sluice_io::{Clock, Disk};
use sluice_meta::{MetaCommand, PartitionPlacement};
use sluice_protocol::error_code;
use sluice_protocol::records::decode_batch;
use sluice_raft::Membership;
use sluice_rpc::GroupId;
use sluice_types::batch::batches;
use sluice_types::{NodeId, Offset, PartitionId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use uuid::Uuid;

impl<D: Disk, C: Clock> Driver<D, C> {
    /// Applies every committed controller entry not yet applied, then reconciles.
    pub(super) async fn apply_committed(&mut self) {
        let group = &self.groups[&GroupId::Controller];
        let commit = group.replica.raft().committed();
        let partition = group.partition.clone();
        let mut changed = false;
        while self.meta_applied < commit {
            let read = partition.lock().await.read(self.meta_applied.next(), APPLY_READ_BYTES, commit.next()).await;
            let read = read.unwrap_or_else(|error| {
                stop_broker(format_args!("reading the committed controller log failed: {error}"))
            });
            assert!(
                !read.records.is_empty(),
                "the committed controller log has a batch at {}",
                self.meta_applied.next()
            );
            for batch in batches(&read.records) {
                let (header, range) = batch.unwrap_or_else(|error| panic!("controller log batch: {error}"));
                if header.last_offset() <= self.meta_applied || header.base_offset > commit {
                    continue;
                }
                if !header.is_control() {
                    let bytes = read.records.slice(range);
                    let (_, records) = decode_batch(&bytes, COMMAND_RECORD_BYTES_MAX)
                        .unwrap_or_else(|error| panic!("controller log batch at {}: {error}", header.base_offset));
                    for record in records {
                        let index = Offset(header.base_offset.0 + i64::from(record.offset_delta));
                        let value = record.value.unwrap_or_default();
                        // A committed command that does not decode must stop the replica:
                        // skipping it would make this broker's metadata diverge.
                        let command = MetaCommand::decode(&value)
                            .unwrap_or_else(|error| panic!("controller log record at {index}: {error}"));
                        let reply = match self.meta.apply(index, &command) {
                            Ok(applied) => {
                                tracing::info!(index = %index, ?applied, "metadata applied");
                                ControllerReply {
                                    error_code: error_code::NONE,
                                    message: String::new(),
                                    applied_index: index.0,
                                }
                            }
                            Err(error) => ControllerReply::from_meta(&error, index),
                        };
                        if let Some(origin) = self.waiters.remove(&index) {
                            self.answer(origin, reply);
                        }
                    }
                    changed = true;
                }
                self.meta_applied = header.last_offset();
            }
        }
        if changed {
            self.reconcile().await;
        }
        self.publish_snapshot();
    }

    /// Makes the local topics and groups match the applied metadata.
    async fn reconcile(&mut self) {
        for topic in self.state.topics.all() {
            let current =
                self.meta.topic(&topic.name).is_some_and(|t| Uuid::from_bytes(t.topic_id.0) == topic.topic_id);
            if current {
                continue;
            }
            for partition in &topic.partitions {
                if let Some(view) = partition.replica_view() {
                    self.groups.remove(&view.group);
                }
            }
            if let Err(error) = self.state.topics.remove_topic(&topic.name).await {
                stop_broker(format_args!("deleting the partitions of topic {} failed: {error}", topic.name));
            }
            tracing::info!(topic = %topic.name, "deleted topic");
        }
        let topics: Vec<sluice_meta::Topic> = self.meta.topics().values().cloned().collect();
        let mut campaigns = Vec::new();
        for meta_topic in topics {
            let config = TopicConfig::from_overrides(meta_topic.configs.clone()).unwrap_or_else(|error| {
                panic!("topic {} has configs the controller accepted: {error}", meta_topic.name)
            });
            let topic_id = Uuid::from_bytes(meta_topic.topic_id.0);
            let existing = self.state.topics.get(&meta_topic.name);
            let mut partitions = existing.as_ref().map(|t| t.partitions.clone()).unwrap_or_default();
            let had = partitions.len();
            for (index, placement) in meta_topic.partitions.iter().enumerate().take(had) {
                self.reconcile_members(&meta_topic, placement, &partitions[index], &config).await;
            }
            for (index, placement) in meta_topic.partitions.iter().enumerate().skip(had) {
                let index = i32::try_from(index).expect("partition counts are bounded");
                let (partition, campaign) = self.open_partition(&meta_topic, index, placement, &config).await;
                partitions.push(partition);
                campaigns.extend(campaign);
            }
            let config_changed = existing.as_ref().is_some_and(|t| t.config.overrides != config.overrides);
            if config_changed {
                for partition in &partitions {
                    let mut log = partition.lock().await;
                    log.set_config(config.log.clone());
                    partition.publish(&log);
                }
            }
            if existing.is_none() || partitions.len() > had || config_changed {
                let topic = Topic { name: meta_topic.name.clone(), topic_id, config, partitions };
                self.state.topics.install(Arc::new(topic));
            }
        }
        // The preferred replica asks for votes at once rather than after an election timeout;
        // pre-vote keeps this from disturbing a group that already has a leader (§9.6).
        self.campaigns.extend(campaigns);
    }

    /// Opens one partition's log, and its replica when this broker hosts one. Returns the
    /// partition and the group to campaign in (when this broker is the preferred replica).
    async fn open_partition(
        &mut self,
        topic: &sluice_meta::Topic,
        index: i32,
        placement: &PartitionPlacement,
        config: &TopicConfig,
    ) -> (Arc<Partition<D>>, Option<GroupId>) {
        let hosted = placement.members.contains(&self.me);
        let topic_id = Uuid::from_bytes(topic.topic_id.0);
        let registry = &self.state.topics;
        let open = registry.open_log(&topic.name, topic_id, index, config, self.wall_ms()).await;
        let log = open.unwrap_or_else(|error| {
            stop_broker(format_args!("opening partition {}-{index} failed: {error}", topic.name))
        });
        let group = GroupId::Partition { topic_id: topic.topic_id, partition: PartitionId(index) };
        let view = ReplicaView::new(group, reassign::reported_replicas(placement), false);
        let partition = Arc::new(Partition::replicated(topic.name.clone(), index, log, view));
        if !hosted {
            // A replica that moved away while this broker was down: the group no longer counts
            // it (a completed move, `reassign.rs`), so its data goes.
            let stale = registry.has_data(&topic.name, index).await;
            if stale.unwrap_or_else(|error| {
                stop_broker(format_args!("listing partition {}-{index} failed: {error}", topic.name))
            }) {
                tracing::info!(topic = %topic.name, partition = index, "deleting a replica moved off this broker");
                self.wipe(&partition, topic_id, config).await;
            }
            return (partition, None);
        }
        self.open_replica(&partition, placement).await;
        let campaign = (placement.desired().first() == Some(&self.me)).then_some(group);
        (partition, campaign)
    }

    /// Opens this broker's replica of `partition` on its log and starts driving its group. A
    /// replica starts from the group's initial configuration and replays the membership
    /// entries of its log (or of the leader's, when it joins by reassignment).
    async fn open_replica(&mut self, partition: &Arc<Partition<D>>, placement: &PartitionPlacement) {
        let view = partition.replica_view().expect("a cluster partition has a view");
        let voters: BTreeSet<NodeId> = placement.initial_voters.iter().copied().collect();
        let membership = Membership { voters, learners: BTreeSet::new() };
        let log = partition.lock().await;
        let dir = log.dir().to_path_buf();
        let replica =
            Replica::open(raft_config(self.me), &self.state.disk, &dir, &log, membership).await.unwrap_or_else(
                |error| stop_broker(format_args!("opening the replica of {:?} failed: {error}", view.group)),
            );
        let (commit, term) = (replica.raft().committed(), replica.raft().term());
        partition.update_view(&log, |view| {
            view.local = true;
            view.commit = view.commit.max(commit);
            view.leader_epoch = term;
        });
        drop(log);
        let group_state = Group {
            id: view.group,
            replica,
            partition: partition.clone(),
            caught_up_ms: BTreeMap::new(),
            lag_max_ms: self.config.replica_lag_time_max_ms,
        };
        self.groups.insert(view.group, group_state);
    }

    /// An existing partition whose members changed (a reassignment): open a replica for a
    /// broker that joins, delete the replica of one that left, and report the new replicas.
    async fn reconcile_members(
        &mut self,
        topic: &sluice_meta::Topic,
        placement: &PartitionPlacement,
        partition: &Arc<Partition<D>>,
        config: &TopicConfig,
    ) {
        let Some(view) = partition.replica_view() else { return };
        let reported = reassign::reported_replicas(placement);
        if view.replicas != reported {
            partition.update_view_only(|view| view.replicas = reported);
        }
        let hosted = placement.members.contains(&self.me);
        let has_group = self.groups.contains_key(&view.group);
        if hosted && !has_group {
            tracing::info!(topic = %topic.name, partition = partition.index, "opening a replica moved to this broker");
            self.open_replica(partition, placement).await;
        } else if !hosted && has_group {
            tracing::info!(topic = %topic.name, partition = partition.index, "deleting a replica moved off this broker");
            self.groups.remove(&view.group);
            self.wipe(partition, Uuid::from_bytes(topic.topic_id.0), config).await;
        }
    }

    async fn wipe(&self, partition: &Arc<Partition<D>>, topic_id: Uuid, config: &TopicConfig) {
        let wiped = self.state.topics.wipe_partition(partition, topic_id, config, self.wall_ms()).await;
        wiped.unwrap_or_else(|error| {
            stop_broker(format_args!("deleting the replica of {}-{} failed: {error}", partition.topic, partition.index))
        });
    }
}
