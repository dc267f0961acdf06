//! A walk over an RPC's protobuf framing that bounds what decoding it will allocate, before
//! prost allocates anything.
//!
//! Why: prost decodes a repeated message field by pushing one struct per element it finds, and
//! an empty element costs two bytes on the wire but tens of bytes in memory. A 16 MiB frame of
//! empty AppendEntries entries would ask for hundreds of MiB (the hazard ARCHITECTURE.md
//! describes for kafka-protocol's array counts). This walk counts the elements of the schema's
//! repeated message fields (groups, messages, entries) over the whole frame and refuses the
//! frame past `GROUPS_PER_RPC_MAX`, `MESSAGES_PER_RPC_MAX` or `ENTRIES_PER_RPC_MAX`. The other
//! repeated fields are `sfixed32` (never larger in memory than on the wire) and a repeated
//! occurrence of a singular field merges into one value, so with these counts bounded a decode
//! allocates at most a constant times the limits plus the frame size.
//!
//! Every occurrence is counted, including ones prost would later discard (a oneof replaced by a
//! later field), so the count is an upper bound of what prost builds. The walk is stricter than
//! protobuf in one way: it refuses the deprecated group wire types (3, 4), which this schema
//! never uses. It reads nothing but framing; prost and `decode.rs` judge the values.

use crate::error::RpcError;
use crate::limits::{ENTRIES_PER_RPC_MAX, GROUPS_PER_RPC_MAX, MESSAGES_PER_RPC_MAX, RPC_BYTES_MAX};
use crate::wire::{
    APPEND_ENTRIES_ENTRIES_TAG, GROUP_MESSAGES_MESSAGES_TAG, PEER_BATCH_GROUPS_TAG, RAFT_MESSAGE_APPEND_ENTRIES_TAG,
    RPC_PEER_BATCH_TAG,
};

/// A varint is at most ten bytes (64 bits, seven per byte).
const VARINT_BYTES_MAX: usize = 10;

/// One step down the schema: in a message at this depth, the field (by tag) leading to the next
/// depth, and the limit on its occurrences over the whole frame, if it is a counted one.
struct Step {
    tag: u32,
    counted: Option<(&'static str, u32)>,
}

/// Rpc -> PeerBatch -> GroupMessages -> RaftMessage -> AppendEntries -> Entry.
const PATH: [Step; 5] = [
    Step { tag: RPC_PEER_BATCH_TAG, counted: None },
    Step { tag: PEER_BATCH_GROUPS_TAG, counted: Some(("groups", GROUPS_PER_RPC_MAX)) },
    Step { tag: GROUP_MESSAGES_MESSAGES_TAG, counted: Some(("messages", MESSAGES_PER_RPC_MAX)) },
    Step { tag: RAFT_MESSAGE_APPEND_ENTRIES_TAG, counted: None },
    Step { tag: APPEND_ENTRIES_ENTRIES_TAG, counted: Some(("entries", ENTRIES_PER_RPC_MAX)) },
];

/// Occurrences of each step's field over the whole frame (as walked: past a refused count,
/// nothing is counted further).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts(pub [u32; PATH.len()]);

/// Checks the frame size and framing and counts the repeated elements; `Ok` means prost's
/// allocations for this frame are bounded by the limits.
pub(crate) fn prescan(bytes: &[u8]) -> Result<Counts, RpcError> {
    if bytes.len() as u64 > u64::from(RPC_BYTES_MAX) {
        return Err(RpcError::TooLarge { bytes: bytes.len() as u64 });
    }
    let mut counts = Counts::default();
    scan(bytes, 0, &mut counts)?;
    Ok(counts)
}

fn scan(mut message: &[u8], depth: usize, counts: &mut Counts) -> Result<(), RpcError> {
    let step = &PATH[depth];
    while !message.is_empty() {
        let (tag, payload) = next_field(&mut message)?;
        let Some(payload) = payload else { continue };
        if tag != step.tag {
            continue;
        }
        counts.0[depth] = counts.0[depth].saturating_add(1);
        if let Some((what, limit)) = step.counted
            && counts.0[depth] > limit
        {
            return Err(RpcError::TooMany { what, limit });
        }
        if depth + 1 < PATH.len() {
            scan(payload, depth + 1, counts)?;
        }
    }
    Ok(())
}

/// Reads one field's key and value off the front of `buf`: its tag, and its payload if it is
/// length-delimited.
fn next_field<'a>(buf: &mut &'a [u8]) -> Result<(u32, Option<&'a [u8]>), RpcError> {
    let key = read_varint(buf)?;
    let tag = u32::try_from(key >> 3).map_err(|_| RpcError::Framing("tag out of range"))?;
    if tag == 0 {
        return Err(RpcError::Framing("tag 0"));
    }
    let skip = match key & 0x7 {
        0 => {
            read_varint(buf)?;
            return Ok((tag, None));
        }
        1 => 8,
        2 => {
            let length = read_varint(buf)?;
            if length > buf.len() as u64 {
                return Err(RpcError::Framing("length beyond the end"));
            }
            let (payload, rest) = buf.split_at(length as usize);
            *buf = rest;
            return Ok((tag, Some(payload)));
        }
        5 => 4,
        3 | 4 => return Err(RpcError::Framing("group wire type")),
        _ => return Err(RpcError::Framing("invalid wire type")),
    };
    if skip > buf.len() {
        return Err(RpcError::Framing("fixed-width value beyond the end"));
    }
    *buf = &buf[skip..];
    Ok((tag, None))
}

fn read_varint(buf: &mut &[u8]) -> Result<u64, RpcError> {
    let mut value: u64 = 0;
    for (i, byte) in buf.iter().take(VARINT_BYTES_MAX).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(RpcError::Framing("varint truncated or longer than ten bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;
    use prost::Message;

    fn frame(groups: u32, messages_per_group: u32, entries_per_message: u32) -> Vec<u8> {
        let entry =
            wire::Entry { index: 1, size_bytes: 3, batch: bytes::Bytes::from_static(b"abc"), ..Default::default() };
        let append = wire::AppendEntries { entries: vec![entry; entries_per_message as usize], ..Default::default() };
        let message = wire::RaftMessage { from: 1, to: 2, kind: Some(wire::raft_message::Kind::AppendEntries(append)) };
        let group = wire::GroupMessages { group: None, messages: vec![message; messages_per_group as usize] };
        let batch = wire::PeerBatch { groups: vec![group; groups as usize] };
        wire::Rpc { kind: Some(wire::rpc::Kind::PeerBatch(batch)) }.encode_to_vec()
    }

    /// Pins the `*_TAG` constants to the derived schema: the counts match what was encoded.
    #[test]
    fn counts_what_prost_encoded() {
        let counts = prescan(&frame(3, 4, 5)).unwrap();
        assert_eq!(counts, Counts([1, 3, 12, 12, 60]));
    }

    #[test]
    fn refuses_one_entry_past_the_limit_before_decoding() {
        let at_limit = frame(1, 1, ENTRIES_PER_RPC_MAX);
        assert_eq!(prescan(&at_limit).unwrap().0[4], ENTRIES_PER_RPC_MAX);
        let past = frame(1, 1, ENTRIES_PER_RPC_MAX + 1);
        assert_eq!(prescan(&past), Err(RpcError::TooMany { what: "entries", limit: ENTRIES_PER_RPC_MAX }));
    }

    #[test]
    fn counts_over_the_whole_frame_not_per_parent() {
        let half = MESSAGES_PER_RPC_MAX / 2;
        assert!(prescan(&frame(2, half, 0)).is_ok());
        assert_eq!(
            prescan(&frame(2, half + 1, 0)),
            Err(RpcError::TooMany { what: "messages", limit: MESSAGES_PER_RPC_MAX })
        );
    }

    #[test]
    fn empty_elements_count_too() {
        // `0a 00` repeated: PeerBatch fields of empty GroupMessages, two bytes each.
        let mut batch = Vec::new();
        for _ in 0..=GROUPS_PER_RPC_MAX {
            batch.extend_from_slice(&[0x0a, 0x00]);
        }
        let mut rpc = vec![0x0a];
        prost::encoding::encode_varint(batch.len() as u64, &mut rpc);
        rpc.extend_from_slice(&batch);
        assert_eq!(prescan(&rpc), Err(RpcError::TooMany { what: "groups", limit: GROUPS_PER_RPC_MAX }));
    }

    #[test]
    fn broken_framing_is_an_error() {
        assert!(matches!(prescan(&[0x0a, 0x05, 0x00]), Err(RpcError::Framing(_))), "length beyond the end");
        assert!(matches!(prescan(&[0x08]), Err(RpcError::Framing(_))), "varint truncated");
        assert!(matches!(prescan(&[0x0b]), Err(RpcError::Framing(_))), "group wire type");
        assert!(matches!(prescan(&[0x00, 0x00]), Err(RpcError::Framing(_))), "tag 0");
        assert!(matches!(prescan(&[0x09, 0, 0]), Err(RpcError::Framing(_))), "fixed64 truncated");
        assert!(matches!(prescan(&[0xff; 11]), Err(RpcError::Framing(_))), "eleven-byte varint");
        assert_eq!(prescan(&[]), Ok(Counts::default()));
    }

    #[test]
    fn refuses_a_frame_larger_than_the_transport_allows() {
        let huge = vec![0u8; RPC_BYTES_MAX as usize + 1];
        assert_eq!(prescan(&huge), Err(RpcError::TooLarge { bytes: u64::from(RPC_BYTES_MAX) + 1 }));
    }
}
