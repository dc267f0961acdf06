//! The coordinator's settings, with Kafka's broker defaults (Kafka broker configs `group.*`,
//! `offsets.*`). Every limit the state machine enforces is one of these fields.

/// Group coordinator settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`: shorter session timeouts are INVALID_SESSION_TIMEOUT.
    pub session_timeout_ms_min: i32,
    /// `group.max.session.timeout.ms`.
    pub session_timeout_ms_max: i32,
    /// `group.initial.rebalance.delay.ms`: the first rebalance of an empty group waits this long
    /// (and again, up to the rebalance timeout, while members keep arriving) so that a group
    /// starting up rebalances once (KIP-134).
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size`: members per group; the next JoinGroup is GROUP_MAX_SIZE_REACHED.
    /// Handed-out member ids (KIP-394) do not count; during a rebalance the members waiting in
    /// JoinGroup do (Kafka's `acceptJoiningMember`); a group loaded over it rebalances.
    pub group_size_max: usize,
    /// `offset.metadata.max.bytes`: a longer commit metadata string is OFFSET_METADATA_TOO_LARGE.
    pub offset_metadata_bytes_max: usize,
    /// `offsets.retention.minutes` in ms: an empty group's offsets expire this long after the
    /// group became empty (KIP-211); a standalone commit's, this long after the commit; so do
    /// a Stable consumer group's offsets of topics it no longer subscribes to (KIP-496), and a
    /// KIP-848 group's of topics no member subscribes to.
    pub offsets_retention_ms: i64,
    /// Groups one coordinator (one `__consumer_offsets` partition) holds at most.
    pub groups_max: usize,
    /// `group.consumer.session.timeout.ms` (KIP-848): a consumer group member is removed after
    /// this long without a ConsumerGroupHeartbeat.
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848), told to every member.
    pub consumer_heartbeat_interval_ms: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            session_timeout_ms_min: 6_000,
            session_timeout_ms_max: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            group_size_max: 1_000,
            offset_metadata_bytes_max: 4_096,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1_000,
            groups_max: 100_000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
        }
    }
}
