//! The Raft hard state file (`raft.hard_state`) on the fault-injecting `SimDisk`.
//!
//! What the file promises (src/hard_state.rs, docs/format.md "Raft hard state"), one story each:
//!
//! - RoundTrip: what `write` stored, `read` returns, before and after a crash; a replica that
//!   never wrote one reads `None`; the bytes are the documented 24-byte layout.
//! - OldOrNew: power cut before any disk operation of a write leaves the old or the new hard
//!   state, never a mix, and never no file once a write had completed. A write that returned
//!   `Ok` survives every crash. So does one whose fsync failed: old or new.
//! - CorruptionDetected: a flipped bit anywhere in the file, a wrong size, on-media corruption
//!   or a bit flipped on the way from the disk is `StorageError::CorruptHardState`, never a
//!   default (a lost vote could let a node vote twice in one term: Raft §5.2).
//! - TermMonotonic, VoteKept: across random sequences of Raft-like updates and crashes, the term
//!   read after a recovery is never below a term that was written durably or read before, and
//!   a vote durably cast in a term is still there while the term is (Raft §5.1, §5.2).
//!
//! Replay: a sweep prints the failing seed and a command that reruns only that seed
//! (`SLUICE_SEED=<seed> cargo test -p sluice-storage --test hard_state -- <test> --exact`).

mod common;

use common::{SeedReport, seeds};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_io::sim_disk::{CrashableDisk, SimDisk, SimDiskConfig};
use sluice_io::{Disk, read_file, write_file_atomic};
use sluice_storage::{HARD_STATE_BYTES, HARD_STATE_FILE, PersistedHardState, StorageError};
use sluice_types::{NodeId, Term};
use std::path::{Path, PathBuf};

/// The Raft group's directory; it exists durably before any hard state is written.
const GROUP_DIR: &str = "/data/topic-0";
/// Seeds per sweep.
const SEEDS_PER_SWEEP: u64 = 64;
/// Crash points tried per write before the sweep is declared unbounded.
const CRASH_POINTS_MAX: u64 = 100;
/// The fewest disk operations a crash-atomic write can take: write the temporary file, fsync
/// it, rename it, fsync the directory. The sweep must have cut each of them.
const WRITE_DISK_OPS_MIN: u64 = 4;
/// Updates per random story.
const STORY_STEPS: u32 = 80;
/// Node ids the stories vote for.
const NODE_IDS_MAX: i32 = 5;
/// Crash configurations every sweep runs under: (keep each unsynced op, tear a kept write).
const CRASH_CONFIGS: [(f64, f64); 3] = [(0.0, 0.0), (0.5, 0.5), (1.0, 0.0)];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn hard_state(term: i32, voted_for: Option<i32>) -> PersistedHardState {
    PersistedHardState { term: Term(term), voted_for: voted_for.map(NodeId) }
}

fn dir() -> &'static Path {
    Path::new(GROUP_DIR)
}

fn file_path() -> PathBuf {
    dir().join(HARD_STATE_FILE)
}

fn crash_config(keep_pending: f64, torn_write: f64) -> SimDiskConfig {
    SimDiskConfig { crash_keep_pending: keep_pending, crash_torn_write: torn_write, ..SimDiskConfig::default() }
}

/// A disk holding the group's directory, durably, and nothing else; set up without faults.
async fn fresh_disk(seed: u64, config: SimDiskConfig) -> SimDisk {
    let sim = SimDisk::new(seed, config);
    sim.set_faults_enabled(false);
    sim.create_dir_all(dir()).await.expect("create the group directory");
    sim.sync_dir(Path::new("/")).await.expect("sync /");
    sim.sync_dir(Path::new("/data")).await.expect("sync /data");
    sim.set_faults_enabled(true);
    sim
}

/// Power loss, then a new process reads the hard state.
async fn crash_and_read(sim: &SimDisk) -> Result<Option<PersistedHardState>, StorageError> {
    sim.crash();
    PersistedHardState::read(sim, dir()).await
}

fn assert_corrupt(result: Result<Option<PersistedHardState>, StorageError>, what: &str) {
    match result {
        Err(StorageError::CorruptHardState(_)) => {}
        other => panic!("{what}: expected CorruptHardState, read {other:?}"),
    }
}

/// Replaces the file's bytes with `bytes`, bypassing the encoder.
async fn overwrite_raw(sim: &SimDisk, bytes: Vec<u8>) {
    write_file_atomic(sim, &file_path(), bytes.into()).await.expect("raw overwrite");
}

// ---------------------------------------------------------------------------------------------
// RoundTrip
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_replica_that_never_wrote_a_hard_state_reads_none() {
    let sim = fresh_disk(0, SimDiskConfig::default()).await;
    assert_eq!(PersistedHardState::read(&sim, dir()).await.expect("read"), None);
    assert_eq!(crash_and_read(&sim).await.expect("read after a crash"), None);
}

#[tokio::test]
async fn what_is_written_reads_back_before_and_after_a_crash() {
    let states = [
        hard_state(0, None),
        hard_state(1, Some(1)),
        hard_state(1, Some(0)),
        hard_state(7, None),
        hard_state(i32::MAX, Some(i32::MAX)),
        hard_state(i32::MAX, None),
    ];
    // Drop every unsynced op at the crash: only what `write` made durable is left.
    let sim = fresh_disk(0, crash_config(0.0, 0.0)).await;
    for state in states {
        state.write(&sim, dir()).await.expect("write");
        assert_eq!(PersistedHardState::read(&sim, dir()).await.expect("read"), Some(state));
        assert_eq!(crash_and_read(&sim).await.expect("read after a crash"), Some(state));
        assert_eq!(sim.durable_len(&file_path()), Some(u64::from(HARD_STATE_BYTES)));
    }
}

#[tokio::test]
async fn the_file_is_the_documented_little_endian_layout() {
    let sim = fresh_disk(0, SimDiskConfig::default()).await;
    let cases: [(PersistedHardState, [u8; 20]); 2] = [
        (
            hard_state(7, Some(2)),
            [
                0x53, 0x4c, 0x48, 0x53, // magic "SLHS"
                0x01, 0x00, // version 1
                0x00, 0x00, // reserved
                0x07, 0x00, 0x00, 0x00, // term 7
                0x02, 0x00, 0x00, 0x00, // voted_for node 2
                0x00, 0x00, 0x00, 0x00, // reserved
            ],
        ),
        (
            hard_state(0x0102_0304, None),
            [
                0x53, 0x4c, 0x48, 0x53, // magic "SLHS"
                0x01, 0x00, // version 1
                0x00, 0x00, // reserved
                0x04, 0x03, 0x02, 0x01, // term 0x01020304
                0xff, 0xff, 0xff, 0xff, // voted_for -1: no vote
                0x00, 0x00, 0x00, 0x00, // reserved
            ],
        ),
    ];
    for (state, expected) in cases {
        state.write(&sim, dir()).await.expect("write");
        let bytes = read_file(&sim, &file_path()).await.expect("read").expect("the file exists");
        assert_eq!(bytes.len(), HARD_STATE_BYTES as usize);
        assert_eq!(&bytes[0..20], &expected[..], "{state:?}");
        assert_eq!(&bytes[20..24], &crc32fast::hash(&expected).to_le_bytes()[..], "crc32 (IEEE) of bytes 0..20");
    }
}

// ---------------------------------------------------------------------------------------------
// OldOrNew
// ---------------------------------------------------------------------------------------------

/// Successive writes as a Raft replica makes them: the first ever, a vote, a new term, a new
/// term with a vote, the same state again.
fn write_transitions() -> Vec<(Option<PersistedHardState>, PersistedHardState)> {
    vec![
        (None, hard_state(1, None)),
        (None, hard_state(3, Some(2))),
        (Some(hard_state(1, None)), hard_state(1, Some(2))),
        (Some(hard_state(1, Some(2))), hard_state(2, None)),
        (Some(hard_state(2, None)), hard_state(5, Some(1))),
        (Some(hard_state(5, Some(1))), hard_state(5, Some(1))),
    ]
}

/// Cuts the power before the `crash_after_ops`+1-th disk operation of writing `new` over `old`;
/// checks what a new process reads. Returns whether the write ran to completion.
async fn write_with_crash_point(
    sim: &SimDisk,
    old: Option<PersistedHardState>,
    new: PersistedHardState,
    crash_after_ops: u64,
) -> bool {
    let disk = CrashableDisk::boot(sim);
    disk.arm(crash_after_ops);
    let result = new.write(&disk, dir()).await;
    disk.disarm();
    let completed = !disk.crashed();
    if completed {
        result.unwrap_or_else(|error| panic!("write failed without a crash: {error}"));
        sim.crash();
    } else {
        assert!(result.is_err(), "a write the power cut short cannot report success");
    }
    let recovered = PersistedHardState::read(sim, dir())
        .await
        .unwrap_or_else(|error| panic!("crash after {crash_after_ops} ops left an unreadable file: {error}"));
    if completed {
        assert_eq!(recovered, Some(new), "a completed write must survive a crash");
    } else {
        assert!(
            recovered == old || recovered == Some(new),
            "crash after {crash_after_ops} ops: read {recovered:?}, neither the old {old:?} nor the new {new:?}"
        );
    }
    if let (Some(old), Some(recovered)) = (old, recovered) {
        assert!(recovered.term >= old.term, "term went back from {} to {}", old.term, recovered.term);
    }
    completed
}

#[tokio::test]
async fn a_crash_at_every_disk_operation_of_a_write_leaves_the_old_or_the_new_state() {
    for seed in seeds(SEEDS_PER_SWEEP) {
        let _report = SeedReport(seed);
        for (keep_pending, torn_write) in CRASH_CONFIGS {
            for (old, new) in write_transitions() {
                let mut completed_at = None;
                for crash_after_ops in 0..CRASH_POINTS_MAX {
                    let sim = fresh_disk(seed, crash_config(keep_pending, torn_write)).await;
                    if let Some(old) = old {
                        old.write(&sim, dir()).await.expect("write the old state");
                    }
                    if write_with_crash_point(&sim, old, new, crash_after_ops).await {
                        completed_at = Some(crash_after_ops);
                        break;
                    }
                    // The next write after the crash succeeds over whatever the cut one left
                    // behind (a stale temporary file included).
                    let next = hard_state(new.term.0 + 1, None);
                    next.write(&sim, dir()).await.expect("write after recovery");
                    assert_eq!(crash_and_read(&sim).await.expect("read"), Some(next));
                }
                let completed_at = completed_at.expect("the write never completed");
                assert!(
                    completed_at >= WRITE_DISK_OPS_MIN,
                    "only {completed_at} crash points: the sweep cut too little"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_failed_fsync_leaves_the_old_or_the_new_state() {
    let (old, new) = (hard_state(4, Some(1)), hard_state(5, Some(3)));
    let mut failures = 0u32;
    for seed in seeds(SEEDS_PER_SWEEP) {
        let _report = SeedReport(seed);
        let config = SimDiskConfig { fsync_eio: 0.5, ..crash_config(0.5, 0.5) };
        let sim = fresh_disk(seed, config).await;
        sim.set_faults_enabled(false);
        old.write(&sim, dir()).await.expect("write the old state");
        sim.set_faults_enabled(true);
        let result = new.write(&sim, dir()).await;
        sim.set_faults_enabled(false);
        let recovered = crash_and_read(&sim).await.expect("a failed fsync never leaves an unreadable file");
        match result {
            Ok(()) => assert_eq!(recovered, Some(new), "a completed write must survive a crash"),
            Err(_) => {
                failures += 1;
                assert!(recovered == Some(old) || recovered == Some(new), "read {recovered:?}");
            }
        }
    }
    assert!(failures > 0 || std::env::var("SLUICE_SEED").is_ok(), "no fsync failed: the sweep tested nothing");
}

// ---------------------------------------------------------------------------------------------
// CorruptionDetected
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_flipped_bit_is_a_corrupt_hard_state_error() {
    for state in [hard_state(0, None), hard_state(9, Some(4)), hard_state(i32::MAX, Some(0))] {
        let sim = fresh_disk(0, SimDiskConfig::default()).await;
        state.write(&sim, dir()).await.expect("write");
        let original = read_file(&sim, &file_path()).await.expect("read").expect("the file exists").to_vec();
        for byte in 0..original.len() {
            for bit in 0..8 {
                let mut flipped = original.clone();
                flipped[byte] ^= 1 << bit;
                overwrite_raw(&sim, flipped).await;
                let result = PersistedHardState::read(&sim, dir()).await;
                assert_corrupt(result, &format!("{state:?} with byte {byte} bit {bit} flipped"));
            }
        }
    }
}

#[tokio::test]
async fn a_file_of_the_wrong_size_is_a_corrupt_hard_state_error() {
    let sim = fresh_disk(0, SimDiskConfig::default()).await;
    hard_state(3, Some(1)).write(&sim, dir()).await.expect("write");
    let original = read_file(&sim, &file_path()).await.expect("read").expect("the file exists").to_vec();
    for len in 0..original.len() {
        overwrite_raw(&sim, original[..len].to_vec()).await;
        assert_corrupt(PersistedHardState::read(&sim, dir()).await, &format!("truncated to {len} bytes"));
    }
    let mut extended = original.clone();
    extended.push(0);
    overwrite_raw(&sim, extended).await;
    assert_corrupt(PersistedHardState::read(&sim, dir()).await, "one byte appended");
    overwrite_raw(&sim, [original.clone(), original].concat()).await;
    assert_corrupt(PersistedHardState::read(&sim, dir()).await, "written twice");
}

#[tokio::test]
async fn on_media_corruption_is_detected_after_a_crash() {
    for byte in 0..u64::from(HARD_STATE_BYTES) {
        let sim = fresh_disk(byte, crash_config(0.5, 0.5)).await;
        hard_state(6, Some(2)).write(&sim, dir()).await.expect("write");
        sim.corrupt_durable(&file_path(), byte).expect("corrupt the durable image");
        assert_corrupt(crash_and_read(&sim).await, &format!("durable byte {byte} corrupted"));
    }
}

#[tokio::test]
async fn a_bit_flipped_on_the_way_from_the_disk_is_detected() {
    for seed in seeds(SEEDS_PER_SWEEP) {
        let _report = SeedReport(seed);
        let sim = fresh_disk(seed, SimDiskConfig { read_bit_flip: 1.0, ..SimDiskConfig::default() }).await;
        sim.set_faults_enabled(false);
        hard_state(8, Some(3)).write(&sim, dir()).await.expect("write");
        sim.set_faults_enabled(true);
        assert_corrupt(PersistedHardState::read(&sim, dir()).await, "read with a flipped bit");
        assert!(sim.fault_counts() != Default::default(), "the disk flipped nothing");
        sim.set_faults_enabled(false);
        assert_eq!(PersistedHardState::read(&sim, dir()).await.expect("clean read"), Some(hard_state(8, Some(3))));
    }
}

// ---------------------------------------------------------------------------------------------
// TermMonotonic, VoteKept
// ---------------------------------------------------------------------------------------------

/// The next hard state a Raft replica could persist after `current`: a vote in the current
/// term if it has not voted yet, or a later term (voting for itself as a candidate, or not).
fn raft_successor(current: PersistedHardState, rng: &mut ChaCha8Rng) -> PersistedHardState {
    let node = NodeId(rng.gen_range(0..NODE_IDS_MAX));
    if current.voted_for.is_none() && current.term.0 > 0 && rng.gen_bool(0.5) {
        return PersistedHardState { term: current.term, voted_for: Some(node) };
    }
    let term = Term(current.term.0 + rng.gen_range(1..=2));
    PersistedHardState { term, voted_for: rng.gen_bool(0.5).then_some(node) }
}

/// What a story has been promised so far.
#[derive(Debug, Default)]
struct Promises {
    /// The last hard state written with `Ok`, or read after a recovery.
    durable: Option<PersistedHardState>,
    /// The highest term written with `Ok` or read: no later read may show a lower one.
    term_floor: Term,
}

impl Promises {
    /// TermMonotonic and VoteKept for what a new process read after a crash that cut the
    /// write of `in_flight` (if any) short.
    fn check_recovered(&self, recovered: Option<PersistedHardState>, in_flight: Option<PersistedHardState>) {
        assert!(
            recovered == self.durable || (in_flight.is_some() && recovered == in_flight),
            "read {recovered:?}; durable {:?}, in flight {in_flight:?}",
            self.durable
        );
        let recovered = recovered.unwrap_or_default();
        assert!(recovered.term >= self.term_floor, "term went back from {} to {}", self.term_floor, recovered.term);
        if let Some(durable) = self.durable
            && durable.voted_for.is_some()
            && recovered.term == durable.term
        {
            assert_eq!(recovered.voted_for, durable.voted_for, "the vote in term {} was lost", durable.term);
        }
    }

    fn observe(&mut self, state: Option<PersistedHardState>) {
        self.durable = state;
        if let Some(state) = state {
            self.term_floor = self.term_floor.max(state.term);
        }
    }
}

#[tokio::test]
async fn term_never_goes_back_and_a_vote_is_never_lost_across_crashes() {
    for seed in seeds(SEEDS_PER_SWEEP) {
        let _report = SeedReport(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (keep_pending, torn_write) = CRASH_CONFIGS[rng.gen_range(0..CRASH_CONFIGS.len())];
        let sim = fresh_disk(seed, crash_config(keep_pending, torn_write)).await;
        let mut promises = Promises::default();
        for _ in 0..STORY_STEPS {
            let next = raft_successor(promises.durable.unwrap_or_default(), &mut rng);
            let disk = CrashableDisk::boot(&sim);
            if rng.gen_bool(0.4) {
                // Up to a few operations past the write's end: then it completes uncut.
                disk.arm(rng.gen_range(0..WRITE_DISK_OPS_MIN + 4));
            }
            let result = next.write(&disk, dir()).await;
            disk.disarm();
            if disk.crashed() {
                assert!(result.is_err(), "a write the power cut short cannot report success");
                let recovered = PersistedHardState::read(&sim, dir()).await.expect("never corrupt after a crash");
                promises.check_recovered(recovered, Some(next));
                promises.observe(recovered);
                continue;
            }
            result.expect("write");
            promises.observe(Some(next));
            assert_eq!(PersistedHardState::read(&disk, dir()).await.expect("read"), Some(next));
            if rng.gen_bool(0.2) {
                let recovered = crash_and_read(&sim).await.expect("never corrupt after a crash");
                promises.check_recovered(recovered, None);
            }
        }
        assert!(promises.term_floor > Term(0), "the story wrote nothing");
    }
}
