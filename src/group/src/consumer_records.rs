//! The value of a KIP-848 consumer group's `__consumer_offsets` record (key version 3), in
//! Sluice's own layout: the whole group, so one record rebuilds it (`records.rs` says why).
//!
//! Layout (big-endian; strings and arrays as in `records.rs`): value version i16 = 1, group
//! epoch i32, assignment epoch i32, assignor name?, partition counts [topic, count i32],
//! members [member id, instance id?, rack id?, client id, client host, member epoch i32,
//! previous epoch i32, state i8, subscribed [topic], subscribed regex?, assignor?, rebalance
//! timeout i32, assigned partitions, pending revocation], targets [member id, partitions].
//! Partitions are [topic, [partition i32]]. Session and revocation deadlines are not stored: a
//! new coordinator starts every session afresh, as the classic protocol's load does. What the
//! regexes matched is not stored either: `partition_counts` holds the topics the target was
//! computed for, and the next heartbeat matches the regexes again.
//!
//! Version 0 (before regex subscriptions, KIP-848 v1) is version 1 without the subscribed regex;
//! both decode, and only version 1 is written.

use crate::assignor::{ServerAssignor, TopicPartitions};
use crate::consumer_group::{
    ConsumerGroup, ConsumerMember, MemberState, RegexMatches, SUBSCRIBED_TOPIC_REGEX_BYTES_MAX,
};
use crate::records::{Reader, RecordDecodeError, put_nullable_string, put_string};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};

/// The version written.
const VALUE_VERSION: i16 = 1;
/// The first version with each member's subscribed regex.
const REGEX_VERSION: i16 = 1;
/// Entries one decoded array may hold (bounds what a corrupt count could allocate).
const ARRAY_ENTRIES_MAX: usize = 1_000_000;

fn put_count(out: &mut BytesMut, count: usize) {
    out.put_i32(i32::try_from(count).expect("bounded by group.max.size and partition counts"));
}

fn put_partitions(out: &mut BytesMut, partitions: &TopicPartitions) {
    put_count(out, partitions.len());
    for (topic, set) in partitions {
        put_string(out, topic);
        put_count(out, set.len());
        for partition in set {
            out.put_i32(*partition);
        }
    }
}

fn state_code(state: MemberState) -> i8 {
    match state {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

pub(crate) fn encode(group: &ConsumerGroup) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(VALUE_VERSION);
    out.put_i32(group.group_epoch);
    out.put_i32(group.assignment_epoch);
    put_nullable_string(&mut out, group.assignor.map(ServerAssignor::name));
    put_count(&mut out, group.partition_counts.len());
    for (topic, count) in &group.partition_counts {
        put_string(&mut out, topic);
        out.put_i32(*count);
    }
    put_count(&mut out, group.members.len());
    for m in group.members.values() {
        put_string(&mut out, &m.member_id);
        put_nullable_string(&mut out, m.instance_id.as_deref());
        put_nullable_string(&mut out, m.rack_id.as_deref());
        put_string(&mut out, &m.client_id);
        put_string(&mut out, &m.client_host);
        out.put_i32(m.member_epoch);
        out.put_i32(m.previous_member_epoch);
        out.put_i8(state_code(m.state));
        put_count(&mut out, m.subscribed_topics.len());
        for topic in &m.subscribed_topics {
            put_string(&mut out, topic);
        }
        // Paired with the decoder's check: a stored regex is never empty, and was bounded.
        assert!(
            m.subscribed_topic_regex
                .as_ref()
                .is_none_or(|r| !r.is_empty() && r.len() <= SUBSCRIBED_TOPIC_REGEX_BYTES_MAX)
        );
        put_nullable_string(&mut out, m.subscribed_topic_regex.as_deref());
        put_nullable_string(&mut out, m.server_assignor.as_deref());
        out.put_i32(m.rebalance_timeout_ms);
        put_partitions(&mut out, &m.assigned);
        put_partitions(&mut out, &m.pending_revocation);
    }
    put_count(&mut out, group.target.len());
    for (member_id, partitions) in &group.target {
        put_string(&mut out, member_id);
        put_partitions(&mut out, partitions);
    }
    out.freeze()
}

fn count(reader: &mut Reader<'_>, what: &'static str) -> Result<usize, RecordDecodeError> {
    let value = reader.i32(what)?;
    match usize::try_from(value) {
        Ok(count) if count <= ARRAY_ENTRIES_MAX => Ok(count),
        _ => Err(RecordDecodeError::Invalid { what, value: i64::from(value) }),
    }
}

fn partitions(reader: &mut Reader<'_>) -> Result<TopicPartitions, RecordDecodeError> {
    let mut out = TopicPartitions::new();
    for _ in 0..count(reader, "topic count")? {
        let topic = reader.string("topic")?;
        let mut set = BTreeSet::new();
        for _ in 0..count(reader, "partition count")? {
            set.insert(reader.i32("partition")?);
        }
        out.insert(topic, set);
    }
    Ok(out)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<ConsumerGroup, RecordDecodeError> {
    let mut r = Reader { bytes };
    let version = r.i16("consumer group value version")?;
    if !(0..=VALUE_VERSION).contains(&version) {
        return Err(RecordDecodeError::UnknownVersion { what: "consumer group value", version });
    }
    let group_epoch = r.i32("group epoch")?;
    let assignment_epoch = r.i32("assignment epoch")?;
    let assignor = match r.nullable_string("assignor")? {
        None => None,
        Some(name) => {
            Some(ServerAssignor::parse(&name).ok_or(RecordDecodeError::Invalid { what: "assignor", value: 0 })?)
        }
    };
    let mut partition_counts = BTreeMap::new();
    for _ in 0..count(&mut r, "topic count")? {
        let topic = r.string("topic")?;
        partition_counts.insert(topic, r.i32("partition count")?);
    }
    let mut members = BTreeMap::new();
    for _ in 0..count(&mut r, "member count")? {
        let member_id = r.string("member id")?;
        let instance_id = r.nullable_string("instance id")?;
        let rack_id = r.nullable_string("rack id")?;
        let client_id = r.string("client id")?;
        let client_host = r.string("client host")?;
        let member_epoch = r.i32("member epoch")?;
        let previous_member_epoch = r.i32("previous member epoch")?;
        let state = match r.take(1, "member state")?[0] {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            other => return Err(RecordDecodeError::Invalid { what: "member state", value: i64::from(other) }),
        };
        let mut subscribed_topics = BTreeSet::new();
        for _ in 0..count(&mut r, "subscription count")? {
            subscribed_topics.insert(r.string("subscribed topic")?);
        }
        let subscribed_topic_regex =
            if version >= REGEX_VERSION { r.nullable_string("subscribed regex")? } else { None };
        if subscribed_topic_regex.as_ref().is_some_and(String::is_empty) {
            return Err(RecordDecodeError::Invalid { what: "subscribed regex", value: 0 });
        }
        let server_assignor = r.nullable_string("server assignor")?;
        let rebalance_timeout_ms = r.i32("rebalance timeout")?;
        let assigned = partitions(&mut r)?;
        let pending_revocation = partitions(&mut r)?;
        let member = ConsumerMember {
            member_id: member_id.clone(),
            instance_id,
            rack_id,
            client_id,
            client_host,
            member_epoch,
            previous_member_epoch,
            state,
            subscribed_topics,
            subscribed_topic_regex,
            server_assignor,
            rebalance_timeout_ms,
            assigned,
            pending_revocation,
            session_deadline_ms: 0,
            revocation_deadline_ms: None,
        };
        members.insert(member_id, member);
    }
    let mut target = BTreeMap::new();
    for _ in 0..count(&mut r, "target count")? {
        let member_id = r.string("target member id")?;
        target.insert(member_id, partitions(&mut r)?);
    }
    r.finish("consumer group value")?;
    let regex_matches = RegexMatches::default();
    Ok(ConsumerGroup { group_epoch, assignment_epoch, members, target, partition_counts, assignor, regex_matches })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic_partitions(topic: &str, partitions: &[i32]) -> TopicPartitions {
        [(topic.to_owned(), partitions.iter().copied().collect())].into()
    }

    /// A version 0 value, byte by byte as Sluice wrote it before regex subscriptions: one
    /// stable member of epoch 3 owning orders-0 and orders-1, assignor uniform.
    fn version_0_value() -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(0); // value version
        out.put_i32(3); // group epoch
        out.put_i32(3); // assignment epoch
        put_nullable_string(&mut out, Some("uniform"));
        out.put_i32(1); // partition counts
        put_string(&mut out, "orders");
        out.put_i32(2);
        out.put_i32(1); // members
        put_string(&mut out, "m1");
        put_nullable_string(&mut out, None); // instance id
        put_nullable_string(&mut out, Some("rack-a"));
        put_string(&mut out, "client");
        put_string(&mut out, "/127.0.0.1");
        out.put_i32(3); // member epoch
        out.put_i32(2); // previous member epoch
        out.put_i8(0); // stable
        out.put_i32(1); // subscribed topics
        put_string(&mut out, "orders");
        put_nullable_string(&mut out, Some("uniform"));
        out.put_i32(45_000); // rebalance timeout
        out.put_i32(1); // assigned: orders [0, 1]
        put_string(&mut out, "orders");
        out.put_i32(2);
        out.put_i32(0);
        out.put_i32(1);
        out.put_i32(0); // pending revocation: none
        out.put_i32(1); // targets
        put_string(&mut out, "m1");
        out.put_i32(1);
        put_string(&mut out, "orders");
        out.put_i32(2);
        out.put_i32(0);
        out.put_i32(1);
        out.freeze()
    }

    #[test]
    fn a_record_written_before_regex_subscriptions_still_loads() {
        let group = decode(&version_0_value()).expect("version 0 decodes");
        assert_eq!((group.group_epoch, group.assignment_epoch, group.assignor), (3, 3, Some(ServerAssignor::Uniform)));
        assert_eq!(group.partition_counts, BTreeMap::from([("orders".to_owned(), 2)]));
        let member = &group.members["m1"];
        assert_eq!(member.subscribed_topics, BTreeSet::from(["orders".to_owned()]));
        assert_eq!(member.subscribed_topic_regex, None, "version 0 has no regex");
        assert_eq!((member.member_epoch, member.previous_member_epoch, member.state), (3, 2, MemberState::Stable));
        assert_eq!(member.rack_id.as_deref(), Some("rack-a"));
        assert_eq!(member.assigned, topic_partitions("orders", &[0, 1]));
        assert_eq!(group.target["m1"], topic_partitions("orders", &[0, 1]));
        // Written again, it is version 1, and reads back the same.
        let again = encode(&group);
        assert_eq!(i16::from_be_bytes([again[0], again[1]]), VALUE_VERSION);
        assert_eq!(decode(&again).expect("version 1 decodes"), group);
    }

    #[test]
    fn a_members_regex_round_trips_and_a_bad_one_is_refused() {
        let mut group = decode(&version_0_value()).expect("decodes");
        group.members.get_mut("m1").expect("member").subscribed_topic_regex = Some("orders|rx-.*".to_owned());
        let bytes = encode(&group);
        let back = decode(&bytes).expect("decodes");
        assert_eq!(back.members["m1"].subscribed_topic_regex.as_deref(), Some("orders|rx-.*"));
        assert_eq!(back, group);

        let mut future = bytes.to_vec();
        future[..2].copy_from_slice(&2i16.to_be_bytes());
        assert!(matches!(decode(&future), Err(RecordDecodeError::UnknownVersion { version: 2, .. })));
        // An empty regex is never stored (an empty one from a member means none).
        let regex_at = bytes.windows(11).position(|w| w == b"orders|rx-.").expect("the regex") - 2;
        let mut empty = bytes[..regex_at].to_vec();
        empty.extend_from_slice(&0i16.to_be_bytes());
        empty.extend_from_slice(&bytes[regex_at + 2 + "orders|rx-.*".len()..]);
        assert!(matches!(decode(&empty), Err(RecordDecodeError::Invalid { what: "subscribed regex", .. })));
    }
}
