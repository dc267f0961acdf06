//! The records of `__consumer_offsets`, in Kafka's own byte layout so that Kafka's tools can
//! read the topic (Kafka's `group-coordinator` record schemas; all integers big-endian,
//! strings as an i16 length and UTF-8, nullable strings with length -1, byte arrays with an i32
//! length, arrays with an i32 count):
//!
//! | record | key | value |
//! |---|---|---|
//! | committed offset | `OffsetCommitKey`: version i16 = 1, group, topic, partition i32 | `OffsetCommitValue` v3: version i16 = 3, offset i64, leader epoch i32, metadata, commit timestamp i64 |
//! | group metadata | `GroupMetadataKey`: version i16 = 2, group | `GroupMetadataValue` v3: version i16 = 3, protocol type, generation i32, protocol?, leader?, state timestamp i64, members |
//! | KIP-848 consumer group | version i16 = 3, group | Sluice's layout (`consumer_records.rs`): the whole group in one value |
//!
//! The consumer group record is not Kafka's: Kafka spreads a KIP-848 group over key versions
//! 3 to 8 (group epoch, subscription metadata, each member, the target assignment, each
//! member's current assignment). Sluice keeps one record per group, written whole on every
//! change (bounded by `group.max.size`), so a new coordinator reads it back in one step.
//!
//! A member in `GroupMetadataValue` v3: member id, group instance id?, client id, client host,
//! rebalance timeout i32, session timeout i32, subscription bytes, assignment bytes. A record
//! with no value is a tombstone, which compaction keeps for `delete.retention.ms` and then
//! drops. Decoding also reads the older value versions Kafka wrote (offset v0-v3, group
//! v0-v3), since a cluster may hold them.

use crate::api::{CommittedOffset, TopicPartition};
use bytes::{BufMut, Bytes, BytesMut};

/// OffsetCommitKey versions 0 and 1 (identical layouts).
const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const CONSUMER_GROUP_KEY_VERSION: i16 = 3;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;
/// Members one group record holds at most when decoded (bounds the allocation a corrupt count
/// could ask for; `GroupConfig::group_size_max` is far below).
pub const GROUP_RECORD_MEMBERS_MAX: usize = 100_000;

/// A member as stored in the group's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the chosen protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's membership as of its latest generation (`GroupMetadataValue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredGroup {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<StoredMember>,
}

/// One record of `__consumer_offsets`; `None` values are tombstones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffsetsRecord {
    Offset { group_id: String, partition: TopicPartition, value: Option<CommittedOffset> },
    Group { group_id: String, value: Option<StoredGroup> },
    ConsumerGroup { group_id: String, value: Option<crate::consumer_group::ConsumerGroup> },
}

/// Why a record could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordDecodeError {
    #[error("record ends early reading {what}")]
    Truncated { what: &'static str },
    #[error("{what} is not UTF-8")]
    NotUtf8 { what: &'static str },
    #[error("unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
    #[error("invalid {what}: {value}")]
    Invalid { what: &'static str, value: i64 },
    #[error("{extra_bytes} bytes after the {what}")]
    TrailingBytes { what: &'static str, extra_bytes: usize },
}

impl OffsetsRecord {
    /// The group the record belongs to (it picks the partition).
    pub fn group_id(&self) -> &str {
        match self {
            OffsetsRecord::Offset { group_id, .. }
            | OffsetsRecord::Group { group_id, .. }
            | OffsetsRecord::ConsumerGroup { group_id, .. } => group_id,
        }
    }

    /// The record's key and value bytes (no value for a tombstone).
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        match self {
            OffsetsRecord::Offset { group_id, partition, value } => {
                key.put_i16(OFFSET_KEY_VERSION);
                put_string(&mut key, group_id);
                put_string(&mut key, &partition.topic);
                key.put_i32(partition.partition);
                let value = value.as_ref().map(|v| {
                    let mut out = BytesMut::new();
                    out.put_i16(OFFSET_VALUE_VERSION);
                    out.put_i64(v.offset);
                    out.put_i32(v.leader_epoch);
                    put_string(&mut out, &v.metadata);
                    out.put_i64(v.commit_timestamp_ms);
                    out.freeze()
                });
                (key.freeze(), value)
            }
            OffsetsRecord::Group { group_id, value } => {
                key.put_i16(GROUP_KEY_VERSION);
                put_string(&mut key, group_id);
                (key.freeze(), value.as_ref().map(encode_group))
            }
            OffsetsRecord::ConsumerGroup { group_id, value } => {
                key.put_i16(CONSUMER_GROUP_KEY_VERSION);
                put_string(&mut key, group_id);
                (key.freeze(), value.as_ref().map(crate::consumer_records::encode))
            }
        }
    }

    /// Reads a record back. Paired with [`OffsetsRecord::encode`]: `decode(encode(r)) == r`.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<OffsetsRecord, RecordDecodeError> {
        let mut key_reader = Reader { bytes: key };
        let version = key_reader.i16("key version")?;
        let record = match version {
            0 | 1 => {
                let group_id = key_reader.string("group id")?;
                let topic = key_reader.string("topic")?;
                let partition = key_reader.i32("partition")?;
                key_reader.finish("offset key")?;
                let value = value.map(decode_offset_value).transpose()?;
                OffsetsRecord::Offset { group_id, partition: TopicPartition { topic, partition }, value }
            }
            2 => {
                let group_id = key_reader.string("group id")?;
                key_reader.finish("group key")?;
                let value = value.map(decode_group_value).transpose()?;
                OffsetsRecord::Group { group_id, value }
            }
            CONSUMER_GROUP_KEY_VERSION => {
                let group_id = key_reader.string("group id")?;
                key_reader.finish("consumer group key")?;
                let value = value.map(crate::consumer_records::decode).transpose()?;
                OffsetsRecord::ConsumerGroup { group_id, value }
            }
            version => return Err(RecordDecodeError::UnknownVersion { what: "key", version }),
        };
        Ok(record)
    }
}

fn encode_group(group: &StoredGroup) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(GROUP_VALUE_VERSION);
    put_string(&mut out, &group.protocol_type);
    out.put_i32(group.generation_id);
    put_nullable_string(&mut out, group.protocol_name.as_deref());
    put_nullable_string(&mut out, group.leader.as_deref());
    out.put_i64(group.state_timestamp_ms);
    out.put_i32(i32::try_from(group.members.len()).expect("members bounded by group_size_max"));
    for member in &group.members {
        put_string(&mut out, &member.member_id);
        put_nullable_string(&mut out, member.group_instance_id.as_deref());
        put_string(&mut out, &member.client_id);
        put_string(&mut out, &member.client_host);
        out.put_i32(member.rebalance_timeout_ms);
        out.put_i32(member.session_timeout_ms);
        put_bytes(&mut out, &member.subscription);
        put_bytes(&mut out, &member.assignment);
    }
    out.freeze()
}

fn decode_offset_value(bytes: &[u8]) -> Result<CommittedOffset, RecordDecodeError> {
    let mut reader = Reader { bytes };
    let version = reader.i16("offset value version")?;
    let value = match version {
        // v0: offset, metadata, timestamp; v1 adds an expire timestamp; v2 drops it; v3 adds
        // the leader epoch after the offset.
        0..=3 => {
            let offset = reader.i64("offset")?;
            let leader_epoch = if version == 3 { reader.i32("leader epoch")? } else { -1 };
            let metadata = reader.string("metadata")?;
            let commit_timestamp_ms = reader.i64("commit timestamp")?;
            if version == 1 {
                reader.i64("expire timestamp")?;
            }
            CommittedOffset { offset, leader_epoch, metadata, commit_timestamp_ms }
        }
        version => return Err(RecordDecodeError::UnknownVersion { what: "offset value", version }),
    };
    reader.finish("offset value")?;
    Ok(value)
}

fn decode_group_value(bytes: &[u8]) -> Result<StoredGroup, RecordDecodeError> {
    let mut reader = Reader { bytes };
    let version = reader.i16("group value version")?;
    if !(0..=GROUP_VALUE_VERSION).contains(&version) {
        return Err(RecordDecodeError::UnknownVersion { what: "group value", version });
    }
    let protocol_type = reader.string("protocol type")?;
    let generation_id = reader.i32("generation")?;
    let protocol_name = reader.nullable_string("protocol")?;
    let leader = reader.nullable_string("leader")?;
    // v2 adds the state timestamp; v1 the rebalance timeout; v3 the group instance id.
    let state_timestamp_ms = if version >= 2 { reader.i64("state timestamp")? } else { -1 };
    let count = reader.i32("member count")?;
    if count < 0 || count as usize > GROUP_RECORD_MEMBERS_MAX {
        return Err(RecordDecodeError::Invalid { what: "member count", value: i64::from(count) });
    }
    let mut members = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let member_id = reader.string("member id")?;
        let group_instance_id = if version >= 3 { reader.nullable_string("group instance id")? } else { None };
        let client_id = reader.string("client id")?;
        let client_host = reader.string("client host")?;
        let rebalance_timeout_ms = if version >= 1 { reader.i32("rebalance timeout")? } else { -1 };
        let session_timeout_ms = reader.i32("session timeout")?;
        let rebalance_timeout_ms = if version >= 1 { rebalance_timeout_ms } else { session_timeout_ms };
        let subscription = reader.bytes("subscription")?;
        let assignment = reader.bytes("assignment")?;
        members.push(StoredMember {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    reader.finish("group value")?;
    Ok(StoredGroup { protocol_type, generation_id, protocol_name, leader, state_timestamp_ms, members })
}

pub(crate) fn put_string(out: &mut BytesMut, value: &str) {
    out.put_i16(i16::try_from(value.len()).expect("strings are shorter than 32 KiB (checked on input)"));
    out.put_slice(value.as_bytes());
}

pub(crate) fn put_nullable_string(out: &mut BytesMut, value: Option<&str>) {
    match value {
        Some(value) => put_string(out, value),
        None => out.put_i16(-1),
    }
}

fn put_bytes(out: &mut BytesMut, value: &[u8]) {
    out.put_i32(i32::try_from(value.len()).expect("member metadata is bounded by the request size"));
    out.put_slice(value);
}

/// A bounds-checked big-endian reader: every read is checked, never trusted.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
}

impl Reader<'_> {
    pub(crate) fn take(&mut self, count: usize, what: &'static str) -> Result<&[u8], RecordDecodeError> {
        if self.bytes.len() < count {
            return Err(RecordDecodeError::Truncated { what });
        }
        let (head, tail) = self.bytes.split_at(count);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, RecordDecodeError> {
        Ok(i16::from_be_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, RecordDecodeError> {
        Ok(i32::from_be_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, RecordDecodeError> {
        Ok(i64::from_be_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }

    pub(crate) fn nullable_string(&mut self, what: &'static str) -> Result<Option<String>, RecordDecodeError> {
        let length = self.i16(what)?;
        if length == -1 {
            return Ok(None);
        }
        if length < 0 {
            return Err(RecordDecodeError::Invalid { what, value: i64::from(length) });
        }
        let raw = self.take(length as usize, what)?;
        let text = std::str::from_utf8(raw).map_err(|_| RecordDecodeError::NotUtf8 { what })?;
        Ok(Some(text.to_owned()))
    }

    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, RecordDecodeError> {
        self.nullable_string(what)?.ok_or(RecordDecodeError::Invalid { what, value: -1 })
    }

    fn bytes(&mut self, what: &'static str) -> Result<Bytes, RecordDecodeError> {
        let length = self.i32(what)?;
        if length < 0 {
            return Err(RecordDecodeError::Invalid { what, value: i64::from(length) });
        }
        Ok(Bytes::copy_from_slice(self.take(length as usize, what)?))
    }

    pub(crate) fn finish(&self, what: &'static str) -> Result<(), RecordDecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(RecordDecodeError::TrailingBytes { what, extra_bytes: self.bytes.len() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(record: &OffsetsRecord) {
        let (key, value) = record.encode();
        assert_eq!(&OffsetsRecord::decode(&key, value.as_deref()).unwrap(), record);
    }

    #[test]
    fn records_round_trip() {
        let offset = CommittedOffset { offset: 42, leader_epoch: 3, metadata: "m".into(), commit_timestamp_ms: 1_700 };
        round_trip(&OffsetsRecord::Offset {
            group_id: "g".into(),
            partition: TopicPartition::new("t", 5),
            value: Some(offset),
        });
        round_trip(&OffsetsRecord::Offset {
            group_id: "g".into(),
            partition: TopicPartition::new("t", 5),
            value: None,
        });
        let member = StoredMember {
            member_id: "c-1".into(),
            group_instance_id: Some("i-1".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 45_000,
            subscription: Bytes::from_static(b"sub"),
            assignment: Bytes::from_static(b"asg"),
        };
        let group = StoredGroup {
            protocol_type: "consumer".into(),
            generation_id: 7,
            protocol_name: Some("range".into()),
            leader: Some("c-1".into()),
            state_timestamp_ms: 99,
            members: vec![member],
        };
        round_trip(&OffsetsRecord::Group { group_id: "g".into(), value: Some(group) });
        round_trip(&OffsetsRecord::Group { group_id: "g".into(), value: None });
    }

    /// Bytes as Kafka 2.x writes an OffsetCommitValue v1 (with its expire timestamp).
    #[test]
    fn reads_kafkas_older_offset_value() {
        let mut value = BytesMut::new();
        value.put_i16(1);
        value.put_i64(10);
        put_string(&mut value, "meta");
        value.put_i64(1_000);
        value.put_i64(2_000);
        let mut key = BytesMut::new();
        key.put_i16(0);
        put_string(&mut key, "g");
        put_string(&mut key, "t");
        key.put_i32(0);
        let record = OffsetsRecord::decode(&key, Some(&value)).unwrap();
        let OffsetsRecord::Offset { value: Some(value), .. } = record else { panic!("{record:?}") };
        assert_eq!((value.offset, value.leader_epoch, value.commit_timestamp_ms), (10, -1, 1_000));
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let (key, value) = OffsetsRecord::Offset {
            group_id: "group".into(),
            partition: TopicPartition::new("topic", 1),
            value: Some(CommittedOffset {
                offset: 1,
                leader_epoch: 0,
                metadata: String::new(),
                commit_timestamp_ms: 0,
            }),
        }
        .encode();
        let value = value.unwrap();
        for cut in 0..key.len() {
            assert!(OffsetsRecord::decode(&key[..cut], Some(&value)).is_err(), "key cut at {cut}");
        }
        for cut in 0..value.len() {
            assert!(OffsetsRecord::decode(&key, Some(&value[..cut])).is_err(), "value cut at {cut}");
        }
        let mut long = value.to_vec();
        long.push(0);
        assert!(matches!(OffsetsRecord::decode(&key, Some(&long)), Err(RecordDecodeError::TrailingBytes { .. })));
    }
}
