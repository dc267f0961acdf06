//! Raft's own entries as Kafka control batches, and the entry metadata of any stored batch.
//!
//! DESIGN.md, "one log format end to end": a Raft entry is a Kafka record batch; its index is the
//! batch's last offset and its term the batch's `partitionLeaderEpoch`. Producer batches are
//! entries as they are. Raft's own entries (a new leader's no-op, a membership change) are
//! control batches of one record, so the partition log stays a valid Kafka log:
//!
//! - key: int16 version (0), int16 type (Kafka's control record key, KIP-98);
//! - no-op: type 2, LEADER_CHANGE, the type KRaft writes when a leader is elected (KIP-595);
//!   value: int16 version (0), int8 reserved (0), int32 leader id;
//! - membership change: type 100, Sluice's own; value: int16 version (0), int8 change
//!   (0 add learner, 1 promote learner, 2 remove), int32 node id, int64 epoch (the controller
//!   index of the reassignment that drove the change; `cluster/reassign.rs`).
//!
//! They are exactly `sluice_raft::LEADER_NOOP_BYTES` (79) and `MEMBERSHIP_ENTRY_BYTES` (87)
//! bytes: the sizes the core records for them, so leader and followers agree on every entry's
//! metadata.
//!
//! Consumers skip control batches: librdkafka ignores control types it does not know and older
//! versions skip control batches whole; the Java consumer skips unknown types. A producer can
//! never write one (produce refuses control batches), so only a leader creates these.

use bytes::Bytes;
use sluice_protocol::records::{BatchOptions, Record, RecordsError, decode_batch, encode_batch};
use sluice_raft::{EntryKind, EntryMeta, MembershipChange};
use sluice_types::{BatchHeader, Compression, NodeId, Offset, Term, TimestampType};

/// KIP-595: the control record KRaft writes when a new leader is elected.
pub const CONTROL_TYPE_LEADER_CHANGE: i16 = 2;
/// Sluice: one single-server membership change of a partition's Raft group.
pub const CONTROL_TYPE_MEMBERSHIP: i16 = 100;
const CONTROL_KEY_VERSION: i16 = 0;
const CONTROL_VALUE_VERSION: i16 = 0;
/// The largest control batch we decode (they hold one small record).
const CONTROL_BATCH_BYTES_MAX: u64 = 4096;
/// A membership change value: version, change, node id, epoch.
const MEMBERSHIP_VALUE_BYTES: usize = 2 + 1 + 4 + 8;

#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("batch: {0}")]
    Records(#[from] RecordsError),
    #[error("control batch: {0}")]
    Control(&'static str),
}

/// The control batch for a Raft entry the leader creates, at `index` in `term`.
pub fn control_batch(
    kind: EntryKind,
    index: Offset,
    term: Term,
    leader: NodeId,
    membership_epoch: Offset,
    now_ms: i64,
) -> Bytes {
    let (control_type, value) = match kind {
        EntryKind::LeaderNoop => {
            let mut value = CONTROL_VALUE_VERSION.to_be_bytes().to_vec();
            value.push(0);
            value.extend_from_slice(&leader.0.to_be_bytes());
            (CONTROL_TYPE_LEADER_CHANGE, value)
        }
        EntryKind::Membership(change) => {
            let (code, node) = match change {
                MembershipChange::AddLearner(node) => (0u8, node),
                MembershipChange::PromoteLearner(node) => (1, node),
                MembershipChange::Remove(node) => (2, node),
            };
            let mut value = CONTROL_VALUE_VERSION.to_be_bytes().to_vec();
            value.push(code);
            value.extend_from_slice(&node.0.to_be_bytes());
            value.extend_from_slice(&membership_epoch.0.to_be_bytes());
            (CONTROL_TYPE_MEMBERSHIP, value)
        }
        EntryKind::Data => panic!("data entries are producer batches, not control batches"),
    };
    let mut key = CONTROL_KEY_VERSION.to_be_bytes().to_vec();
    key.extend_from_slice(&control_type.to_be_bytes());
    let record = Record {
        offset_delta: 0,
        timestamp_delta: 0,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: Vec::new(),
    };
    let options = BatchOptions {
        base_offset: index,
        partition_leader_epoch: term,
        base_timestamp: now_ms,
        timestamp_type: TimestampType::CreateTime,
        is_control: true,
        ..BatchOptions::default()
    };
    let batch = encode_batch(&[record], Compression::None, &options).expect("a control batch always encodes");
    debug_assert_eq!(BatchHeader::parse_verified(&batch).map(|h| h.last_offset()).ok(), Some(index));
    let expected = match kind {
        EntryKind::Membership(_) => sluice_raft::MEMBERSHIP_ENTRY_BYTES,
        _ => sluice_raft::LEADER_NOOP_BYTES,
    };
    assert_eq!(batch.len(), expected as usize, "the size the core records");
    batch
}

/// The epoch a membership change batch carries (`None` for any other batch).
pub fn membership_epoch(batch: &Bytes) -> Result<Option<Offset>, EntryError> {
    let header = BatchHeader::parse_verified(batch).map_err(RecordsError::from)?;
    if !header.is_control() || header.is_transactional() {
        return Ok(None);
    }
    let (control_type, value) = control_record(batch)?;
    if control_type != CONTROL_TYPE_MEMBERSHIP || value.len() != MEMBERSHIP_VALUE_BYTES {
        return Ok(None);
    }
    let epoch: [u8; 8] = value[7..15].try_into().expect("checked length");
    Ok(Some(Offset(i64::from_be_bytes(epoch))))
}

/// The type and value of a control batch's one record.
fn control_record(batch: &Bytes) -> Result<(i16, Bytes), EntryError> {
    let (_, records) = decode_batch(batch, CONTROL_BATCH_BYTES_MAX)?;
    let [record] = records.as_slice() else { return Err(EntryError::Control("not exactly one record")) };
    let key = record.key.as_deref().ok_or(EntryError::Control("no key"))?;
    if key.len() != 4 {
        return Err(EntryError::Control("key is not 4 bytes"));
    }
    Ok((i16::from_be_bytes([key[2], key[3]]), record.value.clone().unwrap_or_default()))
}

/// What a stored or received batch is as a Raft entry. Producer batches (and control batches of
/// other types, such as transaction markers) are data entries.
pub fn entry_meta(batch: &Bytes) -> Result<EntryMeta, EntryError> {
    let header = BatchHeader::parse_verified(batch).map_err(RecordsError::from)?;
    let kind = if header.is_control() && !header.is_transactional() { control_kind(batch)? } else { EntryKind::Data };
    Ok(EntryMeta {
        index: header.last_offset(),
        term: header.partition_leader_epoch,
        kind,
        size_bytes: header.size_bytes(),
    })
}

fn control_kind(batch: &Bytes) -> Result<EntryKind, EntryError> {
    let (control_type, value) = control_record(batch)?;
    match control_type {
        CONTROL_TYPE_LEADER_CHANGE => {
            if value.len() != 7 || i16::from_be_bytes([value[0], value[1]]) != CONTROL_VALUE_VERSION {
                return Err(EntryError::Control("leader change value"));
            }
            Ok(EntryKind::LeaderNoop)
        }
        CONTROL_TYPE_MEMBERSHIP => {
            let version = value.get(0..2).map(|v| i16::from_be_bytes([v[0], v[1]]));
            if value.len() != MEMBERSHIP_VALUE_BYTES || version != Some(CONTROL_VALUE_VERSION) {
                return Err(EntryError::Control("membership value"));
            }
            let node = NodeId(i32::from_be_bytes([value[3], value[4], value[5], value[6]]));
            let change = match value[2] {
                0 => MembershipChange::AddLearner(node),
                1 => MembershipChange::PromoteLearner(node),
                2 => MembershipChange::Remove(node),
                _ => return Err(EntryError::Control("membership change code")),
            };
            Ok(EntryKind::Membership(change))
        }
        _ => Ok(EntryKind::Data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_entries_round_trip_through_control_batches() {
        let kinds = [
            EntryKind::LeaderNoop,
            EntryKind::Membership(MembershipChange::AddLearner(NodeId(4))),
            EntryKind::Membership(MembershipChange::PromoteLearner(NodeId(4))),
            EntryKind::Membership(MembershipChange::Remove(NodeId(2))),
        ];
        for (at, kind) in kinds.into_iter().enumerate() {
            let index = Offset(100 + at as i64);
            let batch = control_batch(kind, index, Term(7), NodeId(1), Offset(42), 1_700_000_000_000);
            let header = BatchHeader::parse_verified(&batch).unwrap();
            assert!(header.is_control() && !header.is_transactional());
            assert_eq!((header.base_offset, header.record_count), (index, 1));
            let meta = entry_meta(&batch).unwrap();
            assert_eq!(meta, EntryMeta { index, term: Term(7), kind, size_bytes: batch.len() as u32 });
            let epoch = matches!(kind, EntryKind::Membership(_)).then_some(Offset(42));
            assert_eq!(membership_epoch(&batch).unwrap(), epoch);
        }
    }

    #[test]
    fn producer_batches_are_data_entries() {
        let record = Record {
            offset_delta: 0,
            timestamp_delta: 0,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: vec![],
        };
        let second = Record { offset_delta: 1, ..record.clone() };
        let options =
            BatchOptions { base_offset: Offset(10), partition_leader_epoch: Term(3), ..BatchOptions::default() };
        let batch = encode_batch(&[record, second], Compression::None, &options).unwrap();
        let meta = entry_meta(&batch).unwrap();
        assert_eq!((meta.index, meta.term, meta.kind), (Offset(11), Term(3), EntryKind::Data));
    }
}
