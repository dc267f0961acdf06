//! A replica's truncations and resets on the fault-injecting `SimDisk`, cut short by power loss
//! before each of their disk operations in turn (`CrashableDisk`).
//!
//! What every recovery must show (src/replication.rs, docs/format.md "Truncation and reset"):
//!
//! - PrefixOnly: after a crash inside a truncation, the log is a dense prefix of the log before
//!   it, byte for byte; after a crash inside a reset, that or the empty log at the new start.
//!   Never old batches after a new log start, never a hole.
//! - DurableKept: every batch below the truncation point that was durable is still there.
//! - DurableOnReturn: once `truncate_after` or `reset_to` returned, a crash keeps its result:
//!   nothing it removed comes back.
//! - NoResurrection: batches appended after the operation, of the same sizes at the same
//!   offsets as the removed ones (a new leader's entries replacing an old leader's) and lost or
//!   torn by a crash, never let a removed batch reappear behind them.
//!
//! Why: a truncation shrinks files and deletes them while later appends reuse the same offsets
//! and positions, the exact case where a reordered or lost `set_len` would splice two leaders'
//! logs together. Only a disk that drops and reorders unsynced operations shows it.
//!
//! Replay: a failing sweep prints its seed and a command that reruns only that seed
//! (`SLUICE_SEED=<seed> cargo test -p sluice-storage --test sim_disk_replication -- <test> --exact`).

mod common;

use bytes::{Bytes, BytesMut};
use common::{SeedReport, seeds};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_io::sim_disk::{CrashableDisk, SimDisk, SimDiskConfig};
use sluice_io::{Disk, File};
use sluice_storage::{LogConfig, PartitionLog, StorageError};
use sluice_types::batch::{batches, build_batch, set_base_offset, set_partition_leader_epoch};
use sluice_types::{BatchHeader, Offset, Term};
use std::path::Path;

const NOW_MS: i64 = 1_700_000_000_000;
const DATA_DIR: &str = "/data";
const PARTITION_DIR: &str = "/data/topic-0";
/// `segment.bytes` small enough that a few batches roll a segment.
const SEGMENT_BYTES_TINY: u32 = 1024;
/// Batches in a story's log before the operation, in two leader epochs.
const SETUP_BATCHES: std::ops::Range<u32> = 8..20;
const SETUP_RECORDS_MAX: i32 = 3;
const SETUP_PAYLOAD_BYTES: std::ops::Range<usize> = 40..500;
/// The epochs of the old leaders and of the new one whose entries follow the operation.
const EPOCH_OLD: Term = Term(1);
const EPOCH_DIVERGENT: Term = Term(2);
const EPOCH_NEW: Term = Term(3);
/// How far beyond the old log end a reset may restart the log.
const RESET_AHEAD_MAX: i64 = 50;
/// Seeds per crash-point sweep (each tries every crash point of its operation).
const CRASH_POINT_SEEDS: u64 = 12;
/// Crash points tried per operation before the sweep is declared unbounded.
const CRASH_POINTS_MAX: u64 = 500;
/// Seeds of the resurrection sweep.
const RESURRECTION_SEEDS: u64 = 200;
/// Read size for whole-log scans: larger than any segment here.
const READ_BYTES_MAX: u32 = 1 << 20;
/// Reads a scan may issue before it is declared stuck.
const SCAN_READS_MAX: u32 = 10_000;

/// The shape of a batch: records and payload bytes. Same shape at the same offset means the
/// same size at the same position.
type Shape = (i32, usize);

/// A batch as a leader stamped it; its bytes are unique to `sequence`.
fn leader_batch(sequence: u64, base_offset: Offset, epoch: Term, (records, payload_bytes): Shape) -> Bytes {
    let header = BatchHeader::template(records, NOW_MS + i64::try_from(sequence).expect("small"));
    let mix = sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let payload: Vec<u8> = (0..payload_bytes).map(|i| (mix >> ((i % 8) * 8)) as u8 ^ (i as u8)).collect();
    let mut bytes = BytesMut::from(&build_batch(&header, &payload)[..]);
    set_base_offset(&mut bytes, base_offset);
    set_partition_leader_epoch(&mut bytes, epoch);
    bytes.freeze()
}

fn shape_of(batch: &Bytes) -> Shape {
    let header = BatchHeader::parse(batch).expect("a batch");
    (header.record_count, batch.len() - 61)
}

fn base_of(batch: &Bytes) -> Offset {
    BatchHeader::parse(batch).expect("a batch").base_offset
}

fn next_of(batch: &Bytes) -> Offset {
    BatchHeader::parse(batch).expect("a batch").next_offset()
}

/// One replica's partition log on one simulated disk, and what it should hold.
struct Replica {
    sim: SimDisk,
    disk: CrashableDisk,
    config: LogConfig,
    log: Option<PartitionLog<CrashableDisk>>,
    /// What the log holds, from its first segment on, in offset order.
    batches: Vec<Bytes>,
    /// Every offset below it is covered by a completed flush.
    acknowledged_end: Offset,
    sequence: u64,
}

impl Replica {
    async fn new(seed: u64, sim_config: SimDiskConfig) -> Replica {
        let sim = SimDisk::new(seed, sim_config);
        sim.create_dir_all(Path::new(DATA_DIR)).await.expect("create data dir");
        sim.sync_dir(Path::new("/")).await.expect("sync root");
        let disk = CrashableDisk::boot(&sim);
        let config = LogConfig { segment_bytes: SEGMENT_BYTES_TINY, ..LogConfig::default() };
        let log =
            PartitionLog::open(disk.clone(), Path::new(PARTITION_DIR), config.clone(), NOW_MS).await.expect("open");
        Replica { sim, disk, config, log: Some(log), batches: Vec::new(), acknowledged_end: Offset(0), sequence: 0 }
    }

    fn log(&self) -> &PartitionLog<CrashableDisk> {
        self.log.as_ref().expect("the log is open")
    }

    fn log_mut(&mut self) -> &mut PartitionLog<CrashableDisk> {
        self.log.as_mut().expect("the log is open")
    }

    async fn append(&mut self, epoch: Term, shape: Shape) {
        self.sequence += 1;
        let batch = leader_batch(self.sequence, self.log().log_end_offset(), epoch, shape);
        self.log_mut().append_replicated(batch.clone(), NOW_MS).await.expect("replicated append");
        self.batches.push(batch);
    }

    async fn flush(&mut self) {
        let Some(plan) = self.log().flush_plan() else { return };
        for file in &plan.files {
            file.sync_data().await.expect("fsync");
        }
        assert!(self.log_mut().complete_flush_plan(&plan, NOW_MS).await.expect("complete"));
        self.acknowledged_end = plan.end_offset;
    }

    /// Power loss now, then a new process opens the log.
    async fn crash_and_recover(&mut self) {
        self.log = None;
        if !self.disk.crashed() {
            self.sim.crash();
        }
        self.disk = CrashableDisk::boot(&self.sim);
        let log = PartitionLog::open(self.disk.clone(), Path::new(PARTITION_DIR), self.config.clone(), NOW_MS)
            .await
            .expect("recovery");
        self.log = Some(log);
    }
}

/// A log of tiny segments: an old leader's batches, then a divergent one's, some flushed (and
/// the recovery point maybe moved up with them), the rest not.
async fn setup(seed: u64, rng: &mut ChaCha8Rng) -> Replica {
    let mut replica = Replica::new(seed, SimDiskConfig::default()).await;
    let count = rng.gen_range(SETUP_BATCHES);
    let flushed_after = rng.gen_range(0..=count);
    for index in 0..count {
        let epoch = if index < count / 2 { EPOCH_OLD } else { EPOCH_DIVERGENT };
        replica.append(epoch, (rng.gen_range(1..=SETUP_RECORDS_MAX), rng.gen_range(SETUP_PAYLOAD_BYTES))).await;
        if index + 1 == flushed_after {
            replica.flush().await;
            if rng.gen_bool(0.5) {
                replica.log_mut().write_checkpoint().await.expect("checkpoint");
            }
        }
    }
    replica
}

/// Every batch from the one holding `from` to the log end.
async fn scan<D: Disk>(log: &PartitionLog<D>) -> Vec<Bytes> {
    let (mut offset, log_end) = (log.log_start_offset(), log.log_end_offset());
    let mut out = Vec::new();
    for _ in 0..SCAN_READS_MAX {
        if offset >= log_end {
            return out;
        }
        let read = log.read(offset, READ_BYTES_MAX, log_end).await.expect("the recovered log reads back");
        for item in batches(&read.records) {
            let (header, range) = item.expect("whole batches");
            assert!(header.next_offset() > offset, "a read went backwards");
            offset = header.next_offset();
            out.push(read.records.slice(range));
        }
    }
    panic!("scan did not reach the log end {log_end}");
}

/// PrefixOnly: the log serves a dense prefix of `candidate` from its log start, and ends on a
/// batch boundary of it. Returns how many batches of `candidate` the log holds.
async fn assert_prefix_of<D: Disk>(log: &PartitionLog<D>, candidate: &[Bytes], what: &str) -> usize {
    let (log_start, log_end) = (log.log_start_offset(), log.log_end_offset());
    let kept = candidate.partition_point(|batch| base_of(batch) < log_end);
    let boundary = match kept {
        0 => log_start,
        _ => next_of(&candidate[kept - 1]),
    };
    assert_eq!(log_end, boundary, "{what}: the log end {log_end} is not a batch boundary");
    let expected: Vec<&Bytes> = candidate[..kept].iter().filter(|batch| next_of(batch) > log_start).collect();
    let served = scan(log).await;
    assert!(served.iter().collect::<Vec<_>>() == expected, "{what}: the log [{log_start}, {log_end}) is not a prefix");
    kept
}

/// The operation a crash cuts short.
#[derive(Clone, Copy, Debug)]
enum Rewrite {
    Truncate,
    /// Reset to an offset beyond the log end (the usual case: the follower is behind).
    ResetAhead,
    /// Reset to an offset inside the old log (the follower's log diverged before the leader's
    /// log start).
    ResetInside,
}

/// The offset the operation leaves the log ending at, chosen from the story's own rng.
fn target(replica: &Replica, rewrite: Rewrite, rng: &mut ChaCha8Rng) -> Offset {
    let log_end = replica.log().log_end_offset();
    match rewrite {
        Rewrite::Truncate => base_of(&replica.batches[rng.gen_range(0..replica.batches.len())]),
        Rewrite::ResetAhead => Offset(log_end.0 + rng.gen_range(0..RESET_AHEAD_MAX)),
        Rewrite::ResetInside => Offset(rng.gen_range(0..log_end.0)),
    }
}

async fn run(replica: &mut Replica, rewrite: Rewrite, new_end: Offset) -> Result<(), StorageError> {
    match rewrite {
        Rewrite::Truncate => replica.log_mut().truncate_after(Offset(new_end.0 - 1)).await,
        Rewrite::ResetAhead | Rewrite::ResetInside => replica.log_mut().reset_to(new_end, NOW_MS).await,
    }
}

/// For each seed, crashes the operation before its 1st, 2nd, ... disk operation until it runs
/// to completion; after every crash the recovered log must be the old log's prefix or the
/// result, and must stay so across appends of the new leader's entries and another crash.
async fn crash_at_every_point_of(rewrite: Rewrite) {
    for seed in seeds(CRASH_POINT_SEEDS) {
        let _report = SeedReport(seed);
        let mut completed = false;
        for crash_after_ops in 0..CRASH_POINTS_MAX {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut replica = setup(seed, &mut rng).await;
            let (old, old_start, acknowledged) =
                (replica.batches.clone(), replica.log().log_start_offset(), replica.acknowledged_end);
            let new_end = target(&replica, rewrite, &mut rng);
            replica.disk.arm(crash_after_ops);
            let result = run(&mut replica, rewrite, new_end).await;
            replica.disk.disarm();
            completed = !replica.disk.crashed();
            match &result {
                Ok(()) => assert!(completed, "{rewrite:?} succeeded although the power failed inside it"),
                Err(error) => assert!(!completed, "{rewrite:?} failed without a fault: {error}"),
            }
            replica.crash_and_recover().await;
            let log = replica.log();
            let what = format!("{rewrite:?} to {new_end}, crash after {crash_after_ops} ops");
            let is_result = log.log_start_offset() == new_end && log.log_end_offset() == new_end;
            let kept = match rewrite {
                Rewrite::Truncate => {
                    assert_eq!(log.log_start_offset(), old_start, "{what}: a truncation moved the log start");
                    let kept = assert_prefix_of(log, &old, &what).await;
                    let durable_kept = acknowledged.min(new_end);
                    assert!(log.log_end_offset() >= durable_kept, "{what}: lost durable batches below {durable_kept}");
                    if completed {
                        assert!(log.log_end_offset() <= new_end, "{what}: a completed truncation came undone");
                    }
                    kept
                }
                Rewrite::ResetAhead | Rewrite::ResetInside if completed || is_result => {
                    assert!(is_result, "{what}: a completed reset came undone");
                    assert_eq!(scan(log).await, Vec::<Bytes>::new());
                    0
                }
                Rewrite::ResetAhead | Rewrite::ResetInside => {
                    assert_eq!(log.log_start_offset(), old_start, "{what}: neither the old log nor the reset");
                    assert_prefix_of(log, &old, &what).await
                }
            };
            replica.batches.truncate(kept);
            // The new leader's entries, shaped like the removed ones, then another power loss.
            let removed: Vec<Shape> = old[kept..].iter().map(shape_of).collect();
            for shape in removed.into_iter().take(4) {
                replica.append(EPOCH_NEW, shape).await;
            }
            replica.crash_and_recover().await;
            assert_prefix_of(replica.log(), &replica.batches, &format!("{what}, then appends and a crash")).await;
            if completed {
                break;
            }
        }
        assert!(completed, "{rewrite:?} still crashing after {CRASH_POINTS_MAX} points");
    }
}

#[tokio::test]
async fn crash_at_every_point_of_a_truncation() {
    crash_at_every_point_of(Rewrite::Truncate).await;
}

#[tokio::test]
async fn crash_at_every_point_of_a_reset_behind_the_leader() {
    crash_at_every_point_of(Rewrite::ResetAhead).await;
}

#[tokio::test]
async fn crash_at_every_point_of_a_reset_inside_the_old_log() {
    crash_at_every_point_of(Rewrite::ResetInside).await;
}

#[tokio::test]
async fn appends_over_a_truncated_suffix_never_bring_it_back() {
    // Everything is durable before the truncation, so the removed batches are on the medium;
    // the new leader's same-sized batches are not flushed, and the crash keeps any subset of
    // them, torn at sectors.
    for seed in seeds(RESURRECTION_SEEDS) {
        let _report = SeedReport(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut replica = setup(seed, &mut rng).await;
        replica.flush().await;
        replica.sim.set_config(SimDiskConfig {
            crash_keep_pending: 0.5,
            crash_torn_write: 0.5,
            ..replica.sim.config()
        });
        let new_end = target(&replica, Rewrite::Truncate, &mut rng);
        let kept = replica.batches.partition_point(|batch| base_of(batch) < new_end);
        replica.log_mut().truncate_after(Offset(new_end.0 - 1)).await.expect("truncation");
        let removed: Vec<Shape> = replica.batches.drain(kept..).map(|batch| shape_of(&batch)).collect();
        for shape in removed {
            replica.append(EPOCH_NEW, shape).await;
        }
        replica.crash_and_recover().await;
        let end = replica.log().log_end_offset();
        assert!(end >= new_end, "seed {seed}: the truncation's durable prefix was lost");
        assert_prefix_of(replica.log(), &replica.batches, &format!("seed {seed}")).await;
    }
}

#[tokio::test]
async fn a_log_that_ends_below_its_checkpointed_log_start_restarts_empty_there() {
    // The checkpoint's log start decides (recovery.rs): DeleteRecords up to an unflushed log
    // end (acks=1 topics serve up to it), then a crash that loses every unflushed write. The
    // log must not hand out offsets below its durable log start again.
    let lose_unsynced = SimDiskConfig { crash_keep_pending: 0.0, ..SimDiskConfig::default() };
    let mut replica = Replica::new(5, lose_unsynced).await;
    for _ in 0..6 {
        replica.append(EPOCH_OLD, (2, 300)).await;
    }
    replica.flush().await;
    for _ in 0..6 {
        replica.append(EPOCH_OLD, (2, 300)).await;
    }
    let log_start = replica.log().log_end_offset();
    assert!(replica.acknowledged_end < log_start);
    replica.log_mut().delete_records(log_start).await.expect("DeleteRecords");
    replica.crash_and_recover().await;
    let log = replica.log();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (log_start, log_start));
    assert_eq!(scan(log).await, Vec::<Bytes>::new());
    replica.batches.clear();
    replica.append(EPOCH_NEW, (1, 10)).await;
    replica.crash_and_recover().await;
    assert_prefix_of(replica.log(), &replica.batches, "after the restart at the log start").await;
}
