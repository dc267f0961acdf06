//! The walk that rebuilds a segment's in-memory state at open: batch by batch from position 0,
//! checking structure (a parseable v2 header, dense offsets, the whole batch inside the file)
//! and, when asked, the CRC-32C of every batch.
//!
//! What a bad batch means depends on where it is (`WalkBounds::recovery_point`):
//! - at or above the recovery point it may be a write torn by a crash: the walk stops, and
//!   the caller truncates the file there (it was never acknowledged);
//! - below it, the data was durable, so it is corruption: the bad range becomes a [`Hole`]
//!   and the walk resynchronises at the next position that holds a structurally valid,
//!   CRC-verified batch with a higher offset. One flipped bit costs one batch, not the rest
//!   of the log. With no such batch, the hole runs to the end of the segment.
//!
//! The partition leader epoch lies outside the CRC (Kafka's format), so a flipped epoch is
//! caught by its order instead: epochs never decrease along a log. A batch whose epoch jumped
//! above both neighbours becomes a one-batch hole; a batch whose epoch dropped is a bad batch
//! like any other (torn tail or hole, by the recovery point).

use crate::segment::{BATCH_BYTES_MAX, Hole, SCAN_CHUNK_BYTES, ScanOutcome, Segment, WalkBounds};
use sluice_io::File;
use sluice_types::batch::BATCH_HEADER_BYTES;
use sluice_types::{BatchError, BatchHeader, Offset, Term};

/// Bytes examined per read while looking for the next good batch after a corrupt one.
const RESYNC_CHUNK_BYTES: u32 = 1024 * 1024;

/// The last two batches accepted, for the epoch order rule: (start position, base offset, end
/// position, next offset, epoch).
type Recent = (u32, Offset, u32, Offset, Term);

impl<F: File> Segment<F> {
    /// Walks `[0, file_bytes)`. On return `size_bytes == outcome.valid_bytes`.
    pub(crate) async fn rebuild(&mut self, file_bytes: u32, verify: bool, bounds: WalkBounds) -> ScanOutcome {
        self.walk_recovery_point = bounds.recovery_point;
        let outcome = self.walk(file_bytes, verify, bounds).await;
        let Some(position) = self.epoch_outlier_at.take() else { return outcome };
        // A batch at or above the recovery point carries an impossible epoch (the epoch field
        // is outside the CRC): like any bad batch there, it starts the torn tail. Walk again up
        // to it, so nothing learned from it (indexes, epochs) remains. The second walk ends
        // before the outlier, so it cannot find it again.
        assert!(position < file_bytes && position <= outcome.valid_bytes);
        self.reset();
        let again = self.walk(position, verify, bounds).await;
        assert!(self.epoch_outlier_at.is_none(), "the outlier lies beyond the second walk");
        ScanOutcome { valid_bytes: again.valid_bytes, stopped_by: outcome.stopped_by.or(again.stopped_by) }
    }

    /// One walk of `[0, file_bytes)`.
    async fn walk(&mut self, file_bytes: u32, verify: bool, bounds: WalkBounds) -> ScanOutcome {
        let mut stopped_by = None;
        let mut recent: Vec<Recent> = Vec::new();
        // Bounded: every round consumes at least one batch or one hole, or stops.
        while self.size_bytes < file_bytes {
            let previous_epoch = bounds.previous_epoch;
            let step = match self.scan_chunk(file_bytes, verify, &mut recent, previous_epoch).await {
                Ok(0) => self.scan_oversized(file_bytes, verify, &mut recent, previous_epoch).await,
                Ok(_) => Ok(()),
                Err(reason) => Err(reason),
            };
            let Err(reason) = step else { continue };
            if self.next_offset >= bounds.recovery_point {
                stopped_by = Some(reason);
                break;
            }
            tracing::error!(segment = %self.base_offset, position = self.size_bytes, offset = %self.next_offset, %reason,
                "stored batch below the recovery point failed verification");
            self.skip_damage(file_bytes, bounds).await;
            // Keep `recent`: epochs after the hole must still not go below those before it.
        }
        ScanOutcome { valid_bytes: self.size_bytes, stopped_by }
    }

    /// Walks the batches that lie wholly inside one chunk read at `size_bytes`. Returns the
    /// bytes consumed (0 when the first batch is larger than a chunk), or why it stopped
    /// (after recording every good batch before the bad one).
    async fn scan_chunk(
        &mut self,
        file_bytes: u32,
        verify: bool,
        recent: &mut Vec<Recent>,
        previous_epoch: Option<Term>,
    ) -> Result<u32, String> {
        let start = self.size_bytes;
        let chunk_bytes = (file_bytes - start).min(SCAN_CHUNK_BYTES);
        let chunk = self.log.read_at(u64::from(start), chunk_bytes).await.map_err(|e| format!("read error: {e}"))?;
        let mut cursor = 0usize;
        while cursor < chunk.len() {
            let header = match BatchHeader::parse(&chunk[cursor..]) {
                Ok(header) => header,
                // The batch continues past this chunk but fits in the file: next round.
                Err(BatchError::Truncated { needed, .. })
                    if u64::from(start) + cursor as u64 + needed <= u64::from(file_bytes)
                        && needed <= u64::from(BATCH_BYTES_MAX) =>
                {
                    break;
                }
                Err(error) => return Err(error.to_string()),
            };
            let end = cursor + header.size_bytes() as usize;
            self.check_batch(&header, verify.then(|| &chunk[cursor..end]))?;
            self.check_epoch(&header, recent, previous_epoch)?;
            self.accept(&header, start + cursor as u32, recent);
            cursor = end;
        }
        Ok(self.size_bytes - start)
    }

    /// Walks one batch larger than a scan chunk, reading exactly that batch.
    async fn scan_oversized(
        &mut self,
        file_bytes: u32,
        verify: bool,
        recent: &mut Vec<Recent>,
        previous_epoch: Option<Term>,
    ) -> Result<(), String> {
        let position = self.size_bytes;
        let head =
            self.log.read_at(u64::from(position), BATCH_HEADER_BYTES).await.map_err(|e| format!("read error: {e}"))?;
        let header = BatchHeader::parse_header_only(&head).map_err(|e| e.to_string())?;
        let end = u64::from(position) + u64::from(header.size_bytes());
        if end > u64::from(file_bytes) || header.size_bytes() > BATCH_BYTES_MAX {
            return Err(format!("batch of {} bytes runs past the end of the segment", header.size_bytes()));
        }
        if verify {
            let batch = self
                .log
                .read_at(u64::from(position), header.size_bytes())
                .await
                .map_err(|e| format!("read error: {e}"))?;
            self.check_batch(&header, Some(&batch))?;
        } else {
            self.check_batch(&header, None)?;
        }
        self.check_epoch(&header, recent, previous_epoch)?;
        self.accept(&header, position, recent);
        Ok(())
    }

    /// Dense offsets always; the CRC when the batch bytes are given.
    fn check_batch(&self, header: &BatchHeader, bytes: Option<&[u8]>) -> Result<(), String> {
        if header.base_offset != self.next_offset {
            return Err(format!("offset {} where {} was expected", header.base_offset, self.next_offset));
        }
        // Index entries hold offsets relative to the segment base as u32 (Kafka rolls a segment
        // before they would overflow, LogSegment.canConvertToRelativeOffset): a batch reaching
        // past that range cannot have been written here.
        let relative_last =
            header.base_offset.0.checked_add(i64::from(header.last_offset_delta)).map(|last| last - self.base_offset.0);
        if !relative_last.is_some_and(|relative| (0..=i64::from(u32::MAX)).contains(&relative)) {
            return Err(format!("batch at offset {} reaches past the segment's offset range", header.base_offset));
        }
        if let Some(bytes) = bytes {
            header.verify_crc(bytes).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Records a good batch.
    fn accept(&mut self, header: &BatchHeader, position: u32, recent: &mut Vec<Recent>) {
        self.record_batch(header, position);
        recent.push((position, header.base_offset, self.size_bytes, self.next_offset, header.partition_leader_epoch));
        if recent.len() > 2 {
            recent.remove(0);
        }
    }

    /// Epochs never decrease along a log (Raft §5.3: a leader only appends in its own term,
    /// which is newer than every earlier one). When this batch's epoch is below the previous
    /// batch's, either the previous batch is an outlier whose epoch jumped above both of its
    /// neighbours (then it becomes a one-batch hole and this batch is fine) or this batch is
    /// bad (an error, handled like any bad batch: torn tail or hole).
    fn check_epoch(
        &mut self,
        header: &BatchHeader,
        recent: &mut Vec<Recent>,
        previous_epoch: Option<Term>,
    ) -> Result<(), String> {
        let current = header.partition_leader_epoch;
        let last = recent.last().map(|r| r.4).or(previous_epoch);
        let Some(last) = last.filter(|last| current < *last) else { return Ok(()) };
        let before = match recent.len() {
            0 => None,
            1 => previous_epoch,
            n => Some(recent[n - 2].4),
        };
        match (before, recent.last().copied()) {
            (Some(before), Some((start, base, _, _, epoch)))
                if before <= current && base >= self.walk_recovery_point =>
            {
                self.epoch_outlier_at = Some(start);
                Err(format!("batch at offset {base} has impossible leader epoch {} above the recovery point", epoch.0))
            }
            (Some(before), Some((start, base, end, next, epoch))) if before <= current => {
                tracing::error!(segment = %self.base_offset, offset = %base, epoch = epoch.0, "stored batch has an impossible leader epoch");
                let hole = Hole { start_offset: base, end_offset: next, start_position: start, end_position: end };
                self.holes.insert(base, hole);
                recent.pop();
                Ok(())
            }
            _ => Err(format!("leader epoch {} after {}: epochs never decrease", current.0, last.0)),
        }
    }

    /// Turns the bad range at `size_bytes` into a hole, resynchronising at the next good batch.
    async fn skip_damage(&mut self, file_bytes: u32, bounds: WalkBounds) {
        let start_position = self.size_bytes;
        let start_offset = self.next_offset;
        let resync = self.find_next_batch(start_position + 1, file_bytes, start_offset, bounds.end_offset).await;
        let (end_position, end_offset) = match resync {
            Some((position, base_offset)) => (position, base_offset),
            None => (file_bytes, bounds.end_offset.unwrap_or(bounds.recovery_point).max(start_offset.next())),
        };
        assert!(end_position > start_position && end_offset > start_offset, "a hole must cover something");
        self.holes.insert(start_offset, Hole { start_offset, end_offset, start_position, end_position });
        self.size_bytes = end_position;
        self.next_offset = end_offset;
    }

    /// The first position at or after `from` holding a whole, CRC-valid batch whose base offset
    /// is above `after` (and below `end_offset`, the next segment's base, when known).
    async fn find_next_batch(
        &self,
        from: u32,
        file_bytes: u32,
        after: Offset,
        end_offset: Option<Offset>,
    ) -> Option<(u32, Offset)> {
        let mut chunk_start = from;
        // Bounded: each round advances by a chunk less one header.
        while chunk_start + BATCH_HEADER_BYTES <= file_bytes {
            let chunk_bytes = (file_bytes - chunk_start).min(RESYNC_CHUNK_BYTES);
            let chunk = self.log.read_at(u64::from(chunk_start), chunk_bytes).await.ok()?;
            for cursor in 0..chunk.len().saturating_sub(BATCH_HEADER_BYTES as usize - 1) {
                let Ok(header) = BatchHeader::parse_header_only(&chunk[cursor..]) else { continue };
                let position = chunk_start + cursor as u32;
                let in_file = u64::from(position) + u64::from(header.size_bytes()) <= u64::from(file_bytes);
                let plausible = header.base_offset > after && end_offset.is_none_or(|end| header.next_offset() <= end);
                if !in_file || !plausible || header.size_bytes() > BATCH_BYTES_MAX {
                    continue;
                }
                let batch = self.log.read_at(u64::from(position), header.size_bytes()).await.ok()?;
                if header.verify_crc(&batch).is_ok() {
                    return Some((position, header.base_offset));
                }
            }
            chunk_start += chunk_bytes.saturating_sub(BATCH_HEADER_BYTES).max(1);
        }
        None
    }
}
