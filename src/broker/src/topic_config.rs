//! Topic configs: the keys Sluice covers, their defaults, validation, and the log settings
//! derived from them.
//!
//! A topic stores only its overrides (`name -> value`), as Kafka does; everything else is the
//! default, reported by DescribeConfigs with source DEFAULT_CONFIG (Kafka protocol:
//! DescribeConfigs v1+ `config_source`). Unknown keys are refused with INVALID_CONFIG, as Kafka
//! refuses them.

use sluice_storage::{CleanupPolicy, LogConfig, SEGMENT_BYTES_MIN};
use sluice_types::Compression;
use std::collections::BTreeMap;

/// Kafka `ConfigType` values (DescribeConfigs v3+).
pub const CONFIG_TYPE_STRING: i8 = 2;
pub const CONFIG_TYPE_INT: i8 = 3;
pub const CONFIG_TYPE_LONG: i8 = 5;
pub const CONFIG_TYPE_DOUBLE: i8 = 6;
pub const CONFIG_TYPE_LIST: i8 = 7;

/// Kafka `ConfigSource` values (DescribeConfigs v1+).
pub const CONFIG_SOURCE_TOPIC: i8 = 1;
pub const CONFIG_SOURCE_STATIC_BROKER: i8 = 4;
pub const CONFIG_SOURCE_DEFAULT: i8 = 5;

/// One covered topic config key.
pub struct ConfigKey {
    pub name: &'static str,
    pub default: &'static str,
    pub config_type: i8,
    pub documentation: &'static str,
}

/// Every covered key, sorted by name (DescribeConfigs lists them in this order).
pub const TOPIC_CONFIG_KEYS: &[ConfigKey] = &[
    key("cleanup.policy", "delete", CONFIG_TYPE_LIST, "delete, compact, or both."),
    key(
        "compression.type",
        "producer",
        CONFIG_TYPE_STRING,
        "producer keeps the producer's codec; otherwise none, gzip, snappy, lz4 or zstd.",
    ),
    key(
        "delete.retention.ms",
        "86400000",
        CONFIG_TYPE_LONG,
        "how long compaction keeps a tombstone (its batch's timestamp plus this).",
    ),
    key(
        "flush.messages",
        "1",
        CONFIG_TYPE_LONG,
        "fsync after this many messages; 1 fsyncs before acknowledging acks=all (Sluice default).",
    ),
    key("flush.ms", "9223372036854775807", CONFIG_TYPE_LONG, "fsync at least this often."),
    key("max.message.bytes", "1048588", CONFIG_TYPE_INT, "largest record batch accepted."),
    key("message.timestamp.type", "CreateTime", CONFIG_TYPE_STRING, "CreateTime or LogAppendTime."),
    key(
        "min.cleanable.dirty.ratio",
        "0.5",
        CONFIG_TYPE_DOUBLE,
        "compact when at least this share of the cleanable log is not compacted yet.",
    ),
    key("min.insync.replicas", "1", CONFIG_TYPE_INT, "replicas that must have a write for acks=all to succeed."),
    key(
        "retention.bytes",
        "-1",
        CONFIG_TYPE_LONG,
        "delete oldest segments while a partition is larger; -1 = unbounded.",
    ),
    key("retention.ms", "604800000", CONFIG_TYPE_LONG, "delete segments older than this; -1 = forever."),
    key("segment.bytes", "1073741824", CONFIG_TYPE_INT, "roll a segment at this size."),
    key("segment.ms", "604800000", CONFIG_TYPE_LONG, "roll a segment at this age."),
];

const fn key(name: &'static str, default: &'static str, config_type: i8, documentation: &'static str) -> ConfigKey {
    ConfigKey { name, default, config_type, documentation }
}

pub fn config_key(name: &str) -> Option<&'static ConfigKey> {
    TOPIC_CONFIG_KEYS.iter().find(|k| k.name == name)
}

/// A topic's effective configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicConfig {
    /// Explicitly set keys. Invariant: every key is covered and every value valid.
    pub overrides: BTreeMap<String, String>,
    pub log: LogConfig,
    /// `None` = keep the producer's codec.
    pub compression: Option<Compression>,
    pub min_insync_replicas: i32,
}

fn parse_long(name: &str, value: &str, min: i64) -> Result<i64, String> {
    let parsed: i64 = value.trim().parse().map_err(|_| format!("{name}: '{value}' is not a number"))?;
    if parsed < min {
        return Err(format!("{name}: {parsed} is below the minimum {min}"));
    }
    Ok(parsed)
}

fn parse_int(name: &str, value: &str, min: i64) -> Result<i32, String> {
    let parsed = parse_long(name, value, min)?;
    i32::try_from(parsed).map_err(|_| format!("{name}: {parsed} does not fit an int"))
}

impl TopicConfig {
    /// Builds the effective config from overrides, validating every one.
    pub fn from_overrides(overrides: BTreeMap<String, String>) -> Result<TopicConfig, String> {
        let mut config = TopicConfig {
            overrides: BTreeMap::new(),
            log: LogConfig::default(),
            compression: None,
            min_insync_replicas: 1,
        };
        for (name, value) in &overrides {
            config.apply(name, value)?;
        }
        config.overrides = overrides;
        Ok(config)
    }

    fn apply(&mut self, name: &str, value: &str) -> Result<(), String> {
        let log = &mut self.log;
        match name {
            "cleanup.policy" => {
                log.cleanup_policy =
                    CleanupPolicy::parse(value).ok_or_else(|| format!("cleanup.policy: invalid '{value}'"))?;
            }
            "compression.type" => {
                self.compression = match value {
                    "producer" => None,
                    other => Some(
                        Compression::from_name(other).ok_or_else(|| format!("compression.type: invalid '{value}'"))?,
                    ),
                };
            }
            "delete.retention.ms" => log.delete_retention_ms = parse_long(name, value, 0)?,
            "min.cleanable.dirty.ratio" => {
                let ratio: f64 = value.trim().parse().map_err(|_| format!("{name}: '{value}' is not a number"))?;
                if !(0.0..=1.0).contains(&ratio) {
                    return Err(format!("{name}: {ratio} is not in [0, 1]"));
                }
                log.min_cleanable_dirty_ratio = ratio;
            }
            "flush.messages" => log.flush_messages = parse_long(name, value, 1)?,
            "flush.ms" => log.flush_ms = parse_long(name, value, 0)?,
            "max.message.bytes" => log.max_message_bytes = parse_int(name, value, 0)? as u32,
            "message.timestamp.type" => {
                log.log_append_time = match value {
                    "CreateTime" => false,
                    "LogAppendTime" => true,
                    _ => return Err(format!("message.timestamp.type: invalid '{value}'")),
                };
            }
            "min.insync.replicas" => self.min_insync_replicas = parse_int(name, value, 1)?,
            "retention.bytes" => log.retention_bytes = parse_long(name, value, -1)?,
            "retention.ms" => log.retention_ms = parse_long(name, value, -1)?,
            "segment.bytes" => log.segment_bytes = parse_int(name, value, i64::from(SEGMENT_BYTES_MIN))? as u32,
            "segment.ms" => log.segment_ms = parse_long(name, value, 1)?,
            _ => return Err(format!("unknown topic config '{name}'")),
        }
        Ok(())
    }

    /// The value of a covered key and whether it is the default.
    pub fn value_of(&self, key: &ConfigKey) -> (String, bool) {
        match self.overrides.get(key.name) {
            Some(value) => (value.clone(), false),
            None => (key.default.to_string(), true),
        }
    }
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig::from_overrides(BTreeMap::new()).expect("defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_log_config_defaults() {
        let config = TopicConfig::default();
        assert_eq!(config.log, LogConfig::default());
        for key in TOPIC_CONFIG_KEYS {
            let mut overrides = BTreeMap::new();
            overrides.insert(key.name.to_string(), key.default.to_string());
            let explicit = TopicConfig::from_overrides(overrides).unwrap();
            assert_eq!(explicit.log, config.log, "default of {} disagrees", key.name);
        }
    }

    #[test]
    fn invalid_values_and_unknown_keys_are_refused() {
        for (name, value) in
            [("retention.ms", "soon"), ("segment.bytes", "10"), ("nope", "1"), ("cleanup.policy", "shred")]
        {
            let overrides = BTreeMap::from([(name.to_string(), value.to_string())]);
            assert!(TopicConfig::from_overrides(overrides).is_err(), "{name}={value} accepted");
        }
    }
}
