//! Fuzz target (structure-aware): a partition directory on a `SimDisk` (feature `sim` of
//! sluice-io) holding fuzzer-built segment files (valid batches with fuzzer-chosen headers,
//! gaps and overlaps, raw garbage, bit flips), optional stale index files and a checkpoint that
//! is absent, garbage or well formed; then `PartitionLog::open` recovers it.
//!
//! Why: recovery reads whatever a crash, a torn write or a bad disk left behind. It must never
//! panic, and what it keeps must be a dense log (sluice-storage's lib.rs invariants): reading
//! from the log start to the log end walks contiguous, CRC-valid batches; everything recovered
//! is flushed; reopening recovers the same log; and the next append lands at the log end.
//!
//! A well-formed checkpoint marks its segments below the recovery point as trusted (headers
//! walked, CRCs not checked at open), so damage there legitimately surfaces later as
//! `CorruptStoredBatch` on read; without one, every kept batch must verify.

#![no_main]

use std::path::Path;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{CheckpointSpec, PartitionDirSpec, block_on, encode_checkpoint, segment_bytes};
use sluice_io::sim_disk::{SimDisk, SimDiskConfig};
use sluice_io::{Disk, File, OpenOptions};
use sluice_storage::{CHECKPOINT_FILE, LogConfig, PartitionLog, StorageError};
use sluice_types::batch::{batches, build_batch};
use sluice_types::{BatchHeader, Offset, Term};

const NOW_MS: i64 = 1_700_000_000_000;
const SIM_DISK_SEED: u64 = 7;
/// Segment files, pieces per segment and bit flips per segment taken from one input.
const SEGMENTS_MAX: usize = 4;
const PIECES_MAX: usize = 8;
const FLIPS_MAX: usize = 8;
/// Reads in the dense-log walk; every read returns at least one batch, so this bounds the walk
/// far above any log an input can describe (the walk asserts it finished).
const READS_MAX: usize = 4096;
const READ_BYTES_MAX: u32 = 64 * 1024;

fuzz_target!(|input: PartitionDirSpec| {
    let disk = SimDisk::new(SIM_DISK_SEED, SimDiskConfig::default());
    let dir = Path::new("/partition");
    let crcs_valid = block_on(write_dir(&disk, dir, &input));
    // Segments below a well-formed checkpoint's recovery point are trusted: damage there (a bad
    // CRC, a gap) is a disk fault that recovery records rather than truncates (a "damaged
    // range"), and reads report it as CorruptStoredBatch.
    let trusted = matches!(input.checkpoint, CheckpointSpec::Valid { recovery_point, .. } if recovery_point > 0);

    let log = block_on(PartitionLog::open(disk.clone(), dir, LogConfig::default(), NOW_MS))
        .unwrap_or_else(|error| panic!("recovery failed on a fault-free disk: {error}"));
    assert!(log.log_start_offset() <= log.log_end_offset(), "log start past log end");
    assert_eq!(log.flushed_offset(), log.log_end_offset(), "recovered data not flushed");
    let walked = block_on(walk_dense(&log));
    if trusted && (walked.is_err() || !crcs_valid) {
        // Damage in a trusted segment: a later open that verifies that segment may truncate
        // it, so neither idempotence nor appends are checked for such a log.
        return;
    }
    if let Err(error) = walked {
        panic!("reading the recovered log [{:?}, {:?}) failed: {error}", log.log_start_offset(), log.log_end_offset());
    }

    // Recovery is idempotent: reopening a log that verifies throughout finds the same log.
    let (start, end, size) = (log.log_start_offset(), log.log_end_offset(), log.size_bytes());
    drop(log);
    let mut log = block_on(PartitionLog::open(disk.clone(), dir, LogConfig::default(), NOW_MS))
        .unwrap_or_else(|error| panic!("second open failed: {error}"));
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.size_bytes()), (start, end, size));

    // The next append lands at the log end.
    let header = BatchHeader::template(1, NOW_MS);
    let batch = BytesMut::from(&build_batch(&header, b"\x00")[..]);
    if let Ok(outcome) = block_on(log.append(batch, Term(0), NOW_MS)) {
        assert_eq!(outcome.info().base_offset, end, "append did not land at the log end");
    }
});

/// Writes the segment files, stale indexes and checkpoint, all durable. Returns whether every
/// batch that parses in the segment files (up to the first that does not) has a valid CRC.
async fn write_dir(disk: &SimDisk, dir: &Path, input: &PartitionDirSpec) -> bool {
    disk.create_dir_all(dir).await.expect("mkdir");
    let mut crcs_valid = true;
    for spec in input.segments.iter().take(SEGMENTS_MAX) {
        let base = format!("{:020}", spec.base_offset);
        let bytes = segment_bytes(spec, PIECES_MAX, FLIPS_MAX);
        crcs_valid &=
            batches(&bytes).map_while(Result::ok).all(|(header, range)| header.verify_crc(&bytes[range]).is_ok());
        write_file(disk, &dir.join(format!("{base}.log")), bytes).await;
        if let Some(index) = &input.stale_index {
            write_file(disk, &dir.join(format!("{base}.index")), index.clone()).await;
            write_file(disk, &dir.join(format!("{base}.timeindex")), index.clone()).await;
        }
    }
    let checkpoint = match &input.checkpoint {
        CheckpointSpec::Absent => None,
        CheckpointSpec::Raw(bytes) => Some(bytes.clone()),
        CheckpointSpec::Valid { log_start_offset, recovery_point } => {
            Some(encode_checkpoint(i64::from(*log_start_offset), i64::from(*recovery_point)))
        }
    };
    if let Some(bytes) = checkpoint {
        write_file(disk, &dir.join(CHECKPOINT_FILE), bytes).await;
    }
    disk.sync_dir(dir).await.expect("sync dir");
    crcs_valid
}

async fn write_file(disk: &SimDisk, path: &Path, bytes: Vec<u8>) {
    let file = disk.open(path, OpenOptions::CREATE).await.expect("create");
    file.write_at(0, Bytes::from(bytes)).await.expect("write");
    file.sync_data().await.expect("sync");
}

/// Reads the whole log from its start and checks the batches are contiguous and verify.
/// Returns the read error a corrupt stored batch causes (allowed only in trusted segments).
async fn walk_dense<D: Disk>(log: &PartitionLog<D>) -> Result<(), StorageError> {
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut expected_base: Option<Offset> = None;
    for _ in 0..READS_MAX {
        if offset >= end {
            return Ok(());
        }
        let records = match log.read(offset, READ_BYTES_MAX, end).await {
            Ok(read) => read.records,
            Err(error @ StorageError::CorruptStoredBatch { .. }) => return Err(error),
            Err(error) => panic!("read at {offset} of a recovered log [{:?}, {end}): {error}", log.log_start_offset()),
        };
        assert!(!records.is_empty(), "empty read below the log end");
        for item in batches(&records) {
            let (header, range) = item.expect("a read returns whole batches");
            BatchHeader::parse_verified(&records[range]).expect("a read returns verified batches");
            match expected_base {
                None => assert!(
                    header.base_offset <= offset && offset < header.next_offset(),
                    "first batch misses {offset}"
                ),
                Some(base) => assert_eq!(header.base_offset, base, "log not dense"),
            }
            expected_base = Some(header.next_offset());
            offset = header.next_offset();
        }
    }
    panic!("walk did not reach the log end {end} in {READS_MAX} reads");
}
