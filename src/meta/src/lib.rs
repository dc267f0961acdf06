//! `sluice-meta`: the cluster metadata state machine the controller Raft group replicates
//! (KRaft style, DESIGN.md "Replication"): registered brokers, topics with their ids,
//! partitions, replica placement and config overrides.
//!
//! Sans-IO and deterministic: no tokio, no clock, no randomness, no I/O, ordered maps only. The
//! controller leader decides every choice before proposing (topic ids, `place_replicas`), so a
//! command in the log is explicit and `MetaState::apply` is a pure function of the state and
//! the command: every replica that applies the same log holds the same state. Validation
//! happens at apply time too, because proposals race; a refused command changes nothing and
//! maps to the Kafka error code the client sees.
//!
//! Map: `command.rs` (the log records, what applying changed), `apply.rs` (validation and
//! state changes), `state.rs` (the state, its readers and invariants), `validate.rs` (the
//! structural rules), `placement.rs` (spreading replicas and leaders evenly), `codec.rs` and
//! `snapshot.rs` (versioned JSON; layouts in `docs/format.md`), `topic_id.rs`, `limits.rs`,
//! `error.rs`.

mod apply;
mod codec;
mod command;
mod error;
pub mod limits;
mod placement;
mod snapshot;
mod state;
mod validate;

pub use codec::COMMAND_FORMAT_VERSION;
pub use command::{Applied, MetaCommand};
pub use error::{DecodeError, MetaError, code};
pub use placement::place_replicas;
pub use sluice_types::TopicId;
pub use snapshot::SNAPSHOT_FORMAT_VERSION;
pub use state::{Broker, BrokerLoad, MetaState, PartitionPlacement, Topic};
pub use validate::{metric_name, validate_topic_name};
