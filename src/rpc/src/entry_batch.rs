//! The pairing of an entry's metadata with the batch bytes attached to it.
//!
//! A Raft entry *is* a Kafka record batch: its index is the batch's last offset and its term the
//! batch's partition leader epoch (ARCHITECTURE.md, "The consensus core"). The core handles only
//! the metadata and the shell stores the bytes, so a peer that sent metadata disagreeing with
//! its bytes would make a follower's log say one thing to consensus and another to consumers
//! (LogMatching broken silently). Both ends check the pairing: the sender asserts it when
//! encoding (a mismatch there is a local bug), the receiver rejects a mismatch (DESIGN.md, Style
//! 3: check a batch when writing it and again when reading it).
//!
//! Only the 61-byte header is read: the CRC covers the records and storage verifies it when it
//! appends; the transport frame's CRC covers transit.

use crate::error::EntryBatchMismatch;
use sluice_raft::EntryMeta;
use sluice_types::{BatchHeader, Offset};

/// Checks that `batch` is exactly the Kafka RecordBatch v2 that `entry` names, starting at
/// `base_offset`: the offset after the previous entry, since a log's offsets are dense
/// (`sluice_raft` message.rs, "Positions").
pub(crate) fn check_entry_batch(
    entry: &EntryMeta,
    batch: &[u8],
    base_offset: Offset,
) -> Result<(), EntryBatchMismatch> {
    let bytes = batch.len() as u64;
    if bytes != u64::from(entry.size_bytes) {
        return Err(EntryBatchMismatch::Length { bytes, size_bytes: entry.size_bytes });
    }
    let header = BatchHeader::parse_header_only(batch).map_err(EntryBatchMismatch::Header)?;
    // `parse_header_only` guarantees `batch_length` is at least the header's remainder, so
    // `size_bytes()` cannot fail; it must cover exactly the attached bytes (one entry, one batch).
    let header_bytes = u64::from(header.size_bytes());
    if header_bytes != bytes {
        return Err(EntryBatchMismatch::HeaderLength { header_bytes, bytes });
    }
    if header.base_offset != base_offset {
        return Err(EntryBatchMismatch::BaseOffset { base_offset: header.base_offset.0, expected: base_offset.0 });
    }
    // Not `header.last_offset()`: a hostile base offset would overflow its addition.
    let last_offset = header.base_offset.0.checked_add(i64::from(header.last_offset_delta));
    if last_offset != Some(entry.index.0) {
        let last_offset = last_offset.unwrap_or(i64::MAX);
        return Err(EntryBatchMismatch::LastOffset { last_offset, index: entry.index.0 });
    }
    if header.partition_leader_epoch != entry.term {
        return Err(EntryBatchMismatch::Epoch { epoch: header.partition_leader_epoch.0, term: entry.term.0 });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::entry_with_batch;
    use sluice_raft::EntryKind;
    use sluice_types::Term;

    /// The base offset `entry_with_batch(41, _, 2, _)` builds.
    const BASE: Offset = Offset(40);

    #[test]
    fn a_batch_matches_the_entry_it_was_built_for() {
        let (entry, batch) = entry_with_batch(41, 3, 2, EntryKind::Data);
        assert_eq!(check_entry_batch(&entry, &batch, BASE), Ok(()));
    }

    #[test]
    fn size_index_and_term_must_all_agree_with_the_batch() {
        let (entry, batch) = entry_with_batch(41, 3, 2, EntryKind::Data);
        let wrong_size = EntryMeta { size_bytes: entry.size_bytes + 1, ..entry };
        assert!(matches!(check_entry_batch(&wrong_size, &batch, BASE), Err(EntryBatchMismatch::Length { .. })));
        let wrong_index = EntryMeta { index: Offset(42), ..entry };
        assert!(matches!(check_entry_batch(&wrong_index, &batch, BASE), Err(EntryBatchMismatch::LastOffset { .. })));
        let wrong_term = EntryMeta { term: Term(4), ..entry };
        assert!(matches!(check_entry_batch(&wrong_term, &batch, BASE), Err(EntryBatchMismatch::Epoch { .. })));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_rejected() {
        let (entry, batch) = entry_with_batch(41, 3, 2, EntryKind::Data);
        let garbage = vec![0u8; batch.len()];
        assert!(matches!(check_entry_batch(&entry, &garbage, BASE), Err(EntryBatchMismatch::Header(_))));
        let mut longer = batch.to_vec();
        longer.push(0);
        let longer_entry = EntryMeta { size_bytes: entry.size_bytes + 1, ..entry };
        assert!(matches!(
            check_entry_batch(&longer_entry, &longer, BASE),
            Err(EntryBatchMismatch::HeaderLength { .. })
        ));
    }

    #[test]
    fn the_batch_must_start_right_after_the_previous_entry() {
        let (entry, batch) = entry_with_batch(41, 3, 2, EntryKind::Data);
        let mismatch = check_entry_batch(&entry, &batch, Offset(39));
        assert_eq!(mismatch, Err(EntryBatchMismatch::BaseOffset { base_offset: 40, expected: 39 }));
    }

    #[test]
    fn an_overflowing_base_offset_is_a_mismatch_not_a_panic() {
        let (entry, batch) = entry_with_batch(41, 3, 2, EntryKind::Data);
        let mut hostile = batch.to_vec();
        hostile[0..8].copy_from_slice(&i64::MAX.to_be_bytes());
        let mismatch = check_entry_batch(&entry, &hostile, Offset(i64::MAX));
        assert!(matches!(mismatch, Err(EntryBatchMismatch::LastOffset { last_offset: i64::MAX, .. })));
    }
}
