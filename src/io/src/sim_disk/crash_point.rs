//! `CrashableDisk`: a `SimDisk` as one process sees it, so a test can cut the power in the
//! middle of an operation, before its Nth disk call.
//!
//! Why: `SimDisk::crash` models power loss *between* operations. Recovery code must also survive
//! a crash inside any step of a multi-step operation (a segment roll, retention, recovery
//! itself). Arm it with `arm(n)`: the (n+1)-th disk call from then on crashes the `SimDisk`
//! and fails, and every later call of this incarnation fails too (the process is dead). A new
//! incarnation is `CrashableDisk::boot` on the same `SimDisk`.

use super::{SimDisk, SimFile};
use crate::disk::{Disk, File, OpenOptions};
use bytes::Bytes;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GateState {
    /// Alive; `Some(n)`: the power fails before the (n+1)-th disk operation from now.
    Running { ops_before_crash: Option<u64> },
    /// The power failed: this process is dead and every later operation of it fails.
    Crashed,
}

/// Shared by one process incarnation's disk and files.
struct Gate {
    sim: SimDisk,
    state: Mutex<GateState>,
}

impl Gate {
    fn pass(&self) -> io::Result<()> {
        let mut state = self.state.lock().expect("gate lock");
        match *state {
            GateState::Crashed => Err(io::Error::other("crash point: the process is dead")),
            GateState::Running { ops_before_crash: Some(0) } => {
                self.sim.crash();
                *state = GateState::Crashed;
                Err(io::Error::other("crash point: power failed"))
            }
            GateState::Running { ops_before_crash: Some(ref mut ops) } => {
                *ops -= 1;
                Ok(())
            }
            GateState::Running { ops_before_crash: None } => Ok(()),
        }
    }
}

/// A `SimDisk` as one process sees it: transparent until armed, then dead after the crash.
#[derive(Clone)]
pub struct CrashableDisk {
    gate: Arc<Gate>,
}

impl CrashableDisk {
    /// A new process on `sim`.
    pub fn boot(sim: &SimDisk) -> CrashableDisk {
        let state = Mutex::new(GateState::Running { ops_before_crash: None });
        CrashableDisk { gate: Arc::new(Gate { sim: sim.clone(), state }) }
    }

    /// The power fails before the (`ops`+1)-th disk operation from now.
    pub fn arm(&self, ops: u64) {
        *self.gate.state.lock().expect("gate lock") = GateState::Running { ops_before_crash: Some(ops) };
    }

    pub fn disarm(&self) {
        let mut state = self.gate.state.lock().expect("gate lock");
        if *state != GateState::Crashed {
            *state = GateState::Running { ops_before_crash: None };
        }
    }

    pub fn crashed(&self) -> bool {
        *self.gate.state.lock().expect("gate lock") == GateState::Crashed
    }

    pub fn sim(&self) -> &SimDisk {
        &self.gate.sim
    }
}

pub struct CrashableFile {
    inner: SimFile,
    gate: Arc<Gate>,
}

impl File for CrashableFile {
    async fn read_at(&self, offset: u64, len: u32) -> io::Result<Bytes> {
        self.gate.pass()?;
        self.inner.read_at(offset, len).await
    }

    async fn write_at(&self, offset: u64, data: Bytes) -> io::Result<()> {
        self.gate.pass()?;
        self.inner.write_at(offset, data).await
    }

    async fn len(&self) -> io::Result<u64> {
        self.gate.pass()?;
        self.inner.len().await
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.gate.pass()?;
        self.inner.set_len(len).await
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.gate.pass()?;
        self.inner.sync_data().await
    }
}

impl Disk for CrashableDisk {
    type File = CrashableFile;

    async fn open(&self, path: &Path, options: OpenOptions) -> io::Result<CrashableFile> {
        self.gate.pass()?;
        let inner = self.sim().open(path, options).await?;
        Ok(CrashableFile { inner, gate: self.gate.clone() })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.gate.pass()?;
        self.sim().create_dir_all(path).await
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        self.gate.pass()?;
        self.sim().list_dir(path).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.gate.pass()?;
        self.sim().rename(from, to).await
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.gate.pass()?;
        self.sim().remove_file(path).await
    }

    async fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.gate.pass()?;
        self.sim().remove_dir(path).await
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.gate.pass()?;
        self.sim().sync_dir(path).await
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        self.gate.pass()?;
        self.sim().exists(path).await
    }
}
