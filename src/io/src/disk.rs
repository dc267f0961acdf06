//! The `Disk` and `File` traits: the storage seam.
//!
//! Contract (what every implementation must honour and what `SimDisk` enforces):
//! - A `write_at` is visible to later reads at once but is durable only after `sync_data` on
//!   that file returns `Ok`.
//! - A failed `sync_data` means previously written data may be lost (fsyncgate): callers must
//!   treat it as fatal and never retry it into a success.
//! - Namespace operations (`open` with `create`, `create_dir_all`, `rename`, `remove_file`,
//!   `remove_dir`) are
//!   durable only after `sync_dir` on the parent directory returns `Ok`.
//! - `list_dir` returns names sorted bytewise, never in OS readdir order (determinism).
//!
//! The traits use `impl Future + Send` (RPITIT) and are used as generics, never as `dyn`.

use bytes::Bytes;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

/// How to open a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Create the file if it does not exist.
    pub create: bool,
    /// Open for writing as well as reading.
    pub write: bool,
}

impl OpenOptions {
    pub const READ: OpenOptions = OpenOptions { create: false, write: false };
    pub const WRITE: OpenOptions = OpenOptions { create: false, write: true };
    pub const CREATE: OpenOptions = OpenOptions { create: true, write: true };
}

/// An open file with positional I/O. Shared between tasks behind an `Arc`.
#[allow(clippy::len_without_is_empty)] // A file is not a collection; `len` is its size.
pub trait File: Send + Sync + 'static {
    /// Reads up to `len` bytes at `offset`; returns fewer only at end of file.
    fn read_at(&self, offset: u64, len: u32) -> impl Future<Output = io::Result<Bytes>> + Send;
    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_at(&self, offset: u64, data: Bytes) -> impl Future<Output = io::Result<()>> + Send;
    /// The file's current length as reads see it.
    fn len(&self) -> impl Future<Output = io::Result<u64>> + Send;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> impl Future<Output = io::Result<()>> + Send;
    /// fdatasync. On `Err`, data written since the last successful sync may be lost: fatal.
    fn sync_data(&self) -> impl Future<Output = io::Result<()>> + Send;
}

/// A file system namespace.
pub trait Disk: Clone + Send + Sync + 'static {
    type File: File;

    fn open(&self, path: &Path, options: OpenOptions) -> impl Future<Output = io::Result<Self::File>> + Send;
    fn create_dir_all(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;
    /// Full paths of the directory's entries, sorted.
    fn list_dir(&self, path: &Path) -> impl Future<Output = io::Result<Vec<PathBuf>>> + Send;
    fn rename(&self, from: &Path, to: &Path) -> impl Future<Output = io::Result<()>> + Send;
    fn remove_file(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;
    /// Makes the directory's namespace operations durable.
    fn sync_dir(&self, path: &Path) -> impl Future<Output = io::Result<()>> + Send;
    /// Whether a file or directory exists at `path` (as reads see the namespace).
    fn exists(&self, path: &Path) -> impl Future<Output = io::Result<bool>> + Send;
}
