//! `sluice-group`: the consumer group coordinator as a sans-IO state machine (DESIGN.md,
//! Layout: `group/`). The broker drives one [`Coordinator`] per `__consumer_offsets` partition
//! it leads: requests and ticks in, ordered answers and writes out, writes acknowledged back
//! when durable.
//!
//! Map: `api.rs` (requests, answers, inputs, outputs), `coordinator.rs` (the driver: steps,
//! writes, ticks, loading from the log), `membership.rs` (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, rebalances), `offsets.rs` (OffsetCommit, OffsetFetch, OffsetDelete,
//! DeleteGroups, retention), `group.rs` (one group's state and invariants), `records.rs` (the
//! `__consumer_offsets` records, in Kafka's layout), `partition.rs` (which partition holds a
//! group), `consumer_protocol.rs` (subscribed topics), `config.rs`, `error.rs`. KIP-848:
//! `consumer_group.rs` (a consumer group's epochs, members and reconciliation),
//! `consumer_heartbeat.rs` (ConsumerGroupHeartbeat and member expiry), `assignor.rs` (the
//! uniform and range server assignors), `consumer_records.rs` (its record's value).

pub mod api;
pub mod assignor;
pub mod config;
pub mod consumer_group;
mod consumer_heartbeat;
mod consumer_protocol;
mod consumer_records;
mod coordinator;
pub mod error;
mod group;
mod membership;
mod offsets;
pub mod partition;
pub mod records;

pub use api::*;
pub use config::GroupConfig;
pub use consumer_protocol::subscribed_topics;
pub use coordinator::{Coordinator, EXPIRED_OFFSETS_PER_TICK_MAX};
pub use group::{Group, GroupState, Member};
pub use offsets::CONSUMER_PROTOCOL_TYPE;
pub use records::{OffsetsRecord, RecordDecodeError, StoredGroup, StoredMember};
