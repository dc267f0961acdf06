//! `StdDisk`: the production `Disk`, on std's positional file I/O.
//!
//! Reads and writes go straight to the page cache with `pread`/`pwrite` on the calling task:
//! they are short and rarely block. `sync_data` and `sync_dir` can take milliseconds, so they
//! run on tokio's blocking pool and never stall a runtime worker. This type is never used under
//! the simulator (it touches the real file system), where `SimDisk` takes its place.

use crate::disk::{Disk, File, OpenOptions};
use bytes::Bytes;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdDisk;

/// A real file. Cloning shares the descriptor.
#[derive(Clone, Debug)]
pub struct StdFile {
    file: Arc<std::fs::File>,
}

// madsim-tokio deprecates `spawn_blocking`: `StdDisk` never runs under simulation (SimDisk does).
#[cfg_attr(madsim, allow(deprecated))]
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) => Err(io::Error::other(format!("blocking task failed: {error}"))),
    }
}

impl File for StdFile {
    async fn read_at(&self, offset: u64, len: u32) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len as usize];
        let mut filled = 0usize;
        while filled < buf.len() {
            match self.file.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
        buf.truncate(filled);
        Ok(Bytes::from(buf))
    }

    async fn write_at(&self, offset: u64, data: Bytes) -> io::Result<()> {
        self.file.write_all_at(&data, offset)
    }

    async fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    async fn sync_data(&self) -> io::Result<()> {
        let file = self.file.clone();
        blocking(move || file.sync_data()).await
    }
}

impl Disk for StdDisk {
    type File = StdFile;

    async fn open(&self, path: &Path, options: OpenOptions) -> io::Result<StdFile> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(options.write || options.create)
            .create(options.create)
            .truncate(false)
            .open(path)?;
        Ok(StdFile { file: Arc::new(file) })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut entries =
            std::fs::read_dir(path)?.map(|entry| entry.map(|e| e.path())).collect::<io::Result<Vec<_>>>()?;
        entries.sort();
        Ok(entries)
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    async fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        blocking(move || std::fs::File::open(path)?.sync_all()).await
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_read_sync_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let disk = StdDisk;
        let path = dir.path().join("a");
        let file = disk.open(&path, OpenOptions::CREATE).await.unwrap();
        file.write_at(3, Bytes::from_static(b"xyz")).await.unwrap();
        file.sync_data().await.unwrap();
        assert_eq!(file.len().await.unwrap(), 6);
        assert_eq!(&file.read_at(0, 10).await.unwrap()[..], b"\0\0\0xyz");
        disk.sync_dir(dir.path()).await.unwrap();
        let names = disk.list_dir(dir.path()).await.unwrap();
        assert_eq!(names, vec![path.clone()]);
        assert!(disk.exists(&path).await.unwrap());
        disk.remove_file(&path).await.unwrap();
        assert!(!disk.exists(&path).await.unwrap());
    }
}
