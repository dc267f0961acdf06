//! The partition log: Kafka record batches in segmented files, on the `Disk` seam.
//!
//! A partition is a directory of segments (`{base_offset:020}.log`) each with a sparse offset
//! index (`.index`) and time index (`.timeindex`), plus a checksummed checkpoint holding the log
//! start offset and the recovery point. Byte layouts: `docs/format.md`.
//!
//! Invariants (each asserted where it is maintained):
//! - Batches are stored exactly as received, except for the broker-owned header fields (base
//!   offset, partition leader epoch, LogAppendTime), so the CRC-32C stays the producer's; and
//!   except for compaction (`compaction.rs`), which drops records inside sealed batches but
//!   keeps every batch header, so offsets never move.
//! - Offsets are dense and strictly increasing across batches: a batch's base offset equals the
//!   previous batch's last offset + 1. An offset is never reused for a different durable batch.
//! - `log_start_offset <= flushed_offset <= log_end_offset`; only data below `flushed_offset`
//!   survives a crash, and recovery truncates a torn or corrupt tail above the recovery point.
//! - Every batch is CRC-checked when it is served, so a corrupted batch is never returned.
//! - The end of the log moves back only through `truncate_after` and `reset_to`, a replica's
//!   Raft effects (`replication.rs`), which are durable when they return.
//!
//! Nothing here spawns tasks or reads a clock: time arrives as `now_ms` arguments.

mod checkpoint;
mod compaction;
mod config;
mod error;
mod hard_state;
mod index;
mod log;
mod producer_state;
mod recovery;
mod replica_read;
mod replication;
mod segment;
mod segment_read;
mod segment_scan;

pub use checkpoint::{CHECKPOINT_FILE, Checkpoint};
pub use compaction::{BatchCleaning, CleanedSegment, KeyMap, SegmentSpan, clean_batch};
pub use config::{CleanupPolicy, LogConfig, SEGMENT_BYTES_MIN};
pub use error::StorageError;
pub use hard_state::{HARD_STATE_BYTES, HARD_STATE_FILE, PersistedHardState};
pub use log::{AppendInfo, AppendOutcome, FlushPlan, PartitionLog, ReadResult};
pub use producer_state::{PRODUCER_BATCHES_RETAINED, ProducerError, ProducerStateTable, SequenceVerdict};
pub use replica_read::{ReplicaComparison, ReplicaLog, ReplicaRecords, compare_replicas, read_replica_log};
