//! Fixed-width newtypes shared by every Sluice crate, and the RecordBatch v2 header view.
//!
//! Why one crate: the Kafka RecordBatch is the unit of everything in Sluice (DESIGN.md, "one log
//! format end to end"): the bytes a producer sends are the bytes stored in a segment, the bytes a
//! Raft entry carries and the bytes a Fetch returns. Storage, protocol and consensus all need to
//! read and rewrite its header, so the header view lives here, below all of them.
//!
//! Invariant: nothing here does I/O or reads a clock.

pub mod batch;
pub mod buggify;
pub mod defect;
mod ids;
mod topic_id;

pub use batch::{BatchError, BatchHeader, Compression, TimestampType};
pub use ids::{NodeId, Offset, PartitionId, ProducerEpoch, ProducerId, Sequence, Term};
pub use topic_id::TopicId;
