//! Property test: the partition log against a reference model, on a crashing `SimDisk`.
//!
//! What: proptest generates a disk seed, crash behaviour, a tiny `segment.bytes` and a sequence
//! of operations (append, replicated append, flush, read, retention, DeleteRecords, a replica's
//! truncation and reset, power loss between or inside operations, clean reopen). Each runs
//! against the real `PartitionLog` and against a model: the acknowledged-durable batches
//! (covered by a completed flush) and the maybe-present batches (appended, not yet flushed).
//! A truncation first turns the durable batches it removes into maybe-present ones (a crash
//! inside it may keep any prefix of them) and forgets them once it returns (it is durable
//! then); a reset makes everything maybe-present until it returns, and a crash inside it may
//! also leave the empty log at its target. After every recovery the log must hold:
//!
//! - DurableSurvives: every acknowledged-durable batch, byte for byte, at its offset;
//! - PrefixOnly: a dense prefix of everything appended, durable batches then maybe-present ones,
//!   with no holes, reordering or garbage, and a log end on a batch boundary;
//! - LogStartMonotonic: a log start offset no lower than the last one durably recorded.
//!
//! Every read, between crashes too, must serve whole batches identical to the appended ones.
//!
//! Why: scenario tests (sluice-storage tests/sim_disk_recovery.rs) pin the known-hard cases; this
//! one searches the interleavings nobody thought of and shrinks a failure to a short script
//! (DESIGN.md, "Verification": proptests of storage recovery against a reference model).
//!
//! Replay: the minimal failing case is printed in full (disk seed and operations); the run is a
//! pure function of it. `PROPTEST_CASES` raises the case count; `PROPTEST_RNG_SEED` fixes the
//! generator. Failure persistence files are off: paste a printed case into a test to pin it.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sluice_io::sim_disk::{CrashableDisk, SimDisk, SimDiskConfig};
use sluice_io::{Disk, File};
use sluice_storage::{LogConfig, PartitionLog, StorageError};
use sluice_types::batch::{batches, build_batch, set_base_offset, set_partition_leader_epoch};
use sluice_types::{BatchHeader, Offset, Term};
use std::path::Path;

const NOW_MS: i64 = 1_700_000_000_000;
const TERM: Term = Term(1);
/// The broker's data directory (durable before the partition is opened) and the partition.
const DATA_DIR: &str = "/data";
const PARTITION_DIR: &str = "/data/topic-0";
/// Cases per run unless `PROPTEST_CASES` says otherwise.
const CASES_DEFAULT: u32 = 256;
/// Operations per case.
const OPS_PER_CASE_MAX: usize = 60;
/// Records per appended batch: 1..=RECORDS_MAX.
const RECORDS_MAX: i32 = 5;
/// Payload bytes per batch: 0..PAYLOAD_BYTES_MAX.
const PAYLOAD_BYTES_MAX: usize = 3_000;
/// `segment.bytes` choices: `SEGMENT_BYTES_MIN` and a few sectors more.
const SEGMENT_BYTES_CHOICES: [u32; 2] = [1_024, 4_096];
/// `retention.bytes`: a few tiny segments.
const RETENTION_BYTES: i64 = 8 * 1_024;
/// A crash inside an operation strikes before one of its first this many disk operations.
const CRASH_DISK_OPS_MAX: u16 = 80;
/// Read sizes: one batch (KIP-74 minimum) or everything up to a segment.
const READ_BYTES_CHOICES: [u32; 2] = [1, 1 << 20];
/// Reads a whole-log scan may issue.
const SCAN_READS_MAX: u32 = 100_000;
/// How far beyond the log end a reset may restart the log.
const RESET_AHEAD_MAX: i64 = 40;

// ---------------------------------------------------------------------------------------------
// The generated case.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Append {
        records: i32,
        payload_bytes: usize,
    },
    /// The same batch stamped as a leader would, through `append_replicated`.
    AppendReplicated {
        records: i32,
        payload_bytes: usize,
    },
    /// Plan, fsync every file, complete: acknowledges everything appended so far.
    Flush,
    /// Reads at `log_start + at % (log_end - log_start)`.
    Read {
        at: u32,
        max_bytes: u32,
    },
    Retention,
    /// DeleteRecords up to `log_start + at % (flushed - log_start + 1)`.
    DeleteRecords {
        at: u32,
    },
    /// Truncates so that the log ends at the base offset of the `at % n`-th of the n batches
    /// that start at or above the log start.
    Truncate {
        at: u32,
    },
    /// Resets to `log_start + at % (log_end - log_start + RESET_AHEAD_MAX)`.
    Reset {
        at: u32,
    },
    /// Power loss now; then recovery, itself cut short before its `during_recovery`-th disk op.
    Crash {
        during_recovery: Option<u16>,
    },
    /// The power fails before the (`disk_ops`+1)-th disk operation from now, in whatever
    /// operation that is; recovery follows.
    CrashDuringNext {
        disk_ops: u16,
    },
    /// Clean shutdown and restart.
    Reopen,
}

#[derive(Clone, Debug)]
struct Case {
    disk_seed: u64,
    crash_keep_pending: f64,
    crash_torn_write: f64,
    segment_bytes: u32,
    ops: Vec<Op>,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1..=RECORDS_MAX, 0..PAYLOAD_BYTES_MAX)
            .prop_map(|(records, payload_bytes)| Op::Append { records, payload_bytes }),
        4 => (1..=RECORDS_MAX, 0..PAYLOAD_BYTES_MAX)
            .prop_map(|(records, payload_bytes)| Op::AppendReplicated { records, payload_bytes }),
        3 => Just(Op::Flush),
        3 => (any::<u32>(), prop::sample::select(READ_BYTES_CHOICES.to_vec()))
            .prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::Retention),
        1 => any::<u32>().prop_map(|at| Op::DeleteRecords { at }),
        2 => any::<u32>().prop_map(|at| Op::Truncate { at }),
        1 => any::<u32>().prop_map(|at| Op::Reset { at }),
        1 => prop::option::of(0..CRASH_DISK_OPS_MAX).prop_map(|during_recovery| Op::Crash { during_recovery }),
        1 => (0..CRASH_DISK_OPS_MAX).prop_map(|disk_ops| Op::CrashDuringNext { disk_ops }),
        1 => Just(Op::Reopen),
    ]
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        prop::sample::select(vec![0.5, 0.0, 1.0]),
        prop::sample::select(vec![1.0, 0.0]),
        prop::sample::select(SEGMENT_BYTES_CHOICES.to_vec()),
        prop::collection::vec(op_strategy(), 1..OPS_PER_CASE_MAX),
    )
        .prop_map(|(disk_seed, crash_keep_pending, crash_torn_write, segment_bytes, ops)| Case {
            disk_seed,
            crash_keep_pending,
            crash_torn_write,
            segment_bytes,
            ops,
        })
}

// ---------------------------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------------------------

/// A batch as the log stores it.
#[derive(Clone, Debug)]
struct Appended {
    base_offset: Offset,
    next_offset: Offset,
    bytes: Bytes,
}

#[derive(Debug, Default)]
struct Model {
    /// Covered by a completed flush (or recovered by an open, which fsyncs what it keeps).
    durable: Vec<Appended>,
    /// Appended after the last completed flush: each may or may not survive a crash, but only
    /// as a prefix.
    unsynced: Vec<Appended>,
    /// The highest log start offset durably recorded.
    log_start_floor: Offset,
    /// The log end when the model holds no batch: 0, or where the last reset restarted it.
    empty_end: Offset,
    /// A reset in progress: its target and the log start before it.
    pending_reset: Option<(Offset, Offset)>,
}

impl Model {
    fn all(&self) -> impl Iterator<Item = &Appended> {
        self.durable.iter().chain(&self.unsynced)
    }

    fn end(&self) -> Offset {
        self.all().last().map_or(self.empty_end, |batch| batch.next_offset)
    }

    fn durable_end(&self) -> Offset {
        self.durable.last().map_or(self.empty_end, |batch| batch.next_offset)
    }

    fn push(&mut self, batch: Appended) {
        assert_eq!(batch.base_offset, self.end(), "the model is dense");
        self.unsynced.push(batch);
    }

    /// A flush up to `end_offset` completed.
    fn acknowledge(&mut self, end_offset: Offset) {
        let flushed = self.unsynced.partition_point(|batch| batch.next_offset <= end_offset);
        self.durable.extend(self.unsynced.drain(..flushed));
        assert!(self.unsynced.first().is_none_or(|batch| batch.base_offset >= end_offset));
    }

    fn find(&self, base_offset: Offset) -> Option<&Appended> {
        self.all().find(|batch| batch.base_offset == base_offset)
    }

    /// A truncation to `new_end` is about to run: until it returns, a crash may keep any prefix
    /// of the durable batches it removes.
    fn truncating(&mut self, new_end: Offset) {
        let removed_from = self.durable.partition_point(|batch| batch.base_offset < new_end);
        let maybe: Vec<Appended> = self.durable.drain(removed_from..).collect();
        self.unsynced.splice(0..0, maybe);
    }

    /// The truncation returned: it is durable, what it removed is gone for good.
    fn truncated(&mut self, new_end: Offset) {
        assert!(self.durable.last().is_none_or(|batch| batch.next_offset <= new_end));
        self.unsynced.retain(|batch| batch.base_offset < new_end);
    }

    /// A reset is about to run: until it returns, a crash may keep any prefix of the old log.
    fn resetting(&mut self, target: Offset, log_start: Offset) {
        let mut maybe = std::mem::take(&mut self.durable);
        maybe.append(&mut self.unsynced);
        self.unsynced = maybe;
        self.pending_reset = Some((target, log_start));
    }

    /// The log is empty at `log_start` (a reset returned, or a crash inside one left it so).
    fn restarted(&mut self, log_start: Offset) {
        self.durable.clear();
        self.unsynced.clear();
        self.empty_end = log_start;
        self.log_start_floor = self.log_start_floor.max(log_start);
        self.pending_reset = None;
    }

    /// After a recovery that ended the log at `log_end`: what survived becomes the new durable
    /// log, everything else never happened.
    fn recovered(&mut self, log_end: Offset) {
        self.durable = self.all().filter(|batch| batch.base_offset < log_end).cloned().collect();
        self.unsynced.clear();
    }
}

/// A producer batch unique to `sequence` (timestamp and payload).
fn producer_batch(sequence: u64, records: i32, payload_bytes: usize) -> BytesMut {
    let timestamp_ms = NOW_MS + i64::try_from(sequence).expect("small sequence");
    let header = BatchHeader::template(records, timestamp_ms);
    let mix = sequence.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let payload: Vec<u8> = (0..payload_bytes).map(|i| (mix >> ((i % 8) * 8)) as u8 ^ (i as u8)).collect();
    BytesMut::from(&build_batch(&header, &payload)[..])
}

fn stamped(batch: &BytesMut, base_offset: Offset) -> Appended {
    let mut bytes = batch.clone();
    set_base_offset(&mut bytes, base_offset);
    set_partition_leader_epoch(&mut bytes, TERM);
    let header = BatchHeader::parse_verified(&bytes).expect("a valid producer batch");
    Appended { base_offset, next_offset: header.next_offset(), bytes: bytes.freeze() }
}

// ---------------------------------------------------------------------------------------------
// The system under test, driven in lockstep with the model.
// ---------------------------------------------------------------------------------------------

struct System {
    sim: SimDisk,
    disk: CrashableDisk,
    config: LogConfig,
    /// `None` only inside `recover`.
    log: Option<PartitionLog<CrashableDisk>>,
    model: Model,
    sequence: u64,
}

impl System {
    async fn new(case: &Case) -> System {
        let sim_config = SimDiskConfig {
            crash_keep_pending: case.crash_keep_pending,
            crash_torn_write: case.crash_torn_write,
            ..SimDiskConfig::default()
        };
        let sim = SimDisk::new(case.disk_seed, sim_config);
        sim.create_dir_all(Path::new(DATA_DIR)).await.expect("create data dir");
        sim.sync_dir(Path::new("/")).await.expect("sync root");
        let config =
            LogConfig { segment_bytes: case.segment_bytes, retention_bytes: RETENTION_BYTES, ..LogConfig::default() };
        let disk = CrashableDisk::boot(&sim);
        let log = PartitionLog::open(disk.clone(), Path::new(PARTITION_DIR), config.clone(), NOW_MS)
            .await
            .expect("open a new partition");
        System { sim, disk, config, log: Some(log), model: Model::default(), sequence: 0 }
    }

    fn log(&self) -> &PartitionLog<CrashableDisk> {
        self.log.as_ref().expect("the log is open")
    }

    fn log_mut(&mut self) -> &mut PartitionLog<CrashableDisk> {
        self.log.as_mut().expect("the log is open")
    }

    /// Runs one operation; if the power failed inside it, recovers.
    async fn step(&mut self, op: &Op) {
        let result = self.apply(op).await;
        if self.disk.crashed() {
            // An append whose batch reached the log file before the cut succeeds: only its
            // best-effort index update (rebuilt at every open) failed. The model records it as
            // appended and unflushed either way, so recovery may or may not keep it.
            let append_after_write = matches!(op, Op::Append { .. } | Op::AppendReplicated { .. }) && result.is_ok();
            assert!(result.is_err() || append_after_write, "{op:?} succeeded although the power failed inside it");
            self.recover(None).await;
        } else if let Err(error) = result {
            panic!("{op:?} failed without a fault: {error}");
        }
    }

    async fn apply(&mut self, op: &Op) -> Result<(), StorageError> {
        match *op {
            Op::Append { records, payload_bytes } => self.append(records, payload_bytes).await,
            Op::AppendReplicated { records, payload_bytes } => self.append_replicated(records, payload_bytes).await,
            Op::Flush => self.flush().await,
            Op::Read { at, max_bytes } => self.read(at, max_bytes).await,
            Op::Retention => {
                self.log_mut().enforce_retention(NOW_MS).await?;
                self.raise_log_start_floor(self.log().log_start_offset());
                Ok(())
            }
            Op::DeleteRecords { at } => {
                let (start, flushed) = (self.log().log_start_offset().0, self.log().flushed_offset().0);
                let target = Offset(start + i64::from(at) % (flushed - start + 1));
                let log_start = self.log_mut().delete_records(target).await?;
                self.raise_log_start_floor(log_start);
                Ok(())
            }
            Op::Truncate { at } => self.truncate(at).await,
            Op::Reset { at } => {
                let (start, end) = (self.log().log_start_offset(), self.log().log_end_offset());
                let target = Offset(start.0 + i64::from(at) % (end.0 - start.0 + RESET_AHEAD_MAX));
                self.model.resetting(target, start);
                self.log_mut().reset_to(target, NOW_MS).await?;
                self.model.restarted(target);
                Ok(())
            }
            Op::Crash { during_recovery } => {
                self.sim.crash();
                self.recover(during_recovery).await;
                Ok(())
            }
            Op::CrashDuringNext { disk_ops } => {
                self.disk.arm(u64::from(disk_ops));
                Ok(())
            }
            Op::Reopen => {
                let end = self.log().log_end_offset();
                self.log_mut().close(NOW_MS).await?;
                self.model.acknowledge(end);
                self.recover(None).await;
                Ok(())
            }
        }
    }

    fn raise_log_start_floor(&mut self, log_start: Offset) {
        self.model.log_start_floor = self.model.log_start_floor.max(log_start);
    }

    async fn append(&mut self, records: i32, payload_bytes: usize) -> Result<(), StorageError> {
        self.sequence += 1;
        let batch = producer_batch(self.sequence, records, payload_bytes);
        let expected = stamped(&batch, self.log().log_end_offset());
        assert_eq!(expected.base_offset, self.model.end(), "log end and model end agree");
        let result = self.log_mut().append(batch, TERM, NOW_MS).await;
        match &result {
            Ok(outcome) => assert_eq!(outcome.info().base_offset, expected.base_offset, "append at the log end"),
            // Maybe on the disk, maybe not: the crash decides.
            Err(_) if self.disk.crashed() => {}
            Err(_) => return result.map(drop),
        }
        self.model.push(expected);
        result.map(drop)
    }

    /// A follower's append: the leader's stamped bytes, stored verbatim.
    async fn append_replicated(&mut self, records: i32, payload_bytes: usize) -> Result<(), StorageError> {
        self.sequence += 1;
        let expected = stamped(&producer_batch(self.sequence, records, payload_bytes), self.log().log_end_offset());
        assert_eq!(expected.base_offset, self.model.end(), "log end and model end agree");
        let result = self.log_mut().append_replicated(expected.bytes.clone(), NOW_MS).await;
        match &result {
            Ok(info) => assert_eq!(info.base_offset, expected.base_offset, "append at the log end"),
            Err(_) if self.disk.crashed() => {}
            Err(_) => return result.map(drop),
        }
        self.model.push(expected);
        result.map(drop)
    }

    /// A replica's truncation at a batch boundary at or above the log start.
    async fn truncate(&mut self, at: u32) -> Result<(), StorageError> {
        let (start, end) = (self.log().log_start_offset(), self.log().log_end_offset());
        let bases: Vec<Offset> =
            self.model.all().map(|batch| batch.base_offset).filter(|base| *base >= start && *base < end).collect();
        if bases.is_empty() {
            return Ok(());
        }
        let new_end = bases[at as usize % bases.len()];
        self.model.truncating(new_end);
        self.log_mut().truncate_after(Offset(new_end.0 - 1)).await?;
        assert_eq!(self.log().log_end_offset(), new_end);
        self.model.truncated(new_end);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StorageError> {
        let Some(plan) = self.log().flush_plan() else {
            return Ok(());
        };
        for file in &plan.files {
            file.sync_data().await?;
        }
        let recorded = self.log_mut().complete_flush_plan(&plan, NOW_MS).await?;
        assert!(recorded, "nothing truncated the log during the flush");
        self.model.acknowledge(plan.end_offset);
        Ok(())
    }

    async fn read(&mut self, at: u32, max_bytes: u32) -> Result<(), StorageError> {
        let (start, end) = (self.log().log_start_offset(), self.log().log_end_offset());
        if start >= end {
            return Ok(());
        }
        let offset = Offset(start.0 + i64::from(at) % (end.0 - start.0));
        let read = self.log().read(offset, max_bytes, end).await?;
        assert!(!read.records.is_empty(), "a read below the log end returns a batch");
        assert_served_intact(&self.model, offset, &read.records);
        Ok(())
    }

    /// A new process opens the log, perhaps losing power again `during_recovery`, then the
    /// recovery invariants are checked and the model adopts what survived.
    async fn recover(&mut self, during_recovery: Option<u16>) {
        self.log = None;
        self.disk = CrashableDisk::boot(&self.sim);
        if let Some(disk_ops) = during_recovery {
            self.disk.arm(u64::from(disk_ops));
        }
        let log = match self.open().await {
            Ok(log) => log,
            Err(error) => {
                assert!(self.disk.crashed(), "recovery failed without a fault: {error}");
                self.disk = CrashableDisk::boot(&self.sim);
                self.open().await.expect("recovery after a crash during recovery")
            }
        };
        // The crash was meant for recovery only: the checks below must not trip it.
        self.disk.disarm();
        self.log = Some(log);
        self.check_recovered().await;
    }

    async fn open(&self) -> Result<PartitionLog<CrashableDisk>, StorageError> {
        PartitionLog::open(self.disk.clone(), Path::new(PARTITION_DIR), self.config.clone(), NOW_MS).await
    }

    /// DurableSurvives, PrefixOnly and LogStartMonotonic.
    async fn check_recovered(&mut self) {
        let (log_start, log_end) = (self.log().log_start_offset(), self.log().log_end_offset());
        if let Some((target, old_start)) = self.model.pending_reset.take() {
            assert!(log_start == target || log_start == old_start, "a crashed reset left log start {log_start}");
            if log_start == log_end {
                // The reset's result, or the empty prefix of the old log at its start.
                assert!(log_start >= self.model.log_start_floor, "log start {log_start} below the floor");
                assert!(scan(self.log(), log_start).await.expect("reads").is_empty());
                self.model.restarted(log_start);
                return;
            }
            assert_eq!(log_start, old_start, "a crashed reset left old batches after its new start");
        }
        let model = &self.model;
        assert!(log_start >= model.log_start_floor, "log start {log_start} below {}", model.log_start_floor);
        assert!(log_end >= model.durable_end(), "acknowledged batches lost: log end {log_end}");
        let boundary = model.all().map(|batch| batch.next_offset).take_while(|next| *next <= log_end).last();
        assert_eq!(log_end, boundary.unwrap_or(model.empty_end), "log end is not a boundary of the appended prefix");
        let served = scan(self.log(), log_start).await.expect("the recovered log reads back");
        let expected: Vec<&Bytes> = model
            .all()
            .filter(|batch| batch.next_offset > log_start && batch.base_offset < log_end)
            .map(|batch| &batch.bytes)
            .collect();
        assert!(served.iter().collect::<Vec<_>>() == expected, "the recovered log is not the appended prefix");
        self.model.recovered(log_end);
    }
}

/// Every batch from the one holding `from` to the log end.
async fn scan<D: Disk>(log: &PartitionLog<D>, from: Offset) -> Result<Vec<Bytes>, StorageError> {
    let (mut offset, log_end) = (from, log.log_end_offset());
    let mut out = Vec::new();
    for _ in 0..SCAN_READS_MAX {
        if offset >= log_end {
            return Ok(out);
        }
        let read = log.read(offset, READ_BYTES_CHOICES[1], log_end).await?;
        for item in batches(&read.records) {
            let (header, range) = item.expect("reads return whole batches");
            assert!(header.next_offset() > offset, "a read went backwards");
            offset = header.next_offset();
            out.push(read.records.slice(range));
        }
    }
    panic!("scan from {from} did not reach the log end {log_end}");
}

/// A read at `requested` served whole batches identical to the appended ones, the first one
/// holding `requested`, dense after it.
fn assert_served_intact(model: &Model, requested: Offset, records: &Bytes) {
    let mut expected_base = None;
    for item in batches(records) {
        let (header, range) = item.unwrap_or_else(|error| panic!("read at {requested} served a broken batch: {error}"));
        let appended = model.find(header.base_offset).unwrap_or_else(|| panic!("read served unknown batch"));
        assert!(records[range] == appended.bytes[..], "read at {requested} served corrupted bytes");
        match expected_base {
            None => assert!(header.base_offset <= requested && requested < header.next_offset()),
            Some(expected) => assert_eq!(header.base_offset, expected, "read at {requested} skipped offsets"),
        }
        expected_base = Some(header.next_offset());
    }
}

fn run(case: &Case) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    runtime.block_on(async {
        let mut system = System::new(case).await;
        for op in &case.ops {
            system.step(op).await;
        }
        // Whatever happened, a final power loss keeps every acknowledged batch.
        system.sim.crash();
        system.recover(None).await;
    });
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(CASES_DEFAULT)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn partition_log_matches_the_model_across_crashes(case in case_strategy()) {
        run(&case);
    }
}
