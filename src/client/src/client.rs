//! The [`Client`]: connections by broker address, the cluster's broker addresses and topic
//! layouts learned from Metadata, and the routing of each request to the broker that must
//! receive it (any broker for admin calls, which KRaft brokers forward to the controller; the
//! partition leader's advertised address for Produce, Fetch and ListOffsets).
//!
//! Invariants: at most one connection per broker address; a connection that failed mid-exchange
//! is dropped, never reused; the cached topic layout is only a routing hint, refreshed when a
//! broker answers that it does not lead a partition.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::protocol::Request;
use sluice_types::{NodeId, PartitionId};

use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::metadata::TopicMetadata;

/// Sent as `client_id` in every request header unless the caller picks another.
pub const CLIENT_ID_DEFAULT: &str = "sluice";
/// How many bootstrap addresses are tried, at most, in one connect attempt.
const BOOTSTRAP_ADDRESSES_MAX: usize = 16;

/// Where a request must go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Any reachable broker (admin calls, Metadata).
    Any,
    /// One broker, by node id, at its advertised address from the latest Metadata.
    Node(NodeId),
}

/// An async Kafka client for one cluster. Calls take `&mut self`: one request is in flight at a
/// time, which keeps the client deterministic under simulation.
pub struct Client {
    bootstrap_addresses: Vec<String>,
    client_id: String,
    /// Open connections by `host:port`.
    connections: BTreeMap<String, Connection>,
    /// Advertised `host:port` by node id, from the latest Metadata response.
    pub(crate) broker_addresses: BTreeMap<NodeId, String>,
    /// Topic layouts from Metadata, used to route by partition leader.
    pub(crate) topics: BTreeMap<String, TopicMetadata>,
    /// Next partition for records without key or explicit partition (round-robin).
    pub(crate) round_robin_next: u32,
}

impl Client {
    /// Connects to the first reachable broker of `bootstrap` (`host:port[,host:port...]`) and
    /// negotiates API versions with it.
    pub async fn connect(bootstrap: &str) -> Result<Client> {
        Client::connect_as(bootstrap, CLIENT_ID_DEFAULT).await
    }

    /// As [`Client::connect`], with a chosen `client_id`.
    pub async fn connect_as(bootstrap: &str, client_id: &str) -> Result<Client> {
        let bootstrap_addresses: Vec<String> = bootstrap
            .split(',')
            .map(str::trim)
            .filter(|address| !address.is_empty())
            .take(BOOTSTRAP_ADDRESSES_MAX)
            .map(str::to_owned)
            .collect();
        if bootstrap_addresses.is_empty() {
            return Err(ClientError::InvalidArgument(format!("no broker address in {bootstrap:?}")));
        }
        let mut client = Client {
            bootstrap_addresses,
            client_id: client_id.to_owned(),
            connections: BTreeMap::new(),
            broker_addresses: BTreeMap::new(),
            topics: BTreeMap::new(),
            round_robin_next: 0,
        };
        client.any_address().await?;
        Ok(client)
    }

    /// The address of an open connection, opening one to a bootstrap broker if there is none.
    async fn any_address(&mut self) -> Result<String> {
        if let Some(address) = self.connections.keys().next() {
            return Ok(address.clone());
        }
        let mut last_error = None;
        for address in self.bootstrap_addresses.clone() {
            match Connection::connect(&address, &self.client_id).await {
                Ok(connection) => {
                    self.connections.insert(address.clone(), connection);
                    return Ok(address);
                }
                Err(error) => {
                    tracing::debug!(%address, %error, "bootstrap broker unreachable");
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.expect("bootstrap_addresses is not empty"))
    }

    /// The address for `target`, with a connection open to it.
    async fn address_for(&mut self, target: Target) -> Result<String> {
        let node_id = match target {
            Target::Any => return self.any_address().await,
            Target::Node(node_id) => node_id,
        };
        let Some(address) = self.broker_addresses.get(&node_id).cloned() else {
            let detail = "not in the latest metadata".to_owned();
            return Err(ClientError::NoBroker { node_id: node_id.0, detail });
        };
        if !self.connections.contains_key(&address) {
            let connection = Connection::connect(&address, &self.client_id).await?;
            self.connections.insert(address.clone(), connection);
        }
        Ok(address)
    }

    /// Sends the request `build` makes for the negotiated version to `target` and returns the
    /// version and response. `broker_wait` is how long the request asks the broker to wait.
    pub(crate) async fn call<R: Request>(
        &mut self,
        target: Target,
        broker_wait: Duration,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(i16, R::Response)> {
        let address = self.address_for(target).await?;
        let connection = self.connections.get_mut(&address).expect("address_for opened it");
        let version = connection.version::<R>()?;
        let request = build(version);
        let result = connection.call(&request, version, broker_wait).await;
        self.forget_if_poisoned(&address, &result);
        Ok((version, result?))
    }

    /// As [`Client::call`], for requests the broker does not answer (Produce with acks=0).
    pub(crate) async fn send_only<R: Request>(&mut self, target: Target, build: impl FnOnce(i16) -> R) -> Result<()> {
        let address = self.address_for(target).await?;
        let connection = self.connections.get_mut(&address).expect("address_for opened it");
        let version = connection.version::<R>()?;
        let result = connection.send_only(&build(version), version).await;
        self.forget_if_poisoned(&address, &result);
        result
    }

    fn forget_if_poisoned<T>(&mut self, address: &str, result: &Result<T>) {
        if let Err(error) = result
            && error.poisons_connection()
        {
            tracing::debug!(%address, %error, "dropping connection");
            self.connections.remove(address);
        }
    }

    /// The leader of `topic`'s `partition` from the cached layout, fetching it if absent.
    pub(crate) async fn leader_of(&mut self, topic: &str, partition: PartitionId) -> Result<NodeId> {
        let layout = self.topic_layout(topic).await?;
        let leader = layout
            .partitions
            .iter()
            .find(|candidate| candidate.partition == partition)
            .and_then(|candidate| candidate.leader);
        leader.ok_or_else(|| ClientError::Kafka {
            context: format!("partition {topic}-{partition}"),
            error: crate::error::KafkaError { code: LEADER_NOT_AVAILABLE, message: None },
        })
    }

    /// The cached layout of `topic`, fetched with Metadata when absent.
    pub(crate) async fn topic_layout(&mut self, topic: &str) -> Result<TopicMetadata> {
        if let Some(layout) = self.topics.get(topic) {
            return Ok(layout.clone());
        }
        let metadata = self.metadata(Some(&[topic])).await?;
        let layout = metadata.topics.into_iter().find(|candidate| candidate.name == topic);
        let layout = layout.ok_or_else(|| ClientError::Kafka {
            context: format!("topic {topic}"),
            error: crate::error::KafkaError { code: UNKNOWN_TOPIC_OR_PARTITION, message: None },
        })?;
        if let Some(error) = &layout.error {
            let context = format!("topic {topic}");
            return Err(ClientError::Kafka { context, error: error.clone() });
        }
        Ok(layout)
    }

    /// Drops the cached layout of `topic`, so the next call asks Metadata again.
    pub fn invalidate_topic(&mut self, topic: &str) {
        self.topics.remove(topic);
    }
}

/// LEADER_NOT_AVAILABLE (Kafka protocol: error code 5).
pub(crate) const LEADER_NOT_AVAILABLE: i16 = 5;
/// UNKNOWN_TOPIC_OR_PARTITION (Kafka protocol: error code 3).
pub(crate) const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// NOT_LEADER_OR_FOLLOWER (Kafka protocol: error code 6).
pub(crate) const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// Whether an error code means "ask Metadata again, the layout changed": the broker rejected
/// the request before acting on it, so retrying cannot duplicate anything.
pub(crate) fn is_stale_layout(code: i16) -> bool {
    matches!(code, LEADER_NOT_AVAILABLE | UNKNOWN_TOPIC_OR_PARTITION | NOT_LEADER_OR_FOLLOWER)
}
