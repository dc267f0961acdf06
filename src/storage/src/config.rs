//! Per-topic log settings, with Kafka's names and Sluice's defaults.
//!
//! Defaults follow Kafka's topic configs except `flush.messages`: Kafka defaults to never
//! forcing an fsync, Sluice fsyncs before acknowledging acks=all (DESIGN.md, Replication), which
//! is `flush.messages=1`.

/// `cleanup.policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupPolicy {
    Delete,
    Compact,
    CompactDelete,
}

impl CleanupPolicy {
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
        parts.sort_unstable();
        parts.dedup();
        match parts.as_slice() {
            ["delete"] => Some(CleanupPolicy::Delete),
            ["compact"] => Some(CleanupPolicy::Compact),
            ["compact", "delete"] => Some(CleanupPolicy::CompactDelete),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }
}

/// The settings one partition log obeys. Changed at runtime by AlterConfigs.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before it would exceed this.
    pub segment_bytes: u32,
    /// `segment.ms`: roll the active segment when it is older than this.
    pub segment_ms: i64,
    /// `retention.ms`: delete segments whose newest record is older; -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 = unbounded.
    pub retention_bytes: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: u32,
    /// `message.timestamp.type` is LogAppendTime.
    pub log_append_time: bool,
    /// `flush.messages`: fsync after this many messages; 1 = before every acknowledgement.
    pub flush_messages: i64,
    /// `flush.ms`: fsync at least this often.
    pub flush_ms: i64,
    /// `delete.retention.ms`: how long compaction keeps a tombstone.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: compaction runs when at least this share of the cleanable
    /// bytes has not been cleaned yet.
    pub min_cleanable_dirty_ratio: f64,
}

/// Smallest `segment.bytes` accepted (Kafka: 14 bytes; we need room for one batch header).
pub const SEGMENT_BYTES_MIN: u32 = 1024;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::Delete,
            max_message_bytes: 1024 * 1024 + 12,
            log_append_time: false,
            flush_messages: 1,
            flush_ms: i64::MAX,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

impl LogConfig {
    /// Whether acks=all must wait for an fsync (the default) rather than only the append.
    pub fn fsync_before_ack(&self) -> bool {
        self.flush_messages <= 1
    }
}
