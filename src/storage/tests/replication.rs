//! A replica's log on the real file system: replicated appends stored verbatim, truncation of a
//! conflicting suffix (Raft §5.3; KIP-101, KIP-279) and reset behind the leader's log start, each
//! followed by reads, appends and a reopen that must find the same state.
//!
//! Crashes in the middle of these operations are in `sim_disk_replication.rs`.

use bytes::{Bytes, BytesMut};
use sluice_io::{Disk, File, StdDisk};
use sluice_storage::{AppendOutcome, Checkpoint, LogConfig, PartitionLog, StorageError};
use sluice_types::batch::{batches, build_batch, set_base_offset, set_log_append_time, set_partition_leader_epoch};
use sluice_types::{BatchError, BatchHeader, Offset, ProducerEpoch, ProducerId, Sequence, Term};
use std::path::Path;

const NOW_MS: i64 = 1_700_000_000_000;
/// `segment.bytes` small enough that three of the test batches roll a segment.
const SEGMENT_BYTES_TINY: u32 = 1024;
/// A payload that makes three batches fill most of a tiny segment.
const PAYLOAD_BYTES_THIRD: usize = 250;
/// Kafka protocol, RecordBatch attributes bit 5: a control batch.
const ATTRIBUTE_CONTROL: i16 = 0x20;
/// The first byte the CRC-32C covers (attributes).
const CRC_COVERED_FROM_BYTE: usize = 21;
/// Leader epochs the observations cover.
const EPOCHS_OBSERVED: i32 = 6;
/// Reads larger than any test log.
const READ_BYTES_MAX: u32 = 1 << 24;

/// A batch as a leader stamped it: `records` records from `base_offset`, in leader epoch `epoch`.
fn leader_batch(base_offset: i64, epoch: i32, records: i32, timestamp_ms: i64, payload_bytes: usize) -> Bytes {
    let header = BatchHeader::template(records, timestamp_ms);
    stamp(build_batch(&header, &vec![(base_offset % 251) as u8; payload_bytes]), base_offset, epoch)
}

/// An idempotent producer's batch as a leader stamped it (KIP-98).
fn producer_batch(base_offset: i64, epoch: i32, producer: (i64, i16), sequence: i32, records: i32) -> Bytes {
    let mut header = BatchHeader::template(records, NOW_MS);
    header.producer_id = ProducerId(producer.0);
    header.producer_epoch = ProducerEpoch(producer.1);
    header.base_sequence = Sequence(sequence);
    stamp(build_batch(&header, b"idempotent"), base_offset, epoch)
}

/// A one-record control batch (a Raft leader's no-op is one).
fn control_batch(base_offset: i64, epoch: i32) -> Bytes {
    let mut header = BatchHeader::template(1, NOW_MS);
    header.attributes = ATTRIBUTE_CONTROL;
    stamp(build_batch(&header, &[0, 0, 0, 5]), base_offset, epoch)
}

fn stamp(bytes: Vec<u8>, base_offset: i64, epoch: i32) -> Bytes {
    let mut bytes = BytesMut::from(&bytes[..]);
    set_base_offset(&mut bytes, Offset(base_offset));
    set_partition_leader_epoch(&mut bytes, Term(epoch));
    bytes.freeze()
}

fn tiny_segments() -> LogConfig {
    LogConfig { segment_bytes: SEGMENT_BYTES_TINY, ..LogConfig::default() }
}

async fn open(dir: &Path, config: &LogConfig) -> PartitionLog<StdDisk> {
    PartitionLog::open(StdDisk, dir, config.clone(), NOW_MS).await.expect("open")
}

async fn flush(log: &mut PartitionLog<StdDisk>) {
    if let Some(plan) = log.flush_plan() {
        for file in &plan.files {
            file.sync_data().await.unwrap();
        }
        assert!(log.complete_flush_plan(&plan, NOW_MS).await.unwrap());
    }
}

/// Appends `count` leader batches of `records` records each at the log end in `epoch`; the
/// timestamps go up and down so that the largest one is not simply the last.
async fn append_leader_batches(log: &mut PartitionLog<StdDisk>, count: i64, epoch: i32, records: i32) -> Vec<Bytes> {
    let mut appended = Vec::new();
    for _ in 0..count {
        let base = log.log_end_offset().0;
        let timestamp_ms = NOW_MS + (base * 37) % 101;
        let batch = leader_batch(base, epoch, records, timestamp_ms, PAYLOAD_BYTES_THIRD);
        let info = log.append_replicated(batch.clone(), NOW_MS).await.unwrap();
        assert_eq!((info.base_offset, info.last_offset), (Offset(base), Offset(base + i64::from(records) - 1)));
        appended.push(batch);
    }
    appended
}

/// Every batch from the log start to the log end, as served.
async fn scan(log: &PartitionLog<StdDisk>) -> Vec<Bytes> {
    let (mut offset, log_end) = (log.log_start_offset(), log.log_end_offset());
    let mut out = Vec::new();
    while offset < log_end {
        let read = log.read(offset, READ_BYTES_MAX, log_end).await.expect("the log reads back");
        for item in batches(&read.records) {
            let (header, range) = item.expect("whole batches");
            offset = header.next_offset();
            out.push(read.records.slice(range));
        }
    }
    out
}

/// What a client or the Raft shell can observe of a log.
#[derive(Debug, PartialEq)]
struct Observed {
    log_start: Offset,
    log_end: Offset,
    batches: Vec<Bytes>,
    epochs: Vec<Option<(Term, Offset)>>,
    producer_count: usize,
    max_timestamp_batch: Option<Bytes>,
}

async fn observe(log: &PartitionLog<StdDisk>) -> Observed {
    Observed {
        log_start: log.log_start_offset(),
        log_end: log.log_end_offset(),
        batches: scan(log).await,
        epochs: (0..=EPOCHS_OBSERVED).map(|epoch| log.end_offset_for_epoch(Term(epoch))).collect(),
        producer_count: log.producers().len(),
        max_timestamp_batch: log.batch_with_max_timestamp(log.log_end_offset()).await.unwrap(),
    }
}

/// Drops the log without a clean close (a process exit) and opens it again: the operation
/// under test was durable when it returned, so the reopened log must look the same.
async fn reopen_and_compare(log: PartitionLog<StdDisk>, dir: &Path, config: &LogConfig) -> PartitionLog<StdDisk> {
    let before = observe(&log).await;
    drop(log);
    let log = open(dir, config).await;
    assert_eq!(observe(&log).await, before, "the reopened log differs");
    log
}

async fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases = Vec::new();
    for path in StdDisk.list_dir(dir).await.unwrap() {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if let Some(stem) = name.strip_suffix(".log") {
            bases.push(stem.parse().unwrap());
        }
    }
    bases
}

fn concat(batches: &[Bytes]) -> Bytes {
    batches.iter().flat_map(|b| b.iter().copied()).collect::<Vec<u8>>().into()
}

#[tokio::test]
async fn replicated_batches_are_stored_verbatim_and_read_back_identical() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let mut log = open(dir.path(), &config).await;
    let mut log_append_time = BytesMut::from(&leader_batch(3, 1, 2, NOW_MS, 40)[..]);
    set_log_append_time(&mut log_append_time, NOW_MS + 500);
    let sent = vec![
        leader_batch(0, 1, 3, NOW_MS, 100),
        log_append_time.freeze(),
        control_batch(5, 2), // The new leader's no-op.
        leader_batch(6, 2, 4, NOW_MS + 9, 70),
    ];
    let mut infos = Vec::new();
    for batch in &sent {
        infos.push(log.append_replicated(batch.clone(), NOW_MS).await.unwrap());
    }
    let offsets: Vec<(i64, i64, i64)> =
        infos.iter().map(|i| (i.base_offset.0, i.last_offset.0, i.log_append_time_ms)).collect();
    assert_eq!(offsets, vec![(0, 2, -1), (3, 4, NOW_MS + 500), (5, 5, -1), (6, 9, -1)]);
    assert_eq!(log.log_end_offset(), Offset(10));
    flush(&mut log).await;
    let read = log.read(Offset(0), READ_BYTES_MAX, Offset(10)).await.unwrap();
    assert_eq!(read.records, concat(&sent), "the log serves the leader's bytes unchanged");
    assert_eq!(scan(&log).await, sent);
    assert_eq!(log.latest_epoch(), Some(Term(2)));
    assert_eq!(log.end_offset_for_epoch(Term(1)), Some((Term(1), Offset(5))));
    assert_eq!(log.end_offset_for_epoch(Term(2)), Some((Term(2), Offset(10))));
    reopen_and_compare(log, dir.path(), &config).await;
}

#[tokio::test]
async fn replicated_batches_that_do_not_continue_the_log_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &LogConfig::default()).await;
    // Negative epoch: never stamped by a leader.
    let unstamped = leader_batch(0, -1, 1, NOW_MS, 10);
    assert!(matches!(
        log.append_replicated(unstamped, NOW_MS).await,
        Err(StorageError::LeaderEpochRegression { found: Term(-1), min: Term(0) })
    ));
    log.append_replicated(leader_batch(0, 3, 2, NOW_MS, 10), NOW_MS).await.unwrap();
    // A gap and an overlap.
    for base in [3, 1, 0] {
        let refused = log.append_replicated(leader_batch(base, 3, 1, NOW_MS, 10), NOW_MS).await;
        let Err(StorageError::OffsetMismatch { expected, found }) = refused else { panic!("base {base}: {refused:?}") };
        assert_eq!((expected, found), (Offset(2), Offset(base)));
    }
    // A flipped bit the CRC covers.
    let mut corrupt = BytesMut::from(&leader_batch(2, 3, 1, NOW_MS, 10)[..]);
    corrupt[CRC_COVERED_FROM_BYTE + 30] ^= 0x04;
    let refused = log.append_replicated(corrupt.freeze(), NOW_MS).await;
    assert!(matches!(refused, Err(StorageError::InvalidBatch(BatchError::CrcMismatch { .. }))), "{refused:?}");
    // Cut short, or two batches where one entry was expected.
    let whole = leader_batch(2, 3, 1, NOW_MS, 10);
    let refused = log.append_replicated(whole.slice(..whole.len() - 1), NOW_MS).await;
    assert!(matches!(refused, Err(StorageError::InvalidBatch(BatchError::Truncated { .. }))), "{refused:?}");
    let two = concat(&[whole.clone(), leader_batch(3, 3, 1, NOW_MS, 10)]);
    assert!(matches!(log.append_replicated(two, NOW_MS).await, Err(StorageError::InvalidBatch(_))));
    // An epoch older than the log's latest (Raft §5.3: terms never decrease along a log).
    let stale = leader_batch(2, 2, 1, NOW_MS, 10);
    assert!(matches!(
        log.append_replicated(stale, NOW_MS).await,
        Err(StorageError::LeaderEpochRegression { found: Term(2), min: Term(3) })
    ));
    // Nothing refused reached the log; the right batch still goes in.
    assert_eq!(log.log_end_offset(), Offset(2));
    log.append_replicated(whole.clone(), NOW_MS).await.unwrap();
    assert_eq!(scan(&log).await, vec![leader_batch(0, 3, 2, NOW_MS, 10), whole]);
}

#[tokio::test]
async fn truncation_inside_a_segment_keeps_the_prefix_and_takes_appends_at_the_new_end() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let mut log = open(dir.path(), &config).await;
    let mut sent = append_leader_batches(&mut log, 5, 1, 2).await;
    sent.extend(append_leader_batches(&mut log, 5, 2, 2).await);
    flush(&mut log).await;
    log.write_checkpoint().await.unwrap();
    assert_eq!(log.log_end_offset(), Offset(20));
    // Keep through offset 13: the batch [12, 13] is the last one kept.
    log.truncate_after(Offset(13)).await.unwrap();
    assert_eq!((log.log_end_offset(), log.flushed_offset()), (Offset(14), Offset(14)));
    assert_eq!(scan(&log).await, sent[..7]);
    assert!(log.read(Offset(14), READ_BYTES_MAX, Offset(20)).await.unwrap().records.is_empty());
    assert!(matches!(log.read(Offset(15), 100, Offset(20)).await, Err(StorageError::OffsetOutOfRange { .. })));
    assert_eq!(log.end_offset_for_epoch(Term(2)), Some((Term(2), Offset(14))));
    // The recovery point never exceeds the log: what lands at 14 next is verified at recovery.
    let checkpoint = Checkpoint::read(&StdDisk, dir.path()).await.unwrap().unwrap();
    assert_eq!(checkpoint.recovery_point, Offset(14), "{checkpoint:?}");
    let mut log = reopen_and_compare(log, dir.path(), &config).await;
    // The new leader's entries continue at 14, in its epoch.
    let next = append_leader_batches(&mut log, 2, 4, 3).await;
    assert_eq!(log.log_end_offset(), Offset(20));
    assert_eq!(scan(&log).await, [&sent[..7], &next[..]].concat());
    assert_eq!(log.end_offset_for_epoch(Term(2)), Some((Term(2), Offset(14))));
    assert_eq!(log.end_offset_for_epoch(Term(3)), Some((Term(2), Offset(14))));
    flush(&mut log).await;
    reopen_and_compare(log, dir.path(), &config).await;
}

#[tokio::test]
async fn truncation_across_segments_deletes_the_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_segments();
    let mut log = open(dir.path(), &config).await;
    let mut sent = append_leader_batches(&mut log, 10, 1, 1).await;
    sent.extend(append_leader_batches(&mut log, 10, 2, 1).await);
    flush(&mut log).await;
    let bases = segment_bases(dir.path()).await;
    assert!(bases.len() >= 6, "segments {bases:?}");
    // A cut in the middle of an earlier segment: every later segment goes.
    let cut = bases[2] + 1;
    log.truncate_after(Offset(cut - 1)).await.unwrap();
    assert_eq!(log.log_end_offset(), Offset(cut));
    assert_eq!(segment_bases(dir.path()).await, bases[..3]);
    assert_eq!(scan(&log).await, sent[..cut as usize]);
    // The largest timestamp is recomputed over what is left.
    let expected_max = sent[..cut as usize].iter().max_by_key(|b| BatchHeader::parse(b).unwrap().max_timestamp);
    let max_batch = log.batch_with_max_timestamp(log.log_end_offset()).await.unwrap();
    let max_of = |b: &Bytes| BatchHeader::parse(b).unwrap().max_timestamp;
    assert_eq!(max_batch.as_ref().map(max_of), expected_max.map(max_of));
    let mut log = reopen_and_compare(log, dir.path(), &config).await;
    // A cut exactly at a segment's base empties that segment, which stays the active one.
    log.truncate_after(Offset(bases[2] - 1)).await.unwrap();
    assert_eq!(log.log_end_offset(), Offset(bases[2]));
    assert_eq!(scan(&log).await, sent[..bases[2] as usize]);
    let mut log = reopen_and_compare(log, dir.path(), &config).await;
    // Appends continue there, rolling as usual.
    let next = append_leader_batches(&mut log, 7, 3, 1).await;
    assert_eq!(scan(&log).await, [&sent[..bases[2] as usize], &next[..]].concat());
    // Keep nothing (-1): the log is empty at its start and takes an append there.
    log.truncate_after(Offset(-1)).await.unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.segment_count()), (Offset(0), Offset(0), 1));
    assert_eq!(log.latest_epoch(), None);
    let mut log = reopen_and_compare(log, dir.path(), &config).await;
    let first = append_leader_batches(&mut log, 1, 5, 2).await;
    assert_eq!(scan(&log).await, first);
    reopen_and_compare(log, dir.path(), &config).await;
}

#[tokio::test]
async fn truncating_after_the_last_batch_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &LogConfig::default()).await;
    let sent = append_leader_batches(&mut log, 3, 1, 2).await;
    log.truncate_after(Offset(5)).await.unwrap();
    assert_eq!(log.log_end_offset(), Offset(6));
    assert_eq!(scan(&log).await, sent);
}

#[tokio::test]
#[should_panic(expected = "inside the batch")]
async fn truncating_inside_a_batch_is_a_broken_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &LogConfig::default()).await;
    append_leader_batches(&mut log, 3, 1, 2).await;
    log.truncate_after(Offset(2)).await.unwrap();
}

/// Single-node appends (the leader path, producer checks on) of `(producer epoch, sequence,
/// records)`; returns the base offsets.
async fn produce(log: &mut PartitionLog<StdDisk>, batches: &[(i16, i32, i32)]) -> Vec<Offset> {
    let mut bases = Vec::new();
    for &(producer_epoch, sequence, records) in batches {
        let batch = producer_batch(0, 0, (7, producer_epoch), sequence, records);
        let term = log.latest_epoch().unwrap_or(Term(0));
        let outcome = log.append(BytesMut::from(&batch[..]), term, NOW_MS).await.unwrap();
        assert!(matches!(outcome, AppendOutcome::Appended(_)), "{outcome:?}");
        bases.push(outcome.info().base_offset);
    }
    bases
}

/// Retries `(producer epoch, sequence, records)` through the leader path.
async fn retry(log: &mut PartitionLog<StdDisk>, batch: (i16, i32, i32)) -> Result<AppendOutcome, StorageError> {
    let bytes = producer_batch(0, 0, (7, batch.0), batch.1, batch.2);
    let term = log.latest_epoch().unwrap_or(Term(0));
    log.append(BytesMut::from(&bytes[..]), term, NOW_MS).await
}

async fn truncated_sequences_are_accepted_again(config: LogConfig, filler_batches: i64) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &config).await;
    // Other traffic first: with tiny segments the producer's batches then span rolls.
    append_leader_batches(&mut log, filler_batches, 1, 1).await;
    let bases = produce(&mut log, &[(0, 0, 3), (0, 3, 2), (0, 5, 1)]).await;
    // The batch with sequences 3..=4 and everything after it were never committed.
    log.truncate_after(Offset(bases[1].0 - 1)).await.unwrap();
    let mut log = reopen_and_compare(log, dir.path(), &config).await;
    // A retry of the truncated batch is new again, not a duplicate (KIP-98)...
    let retried = retry(&mut log, (0, 3, 2)).await.unwrap();
    assert!(
        matches!(retried, AppendOutcome::Appended(info) if info.base_offset == bases[1]),
        "a truncated sequence must be appended again: {retried:?}"
    );
    // ...while a kept batch is still recognised.
    let duplicate = retry(&mut log, (0, 0, 3)).await.unwrap();
    assert!(matches!(duplicate, AppendOutcome::Duplicate(info) if info.base_offset == bases[0]));
    // A new producer epoch whose first batch is truncated away: the old epoch is current again.
    let bumped = produce(&mut log, &[(1, 0, 1)]).await;
    assert!(matches!(retry(&mut log, (0, 3, 2)).await, Err(StorageError::Producer(_))), "fenced while epoch 1 holds");
    log.truncate_after(Offset(bumped[0].0 - 1)).await.unwrap();
    let mut log = reopen_and_compare(log, dir.path(), &config).await;
    let duplicate = retry(&mut log, (0, 3, 2)).await.unwrap();
    assert!(matches!(duplicate, AppendOutcome::Duplicate(info) if info.base_offset == bases[1]), "{duplicate:?}");
    produce(&mut log, &[(0, 5, 1), (1, 0, 1)]).await;
}

#[tokio::test]
async fn truncated_idempotent_sequences_are_accepted_again() {
    truncated_sequences_are_accepted_again(LogConfig::default(), 2).await;
}

#[tokio::test]
async fn truncated_idempotent_sequences_are_accepted_again_from_the_active_segment_snapshot() {
    // Three fillers and the first producer batch fill a tiny segment; the next batches roll, so
    // the truncation cuts at the active segment's base and the producer table comes from the
    // snapshot taken at that roll.
    truncated_sequences_are_accepted_again(tiny_segments(), 3).await;
}

#[tokio::test]
async fn truncated_idempotent_sequences_are_accepted_again_across_segment_rolls() {
    // Batches of ~100 bytes in 1 KiB segments: truncations fall below the active segment's
    // base, where the producer table is rebuilt from the whole log instead of the snapshot.
    truncated_sequences_are_accepted_again(LogConfig { segment_bytes: 200, ..tiny_segments() }, 2).await;
}

#[tokio::test]
async fn reset_restarts_the_log_empty_at_the_new_start() {
    for (log_start, name) in [(1_000, "behind the leader's log start"), (3, "inside the old log")] {
        let dir = tempfile::tempdir().unwrap();
        let config = tiny_segments();
        let mut log = open(dir.path(), &config).await;
        append_leader_batches(&mut log, 8, 2, 2).await;
        produce(&mut log, &[(0, 0, 1)]).await;
        flush(&mut log).await;
        log.reset_to(Offset(log_start), NOW_MS).await.unwrap();
        let state = (log.log_start_offset(), log.log_end_offset(), log.flushed_offset(), log.segment_count());
        assert_eq!(state, (Offset(log_start), Offset(log_start), Offset(log_start), 1), "{name}");
        assert_eq!((log.latest_epoch(), log.producers().len()), (None, 0), "{name}");
        assert_eq!(segment_bases(dir.path()).await, vec![log_start], "{name}");
        let checkpoint = Checkpoint::read(&StdDisk, dir.path()).await.unwrap().unwrap();
        assert_eq!((checkpoint.log_start_offset, checkpoint.recovery_point), (Offset(log_start), Offset(log_start)));
        assert!(matches!(
            log.read(Offset(0), 100, Offset(log_start)).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        let mut log = reopen_and_compare(log, dir.path(), &config).await;
        // The leader's entries continue at the new start, in any epoch (the cache is empty).
        let next = append_leader_batches(&mut log, 5, 1, 1).await;
        assert_eq!(scan(&log).await, next, "{name}");
        assert_eq!(log.end_offset_for_epoch(Term(1)), Some((Term(1), Offset(log_start + 5))));
        produce(&mut log, &[(0, 9, 1)]).await; // Unknown producer again: any sequence (KIP-360).
        flush(&mut log).await;
        reopen_and_compare(log, dir.path(), &config).await;
    }
}

#[tokio::test]
async fn a_flush_planned_before_a_truncation_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), &LogConfig::default()).await;
    append_leader_batches(&mut log, 4, 1, 1).await;
    let stale = log.flush_plan().expect("unflushed appends");
    log.truncate_after(Offset(1)).await.unwrap();
    append_leader_batches(&mut log, 3, 2, 1).await;
    for file in &stale.files {
        file.sync_data().await.unwrap();
    }
    // The plan covered offsets 0..4 as they were; 2..4 now hold other batches.
    assert!(!log.complete_flush_plan(&stale, NOW_MS).await.unwrap());
    assert!(log.flushed_offset() <= Offset(2));
    flush(&mut log).await;
    assert_eq!(log.flushed_offset(), Offset(5));
}

/// The broker drives these futures from tokio tasks: they must be `Send`.
#[allow(dead_code)]
fn replica_futures_are_send(
    log: &mut PartitionLog<StdDisk>,
    plan: &sluice_storage::FlushPlan<<StdDisk as Disk>::File>,
) {
    fn send<T: Send>(_: T) {}
    send(log.append_replicated(Bytes::new(), NOW_MS));
    send(log.truncate_after(Offset(0)));
    send(log.reset_to(Offset(0), NOW_MS));
    send(log.complete_flush_plan(plan, NOW_MS));
    send(PartitionLog::open(StdDisk, Path::new("/"), LogConfig::default(), NOW_MS));
}
