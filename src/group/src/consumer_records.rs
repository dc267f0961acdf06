//! The value of a KIP-848 consumer group's `__consumer_offsets` record (key version 3), in
//! Sluice's own layout: the whole group, so one record rebuilds it (`records.rs` says why).
//!
//! Layout (big-endian; strings and arrays as in `records.rs`): value version i16 = 0, group
//! epoch i32, assignment epoch i32, assignor name?, partition counts [topic, count i32],
//! members [member id, instance id?, rack id?, client id, client host, member epoch i32,
//! previous epoch i32, state i8, subscribed [topic], assignor?, rebalance timeout i32,
//! assigned partitions, pending revocation], targets [member id, partitions]. Partitions are
//! [topic, [partition i32]]. Session and revocation deadlines are not stored: a new coordinator
//! starts every session afresh, as the classic protocol's load does.

use crate::assignor::{ServerAssignor, TopicPartitions};
use crate::consumer_group::{ConsumerGroup, ConsumerMember, MemberState};
use crate::records::{Reader, RecordDecodeError, put_nullable_string, put_string};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};

const VALUE_VERSION: i16 = 0;
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
    if version != VALUE_VERSION {
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
    Ok(ConsumerGroup { group_epoch, assignment_epoch, members, target, partition_counts, assignor })
}
