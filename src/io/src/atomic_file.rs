//! Whole-file reads and crash-atomic whole-file replacement, on the `Disk` seam.
//!
//! `write_file_atomic` writes `NAME.tmp`, fsyncs it, renames it over `NAME` and fsyncs the
//! directory, so after a crash the file holds either the old or the new contents, never a mix
//! (POSIX rename atomicity plus the directory fsync that makes the rename durable).

use crate::disk::{Disk, File, OpenOptions};
use bytes::Bytes;
use std::io;
use std::path::Path;

/// The largest file these helpers handle (they hold it in memory).
pub const ATOMIC_FILE_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// Reads a whole file, or `None` if it does not exist.
pub async fn read_file<D: Disk>(disk: &D, path: &Path) -> io::Result<Option<Bytes>> {
    if !disk.exists(path).await? {
        return Ok(None);
    }
    let file = disk.open(path, OpenOptions::READ).await?;
    let len = file.len().await?;
    let len = u32::try_from(len)
        .ok()
        .filter(|len| *len <= ATOMIC_FILE_BYTES_MAX)
        .ok_or_else(|| io::Error::other(format!("{} is too large", path.display())))?;
    Ok(Some(file.read_at(0, len).await?))
}

/// Replaces `path` with `contents`, atomically and durably.
pub async fn write_file_atomic<D: Disk>(disk: &D, path: &Path, contents: Bytes) -> io::Result<()> {
    assert!(contents.len() as u64 <= u64::from(ATOMIC_FILE_BYTES_MAX));
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent directory"))?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let file = disk.open(&tmp, OpenOptions::CREATE).await?;
    file.set_len(0).await?;
    file.write_at(0, contents).await?;
    file.sync_data().await?;
    disk.rename(&tmp, path).await?;
    disk.sync_dir(dir).await
}
