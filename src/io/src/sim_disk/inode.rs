//! One simulated file's contents: what reads see (`current`) versus what survives power loss
//! (`durable`), and the writes in between (`pending`).
//!
//! Why: the whole point of `SimDisk` is that a write is visible at once but durable only after a
//! successful `sync_data` (disk.rs contract). Keeping both images lets a crash rebuild the file
//! from `durable` plus a random subset of `pending`, torn at sector boundaries.
//!
//! Invariants:
//! - Unless `diverged`, `current == durable` with every `pending` op applied in order. A
//!   successful sync checks this on the bytes it touched (paired with the write that made them).
//! - `diverged` is set only by a failed sync (fsyncgate: the pending ops were dropped from the
//!   durable model while reads still see them) and cleared only by a crash.
//! - Both images stay at most `SIM_FILE_BYTES_MAX` bytes; `pending` holds at most
//!   `PENDING_OPS_MAX` ops (the oldest is written back, i.e. made durable, beyond that, as the
//!   kernel's writeback would).

use super::SIM_FILE_BYTES_MAX;
use bytes::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, VecDeque};

/// Unsynced ops kept per file before the oldest is written back on its own.
pub(super) const PENDING_OPS_MAX: u32 = 4096;

/// Probability that a torn write's sectors each land (the rest keep their old contents).
const TORN_SECTOR_LANDS: f64 = 0.5;

/// Probability that a torn, file-extending write still extends the file (zeros fill the sectors
/// that did not land), as when the size update reaches the journal before the data.
const TORN_SIZE_LANDS: f64 = 0.5;

/// A change to the file not yet known to be durable.
#[derive(Clone, Debug)]
pub(super) enum PendingOp {
    Write { offset: u64, data: Bytes },
    SetLen { len: u64 },
}

/// What a crash did to one file's pending ops.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct CrashOutcome {
    pub ops_kept: u64,
    pub ops_dropped: u64,
    pub writes_torn: u64,
}

/// The crash knobs an inode needs (copied from `SimDiskConfig`).
#[derive(Clone, Copy, Debug)]
pub(super) struct CrashParams {
    pub sector_bytes: u32,
    pub keep_pending: f64,
    pub torn_write: f64,
}

#[derive(Debug, Default)]
pub(super) struct Inode {
    /// What survives a crash.
    durable: Vec<u8>,
    /// What reads see.
    current: Vec<u8>,
    /// Ops since the last sync, in issue order.
    pending: VecDeque<PendingOp>,
    /// A failed sync discarded pending ops: `current` may differ from the durable model.
    diverged: bool,
    /// Sector indexes whose reads fail with EIO until a write touches them (latent sector
    /// errors). They are on the medium, so they survive a crash.
    bad_sectors: BTreeSet<u64>,
}

impl Inode {
    pub fn current_len(&self) -> u64 {
        self.current.len() as u64
    }

    pub fn durable_len(&self) -> u64 {
        self.durable.len() as u64
    }

    /// The bytes in `[offset, offset + len)` as reads see them, clipped at end of file, or the
    /// first bad sector the range covers.
    pub fn read(&self, offset: u64, len: u32, sector_bytes: u32) -> Result<Vec<u8>, u64> {
        let file_len = self.current_len();
        if offset >= file_len || len == 0 {
            return Ok(Vec::new());
        }
        let end = file_len.min(offset + u64::from(len));
        let sector_first = offset / u64::from(sector_bytes);
        let sector_last = (end - 1) / u64::from(sector_bytes);
        if let Some(&sector) = self.bad_sectors.range(sector_first..=sector_last).next() {
            return Err(sector);
        }
        let bytes = self.current[to_index(offset)..to_index(end)].to_vec();
        assert!(bytes.len() as u64 <= u64::from(len));
        Ok(bytes)
    }

    /// Applies a write to what reads see and records it as pending. Any bad sector the write
    /// touches is rewritten, so it reads fine again.
    pub fn write(&mut self, offset: u64, data: Bytes, sector_bytes: u32) {
        let end = offset.checked_add(data.len() as u64).expect("write end overflows u64");
        assert!(end <= SIM_FILE_BYTES_MAX, "sim file would exceed SIM_FILE_BYTES_MAX: {end}");
        if data.is_empty() {
            return;
        }
        let sector_first = offset / u64::from(sector_bytes);
        let sector_last = (end - 1) / u64::from(sector_bytes);
        let healed: Vec<u64> = self.bad_sectors.range(sector_first..=sector_last).copied().collect();
        for sector in healed {
            self.bad_sectors.remove(&sector);
        }
        apply_write(&mut self.current, offset, &data);
        self.push_pending(PendingOp::Write { offset, data });
    }

    pub fn set_len(&mut self, len: u64, sector_bytes: u32) {
        assert!(len <= SIM_FILE_BYTES_MAX, "sim file would exceed SIM_FILE_BYTES_MAX: {len}");
        self.current.resize(to_index(len), 0);
        let sectors = len.div_ceil(u64::from(sector_bytes));
        self.bad_sectors.retain(|&sector| sector < sectors);
        self.push_pending(PendingOp::SetLen { len });
    }

    /// Marks a sector bad (a latent sector error appearing under a write).
    pub fn mark_bad_sector(&mut self, sector: u64) {
        self.bad_sectors.insert(sector);
    }

    /// A successful fdatasync: every pending op becomes durable, in order.
    pub fn sync(&mut self) {
        let mut touched: Vec<(u64, u64)> = Vec::with_capacity(self.pending.len());
        while let Some(op) = self.pending.pop_front() {
            if let PendingOp::Write { offset, data } = &op {
                touched.push((*offset, *offset + data.len() as u64));
            }
            apply_op(&mut self.durable, &op);
        }
        assert!(self.pending.is_empty());
        if !self.diverged {
            // Paired with `write`: what a sync made durable is exactly what reads saw.
            assert_eq!(self.durable.len(), self.current.len(), "sync: durable length differs");
            let len = self.current_len();
            for (start, end) in touched {
                let (start, end) = (start.min(len), end.min(len));
                let range = to_index(start)..to_index(end);
                assert!(
                    self.durable[range.clone()] == self.current[range],
                    "sync: durable bytes differ from current in [{start}, {end})"
                );
            }
        }
    }

    /// A failed fdatasync (fsyncgate): the pending ops are dropped from the durable model, reads
    /// still see them until a crash. Returns how many ops were discarded.
    pub fn fail_sync(&mut self) -> u64 {
        let discarded = self.pending.len() as u64;
        self.pending.clear();
        if discarded > 0 {
            self.diverged = true;
        }
        discarded
    }

    /// Flips the lowest bit of the byte at `offset` in both images: real on-media corruption.
    /// Returns false when `offset` is not inside both images.
    pub fn corrupt(&mut self, offset: u64) -> bool {
        if offset >= self.durable_len() || offset >= self.current_len() {
            return false;
        }
        self.durable[to_index(offset)] ^= 0x01;
        self.current[to_index(offset)] ^= 0x01;
        true
    }

    /// Power loss: the file becomes its durable image plus a random subset of its pending ops,
    /// each kept write larger than a sector possibly torn.
    pub fn crash(&mut self, rng: &mut ChaCha8Rng, params: CrashParams) -> CrashOutcome {
        let mut outcome = CrashOutcome::default();
        let mut image = std::mem::take(&mut self.durable);
        for op in std::mem::take(&mut self.pending) {
            if !rng.gen_bool(params.keep_pending) {
                outcome.ops_dropped += 1;
                continue;
            }
            outcome.ops_kept += 1;
            match &op {
                PendingOp::Write { offset, data }
                    if data.len() as u64 > u64::from(params.sector_bytes) && rng.gen_bool(params.torn_write) =>
                {
                    outcome.writes_torn += 1;
                    apply_torn_write(&mut image, *offset, data, params.sector_bytes, rng);
                }
                _ => apply_op(&mut image, &op),
            }
        }
        assert!(image.len() as u64 <= SIM_FILE_BYTES_MAX);
        self.current = image.clone();
        self.durable = image;
        self.diverged = false;
        let sectors = self.durable_len().div_ceil(u64::from(params.sector_bytes));
        self.bad_sectors.retain(|&sector| sector < sectors);
        outcome
    }

    fn push_pending(&mut self, op: PendingOp) {
        self.pending.push_back(op);
        if self.pending.len() as u64 > u64::from(PENDING_OPS_MAX) {
            // Background writeback: the oldest op reaches the medium on its own.
            let oldest = self.pending.pop_front().expect("pending is not empty");
            apply_op(&mut self.durable, &oldest);
        }
        assert!(self.pending.len() as u64 <= u64::from(PENDING_OPS_MAX));
    }
}

fn to_index(position: u64) -> usize {
    assert!(position <= SIM_FILE_BYTES_MAX);
    usize::try_from(position).expect("SIM_FILE_BYTES_MAX fits in usize")
}

fn apply_op(image: &mut Vec<u8>, op: &PendingOp) {
    match op {
        PendingOp::Write { offset, data } => apply_write(image, *offset, data),
        PendingOp::SetLen { len } => image.resize(to_index(*len), 0),
    }
}

fn apply_write(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = to_index(offset);
    let end = to_index(offset + data.len() as u64);
    if image.len() < end {
        image.resize(end, 0);
    }
    image[start..end].copy_from_slice(data);
}

/// Lands a random subset of the write's sector-aligned pieces.
fn apply_torn_write(image: &mut Vec<u8>, offset: u64, data: &[u8], sector_bytes: u32, rng: &mut ChaCha8Rng) {
    let sector_bytes = u64::from(sector_bytes);
    let end = offset + data.len() as u64;
    let mut piece_start = offset;
    while piece_start < end {
        let piece_end = end.min((piece_start / sector_bytes + 1) * sector_bytes);
        assert!(piece_end > piece_start);
        if rng.gen_bool(TORN_SECTOR_LANDS) {
            let from = to_index(piece_start - offset);
            let to = to_index(piece_end - offset);
            apply_write(image, piece_start, &data[from..to]);
        }
        piece_start = piece_end;
    }
    if (image.len() as u64) < end && rng.gen_bool(TORN_SIZE_LANDS) {
        image.resize(to_index(end), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const SECTOR: u32 = 512;

    #[test]
    fn sync_makes_current_durable() {
        let mut inode = Inode::default();
        inode.write(10, Bytes::from_static(b"abc"), SECTOR);
        assert_eq!(inode.durable_len(), 0);
        assert_eq!(inode.current_len(), 13);
        inode.sync();
        assert_eq!(inode.durable_len(), 13);
        assert_eq!(inode.read(10, 3, SECTOR).unwrap(), b"abc");
    }

    #[test]
    fn writeback_bounds_pending() {
        let mut inode = Inode::default();
        for i in 0..u64::from(PENDING_OPS_MAX) + 10 {
            inode.write(i, Bytes::from_static(b"x"), SECTOR);
        }
        assert_eq!(inode.pending.len() as u64, u64::from(PENDING_OPS_MAX));
        assert_eq!(inode.durable_len(), 10);
    }

    #[test]
    fn torn_write_lands_whole_sectors_only() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..64 {
            let mut image = vec![0xEEu8; 2048];
            apply_torn_write(&mut image, 256, &[0x11u8; 1024], SECTOR, &mut rng);
            // Pieces: [256, 512), [512, 1024), [1024, 1280): each all-new or all-old.
            for (start, end) in [(256usize, 512usize), (512, 1024), (1024, 1280)] {
                let piece = &image[start..end];
                assert!(piece.iter().all(|&b| b == 0x11) || piece.iter().all(|&b| b == 0xEE));
            }
            assert!(image[..256].iter().all(|&b| b == 0xEE));
        }
    }
}
