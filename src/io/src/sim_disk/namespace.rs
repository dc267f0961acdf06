//! The simulated directory tree: the names reads see (`visible`) versus the names that survive
//! power loss (`durable`), and per directory the namespace ops in between.
//!
//! Why: namespace operations (create, rename, unlink, mkdir, rmdir) are durable only after
//! `sync_dir` on the parent directory (disk.rs contract). A crash keeps a random *prefix* of each
//! directory's pending ops (a directory's journal is ordered) and then drops every name whose
//! ancestors did not survive.
//!
//! Invariants:
//! - Paths are normalized (no `.`/`..`, no trailing separators); a path with no normal
//!   component is a root, which always exists and is a directory.
//! - Every visible name's parent is a visible directory or a root.
//! - A pending op is queued under the parent of the name it makes appear (`Link`, the `to` of a
//!   `Rename`) or disappear (`Unlink`). A rename across directories of a name whose creation is
//!   still pending cancels that creation: the file was never durable under its old name.
//! - At most `PENDING_NAMESPACE_OPS_MAX` ops per directory; beyond that the oldest is applied to
//!   `durable` (the journal commits on its own).
//! - Everything is in `BTreeMap`s: iteration order, and so the RNG draws of a crash, are a
//!   function of the seed.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Pending namespace ops per directory before the oldest commits on its own.
pub(super) const PENDING_NAMESPACE_OPS_MAX: u32 = 4096;

/// Names (files and directories) a simulated disk may hold.
pub(super) const NAMES_MAX: u32 = 1 << 20;

pub(super) type InodeId = u64;

/// What a name points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Entry {
    File(InodeId),
    Dir,
}

#[derive(Clone, Debug)]
pub(super) enum NamespaceOp {
    Link { path: PathBuf, entry: Entry },
    Unlink { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf, entry: Entry },
}

impl NamespaceOp {
    fn inode(&self) -> Option<InodeId> {
        match self {
            NamespaceOp::Link { entry: Entry::File(inode), .. }
            | NamespaceOp::Rename { entry: Entry::File(inode), .. } => Some(*inode),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Namespace {
    /// What `open`, `exists` and `list_dir` see.
    visible: BTreeMap<PathBuf, Entry>,
    /// What would be there after a crash if no pending op survived (before dropping names whose
    /// ancestors are not durable).
    durable: BTreeMap<PathBuf, Entry>,
    /// Keyed by directory, ops in issue order.
    pending: BTreeMap<PathBuf, VecDeque<NamespaceOp>>,
}

/// True for `/` and the empty relative root.
pub(super) fn is_root(path: &Path) -> bool {
    path.parent().is_none()
}

/// The directory holding `path`; `None` for a root.
pub(super) fn parent_of(path: &Path) -> Option<&Path> {
    path.parent()
}

impl Namespace {
    pub fn get(&self, path: &Path) -> Option<Entry> {
        if is_root(path) {
            return Some(Entry::Dir);
        }
        self.visible.get(path).copied()
    }

    pub fn is_dir(&self, path: &Path) -> bool {
        self.get(path) == Some(Entry::Dir)
    }

    /// Whether `path`'s parent is a visible directory (so `path` may be created).
    pub fn parent_is_dir(&self, path: &Path) -> bool {
        parent_of(path).is_some_and(|parent| self.is_dir(parent))
    }

    /// Visible entries directly inside `dir`, sorted.
    pub fn children(&self, dir: &Path) -> Vec<PathBuf> {
        children_in(&self.visible, dir)
    }

    /// Durable, reachable entries directly inside `dir`, sorted.
    pub fn durable_children(&self, dir: &Path) -> Vec<PathBuf> {
        children_in(&self.durable, dir).into_iter().filter(|path| durable_reachable(&self.durable, path)).collect()
    }

    /// The entry a durable, reachable name points at.
    pub fn durable_get(&self, path: &Path) -> Option<Entry> {
        if !durable_reachable(&self.durable, path) {
            return None;
        }
        self.durable.get(path).copied()
    }

    /// Creates a name. The caller checked that it is absent and that its parent is a directory.
    pub fn link(&mut self, path: &Path, entry: Entry) {
        assert!(!is_root(path) && self.parent_is_dir(path), "link: parent is not a directory");
        assert!(self.visible.len() as u64 <= u64::from(NAMES_MAX), "sim disk: too many names");
        let previous = self.visible.insert(path.to_path_buf(), entry);
        assert!(previous.is_none(), "link: {} exists", path.display());
        self.push(path, NamespaceOp::Link { path: path.to_path_buf(), entry });
    }

    /// Removes a name; returns what it pointed at.
    pub fn unlink(&mut self, path: &Path) -> Option<Entry> {
        let entry = self.visible.remove(path)?;
        self.push(path, NamespaceOp::Unlink { path: path.to_path_buf() });
        Some(entry)
    }

    /// Moves a file's name, replacing `to` if it is a file. Returns the entry `to` held before.
    /// The caller checked: `from` is a file, `to` is not a directory, `to`'s parent is one.
    pub fn rename(&mut self, from: &Path, to: &Path) -> Option<Entry> {
        let entry = self.visible.remove(from).expect("rename: source exists");
        assert!(matches!(entry, Entry::File(_)), "rename: only files are renamed");
        let replaced = self.visible.insert(to.to_path_buf(), entry);
        assert!(replaced != Some(Entry::Dir), "rename: target is a directory");
        if parent_of(from) != parent_of(to) {
            self.cancel_pending_link(from, entry);
        }
        let op = NamespaceOp::Rename { from: from.to_path_buf(), to: to.to_path_buf(), entry };
        self.push(to, op);
        replaced
    }

    /// `sync_dir`: every pending op of `dir` becomes durable, in order.
    pub fn sync_dir(&mut self, dir: &Path) {
        for op in self.pending.remove(dir).unwrap_or_default() {
            apply(&mut self.durable, &op);
        }
        assert!(!self.pending.contains_key(dir));
    }

    /// Whether anything (a name, durable or not, or a pending op) still refers to `inode`.
    pub fn references(&self, inode: InodeId) -> bool {
        let named = |map: &BTreeMap<PathBuf, Entry>| map.values().any(|entry| *entry == Entry::File(inode));
        named(&self.visible)
            || named(&self.durable)
            || self.pending.values().flatten().any(|op| op.inode() == Some(inode))
    }

    /// Every inode a name (visible or durable) or a pending op refers to.
    pub fn referenced_inodes(&self) -> BTreeSet<InodeId> {
        let named = self.visible.values().chain(self.durable.values());
        let mut inodes: BTreeSet<InodeId> = named
            .filter_map(|entry| match entry {
                Entry::File(inode) => Some(*inode),
                Entry::Dir => None,
            })
            .collect();
        inodes.extend(self.pending.values().flatten().filter_map(NamespaceOp::inode));
        inodes
    }

    /// Power loss: each directory keeps a random prefix of its pending ops, names whose
    /// ancestors are not durable directories vanish, and what survives is all there is.
    /// Returns (ops kept, ops dropped).
    pub fn crash(&mut self, rng: &mut ChaCha8Rng) -> (u64, u64) {
        let (mut kept, mut dropped) = (0u64, 0u64);
        for (_dir, ops) in std::mem::take(&mut self.pending) {
            let prefix = rng.gen_range(0..=ops.len());
            kept += prefix as u64;
            dropped += (ops.len() - prefix) as u64;
            for op in ops.iter().take(prefix) {
                apply(&mut self.durable, op);
            }
        }
        // Parents sort before their children (paths compare component by component), so one
        // pass in order sees each parent's fate before its children.
        let mut surviving: BTreeMap<PathBuf, Entry> = BTreeMap::new();
        for (path, entry) in std::mem::take(&mut self.durable) {
            let parent = parent_of(&path).expect("a stored name is never a root");
            if is_root(parent) || surviving.get(parent) == Some(&Entry::Dir) {
                surviving.insert(path, entry);
            }
        }
        self.visible = surviving.clone();
        self.durable = surviving;
        assert!(self.pending.is_empty());
        (kept, dropped)
    }

    /// Inodes named in the visible namespace, sorted.
    pub fn visible_inodes(&self) -> Vec<InodeId> {
        let mut inodes: Vec<InodeId> = self
            .visible
            .values()
            .filter_map(|entry| match entry {
                Entry::File(inode) => Some(*inode),
                Entry::Dir => None,
            })
            .collect();
        inodes.sort_unstable();
        inodes.dedup();
        inodes
    }

    fn push(&mut self, path: &Path, op: NamespaceOp) {
        let dir = parent_of(path).expect("a namespace op never names a root").to_path_buf();
        let queue = self.pending.entry(dir).or_default();
        queue.push_back(op);
        if queue.len() as u64 > u64::from(PENDING_NAMESPACE_OPS_MAX) {
            let oldest = queue.pop_front().expect("queue is not empty");
            assert!(queue.len() as u64 == u64::from(PENDING_NAMESPACE_OPS_MAX));
            apply(&mut self.durable, &oldest);
        }
    }

    fn cancel_pending_link(&mut self, path: &Path, entry: Entry) {
        let Some(dir) = parent_of(path) else { return };
        if let Some(queue) = self.pending.get_mut(dir) {
            queue.retain(|op| !matches!(op, NamespaceOp::Link { path: p, entry: e } if p == path && *e == entry));
        }
    }
}

fn apply(durable: &mut BTreeMap<PathBuf, Entry>, op: &NamespaceOp) {
    match op {
        NamespaceOp::Link { path, entry } => {
            durable.insert(path.clone(), *entry);
        }
        NamespaceOp::Unlink { path } => {
            durable.remove(path);
        }
        NamespaceOp::Rename { from, to, entry } => {
            if durable.get(from) == Some(entry) {
                durable.remove(from);
            }
            durable.insert(to.clone(), *entry);
        }
    }
}

fn children_in(map: &BTreeMap<PathBuf, Entry>, dir: &Path) -> Vec<PathBuf> {
    map.range(dir.to_path_buf()..)
        .take_while(|(path, _)| path.starts_with(dir))
        .filter(|(path, _)| parent_of(path) == Some(dir))
        .map(|(path, _)| path.clone())
        .collect()
}

fn durable_reachable(durable: &BTreeMap<PathBuf, Entry>, path: &Path) -> bool {
    let mut ancestor = parent_of(path);
    while let Some(dir) = ancestor {
        if is_root(dir) {
            return true;
        }
        if durable.get(dir) != Some(&Entry::Dir) {
            return false;
        }
        ancestor = parent_of(dir);
    }
    true
}
