//! The persisted Raft hard state of one Raft group: the current term and the vote cast in it.
//!
//! What: Raft's "persistent state on all servers" (Raft Figure 2) other than the log, kept
//! apart from the log in its own small checksummed file, `raft.hard_state`, in the group's
//! directory (for a partition: the partition directory, next to `partition.checkpoint`).
//! The storage crate knows nothing of the consensus core (DESIGN.md, Layout: `storage` does not
//! depend on `raft`), so it stores its own [`PersistedHardState`] and the broker converts it to
//! and from `sluice_raft::HardState`.
//!
//! Layout (little-endian, 24 bytes; see docs/format.md, "Raft hard state"):
//!
//! ```text
//!  0  u32  magic "SLHS" (0x53484c53)
//!  4  u16  version (1)
//!  6  u16  reserved (0)
//!  8  i32  term               (>= 0; the Kafka leader epoch)
//! 12  i32  voted_for          (node id >= 0, or -1: no vote in this term)
//! 16  u32  reserved (0)
//! 20  u32  crc32 (IEEE) of bytes 0..20
//! ```
//!
//! Why a typed error and never a default: a node that forgets its vote can vote a second time
//! in the same term, and two leaders can then be elected in one term (Raft §5.2, ElectionSafety);
//! a node that forgets its term can accept a deposed leader's entries. So a missing file means
//! "this replica never voted" and nothing else, and a file that fails its size, CRC, magic,
//! version, reserved or range checks is [`StorageError::CorruptHardState`]: the replica must not
//! start, and recovering it takes an operator (remove the replica from the voters, wipe it and
//! add it back as a new member; deleting the file alone would forget the vote just the same).
//!
//! Invariants:
//! - The file is replaced atomically and durably through `sluice_io::write_file_atomic` (write
//!   `raft.hard_state.tmp`, fsync, rename, fsync the directory): after a crash it holds the
//!   old or the new hard state, never a mix, and once a write has returned `Ok` the file exists.
//! - Checked when written (asserts: a broken caller) and again when read (typed error: the disk).
//! - A stale `raft.hard_state.tmp` left by a crash is ignored by `read` and overwritten by the
//!   next `write`.

use crate::error::StorageError;
use bytes::Bytes;
use sluice_io::{Disk, read_file, write_file_atomic};
use sluice_types::{NodeId, Term};
use std::path::Path;

/// The hard state's file name inside the Raft group's directory.
pub const HARD_STATE_FILE: &str = "raft.hard_state";
/// The file's exact size.
pub const HARD_STATE_BYTES: u32 = 24;
const HARD_STATE_MAGIC: u32 = 0x5348_4c53;
const HARD_STATE_VERSION: u16 = 1;
/// `voted_for` on disk when the node has not voted in `term`.
const VOTED_FOR_NONE: i32 = -1;
/// The bytes the CRC covers: everything before it.
const CRC_COVERED_BYTES: usize = 20;

/// The term and vote as stored (Raft Figure 2, "Persistent state on all servers").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PersistedHardState {
    /// The latest term this node has seen. Invariant: >= 0; never decreases across writes
    /// (the consensus core's invariant; Raft §5.1).
    pub term: Term,
    /// The candidate this node voted for in `term`, if any. Invariant: a node id >= 0; set at
    /// most once per term (Raft §5.2).
    pub voted_for: Option<NodeId>,
}

impl PersistedHardState {
    fn encode(&self) -> [u8; HARD_STATE_BYTES as usize] {
        assert!(self.term.0 >= 0, "negative term {}", self.term);
        let voted_for = match self.voted_for {
            Some(node) => {
                assert!(node.0 >= 0, "vote for negative node id {node}");
                node.0
            }
            None => VOTED_FOR_NONE,
        };
        let mut buf = [0u8; HARD_STATE_BYTES as usize];
        buf[0..4].copy_from_slice(&HARD_STATE_MAGIC.to_le_bytes());
        buf[4..6].copy_from_slice(&HARD_STATE_VERSION.to_le_bytes());
        buf[8..12].copy_from_slice(&self.term.0.to_le_bytes());
        buf[12..16].copy_from_slice(&voted_for.to_le_bytes());
        let crc = crc32fast::hash(&buf[0..CRC_COVERED_BYTES]);
        buf[20..24].copy_from_slice(&crc.to_le_bytes());
        // Paired check: what we write must read back as what we meant (DESIGN.md, Style 3).
        assert_eq!(PersistedHardState::decode(&buf).ok(), Some(*self), "hard state encoding does not round-trip");
        buf
    }

    fn decode(buf: &[u8]) -> Result<PersistedHardState, StorageError> {
        let corrupt = |why: String| StorageError::CorruptHardState(why);
        if buf.len() != HARD_STATE_BYTES as usize {
            return Err(corrupt(format!("{} bytes, expected {HARD_STATE_BYTES}", buf.len())));
        }
        let u32_at = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
        let i32_at = |at: usize| i32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
        let u16_at = |at: usize| u16::from_le_bytes(buf[at..at + 2].try_into().expect("2 bytes"));
        if u32_at(20) != crc32fast::hash(&buf[0..CRC_COVERED_BYTES]) {
            return Err(corrupt("crc mismatch".to_string()));
        }
        if u32_at(0) != HARD_STATE_MAGIC || u16_at(4) != HARD_STATE_VERSION {
            return Err(corrupt("bad magic or version".to_string()));
        }
        if u16_at(6) != 0 || u32_at(16) != 0 {
            return Err(corrupt("reserved bytes not zero".to_string()));
        }
        let term = i32_at(8);
        if term < 0 {
            return Err(corrupt(format!("negative term {term}")));
        }
        let voted_for = match i32_at(12) {
            VOTED_FOR_NONE => None,
            node if node >= 0 => Some(NodeId(node)),
            node => return Err(corrupt(format!("vote for invalid node id {node}"))),
        };
        Ok(PersistedHardState { term: Term(term), voted_for })
    }

    /// Reads the hard state in `dir`: `None` when this replica has never written one (term 0,
    /// no vote). Never a default for a file that exists: a damaged file is
    /// [`StorageError::CorruptHardState`], which the caller must treat as fatal for the replica
    /// (see the module doc).
    pub async fn read<D: Disk>(disk: &D, dir: &Path) -> Result<Option<PersistedHardState>, StorageError> {
        match read_file(disk, &dir.join(HARD_STATE_FILE)).await? {
            Some(bytes) => PersistedHardState::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces the hard state in `dir` (which must exist, durably) atomically and durably.
    ///
    /// Only after `Ok` may the caller send anything that depends on it (a vote; Raft §5.2;
    /// sluice-raft effect.rs rule 2). After `Err` the file holds the old or the new state, and
    /// which is unknown: a failed fsync loses the pending data (fsyncgate), so the caller must
    /// treat an error as fatal and restart from what `read` returns.
    pub async fn write<D: Disk>(&self, disk: &D, dir: &Path) -> Result<(), StorageError> {
        let contents = Bytes::copy_from_slice(&self.encode());
        write_file_atomic(disk, &dir.join(HARD_STATE_FILE), contents).await?;
        Ok(())
    }
}
