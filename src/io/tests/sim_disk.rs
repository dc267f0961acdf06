//! Specification tests for `SimDisk`: what survives a crash, what a fault does, and what never
//! changes (synced bytes, sorted listings, stale handles).
//!
//! Every `SimDisk` future completes on its first poll (the model is synchronous), so the tests
//! drive them with `now` instead of a runtime; that also lets the proptest run them inline.

#![cfg(feature = "sim")]

use bytes::Bytes;
use proptest::prelude::*;
use sluice_io::sim_disk::{SimDisk, SimDiskConfig};
use sluice_io::{Disk, File, OpenOptions};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Seeds tried by the "may happen" tests; enough that each allowed outcome shows up.
const SEEDS: u64 = 64;

/// Runs a `SimDisk` future, which never waits.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a SimDisk future waited"),
    }
}

fn dir() -> PathBuf {
    PathBuf::from("/data")
}

fn file_path() -> PathBuf {
    dir().join("log")
}

/// A disk holding `/data/log`, with its name durable and nothing written; set up with faults
/// off, then faults on.
fn disk_with_file(seed: u64, config: SimDiskConfig) -> (SimDisk, sluice_io::sim_disk::SimFile) {
    let disk = SimDisk::new(seed, config);
    disk.set_faults_enabled(false);
    now(disk.create_dir_all(&dir())).unwrap();
    now(disk.sync_dir(Path::new("/"))).unwrap();
    let file = now(disk.open(&file_path(), OpenOptions::CREATE)).unwrap();
    now(disk.sync_dir(&dir())).unwrap();
    assert_eq!(disk.durable_len(&file_path()), Some(0));
    disk.set_faults_enabled(true);
    (disk, file)
}

fn read_all(disk: &SimDisk, path: &Path) -> Vec<u8> {
    let file = now(disk.open(path, OpenOptions::READ)).unwrap();
    let len = now(file.len()).unwrap();
    let bytes = now(file.read_at(0, u32::try_from(len).unwrap())).unwrap();
    assert_eq!(bytes.len() as u64, len);
    bytes.to_vec()
}

#[test]
fn unsynced_writes_may_vanish_but_synced_ones_never_do() {
    let (mut kept, mut lost) = (0u32, 0u32);
    for seed in 0..SEEDS {
        let (disk, file) = disk_with_file(seed, SimDiskConfig::default());
        now(file.write_at(0, Bytes::from_static(b"synced"))).unwrap();
        now(file.sync_data()).unwrap();
        now(file.write_at(6, Bytes::from_static(b"-later"))).unwrap();
        assert_eq!(now(file.read_at(0, 64)).unwrap(), &b"synced-later"[..]);
        disk.crash();
        let bytes = read_all(&disk, &file_path());
        assert_eq!(&bytes[..6], b"synced", "seed {seed}");
        match &bytes[6..] {
            b"-later" => kept += 1,
            b"" => lost += 1,
            other => panic!("seed {seed}: unexpected tail {other:?}"),
        }
    }
    assert!(kept > 0 && lost > 0, "kept {kept}, lost {lost}");
}

#[test]
fn torn_writes_only_affect_unsynced_data() {
    let config = SimDiskConfig { crash_keep_pending: 1.0, crash_torn_write: 1.0, ..Default::default() };
    let sector = u64::from(config.sector_bytes);
    let mut mixed = 0u32;
    for seed in 0..SEEDS {
        let (disk, file) = disk_with_file(seed, config);
        now(file.write_at(0, Bytes::from(vec![0xAAu8; 4 * 512]))).unwrap();
        now(file.sync_data()).unwrap();
        // Overwrite sectors 1..3 without syncing: a crash tears it at sector boundaries.
        now(file.write_at(sector, Bytes::from(vec![0xBBu8; 2 * 512]))).unwrap();
        disk.crash();
        let bytes = read_all(&disk, &file_path());
        assert_eq!(bytes.len(), 4 * 512, "seed {seed}");
        assert!(bytes[..512].iter().all(|&b| b == 0xAA), "seed {seed}: synced sector 0 changed");
        assert!(bytes[1536..].iter().all(|&b| b == 0xAA), "seed {seed}: synced sector 3 changed");
        let sectors: Vec<u8> = [512usize, 1024].iter().map(|&start| bytes[start]).collect();
        for &start in &[512usize, 1024] {
            let piece = &bytes[start..start + 512];
            assert!(piece.iter().all(|&b| b == piece[0]), "seed {seed}: sector split inside");
        }
        if sectors[0] != sectors[1] {
            mixed += 1;
        }
    }
    assert!(mixed > 0, "no torn write seen in {SEEDS} seeds");
}

#[test]
fn namespace_ops_without_sync_dir_may_vanish() {
    let (mut kept, mut lost) = (0u32, 0u32);
    for seed in 0..SEEDS {
        let (disk, _file) = disk_with_file(seed, SimDiskConfig::default());
        let new = dir().join("new");
        let file = now(disk.open(&new, OpenOptions::CREATE)).unwrap();
        now(file.write_at(0, Bytes::from_static(b"x"))).unwrap();
        now(file.sync_data()).unwrap();
        assert_eq!(disk.durable_len(&new), None, "name not durable before sync_dir");
        disk.crash();
        if now(disk.exists(&new)).unwrap() {
            kept += 1;
        } else {
            lost += 1;
        }
        assert!(now(disk.exists(&file_path())).unwrap(), "seed {seed}: synced name lost");
    }
    assert!(kept > 0 && lost > 0, "kept {kept}, lost {lost}");
}

#[test]
fn synced_names_survive_and_renames_keep_exactly_one_name() {
    for seed in 0..SEEDS {
        let (disk, file) = disk_with_file(seed, SimDiskConfig::default());
        now(file.write_at(0, Bytes::from_static(b"payload"))).unwrap();
        now(file.sync_data()).unwrap();
        let renamed = dir().join("renamed");
        now(disk.rename(&file_path(), &renamed)).unwrap();
        assert!(now(disk.exists(&renamed)).unwrap());
        assert!(!now(disk.exists(&file_path())).unwrap());
        disk.crash();
        let old = now(disk.exists(&file_path())).unwrap();
        let new = now(disk.exists(&renamed)).unwrap();
        assert!(old ^ new, "seed {seed}: old {old}, new {new}");
        let path = if new { renamed } else { file_path() };
        assert_eq!(read_all(&disk, &path), b"payload");
    }
}

#[test]
fn a_file_in_an_unsynced_directory_is_lost() {
    for seed in 0..SEEDS {
        let disk = SimDisk::new(seed, SimDiskConfig { crash_keep_pending: 0.0, ..Default::default() });
        now(disk.create_dir_all(Path::new("/a/b"))).unwrap();
        let path = Path::new("/a/b/f");
        let file = now(disk.open(path, OpenOptions::CREATE)).unwrap();
        now(file.write_at(0, Bytes::from_static(b"x"))).unwrap();
        now(file.sync_data()).unwrap();
        now(disk.sync_dir(Path::new("/a/b"))).unwrap();
        // `/a/b` holds the name durably, but `/a` and `/` never made `a` and `b` durable.
        assert_eq!(disk.durable_len(path), None);
        disk.crash();
        let survived = now(disk.exists(Path::new("/a"))).unwrap();
        assert!(!now(disk.exists(path)).unwrap() || survived, "seed {seed}");
    }
}

#[test]
fn failed_fsync_drops_pending_data() {
    let (disk, file) = disk_with_file(1, SimDiskConfig { fsync_eio: 1.0, ..Default::default() });
    now(file.write_at(0, Bytes::from_static(b"lost"))).unwrap();
    assert!(now(file.sync_data()).is_err());
    assert_eq!(disk.fault_counts().fsync_eio, 1);
    assert_eq!(disk.fault_counts().fsync_discarded_ops, 1);
    // Reads still see it (the page cache), but the durable model does not.
    assert_eq!(now(file.read_at(0, 4)).unwrap(), &b"lost"[..]);
    assert_eq!(disk.durable_len(&file_path()), Some(0));
    // Retrying the fsync "succeeds" without writing anything: the fsyncgate trap.
    disk.set_faults_enabled(false);
    now(file.sync_data()).unwrap();
    assert_eq!(disk.durable_len(&file_path()), Some(0));
    disk.crash();
    assert_eq!(read_all(&disk, &file_path()), b"");
}

/// Slow fsync: the one `SimDisk` future that waits. Until the wait ends nothing is durable, so
/// a crash in the window loses the write (what the `ack-before-fsync` defect must not survive).
#[test]
fn slow_fsync_keeps_writes_pending_until_it_completes() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let (disk, file) = disk_with_file(7, SimDiskConfig { fsync_delay_ms_max: 5, ..Default::default() });
    now(file.write_at(0, Bytes::from_static(b"slow"))).unwrap();
    runtime.block_on(async {
        // Cut off mid-wait, as a crash would cut it: nothing became durable.
        let cut = tokio::time::timeout(std::time::Duration::ZERO, file.sync_data()).await;
        assert!(cut.is_err(), "a slow fsync completed at once");
        assert_eq!(disk.durable_len(&file_path()), Some(0));
        file.sync_data().await.unwrap();
    });
    assert_eq!(disk.durable_len(&file_path()), Some(4));
}

#[test]
fn stale_handles_after_crash_error_out() {
    let (disk, file) = disk_with_file(2, SimDiskConfig::default());
    now(file.write_at(0, Bytes::from_static(b"abc"))).unwrap();
    now(file.sync_data()).unwrap();
    disk.crash();
    let stale = |result: io::Result<()>| {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Other);
        assert_eq!(error.to_string(), "stale handle after crash");
    };
    stale(now(file.read_at(0, 3)).map(drop));
    stale(now(file.write_at(0, Bytes::from_static(b"x"))));
    stale(now(file.len()).map(drop));
    stale(now(file.set_len(0)));
    stale(now(file.sync_data()));
    drop(file);
    let fresh = now(disk.open(&file_path(), OpenOptions::WRITE)).unwrap();
    assert_eq!(now(fresh.read_at(0, 3)).unwrap(), &b"abc"[..]);
}

#[test]
fn list_dir_is_sorted() {
    let disk = SimDisk::new(3, SimDiskConfig::default());
    now(disk.create_dir_all(&dir())).unwrap();
    let names = ["zeta", "alpha", "00000000000000000010.log", "Beta", "mid", "00000000000000000002.log"];
    for name in names {
        drop(now(disk.open(&dir().join(name), OpenOptions::CREATE)).unwrap());
    }
    now(disk.create_dir_all(&dir().join("sub/deeper"))).unwrap();
    let listed = now(disk.list_dir(&dir())).unwrap();
    let mut expected: Vec<PathBuf> = names.iter().map(|name| dir().join(name)).collect();
    expected.push(dir().join("sub"));
    expected.sort();
    assert_eq!(listed, expected);
    assert!(disk.list_durable(&dir()).is_empty());
    now(disk.sync_dir(&dir())).unwrap();
    assert_eq!(disk.list_durable(&dir()), Vec::<PathBuf>::new(), "/data itself is not durable");
    now(disk.sync_dir(Path::new("/"))).unwrap();
    assert_eq!(disk.list_durable(&dir()), expected);
}

#[test]
fn namespace_errors() {
    let disk = SimDisk::new(4, SimDiskConfig::default());
    let missing = now(disk.open(Path::new("/nodir/f"), OpenOptions::CREATE)).unwrap_err();
    assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    let absent = now(disk.open(Path::new("/f"), OpenOptions::READ)).unwrap_err();
    assert_eq!(absent.kind(), io::ErrorKind::NotFound);
    now(disk.create_dir_all(&dir())).unwrap();
    let file = now(disk.open(&file_path(), OpenOptions::CREATE)).unwrap();
    drop(file);
    let read_only = now(disk.open(&file_path(), OpenOptions::READ)).unwrap();
    let denied = now(read_only.write_at(0, Bytes::from_static(b"x"))).unwrap_err();
    assert_eq!(denied.kind(), io::ErrorKind::PermissionDenied);
    let not_empty = now(disk.remove_dir(&dir())).unwrap_err();
    assert_eq!(not_empty.kind(), io::ErrorKind::DirectoryNotEmpty);
    now(disk.remove_file(&file_path())).unwrap();
    // An unlinked file stays usable through its open handle.
    assert_eq!(now(read_only.len()).unwrap(), 0);
    now(disk.remove_dir(&dir())).unwrap();
    assert!(!now(disk.exists(&dir())).unwrap());
}

#[test]
fn read_faults_never_touch_stored_data() {
    let config = SimDiskConfig { read_bit_flip: 1.0, ..Default::default() };
    let (disk, file) = disk_with_file(5, config);
    let data = vec![0x5Au8; 1000];
    now(file.write_at(0, Bytes::from(data.clone()))).unwrap();
    let flipped = now(file.read_at(0, 1000)).unwrap();
    let differing_bits: u32 = flipped.iter().zip(&data).map(|(a, b)| (a ^ b).count_ones()).sum();
    assert_eq!(differing_bits, 1);
    assert_eq!(disk.fault_counts().read_bit_flips, 1);
    disk.set_faults_enabled(false);
    assert_eq!(now(file.read_at(0, 1000)).unwrap(), &data[..]);

    disk.set_config(SimDiskConfig { read_eio: 1.0, ..Default::default() });
    disk.set_faults_enabled(true);
    assert!(now(file.read_at(0, 1)).is_err());
    assert_eq!(disk.fault_counts().read_eio, 1);
}

#[test]
fn write_faults() {
    let config = SimDiskConfig { write_eio: 1.0, ..Default::default() };
    let (disk, file) = disk_with_file(6, config);
    assert!(now(file.write_at(0, Bytes::from_static(b"x"))).is_err());
    assert_eq!(now(file.len()).unwrap(), 0, "a failed write changes nothing");

    // Misdirected: asked for 1024, lands at 512.
    disk.set_config(SimDiskConfig { misdirected_write: 1.0, ..Default::default() });
    now(file.write_at(1024, Bytes::from_static(b"m"))).unwrap();
    disk.set_faults_enabled(false);
    assert_eq!(now(file.len()).unwrap(), 513);
    assert_eq!(now(file.read_at(512, 1)).unwrap(), &b"m"[..]);

    // Latent sector error: the written sector reads as EIO until rewritten.
    disk.set_config(SimDiskConfig { latent_sector_error: 1.0, ..Default::default() });
    disk.set_faults_enabled(true);
    now(file.write_at(2048, Bytes::from_static(b"lse"))).unwrap();
    disk.set_faults_enabled(false);
    assert!(now(file.read_at(2048, 3)).is_err());
    assert!(now(file.read_at(0, 512)).is_ok(), "other sectors still read");
    now(file.write_at(2048, Bytes::from_static(b"new"))).unwrap();
    assert_eq!(now(file.read_at(2048, 3)).unwrap(), &b"new"[..]);

    // ENOSPC past the capacity; not while faults are off.
    disk.set_config(SimDiskConfig { capacity_bytes: Some(4096), ..Default::default() });
    disk.set_faults_enabled(true);
    let full = now(file.write_at(4000, Bytes::from(vec![1u8; 200]))).unwrap_err();
    assert_eq!(full.kind(), io::ErrorKind::StorageFull);
    now(file.write_at(0, Bytes::from(vec![1u8; 200]))).unwrap();
    disk.set_faults_enabled(false);
    now(file.write_at(4000, Bytes::from(vec![1u8; 200]))).unwrap();

    let counts = disk.fault_counts();
    assert_eq!(counts.write_eio, 1);
    assert_eq!(counts.misdirected_writes, 1);
    assert_eq!(counts.latent_sector_errors, 1);
    assert_eq!(counts.latent_sector_read_eio, 1);
    assert_eq!(counts.enospc, 1);
}

#[test]
fn corrupt_durable_survives_crash() {
    let (disk, file) = disk_with_file(7, SimDiskConfig::default());
    now(file.write_at(0, Bytes::from_static(b"\x00\x00\x00"))).unwrap();
    now(file.sync_data()).unwrap();
    disk.corrupt_durable(&file_path(), 1).unwrap();
    assert_eq!(now(file.read_at(0, 3)).unwrap(), &b"\x00\x01\x00"[..]);
    assert!(disk.corrupt_durable(&file_path(), 3).is_err());
    disk.crash();
    assert_eq!(read_all(&disk, &file_path()), b"\x00\x01\x00");
}

#[test]
fn same_seed_same_crash() {
    let run = |seed: u64| {
        let (disk, file) = disk_with_file(seed, SimDiskConfig::default());
        for i in 0..32u64 {
            now(file.write_at(i * 700, Bytes::from(vec![i as u8 + 1; 1500]))).unwrap();
        }
        disk.crash();
        (read_all(&disk, &file_path()), disk.fault_counts())
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11).0, run(12).0);
}

#[derive(Clone, Debug)]
enum Op {
    Write { offset: u64, len: u32, byte: u8 },
    SetLen { len: u64 },
    Sync,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..8192, 1u32..3000, any::<u8>())
            .prop_map(|(offset, len, byte)| Op::Write { offset, len, byte }),
        1 => (0u64..12000).prop_map(|len| Op::SetLen { len }),
        3 => Just(Op::Sync),
        2 => Just(Op::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Bytes synced and not rewritten survive any crash.
    #[test]
    fn synced_bytes_survive_any_crash(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..40)) {
        let (disk, file) = disk_with_file(seed, SimDiskConfig::default());
        let mut file = Some(file);
        // The model: what reads see, and per byte the value a crash must preserve.
        let mut current: Vec<u8> = Vec::new();
        let mut protected: Vec<Option<u8>> = Vec::new();
        for op in ops {
            let handle = file.as_ref().expect("file is open");
            match op {
                Op::Write { offset, len, byte } => {
                    now(handle.write_at(offset, Bytes::from(vec![byte; len as usize]))).unwrap();
                    let (start, end) = (offset as usize, offset as usize + len as usize);
                    if current.len() < end {
                        current.resize(end, 0);
                        protected.resize(end, None);
                    }
                    current[start..end].fill(byte);
                    protected[start..end].fill(None);
                }
                Op::SetLen { len } => {
                    now(handle.set_len(len)).unwrap();
                    current.resize(len as usize, 0);
                    // Truncation rewrites the tail: nothing cut off or added is protected.
                    protected.truncate(len as usize);
                    protected.resize(len as usize, None);
                }
                Op::Sync => {
                    now(handle.sync_data()).unwrap();
                    protected = current.iter().copied().map(Some).collect();
                }
                Op::Crash => {
                    drop(file.take());
                    disk.crash();
                    let bytes = read_all(&disk, &file_path());
                    for (index, expected) in protected.iter().enumerate() {
                        if let Some(expected) = expected {
                            prop_assert!(index < bytes.len(), "synced byte {index} cut off");
                            prop_assert_eq!(bytes[index], *expected, "byte {}", index);
                        }
                    }
                    current = bytes;
                    protected = current.iter().copied().map(Some).collect();
                    file = Some(now(disk.open(&file_path(), OpenOptions::WRITE)).unwrap());
                }
            }
            prop_assert_eq!(now(file.as_ref().unwrap().len()).unwrap(), current.len() as u64);
        }
    }
}
