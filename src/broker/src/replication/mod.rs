//! Replication: each partition a Raft group over its replicas (DESIGN.md, Replication).
//!
//! `entries.rs`: Raft entries as Kafka batches (control batches for Raft's own entries).
//! `replica.rs`: one replica's shell: the Raft core's effects carried out on the partition log.
//! `sim_trace.rs` (simulation builds): the sink for the cores' trace events.

pub mod entries;
pub mod replica;
#[cfg(test)]
mod replica_tests;
#[cfg(madsim)]
pub mod sim_trace;

pub use replica::{Executed, Outgoing, Replica, ReplicaError};
