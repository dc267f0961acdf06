//! Sparse offset and time indexes of one segment, kept in memory and mirrored to files.
//!
//! Offset index entry (8 bytes, little-endian): `u32 relative_offset, u32 position`, where
//! `relative_offset = batch.base_offset - segment.base_offset` and `position` is the batch's
//! byte position in the `.log` file. Time index entry (12 bytes): `i64 max_timestamp_so_far,
//! u32 relative_offset`. An entry is added when at least `index.interval.bytes` of log were
//! written since the previous one, so a lookup scans at most that many bytes.
//!
//! Invariants: both indexes are strictly increasing in their keys, and every position is below
//! the segment's size. Indexes are derived data: opening a segment rebuilds them from the batch
//! headers and rewrites the files, so the files are a cache for tools and never trusted.

use bytes::{BufMut, Bytes, BytesMut};

pub const OFFSET_INDEX_ENTRY_BYTES: u32 = 8;
pub const TIME_INDEX_ENTRY_BYTES: u32 = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetIndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeIndexEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
}

#[derive(Clone, Debug, Default)]
pub struct OffsetIndex {
    pub entries: Vec<OffsetIndexEntry>,
}

#[derive(Clone, Debug, Default)]
pub struct TimeIndex {
    pub entries: Vec<TimeIndexEntry>,
}

impl OffsetIndex {
    pub fn push(&mut self, entry: OffsetIndexEntry) -> Bytes {
        if let Some(last) = self.entries.last() {
            assert!(entry.relative_offset > last.relative_offset, "offset index not increasing");
            assert!(entry.position > last.position, "offset index positions not increasing");
        }
        self.entries.push(entry);
        let mut buf = BytesMut::with_capacity(OFFSET_INDEX_ENTRY_BYTES as usize);
        buf.put_u32_le(entry.relative_offset);
        buf.put_u32_le(entry.position);
        buf.freeze()
    }

    /// The position of the last indexed batch whose base offset is at or below `relative`.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        self.floor(relative_offset).position
    }

    /// The last entry at or below `relative_offset` (the segment start when there is none).
    pub fn floor(&self, relative_offset: u32) -> OffsetIndexEntry {
        let at = self.entries.partition_point(|e| e.relative_offset <= relative_offset);
        if at == 0 { OffsetIndexEntry { relative_offset: 0, position: 0 } } else { self.entries[at - 1] }
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.entries.len() * 8);
        for entry in &self.entries {
            buf.put_u32_le(entry.relative_offset);
            buf.put_u32_le(entry.position);
        }
        buf.freeze()
    }
}

impl TimeIndex {
    pub fn push(&mut self, entry: TimeIndexEntry) -> Bytes {
        if let Some(last) = self.entries.last() {
            assert!(entry.timestamp_ms > last.timestamp_ms, "time index not increasing");
            assert!(entry.relative_offset > last.relative_offset);
        }
        self.entries.push(entry);
        let mut buf = BytesMut::with_capacity(TIME_INDEX_ENTRY_BYTES as usize);
        buf.put_i64_le(entry.timestamp_ms);
        buf.put_u32_le(entry.relative_offset);
        buf.freeze()
    }

    /// The relative offset of the last entry whose timestamp is below `timestamp_ms`: batches
    /// before it cannot hold a record at or after `timestamp_ms`.
    pub fn lookup(&self, timestamp_ms: i64) -> u32 {
        let at = self.entries.partition_point(|e| e.timestamp_ms < timestamp_ms);
        if at == 0 { 0 } else { self.entries[at - 1].relative_offset }
    }

    pub fn last_timestamp_ms(&self) -> Option<i64> {
        self.entries.last().map(|e| e.timestamp_ms)
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.entries.len() * 12);
        for entry in &self.entries {
            buf.put_i64_le(entry.timestamp_ms);
            buf.put_u32_le(entry.relative_offset);
        }
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let mut index = OffsetIndex::default();
        index.push(OffsetIndexEntry { relative_offset: 0, position: 0 });
        index.push(OffsetIndexEntry { relative_offset: 10, position: 4096 });
        index.push(OffsetIndexEntry { relative_offset: 20, position: 8200 });
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(9), 0);
        assert_eq!(index.lookup(10), 4096);
        assert_eq!(index.lookup(25), 8200);
        assert_eq!(index.encode().len(), 24);
    }

    #[test]
    fn time_lookup_skips_older_batches() {
        let mut index = TimeIndex::default();
        index.push(TimeIndexEntry { timestamp_ms: 100, relative_offset: 1 });
        index.push(TimeIndexEntry { timestamp_ms: 200, relative_offset: 5 });
        assert_eq!(index.lookup(50), 0);
        assert_eq!(index.lookup(150), 1);
        assert_eq!(index.lookup(201), 5);
        assert_eq!(index.encode().len(), 24);
    }
}
