//! Typed storage errors: the expected failures a caller maps to Kafka error codes.
//!
//! Broken invariants are not errors: they panic (crash on corruption of our own state).

use sluice_types::{BatchError, Offset, Term};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Kafka: OFFSET_OUT_OF_RANGE.
    #[error("offset {requested} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange { requested: Offset, log_start: Offset, log_end: Offset },
    /// Kafka: CORRUPT_MESSAGE (bad input from a producer).
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// Kafka: KAFKA_STORAGE_ERROR (stored data failed its checksum: a disk fault).
    #[error("stored batch at offset {offset} failed verification: {reason}")]
    CorruptStoredBatch { offset: Offset, reason: String },
    /// Kafka: MESSAGE_TOO_LARGE / RECORD_LIST_TOO_LARGE.
    #[error("batch of {size_bytes} bytes exceeds the limit of {limit_bytes}")]
    BatchTooLarge { size_bytes: u64, limit_bytes: u64 },
    /// Kafka: INVALID_PRODUCER_EPOCH / OUT_OF_ORDER_SEQUENCE_NUMBER (KIP-98).
    #[error("{0}")]
    Producer(crate::producer_state::ProducerError),
    /// A replicated batch does not start where the log ends. The leader's consistency check
    /// (Raft §5.3: AppendEntries' prevLogIndex) should have prevented it: the follower answers
    /// with its log end instead of writing a gap or an overlap.
    #[error("replicated batch at offset {found} where the log ends at {expected}")]
    OffsetMismatch { expected: Offset, found: Offset },
    /// A replicated batch's leader epoch is below the latest epoch in the log (or negative):
    /// epochs never decrease along a log (Raft §5.3: a leader appends only in its own term;
    /// KIP-101 leader epoch cache).
    #[error("replicated batch has leader epoch {found}, below {min}")]
    LeaderEpochRegression { found: Term, min: Term },
    /// The partition directory holds a checkpoint that fails its checksum.
    #[error("checkpoint corrupt: {0}")]
    CorruptCheckpoint(String),
    /// The Raft hard state (term, vote) fails its checks. Fatal for the replica: a lost vote
    /// could let it vote twice in a term (Raft §5.2); recovery needs an operator.
    #[error("raft hard state corrupt: {0}")]
    CorruptHardState(String),
}
