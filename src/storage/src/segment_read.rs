//! Verified reads of one segment: finding the batch that holds an offset, and serving whole
//! batches from it.
//!
//! Stored bytes are never trusted: the CRC covers only `attributes..end`, so the base offset,
//! the batch length and the magic are checked structurally (dense offsets from the index entry
//! on, lengths inside the segment, the leader epoch against the epoch cache). Anything wrong is
//! a `CorruptStoredBatch` error (or the end of a read, after good batches), answered to
//! clients as KAFKA_STORAGE_ERROR, never a panic and never the corrupted bytes.

use crate::error::StorageError;
use crate::segment::{Hole, Segment};
use bytes::Bytes;
use sluice_io::File;
use sluice_types::batch::BATCH_HEADER_BYTES;
use sluice_types::{BatchError, BatchHeader, Offset, Term};

impl<F: File> Segment<F> {
    /// The hole that covers `offset`, if any.
    pub fn hole_covering(&self, offset: Offset) -> Option<&Hole> {
        self.holes.range(..=offset).next_back().map(|(_, hole)| hole).filter(|hole| offset < hole.end_offset)
    }

    /// The hole whose damaged bytes start at `position`, if any.
    pub fn hole_at_position(&self, position: u32) -> Option<&Hole> {
        self.holes.values().find(|hole| hole.start_position == position)
    }

    /// The position and base offset of the batch holding `offset`, found from the index plus a
    /// walk of at most one index interval of headers (jumping over holes).
    pub async fn position_of(&self, offset: Offset) -> Result<(u32, Offset), StorageError> {
        assert!(offset >= self.base_offset && offset < self.next_offset, "offset outside its segment");
        if let Some(hole) = self.hole_covering(offset) {
            let reason =
                format!("offset {offset} lies in a damaged range [{}, {})", hole.start_offset, hole.end_offset);
            return Err(self.corrupt(hole.start_position, reason));
        }
        let relative_offset = u32::try_from(offset.0 - self.base_offset.0).expect("fits u32");
        let entry = self.offset_index.floor(relative_offset);
        let (mut position, mut expected) =
            (entry.position, Offset(self.base_offset.0 + i64::from(entry.relative_offset)));
        // Bounded: each step moves forward by a whole batch or hole inside `size_bytes`.
        loop {
            if let Some(hole) = self.hole_at_position(position) {
                (position, expected) = (hole.end_position, hole.end_offset);
                continue;
            }
            let header = self.header_at(position).await?;
            if header.base_offset != expected {
                let reason =
                    format!("batch at {position} has offset {} where {expected} was expected", header.base_offset);
                return Err(self.corrupt(position, reason));
            }
            if header.next_offset() > offset {
                return Ok((position, expected));
            }
            position += header.size_bytes();
            expected = header.next_offset();
        }
    }

    /// The position of the first batch that may hold a record with timestamp >= `timestamp_ms`.
    pub fn position_for_timestamp(&self, timestamp_ms: i64) -> u32 {
        let relative_offset = self.time_index.lookup(timestamp_ms);
        self.offset_index.lookup(relative_offset)
    }

    /// The header of the batch at `position`, which must lie inside the segment.
    pub async fn header_at(&self, position: u32) -> Result<BatchHeader, StorageError> {
        if position >= self.size_bytes {
            return Err(self.corrupt(position, "position past the end of the segment".to_string()));
        }
        let bytes = self.log.read_at(u64::from(position), BATCH_HEADER_BYTES).await?;
        let header = BatchHeader::parse_header_only(&bytes).map_err(|e| self.corrupt(position, e.to_string()))?;
        if u64::from(position) + u64::from(header.size_bytes()) > u64::from(self.size_bytes) {
            return Err(self.corrupt(position, format!("batch length {} runs past the segment", header.size_bytes())));
        }
        Ok(header)
    }

    /// Calls `visit` with every batch header of the segment in order, jumping over holes
    /// (unknown content). Headers only, without their CRC: the segment was walked when opened
    /// and every appended batch was verified on its way in.
    pub async fn for_each_header(&self, mut visit: impl FnMut(&BatchHeader)) -> Result<(), StorageError> {
        let mut position = 0u32;
        // Bounded: every round moves past one batch or one hole inside `size_bytes`.
        while position < self.size_bytes {
            if let Some(hole) = self.hole_at_position(position) {
                position = hole.end_position;
                continue;
            }
            let header = self.header_at(position).await?;
            visit(&header);
            position += header.size_bytes();
        }
        Ok(())
    }

    /// Reads whole, verified batches starting with the batch at `position` (whose base offset
    /// is `base_offset`): at least one batch (KIP-74), then more while they fit in `max_bytes`,
    /// stopping before any batch at or past `max_offset` and before a hole.
    ///
    /// Each batch is checked: CRC, dense offsets, and the leader epoch `epoch_of(base offset)`
    /// says it must carry (the epoch is outside the CRC). A bad first batch is an error; a bad
    /// later one ends the read there, so the good batches before it are still served.
    pub async fn read_batches(
        &self,
        position: u32,
        base_offset: Offset,
        max_bytes: u32,
        max_offset: Offset,
        epoch_of: impl Fn(Offset) -> Option<Term>,
    ) -> Result<Bytes, StorageError> {
        let first = self.header_at(position).await?;
        let want = (self.size_bytes - position).min(max_bytes).max(first.size_bytes());
        let chunk = self.log.read_at(u64::from(position), want).await?;
        let mut cursor = 0usize;
        let mut expected = base_offset;
        // The batches served are a prefix of `chunk`: verify them, then slice (no copy).
        while cursor < chunk.len() {
            let at = position + cursor as u32;
            if cursor > 0 && self.hole_at_position(at).is_some() {
                break;
            }
            let verdict = self.check_stored(&chunk[cursor..], expected, &epoch_of);
            let header = match verdict {
                Ok(Some(header)) => header,
                Ok(None) => break,
                Err(_) if cursor > 0 => break,
                Err(reason) => return Err(self.corrupt(at, reason)),
            };
            if header.base_offset >= max_offset {
                break;
            }
            expected = header.next_offset();
            cursor += header.size_bytes() as usize;
        }
        Ok(chunk.slice(..cursor))
    }

    /// Checks the stored batch at the start of `bytes`: `Ok(None)` when it is cut off by the
    /// end of `bytes` (a read boundary, not damage).
    fn check_stored(
        &self,
        bytes: &[u8],
        expected: Offset,
        epoch_of: &impl Fn(Offset) -> Option<Term>,
    ) -> Result<Option<BatchHeader>, String> {
        let header = match BatchHeader::parse(bytes) {
            Ok(header) => header,
            Err(BatchError::Truncated { .. }) if bytes.len() >= BATCH_HEADER_BYTES as usize => return Ok(None),
            Err(error) => return Err(error.to_string()),
        };
        if header.base_offset != expected {
            return Err(format!("offset {} where {expected} was expected", header.base_offset));
        }
        header.verify_crc(bytes).map_err(|error| error.to_string())?;
        if let Some(epoch) = epoch_of(header.base_offset)
            && header.partition_leader_epoch != epoch
        {
            return Err(format!("leader epoch {} where {epoch} was expected", header.partition_leader_epoch));
        }
        Ok(Some(header))
    }

    pub(crate) fn corrupt(&self, position: u32, reason: String) -> StorageError {
        StorageError::CorruptStoredBatch {
            offset: self.base_offset,
            reason: format!("segment {} position {position}: {reason}", self.base_offset),
        }
    }
}
