//! `SimDisk`: the fault-injecting, in-memory `Disk` the deterministic simulator runs on.
//!
//! Why: the disk.rs contract (writes durable only after `sync_data`, names durable only after
//! `sync_dir`, a failed fsync loses data) is exactly what storage code gets wrong, and a real
//! file system almost never shows it. `SimDisk` makes every allowed outcome happen, driven by a
//! seeded RNG so a failing seed replays bit for bit (DESIGN.md, "The seams and determinism";
//! reference/dst.md §4.4).
//!
//! Model:
//! - Per file: `durable` bytes (survive a crash) and `current` bytes (what reads see), plus the
//!   ops since the last successful `sync_data`. Per directory: the visible names, the durable
//!   names, and the pending namespace ops that `sync_dir` on that directory makes durable.
//! - [`SimDisk::crash`] is power loss: each file restarts from `durable`, keeps each pending op
//!   with probability `crash_keep_pending`, and a kept write longer than a sector is torn with
//!   probability `crash_torn_write` (a random subset of its sectors lands). Each directory keeps a
//!   random *prefix* of its pending ops; names whose ancestors did not survive vanish. Handles
//!   opened before the crash fail every call with "stale handle after crash".
//! - Faults, each with a probability in [`SimDiskConfig`] (all 0.0 by default) and all switched
//!   off together by [`SimDisk::set_faults_enabled`]: EIO on read, write and fsync (a failed
//!   `sync_data` discards the pending ops from the durable model while reads still see them:
//!   fsyncgate; a failed `sync_dir` leaves its ops pending), ENOSPC past `capacity_bytes`, a bit
//!   flip in a read's returned copy (stored data stays pristine), latent sector errors (a write
//!   marks one of its sectors bad; reads covering it fail until a write touches it) and
//!   misdirected writes (the write lands one sector earlier than asked).
//! - Slow fsync (a buggify knob, not a fault: it is on whether or not faults are): with
//!   `fsync_delay_ms_max` above 0, `sync_data` first waits a random 1..=max ms on the runtime's
//!   clock (madsim's virtual one in simulation), and only then makes the file durable. Writes
//!   stay pending, and a crash may lose them, for that long.
//! - Directory renames are not modelled (`ErrorKind::Unsupported`); file renames are, across
//!   directories too.
//!
//! Invariants: all state is behind one mutex and every operation runs to completion
//! synchronously inside it (no threads, no real time, and no `.await` but the fsync delay,
//! which holds no lock), so under madsim the order of RNG draws is the order of calls. All maps are `BTreeMap`s. A file never exceeds
//! [`SIM_FILE_BYTES_MAX`]; pending ops per file and per directory are bounded (the oldest is
//! written back beyond the bound, as the kernel would).

mod crash_point;
mod inode;
mod namespace;
mod state;

pub use crash_point::{CrashableDisk, CrashableFile};

use crate::disk::{Disk, File, OpenOptions};
use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use state::{State, normalize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The largest file a `SimDisk` holds (it is all in memory).
pub const SIM_FILE_BYTES_MAX: u64 = 1 << 30;

/// The default sector size: the unit of torn writes, latent errors and misdirection.
pub const SECTOR_BYTES_DEFAULT: u32 = 512;

/// The largest sector size a config may ask for.
pub const SECTOR_BYTES_MAX: u32 = 1 << 16;

/// Default probability that a crash keeps a given pending write.
pub const CRASH_KEEP_PENDING_DEFAULT: f64 = 0.5;

/// Default probability that a kept multi-sector write is torn by a crash.
pub const CRASH_TORN_WRITE_DEFAULT: f64 = 0.5;

/// How a `SimDisk` behaves. Probabilities are in `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimDiskConfig {
    /// Sector size in bytes: a power of two, at most `SECTOR_BYTES_MAX`.
    pub sector_bytes: u32,
    /// Probability that a crash keeps each pending (unsynced) write.
    pub crash_keep_pending: f64,
    /// Probability that a kept write longer than one sector is torn by a crash.
    pub crash_torn_write: f64,
    /// Probability that a read fails with EIO.
    pub read_eio: f64,
    /// Probability that a write fails with EIO (and changes nothing).
    pub write_eio: f64,
    /// Probability that `sync_data` or `sync_dir` fails with EIO.
    pub fsync_eio: f64,
    /// Probability that a read returns one flipped bit.
    pub read_bit_flip: f64,
    /// Probability that a write leaves one of its sectors unreadable.
    pub latent_sector_error: f64,
    /// Probability that a write lands one sector earlier than asked.
    pub misdirected_write: f64,
    /// Writes that would grow the files' total bytes past this fail with ENOSPC.
    pub capacity_bytes: Option<u64>,
    /// `sync_data` waits up to this many milliseconds before it makes the file durable (slow
    /// fsync; 0: no wait). Independent of `set_faults_enabled`.
    pub fsync_delay_ms_max: u64,
}

impl Default for SimDiskConfig {
    fn default() -> Self {
        SimDiskConfig {
            sector_bytes: SECTOR_BYTES_DEFAULT,
            crash_keep_pending: CRASH_KEEP_PENDING_DEFAULT,
            crash_torn_write: CRASH_TORN_WRITE_DEFAULT,
            read_eio: 0.0,
            write_eio: 0.0,
            fsync_eio: 0.0,
            read_bit_flip: 0.0,
            latent_sector_error: 0.0,
            misdirected_write: 0.0,
            capacity_bytes: None,
            fsync_delay_ms_max: 0,
        }
    }
}

impl SimDiskConfig {
    fn assert_valid(&self) {
        assert!(self.sector_bytes.is_power_of_two(), "sector_bytes must be a power of two");
        assert!(self.sector_bytes <= SECTOR_BYTES_MAX, "sector_bytes above SECTOR_BYTES_MAX");
        let probabilities = [
            ("crash_keep_pending", self.crash_keep_pending),
            ("crash_torn_write", self.crash_torn_write),
            ("read_eio", self.read_eio),
            ("write_eio", self.write_eio),
            ("fsync_eio", self.fsync_eio),
            ("read_bit_flip", self.read_bit_flip),
            ("latent_sector_error", self.latent_sector_error),
            ("misdirected_write", self.misdirected_write),
        ];
        for (name, probability) in probabilities {
            assert!((0.0..=1.0).contains(&probability), "{name} = {probability} not in [0, 1]");
        }
    }
}

/// How many of each fault (and crash effect) a `SimDisk` has produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub read_eio: u64,
    pub write_eio: u64,
    pub fsync_eio: u64,
    /// Pending file ops dropped from the durable model by failed fsyncs.
    pub fsync_discarded_ops: u64,
    pub sync_dir_eio: u64,
    pub enospc: u64,
    pub read_bit_flips: u64,
    /// Sectors marked bad by writes.
    pub latent_sector_errors: u64,
    /// Reads failed because they covered a bad sector.
    pub latent_sector_read_eio: u64,
    pub misdirected_writes: u64,
    pub crashes: u64,
    pub crash_writes_kept: u64,
    pub crash_writes_dropped: u64,
    pub torn_writes: u64,
    pub crash_namespace_ops_kept: u64,
    pub crash_namespace_ops_dropped: u64,
}

/// An in-memory, fault-injecting disk. Clones share one disk.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("SimDisk")
            .field("generation", &state.generation)
            .field("files", &(state.inodes.len() as u64))
            .field("counts", &state.counts)
            .finish()
    }
}

impl SimDisk {
    /// An empty disk whose every random choice comes from `seed`. Faults are enabled (but all
    /// their probabilities default to 0).
    pub fn new(seed: u64, config: SimDiskConfig) -> SimDisk {
        config.assert_valid();
        let state = State {
            config,
            faults_enabled: true,
            rng: ChaCha8Rng::seed_from_u64(seed),
            generation: 0,
            namespace: Default::default(),
            inodes: BTreeMap::new(),
            inode_next: 1,
            open_handles: BTreeMap::new(),
            counts: FaultCounts::default(),
        };
        SimDisk { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock is already a failed run; keep going so the
        // panic that matters is the one reported.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Power loss (see the module doc). Every handle opened before now becomes stale.
    pub fn crash(&self) {
        let mut state = self.lock();
        let generation = state.generation;
        state.crash();
        assert_eq!(state.generation, generation + 1);
    }

    /// Crashes so far: handles remember the generation they were opened in.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Turns every fault (including ENOSPC) on or off; crashes are unaffected.
    pub fn set_faults_enabled(&self, enabled: bool) {
        self.lock().faults_enabled = enabled;
    }

    pub fn faults_enabled(&self) -> bool {
        self.lock().faults_enabled
    }

    pub fn config(&self) -> SimDiskConfig {
        self.lock().config
    }

    /// Replaces the config; takes effect from the next operation.
    pub fn set_config(&self, config: SimDiskConfig) {
        config.assert_valid();
        self.lock().config = config;
    }

    pub fn fault_counts(&self) -> FaultCounts {
        self.lock().counts
    }

    /// Test hook: flips the lowest bit of the byte at `offset` of the file at `path` in both its
    /// durable and its current image, as real on-media corruption would. `InvalidInput` if
    /// `offset` is past either image's end.
    pub fn corrupt_durable(&self, path: &Path, offset: u64) -> io::Result<()> {
        let mut state = self.lock();
        let path = normalize(path)?;
        let Some(namespace::Entry::File(inode)) = state.namespace.get(&path) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("sim disk: no file {}", path.display())));
        };
        if !state.inode_mut(inode).corrupt(offset) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("sim disk: offset {offset} is past the durable end of {}", path.display()),
            ));
        }
        Ok(())
    }

    /// Test hook: the durable length of the file at `path` if its name is durable (and its
    /// ancestors are), else `None`.
    pub fn durable_len(&self, path: &Path) -> Option<u64> {
        let state = self.lock();
        let inode = state.durable_inode(path)?;
        Some(state.inode(inode).durable_len())
    }

    /// Test hook: the durable names directly inside `dir` whose ancestors are durable, sorted.
    pub fn list_durable(&self, dir: &Path) -> Vec<PathBuf> {
        let state = self.lock();
        match normalize(dir) {
            Ok(dir) => state.namespace.durable_children(&dir),
            Err(_) => Vec::new(),
        }
    }

    /// Total bytes of all files as reads see them.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }
}

impl Disk for SimDisk {
    type File = SimFile;

    async fn open(&self, path: &Path, options: OpenOptions) -> io::Result<SimFile> {
        let mut state = self.lock();
        let inode = state.open(path, options.create)?;
        Ok(SimFile {
            state: self.state.clone(),
            inode,
            generation: state.generation,
            writable: options.write || options.create,
        })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.lock().create_dir_all(path)
    }

    async fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        self.lock().list_dir(path)
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.lock().rename(from, to)
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.lock().remove_file(path)
    }

    async fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.lock().remove_dir(path)
    }

    async fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.lock().sync_dir(path)
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        self.lock().exists(path)
    }
}

/// An open file on a `SimDisk`. Valid until the disk crashes.
pub struct SimFile {
    state: Arc<Mutex<State>>,
    /// The file's inode; exists while this handle is of the current generation.
    inode: namespace::InodeId,
    /// The disk generation this handle was opened in.
    generation: u64,
    /// Opened with `write` or `create`.
    writable: bool,
}

impl std::fmt::Debug for SimFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimFile")
            .field("inode", &self.inode)
            .field("generation", &self.generation)
            .field("writable", &self.writable)
            .finish()
    }
}

impl SimFile {
    /// Locks the disk, failing if the disk crashed since this handle was opened.
    fn live(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.generation != self.generation {
            return Err(io::Error::other("stale handle after crash"));
        }
        Ok(state)
    }

    fn live_writable(&self) -> io::Result<MutexGuard<'_, State>> {
        if !self.writable {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "sim disk: file opened read-only"));
        }
        self.live()
    }
}

impl File for SimFile {
    async fn read_at(&self, offset: u64, len: u32) -> io::Result<Bytes> {
        let bytes = self.live()?.read_at(self.inode, offset, len)?;
        assert!(bytes.len() as u64 <= u64::from(len));
        Ok(bytes)
    }

    async fn write_at(&self, offset: u64, data: Bytes) -> io::Result<()> {
        self.live_writable()?.write_at(self.inode, offset, data)
    }

    async fn len(&self) -> io::Result<u64> {
        let state = self.live()?;
        Ok(state.inode(self.inode).current_len())
    }

    async fn set_len(&self, len: u64) -> io::Result<()> {
        self.live_writable()?.set_len(self.inode, len)
    }

    async fn sync_data(&self) -> io::Result<()> {
        let delay_ms = self.live()?.fsync_delay_ms();
        if delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        }
        self.live()?.sync_data(self.inode)
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.close(self.inode, self.generation);
    }
}
