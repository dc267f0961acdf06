//! The partition checkpoint: log start offset and recovery point, updated atomically.
//!
//! Layout (little-endian, 32 bytes; see docs/format.md):
//!
//! ```text
//!  0  u32  magic "SLCP" (0x50434c53)
//!  4  u16  version (1)
//!  6  u16  reserved (0)
//!  8  i64  log_start_offset
//! 16  i64  recovery_point      (every batch below it is durable and was verified)
//! 24  u32  reserved (0)
//! 28  u32  crc32 (IEEE) of bytes 0..28
//! ```
//!
//! Atomic update through `sluice_io::write_file_atomic`: a crash leaves the old or the new file.

use crate::error::StorageError;
use bytes::Bytes;
use sluice_io::{Disk, read_file, write_file_atomic};
use sluice_types::Offset;
use std::path::Path;

pub const CHECKPOINT_FILE: &str = "partition.checkpoint";
const CHECKPOINT_MAGIC: u32 = 0x5043_4c53;
const CHECKPOINT_VERSION: u16 = 1;
const CHECKPOINT_BYTES: u32 = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub log_start_offset: Offset,
    pub recovery_point: Offset,
}

impl Checkpoint {
    fn encode(&self) -> [u8; CHECKPOINT_BYTES as usize] {
        assert!(self.log_start_offset.0 >= 0);
        assert!(self.recovery_point.0 >= 0);
        let mut buf = [0u8; CHECKPOINT_BYTES as usize];
        buf[0..4].copy_from_slice(&CHECKPOINT_MAGIC.to_le_bytes());
        buf[4..6].copy_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        buf[8..16].copy_from_slice(&self.log_start_offset.0.to_le_bytes());
        buf[16..24].copy_from_slice(&self.recovery_point.0.to_le_bytes());
        let crc = crc32fast::hash(&buf[0..28]);
        buf[28..32].copy_from_slice(&crc.to_le_bytes());
        buf
    }

    fn decode(buf: &[u8]) -> Result<Checkpoint, StorageError> {
        let corrupt = |why: &str| StorageError::CorruptCheckpoint(why.to_string());
        if buf.len() != CHECKPOINT_BYTES as usize {
            return Err(corrupt("wrong size"));
        }
        let crc = u32::from_le_bytes(buf[28..32].try_into().expect("4 bytes"));
        if crc != crc32fast::hash(&buf[0..28]) {
            return Err(corrupt("crc mismatch"));
        }
        let magic = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
        let version = u16::from_le_bytes(buf[4..6].try_into().expect("2 bytes"));
        if magic != CHECKPOINT_MAGIC || version != CHECKPOINT_VERSION {
            return Err(corrupt("bad magic or version"));
        }
        let checkpoint = Checkpoint {
            log_start_offset: Offset(i64::from_le_bytes(buf[8..16].try_into().expect("8"))),
            recovery_point: Offset(i64::from_le_bytes(buf[16..24].try_into().expect("8"))),
        };
        if checkpoint.log_start_offset.0 < 0 || checkpoint.recovery_point.0 < 0 {
            return Err(corrupt("negative offset"));
        }
        Ok(checkpoint)
    }

    /// Reads the checkpoint, or `None` when the partition has never written one.
    pub async fn read<D: Disk>(disk: &D, dir: &Path) -> Result<Option<Checkpoint>, StorageError> {
        match read_file(disk, &dir.join(CHECKPOINT_FILE)).await? {
            Some(bytes) => Checkpoint::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces the checkpoint atomically and durably.
    pub async fn write<D: Disk>(&self, disk: &D, dir: &Path) -> Result<(), StorageError> {
        let contents = Bytes::copy_from_slice(&self.encode());
        write_file_atomic(disk, &dir.join(CHECKPOINT_FILE), contents).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_corruption() {
        let checkpoint = Checkpoint { log_start_offset: Offset(5), recovery_point: Offset(90) };
        let bytes = checkpoint.encode();
        assert_eq!(Checkpoint::decode(&bytes).unwrap(), checkpoint);
        for byte in 0..bytes.len() {
            let mut corrupted = bytes;
            corrupted[byte] ^= 1;
            assert!(Checkpoint::decode(&corrupted).is_err(), "flip at {byte} undetected");
        }
    }
}
