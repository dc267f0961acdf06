//! Leader reports: every broker tells its peers, every `LEADER_REPORT_MS`, which partitions it
//! leads, at which leader epoch, with which ISR.
//!
//! Partition leadership lives in each partition's Raft group, so a broker without a replica of
//! a partition (replication factor below the cluster size, or a replica moved away) has no
//! other way to learn the leader; and a follower's Raft view names the leader but not the ISR.
//! Kafka solves both by having the controller push leader and ISR to every broker
//! (UpdateMetadata, or KRaft's `PartitionChangeRecord`); here the leader pushes them itself,
//! unreplicated. A report is only a hint for Metadata: the fresher of it and the broker's own
//! Raft view wins (higher leader epoch), a stale one is ignored after
//! `LEADER_REPORT_STALE_MS` on the monotonic clock (both the sending and the ageing), and a client sent to a broker that no longer leads gets
//! NOT_LEADER_OR_FOLLOWER and asks again.

use super::controller::ControllerRequest;
use super::driver::Driver;
use super::limits::LEADER_REPORT_PARTITIONS_MAX;
use crate::partition::LeaderReport;
use sluice_io::{Clock, Disk, Transport};
use sluice_meta::TopicId;
use sluice_raft::Role;
use sluice_rpc::{ForwardRequest, GroupId, Rpc, encode_rpc};
use sluice_types::{NodeId, Term};

impl<D: Disk, C: Clock> Driver<D, C> {
    /// Sends every peer the partitions this broker leads (correlation id 0: not answered).
    pub(super) fn send_leader_reports(&mut self) {
        let led: Vec<(String, i32, i32, Vec<i32>)> = self
            .groups
            .values()
            .filter(|group| group.replica.raft().role() == Role::Leader)
            .filter_map(|group| {
                let GroupId::Partition { topic_id, partition } = group.id else { return None };
                let view = group.partition.replica_view()?;
                let isr = view.isr.iter().map(|n| n.0).collect();
                Some((topic_id.to_string(), partition.0, view.leader_epoch.0, isr))
            })
            .collect();
        for chunk in led.chunks(LEADER_REPORT_PARTITIONS_MAX) {
            let request = ControllerRequest::LeaderReport { partitions: chunk.to_vec() };
            let rpc = Rpc::ForwardRequest(ForwardRequest { correlation_id: 0, payload: request.encode() });
            let bytes = encode_rpc(&rpc);
            for peer in self.config.peers.keys().filter(|peer| **peer != self.me) {
                if let Err(error) = self.transport.send(*peer, bytes.clone()) {
                    tracing::debug!(to = peer.0, %error, "leader report not sent");
                }
            }
        }
    }

    /// Records a peer's report on each partition it names that this broker knows.
    pub(super) fn receive_leader_report(&mut self, from: NodeId, partitions: Vec<(String, i32, i32, Vec<i32>)>) {
        let received = self.state.clock.now();
        for (topic_id, index, leader_epoch, isr) in partitions.into_iter().take(LEADER_REPORT_PARTITIONS_MAX) {
            let Some(topic_id) = TopicId::parse(&topic_id) else { continue };
            let Some(topic) = self.meta.topic_by_id(topic_id) else { continue };
            let Some(partition) = self.state.topics.partition(&topic.name, index) else { continue };
            let report = LeaderReport {
                leader: from,
                leader_epoch: Term(leader_epoch),
                isr: isr.into_iter().map(NodeId).collect(),
                received,
            };
            partition.update_view_only(|view| {
                // An older epoch's leader may still believe it leads: the newer epoch wins.
                if view.reported.as_ref().is_none_or(|r| r.leader_epoch <= report.leader_epoch) {
                    view.reported = Some(report);
                }
            });
        }
    }
}
