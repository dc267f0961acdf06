//! A small async Kafka client: what the `sluice` CLI, the simulator's workload and the
//! benchmarks need to drive any Kafka-protocol broker, Sluice or not.
//!
//! - Connections: one per broker address, opened on demand, each starting with ApiVersions and
//!   then speaking the highest version of each API that both sides support ([`versions`]).
//!   Every request has a timeout and every response frame a size limit ([`connection`]).
//! - Routing: admin calls go to any broker; Produce, Fetch and ListOffsets go to the partition
//!   leader's advertised address from Metadata, and a stale layout is refreshed ([`Client`]).
//! - Records: batches are built and read with `sluice_protocol::records`, compressed with any
//!   Kafka codec, keys partitioned with Kafka's murmur2 partitioner.
//! - Errors: [`ClientError`] for a failed call; per-item results carry a [`KafkaError`] with the
//!   Kafka code and its name (`TOPIC_ALREADY_EXISTS`).
//!
//! - Idempotence: [`IdempotentProducer`] stamps producer id, epoch and per-partition sequences
//!   into batches that can be resent unchanged after an indeterminate failure (KIP-98).
//!
//! - Groups: administration ([`Client::describe_group`], offsets committed and fetched on a
//!   group's coordinator, the KIP-122 offset reset plan [`Client::plan_seek`]) and the calls a
//!   member loop makes, each sent once ([`Client::join_group`], [`Client::sync_group`],
//!   [`Client::heartbeat`], [`Client::commit_as_member`], the range assignor).
//!   KIP-848 members call [`Client::consumer_group_heartbeat`] instead.
//!   [`Client::describe_any_group`] describes a group of either type, as Kafka 4's Admin does
//!   (ConsumerGroupDescribe first, then DescribeGroups).
//!
//! It is deliberately not a full producer or consumer: no transactions, no member loop of its
//! own and no background batching. One request is in flight at a time
//! (`&mut self`), which keeps it simple and deterministic under the simulator (madsim replaces
//! tokio's network and time).
//!
//! ```no_run
//! # async fn example() -> Result<(), sluice_client::ClientError> {
//! use sluice_client::{Client, ProduceOptions, ProduceRecord};
//! let mut client = Client::connect("127.0.0.1:9092").await?;
//! let record = ProduceRecord { value: Some("paid 200 to bob".into()), ..Default::default() };
//! client.produce("payments", vec![record], &ProduceOptions::default()).await?;
//! # Ok(()) }
//! ```

mod admin;
mod client;
pub mod connection;
mod consumer_group_describe;
mod consumer_member;
pub mod error;
mod fetch;
mod groups;
mod idempotent;
mod membership;
mod metadata;
mod produce;
mod seek;
pub mod versions;

pub use admin::{ADMIN_TIMEOUT, ConfigChange, ConfigEntry, ConfigSource, NewTopic, TopicConfigs, TopicOutcome};
pub use client::{CLIENT_ID_DEFAULT, Client};
pub use consumer_group_describe::{ConsumerGroupDescription, ConsumerGroupMember, DescribedGroup, GroupType};
pub use consumer_member::{
    ConsumerHeartbeat, ConsumerHeartbeatAnswer, JOIN_MEMBER_EPOCH, LEAVE_MEMBER_EPOCH, NamedPartitions,
};
pub use error::{ClientError, KafkaError, error_name};
pub use fetch::{
    BATCH_RECORDS_BYTES_MAX, ConsumerRecord, FETCH_MAX_BYTES_DEFAULT, FETCH_MAX_WAIT_DEFAULT,
    FETCH_PARTITION_MAX_BYTES_DEFAULT, FetchOptions, FetchedPartition, ListedOffset, OffsetSpec,
};
pub use groups::{
    AssignmentError, COORDINATOR_ATTEMPTS_MAX, COORDINATOR_RETRY_BACKOFF, CommitOutcome, CommittedOffset,
    ConsumerAssignment, GroupDescription, GroupMember, GroupOutcome, ListedGroup, decode_consumer_assignment,
};
pub use idempotent::{IdempotentProducer, ProducerIdentity, SequencedBatch, sequence_after};
pub use membership::{
    Assignment, CONSUMER_PROTOCOL_TYPE, JoinOptions, JoinedGroup, JoinedMember, RANGE_ASSIGNOR,
    decode_consumer_subscription, encode_consumer_assignment, encode_consumer_subscription, range_assignment,
};
pub use metadata::{BrokerMetadata, ClusterDescription, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use produce::{
    Acks, PRODUCE_ATTEMPTS_MAX, PRODUCE_BATCH_BYTES_MAX, PRODUCE_BATCH_RECORDS_MAX, PartitionProduceResult,
    ProduceOptions, ProduceRecord,
};
pub use seek::{PlannedSeek, SeekBounds, SeekTarget, seek_offset, seek_partitions};
pub use sluice_types::{Compression, NodeId, Offset, PartitionId, TimestampType};
