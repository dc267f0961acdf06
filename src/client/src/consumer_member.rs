//! A KIP-848 consumer group member's call: ConsumerGroupHeartbeat, which joins (epoch 0),
//! heartbeats, reports the partitions the member owns, learns its assignment, and leaves
//! (epoch -1). The broker computes assignments; there is no JoinGroup/SyncGroup round.
//!
//! The wire names topics by id (KIP-516); callers work by name, so this maps names to ids with
//! a Metadata call for the topics the member owns, and ids back to names for an assignment. A
//! topic id Metadata does not know (deleted, or not yet seen) is left out, as Kafka's consumer
//! does until its metadata catches up.
//!
//! Like the classic membership calls ([`crate::membership`]), it retries while the coordinator
//! moves or loads: a heartbeat repeated at the same epoch is harmless, and one repeated at
//! epoch 0 rejoins from scratch.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as OwnedTopic;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, TopicName};
use uuid::Uuid;

use crate::client::Client;
use crate::error::{KafkaError, Result};
use crate::groups::{group_id, str_bytes};

/// KIP-848: the member epoch that joins, and the one that leaves.
pub const JOIN_MEMBER_EPOCH: i32 = 0;
pub const LEAVE_MEMBER_EPOCH: i32 = -1;
/// Partitions by topic name.
pub type NamedPartitions = BTreeMap<String, BTreeSet<i32>>;

/// One ConsumerGroupHeartbeat. `None` fields are "unchanged since the last heartbeat".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerHeartbeat {
    /// Made by the member and kept for its life (KIP-1082: v1 requires it).
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    /// -1: unchanged. Required when joining.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topics: Option<Vec<String>>,
    /// `uniform` or `range`; `None` lets the broker choose.
    pub server_assignor: Option<String>,
    pub owned: Option<NamedPartitions>,
}

/// The coordinator's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerHeartbeatAnswer {
    pub error: Option<KafkaError>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment when it changed; `None`: unchanged.
    pub assignment: Option<NamedPartitions>,
}

impl Client {
    /// Sends one ConsumerGroupHeartbeat to the group's coordinator (retrying only while the
    /// coordinator moves or loads).
    pub async fn consumer_group_heartbeat(
        &mut self,
        group: &str,
        heartbeat: &ConsumerHeartbeat,
    ) -> Result<ConsumerHeartbeatAnswer> {
        let owned = match &heartbeat.owned {
            Some(owned) => Some(self.owned_by_id(owned).await?),
            None => None,
        };
        let build = |_version| {
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(group_id(group))
                .with_member_id(str_bytes(&heartbeat.member_id))
                .with_member_epoch(heartbeat.member_epoch)
                .with_instance_id(heartbeat.instance_id.as_deref().map(str_bytes))
                .with_rebalance_timeout_ms(heartbeat.rebalance_timeout_ms)
                .with_subscribed_topic_names(
                    heartbeat
                        .subscribed_topics
                        .as_ref()
                        .map(|topics| topics.iter().map(|t| TopicName(str_bytes(t))).collect()),
                )
                .with_server_assignor(heartbeat.server_assignor.as_deref().map(str_bytes))
                .with_topic_partitions(owned.clone())
        };
        let code = |_version, response: &ConsumerGroupHeartbeatResponse| Some(response.error_code);
        let (_, response) = self.coordinator_call_waiting(group, Duration::ZERO, build, code).await?;
        let assignment = match &response.assignment {
            Some(assignment) => {
                let ids: Vec<(Uuid, &[i32])> =
                    assignment.topic_partitions.iter().map(|t| (t.topic_id, t.partitions.as_slice())).collect();
                Some(self.assignment_by_name(&ids).await?)
            }
            None => None,
        };
        Ok(ConsumerHeartbeatAnswer {
            error: KafkaError::from_code(response.error_code, response.error_message.as_deref()),
            member_id: response.member_id.as_ref().map(|id| id.to_string()),
            member_epoch: response.member_epoch,
            heartbeat_interval_ms: response.heartbeat_interval_ms,
            assignment,
        })
    }

    /// Topic name -> id for the named topics, from Metadata.
    async fn topic_ids(&mut self, names: Option<&[&str]>) -> Result<BTreeMap<String, Uuid>> {
        let metadata = self.metadata(names).await?;
        Ok(metadata
            .topics
            .into_iter()
            .filter_map(|t| Uuid::parse_str(&t.topic_id).ok().filter(|id| !id.is_nil()).map(|id| (t.name, id)))
            .collect())
    }

    async fn owned_by_id(&mut self, owned: &NamedPartitions) -> Result<Vec<OwnedTopic>> {
        let owned: Vec<(&String, &BTreeSet<i32>)> = owned.iter().filter(|(_, set)| !set.is_empty()).collect();
        if owned.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = owned.iter().map(|(name, _)| name.as_str()).collect();
        let ids = self.topic_ids(Some(&names)).await?;
        Ok(owned
            .into_iter()
            .filter_map(|(name, set)| {
                ids.get(name)
                    .map(|id| OwnedTopic::default().with_topic_id(*id).with_partitions(set.iter().copied().collect()))
            })
            .collect())
    }

    async fn assignment_by_name(&mut self, assigned: &[(Uuid, &[i32])]) -> Result<NamedPartitions> {
        if assigned.is_empty() {
            return Ok(NamedPartitions::new());
        }
        let names: BTreeMap<Uuid, String> = self.topic_ids(None).await?.into_iter().map(|(n, id)| (id, n)).collect();
        let mut named = NamedPartitions::new();
        for (id, partitions) in assigned {
            match names.get(id) {
                Some(name) => named.entry(name.clone()).or_default().extend(partitions.iter().copied()),
                None => tracing::debug!(%id, "an assigned topic id that Metadata does not know: left out"),
            }
        }
        Ok(named)
    }
}
