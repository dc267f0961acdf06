//! Named limits on everything the metadata state holds or a command carries (DESIGN.md,
//! Style §4). `apply` refuses a command that would cross one, so every replica refuses it alike;
//! a snapshot that crosses one is refused as invalid.
//!
//! The topic limits match the single-node registry's (`sluice-broker` `limits.rs`), so moving
//! topics into the controller changes no answer a client sees.

/// Registered brokers (live or not). Kafka has no hard limit; this bounds placement work.
pub const BROKERS_MAX: usize = 4_096;
/// Topics in the cluster.
pub const TOPICS_MAX: usize = 100_000;
/// Partitions one topic may have (Kafka has no hard limit; this keeps one command bounded).
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
/// Partitions in the whole cluster (KRaft's design target is millions; one Raft group each here).
pub const PARTITIONS_MAX: u32 = 1_000_000;
/// Replicas of one partition. Kafka has no limit; every partition is a Raft group here and a
/// group of more voters than this only slows commits down.
pub const REPLICATION_FACTOR_MAX: i16 = 16;
/// Brokers one partition's group may span while reassignments overlap (the replicas and every
/// target since the last completion).
pub const GROUP_MEMBERS_MAX: usize = 2 * REPLICATION_FACTOR_MAX as usize;
/// Kafka's topic name length limit (`org.apache.kafka.common.internals.Topic.MAX_NAME_LENGTH`).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Config overrides one topic may carry (Kafka defines about forty topic configs).
pub const CONFIGS_PER_TOPIC_MAX: usize = 256;
/// Bytes of one config name.
pub const CONFIG_KEY_BYTES_MAX: usize = 255;
/// Bytes of one config value (throttled-replica lists are the longest Kafka values).
pub const CONFIG_VALUE_BYTES_MAX: usize = 32 * 1024;
/// Bytes of a broker's host name (DNS names are at most 253).
pub const HOST_BYTES_MAX: usize = 255;
/// Bytes of a broker's `host:port` RPC address.
pub const RPC_ADDRESS_BYTES_MAX: usize = 261;
/// Bytes of a broker's `broker.rack`.
pub const RACK_BYTES_MAX: usize = 255;
/// Bytes of one encoded command. The largest valid command (a topic of
/// `PARTITIONS_PER_TOPIC_MAX` partitions of `REPLICATION_FACTOR_MAX` replicas) is about 2 MiB.
pub const COMMAND_BYTES_MAX: usize = 8 * 1024 * 1024;
