//! The state behind one `SimDisk`: namespace, inodes, RNG, fault knobs and counters, and every
//! operation on them, run synchronously under the disk's mutex.
//!
//! Why here: `SimDisk`/`SimFile` are thin handles; keeping all logic in plain `&mut self`
//! methods means no lock is ever held across an `.await` and every RNG draw happens in call
//! order, so a seed replays bit for bit.
//!
//! Invariants:
//! - A handle is valid only while its `generation` equals `State::generation`; a crash bumps it.
//! - An inode exists while a name (visible or durable), a pending namespace op, or an open
//!   handle of the current generation refers to it; `collect` drops it when none does.
//! - Fault rolls draw from the RNG only when faults are enabled and the probability is > 0, so a
//!   fault-free run's RNG stream depends only on crashes.

use super::inode::{CrashParams, Inode};
use super::namespace::{Entry, InodeId, Namespace, is_root, parent_of};
use super::{FaultCounts, SimDiskConfig};
use bytes::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

pub(super) struct State {
    pub config: SimDiskConfig,
    pub faults_enabled: bool,
    pub rng: ChaCha8Rng,
    /// Bumped by every crash; handles of older generations are stale.
    pub generation: u64,
    pub namespace: Namespace,
    pub inodes: BTreeMap<InodeId, Inode>,
    /// Next inode id to hand out; ids are never reused.
    pub inode_next: InodeId,
    /// Open handles of the current generation, per inode. Entries are > 0.
    pub open_handles: BTreeMap<InodeId, u32>,
    pub counts: FaultCounts,
}

pub(super) fn eio(what: &str) -> io::Error {
    io::Error::other(format!("sim disk: injected EIO on {what}"))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("sim disk: {} not found", path.display()))
}

/// Normalizes `path`: drops `.` and trailing separators, rejects `..`.
pub(super) fn normalize(path: &Path) -> io::Result<PathBuf> {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::Normal(_) => {
                normal.push(component.as_os_str());
            }
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("sim disk: `..` is not supported in {}", path.display()),
                ));
            }
        }
    }
    Ok(normal)
}

impl State {
    /// Draws a fault with probability `probability`, if faults are on.
    pub fn roll(&mut self, probability: f64) -> bool {
        self.faults_enabled && probability > 0.0 && self.rng.gen_bool(probability)
    }

    /// How long the next `sync_data` waits before it takes effect (slow fsync).
    pub fn fsync_delay_ms(&mut self) -> u64 {
        let max = self.config.fsync_delay_ms_max;
        if max == 0 { 0 } else { self.rng.gen_range(1..=max) }
    }

    pub fn sector_bytes(&self) -> u32 {
        self.config.sector_bytes
    }

    pub fn inode(&self, inode: InodeId) -> &Inode {
        self.inodes.get(&inode).expect("a live handle's inode exists")
    }

    pub fn inode_mut(&mut self, inode: InodeId) -> &mut Inode {
        self.inodes.get_mut(&inode).expect("a live handle's inode exists")
    }

    /// Opens (maybe creates) a file; returns its inode with one more open handle counted.
    pub fn open(&mut self, path: &Path, create: bool) -> io::Result<InodeId> {
        let path = normalize(path)?;
        let inode = match self.namespace.get(&path) {
            Some(Entry::File(inode)) => inode,
            Some(Entry::Dir) => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("sim disk: {} is a directory", path.display()),
                ));
            }
            None if !create => return Err(not_found(&path)),
            None => {
                if !self.namespace.parent_is_dir(&path) {
                    return Err(not_found(parent_of(&path).unwrap_or(&path)));
                }
                let inode = self.inode_next;
                self.inode_next += 1;
                self.inodes.insert(inode, Inode::default());
                self.namespace.link(&path, Entry::File(inode));
                inode
            }
        };
        *self.open_handles.entry(inode).or_insert(0) += 1;
        Ok(inode)
    }

    /// A handle of generation `generation` on `inode` was dropped.
    pub fn close(&mut self, inode: InodeId, generation: u64) {
        if generation != self.generation {
            return;
        }
        let count = self.open_handles.get_mut(&inode).expect("an open handle is counted");
        assert!(*count > 0);
        *count -= 1;
        if *count == 0 {
            self.open_handles.remove(&inode);
            self.collect(inode);
        }
    }

    /// Drops `inode` if nothing refers to it any more.
    pub fn collect(&mut self, inode: InodeId) {
        if !self.open_handles.contains_key(&inode) && !self.namespace.references(inode) {
            let removed = self.inodes.remove(&inode);
            assert!(removed.is_some(), "collect: inode {inode} already gone");
        }
    }

    pub fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        let path = normalize(path)?;
        let mut prefix = PathBuf::new();
        for component in path.components() {
            prefix.push(component.as_os_str());
            match self.namespace.get(&prefix) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("sim disk: {} is a file", prefix.display()),
                    ));
                }
                None => self.namespace.link(&prefix, Entry::Dir),
            }
        }
        assert!(self.namespace.is_dir(&path));
        Ok(())
    }

    pub fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let path = normalize(path)?;
        self.require_dir(&path)?;
        Ok(self.namespace.children(&path))
    }

    pub fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (normalize(from)?, normalize(to)?);
        match self.namespace.get(&from) {
            None => return Err(not_found(&from)),
            Some(Entry::Dir) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("sim disk: renaming directory {} is not modelled", from.display()),
                ));
            }
            Some(Entry::File(_)) => {}
        }
        if from == to {
            return Ok(());
        }
        if self.namespace.is_dir(&to) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("sim disk: rename target {} is a directory", to.display()),
            ));
        }
        if !self.namespace.parent_is_dir(&to) {
            return Err(not_found(parent_of(&to).unwrap_or(&to)));
        }
        if let Some(Entry::File(replaced)) = self.namespace.rename(&from, &to) {
            self.collect(replaced);
        }
        Ok(())
    }

    pub fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        let path = normalize(path)?;
        match self.namespace.get(&path) {
            None => Err(not_found(&path)),
            Some(Entry::Dir) => {
                Err(io::Error::new(io::ErrorKind::IsADirectory, format!("sim disk: {} is a directory", path.display())))
            }
            Some(Entry::File(inode)) => {
                let removed = self.namespace.unlink(&path);
                assert_eq!(removed, Some(Entry::File(inode)));
                self.collect(inode);
                Ok(())
            }
        }
    }

    pub fn remove_dir(&mut self, path: &Path) -> io::Result<()> {
        let path = normalize(path)?;
        self.require_dir(&path)?;
        if is_root(&path) {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "sim disk: cannot remove a root directory"));
        }
        if !self.namespace.children(&path).is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("sim disk: {} is not empty", path.display()),
            ));
        }
        let removed = self.namespace.unlink(&path);
        assert_eq!(removed, Some(Entry::Dir));
        Ok(())
    }

    /// Makes `path`'s namespace ops durable, unless an fsync fault fires (then they stay
    /// pending: a crash may still keep any prefix of them).
    pub fn sync_dir(&mut self, path: &Path) -> io::Result<()> {
        let path = normalize(path)?;
        self.require_dir(&path)?;
        if self.roll(self.config.fsync_eio) {
            self.counts.sync_dir_eio += 1;
            return Err(eio("sync_dir"));
        }
        self.namespace.sync_dir(&path);
        // Applied unlinks and renames may orphan inodes.
        let referenced = self.namespace.referenced_inodes();
        let open_handles = &self.open_handles;
        self.inodes.retain(|inode, _| referenced.contains(inode) || open_handles.contains_key(inode));
        Ok(())
    }

    pub fn exists(&self, path: &Path) -> io::Result<bool> {
        let path = normalize(path)?;
        Ok(self.namespace.get(&path).is_some())
    }

    /// Total bytes held by files as reads see them (for the ENOSPC check).
    pub fn used_bytes(&self) -> u64 {
        self.inodes.values().map(Inode::current_len).sum()
    }

    /// Power loss. See `SimDisk::crash`.
    pub fn crash(&mut self) {
        let (names_kept, names_dropped) = self.namespace.crash(&mut self.rng);
        self.counts.crashes += 1;
        self.counts.crash_namespace_ops_kept += names_kept;
        self.counts.crash_namespace_ops_dropped += names_dropped;
        let params = CrashParams {
            sector_bytes: self.config.sector_bytes,
            keep_pending: self.config.crash_keep_pending,
            torn_write: self.config.crash_torn_write,
        };
        let surviving = self.namespace.visible_inodes();
        let mut inodes = BTreeMap::new();
        for inode_id in surviving {
            let mut inode = self.inodes.remove(&inode_id).expect("a named inode exists");
            let outcome = inode.crash(&mut self.rng, params);
            self.counts.crash_writes_kept += outcome.ops_kept;
            self.counts.crash_writes_dropped += outcome.ops_dropped;
            self.counts.torn_writes += outcome.writes_torn;
            inodes.insert(inode_id, inode);
        }
        self.inodes = inodes;
        self.open_handles.clear();
        self.generation += 1;
    }

    /// Resolves a durable, reachable file name.
    pub fn durable_inode(&self, path: &Path) -> Option<InodeId> {
        let path = normalize(path).ok()?;
        match self.namespace.durable_get(&path) {
            Some(Entry::File(inode)) => Some(inode),
            _ => None,
        }
    }

    fn require_dir(&self, path: &Path) -> io::Result<()> {
        match self.namespace.get(path) {
            Some(Entry::Dir) => Ok(()),
            Some(Entry::File(_)) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("sim disk: {} is not a directory", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }
}

/// The per-file operations, with their fault injection.
impl State {
    pub fn read_at(&mut self, inode: InodeId, offset: u64, len: u32) -> io::Result<Bytes> {
        if self.roll(self.config.read_eio) {
            self.counts.read_eio += 1;
            return Err(eio("read"));
        }
        let sector_bytes = self.sector_bytes();
        let mut bytes = match self.inode(inode).read(offset, len, sector_bytes) {
            Ok(bytes) => bytes,
            Err(sector) => {
                self.counts.latent_sector_read_eio += 1;
                return Err(eio(&format!("read of bad sector {sector}")));
            }
        };
        if !bytes.is_empty() && self.roll(self.config.read_bit_flip) {
            let index = self.rng.gen_range(0..bytes.len());
            let bit = self.rng.gen_range(0..8u32);
            bytes[index] ^= 1u8 << bit;
            self.counts.read_bit_flips += 1;
        }
        Ok(Bytes::from(bytes))
    }

    pub fn write_at(&mut self, inode: InodeId, offset: u64, data: Bytes) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.roll(self.config.write_eio) {
            self.counts.write_eio += 1;
            return Err(eio("write"));
        }
        let sector_size = self.sector_bytes();
        let sector_bytes = u64::from(sector_size);
        let mut offset = offset;
        if offset >= sector_bytes && self.roll(self.config.misdirected_write) {
            offset -= sector_bytes;
            self.counts.misdirected_writes += 1;
        }
        let end = offset.checked_add(data.len() as u64).expect("write end overflows u64");
        self.check_space(inode, end)?;
        let len = data.len() as u64;
        self.inode_mut(inode).write(offset, data, sector_size);
        if self.roll(self.config.latent_sector_error) {
            let sector_first = offset / sector_bytes;
            let sector_last = (offset + len - 1) / sector_bytes;
            let sector = self.rng.gen_range(sector_first..=sector_last);
            self.inode_mut(inode).mark_bad_sector(sector);
            self.counts.latent_sector_errors += 1;
        }
        Ok(())
    }

    pub fn set_len(&mut self, inode: InodeId, len: u64) -> io::Result<()> {
        self.check_space(inode, len)?;
        let sector_bytes = self.sector_bytes();
        self.inode_mut(inode).set_len(len, sector_bytes);
        assert_eq!(self.inode(inode).current_len(), len);
        Ok(())
    }

    /// fdatasync; a fault discards the pending ops from the durable model (fsyncgate).
    pub fn sync_data(&mut self, inode: InodeId) -> io::Result<()> {
        if self.roll(self.config.fsync_eio) {
            let discarded = self.inode_mut(inode).fail_sync();
            self.counts.fsync_eio += 1;
            self.counts.fsync_discarded_ops += discarded;
            return Err(eio("fsync (pending writes dropped)"));
        }
        self.inode_mut(inode).sync();
        Ok(())
    }

    /// ENOSPC if growing `inode` to `end` bytes would exceed the capacity (faults on only).
    fn check_space(&mut self, inode: InodeId, end: u64) -> io::Result<()> {
        let Some(capacity_bytes) = self.config.capacity_bytes else {
            return Ok(());
        };
        if !self.faults_enabled {
            return Ok(());
        }
        let growth = end.saturating_sub(self.inode(inode).current_len());
        if growth > 0 && self.used_bytes() + growth > capacity_bytes {
            self.counts.enospc += 1;
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("sim disk: no space left (ENOSPC), capacity {capacity_bytes} bytes"),
            ));
        }
        Ok(())
    }
}
