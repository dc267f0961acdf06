//! Partition log behaviour on the real file system: offsets, reads, rolling, recovery of a torn
//! tail, retention, DeleteRecords, idempotent duplicates, timestamp lookup and leader epochs.

use bytes::BytesMut;
use sluice_io::{Disk, File, OpenOptions, StdDisk};
use sluice_storage::{AppendOutcome, LogConfig, PartitionLog, StorageError};
use sluice_types::batch::{batches, build_batch};
use sluice_types::{BatchHeader, Offset, ProducerEpoch, ProducerId, Sequence, Term};

const NOW_MS: i64 = 1_700_000_000_000;

fn batch(records: i32, timestamp_ms: i64, payload_bytes: usize) -> BytesMut {
    let header = BatchHeader::template(records, timestamp_ms);
    BytesMut::from(&build_batch(&header, &vec![7u8; payload_bytes])[..])
}

fn idempotent_batch(producer: i64, sequence: i32, records: i32) -> BytesMut {
    let mut header = BatchHeader::template(records, NOW_MS);
    header.producer_id = ProducerId(producer);
    header.producer_epoch = ProducerEpoch(0);
    header.base_sequence = Sequence(sequence);
    BytesMut::from(&build_batch(&header, b"idempotent")[..])
}

async fn flush(log: &mut PartitionLog<StdDisk>) {
    if let Some(plan) = log.flush_plan() {
        for file in &plan.files {
            file.sync_data().await.unwrap();
        }
        log.complete_flush(plan.end_offset, NOW_MS).await.unwrap();
    }
}

fn offsets_of(records: &[u8]) -> Vec<i64> {
    batches(records).map(|b| b.unwrap().0.base_offset.0).collect()
}

#[tokio::test]
async fn appends_get_dense_offsets_and_read_back_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(StdDisk, dir.path(), LogConfig::default(), NOW_MS).await.unwrap();
    for i in 0..10 {
        let outcome = log.append(batch(3, NOW_MS + i, 100), Term(0), NOW_MS).await.unwrap();
        assert_eq!(outcome.info().base_offset, Offset(i * 3));
        assert_eq!(outcome.info().last_offset, Offset(i * 3 + 2));
    }
    assert_eq!(log.log_end_offset(), Offset(30));
    // Nothing is readable above the flushed offset when the caller passes it as the limit.
    assert!(log.read(Offset(0), 1 << 20, log.flushed_offset()).await.unwrap().records.is_empty());
    flush(&mut log).await;
    let read = log.read(Offset(4), 1 << 20, log.flushed_offset()).await.unwrap();
    assert_eq!(offsets_of(&read.records), vec![3, 6, 9, 12, 15, 18, 21, 24, 27]);
    // KIP-74: at least one batch even when max_bytes is tiny.
    let one = log.read(Offset(0), 1, Offset(30)).await.unwrap();
    assert_eq!(offsets_of(&one.records), vec![0]);
    assert!(matches!(log.read(Offset(31), 100, Offset(30)).await, Err(StorageError::OffsetOutOfRange { .. })));
}

#[tokio::test]
async fn segments_roll_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 4096, ..LogConfig::default() };
    let mut log = PartitionLog::open(StdDisk, dir.path(), config.clone(), NOW_MS).await.unwrap();
    for i in 0..50 {
        log.append(batch(1, NOW_MS + i, 500), Term(0), NOW_MS).await.unwrap();
    }
    assert!(log.segment_count() > 5, "segments: {}", log.segment_count());
    log.close(NOW_MS).await.unwrap();
    drop(log);
    let log = PartitionLog::open(StdDisk, dir.path(), config, NOW_MS).await.unwrap();
    assert_eq!(log.log_end_offset(), Offset(50));
    let read = log.read(Offset(37), 600, Offset(50)).await.unwrap();
    assert_eq!(offsets_of(&read.records), vec![37]);
}

#[tokio::test]
async fn recovery_truncates_a_torn_tail_but_keeps_synced_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(StdDisk, dir.path(), LogConfig::default(), NOW_MS).await.unwrap();
    for _ in 0..5 {
        log.append(batch(2, NOW_MS, 64), Term(0), NOW_MS).await.unwrap();
    }
    flush(&mut log).await;
    drop(log);
    // Simulate a torn write: half a batch of garbage after the durable data.
    let path = dir.path().join("00000000000000000000.log");
    let file = StdDisk.open(&path, OpenOptions::WRITE).await.unwrap();
    let len = file.len().await.unwrap();
    let torn = batch(2, NOW_MS, 64);
    file.write_at(len, bytes::Bytes::copy_from_slice(&torn[..40])).await.unwrap();
    let mut log = PartitionLog::open(StdDisk, dir.path(), LogConfig::default(), NOW_MS).await.unwrap();
    assert_eq!(log.log_end_offset(), Offset(10));
    // The next append reuses no durable offset.
    let outcome = log.append(batch(1, NOW_MS, 8), Term(0), NOW_MS).await.unwrap();
    assert_eq!(outcome.info().base_offset, Offset(10));
}

#[tokio::test]
async fn retention_bytes_deletes_oldest_segments_and_moves_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 2048, retention_bytes: 4096, ..LogConfig::default() };
    let mut log = PartitionLog::open(StdDisk, dir.path(), config, NOW_MS).await.unwrap();
    for _ in 0..40 {
        log.append(batch(1, NOW_MS, 400), Term(0), NOW_MS).await.unwrap();
    }
    flush(&mut log).await;
    let deleted = log.enforce_retention(NOW_MS).await.unwrap();
    assert!(deleted > 0);
    assert!(log.log_start_offset() > Offset(0));
    assert!(log.size_bytes() < 4096 + 2048);
    assert!(matches!(log.read(Offset(0), 100, Offset(40)).await, Err(StorageError::OffsetOutOfRange { .. })));
}

#[tokio::test]
async fn retention_ms_deletes_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 2048, retention_ms: 1000, ..LogConfig::default() };
    let mut log = PartitionLog::open(StdDisk, dir.path(), config, NOW_MS).await.unwrap();
    for _ in 0..20 {
        log.append(batch(1, NOW_MS, 400), Term(0), NOW_MS).await.unwrap();
    }
    flush(&mut log).await;
    assert_eq!(log.enforce_retention(NOW_MS + 500).await.unwrap(), 0);
    assert!(log.enforce_retention(NOW_MS + 5000).await.unwrap() > 0);
    assert_eq!(log.log_start_offset(), Offset(20));
    assert_eq!(log.log_end_offset(), Offset(20));
}

#[tokio::test]
async fn delete_records_moves_log_start_durably() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(StdDisk, dir.path(), LogConfig::default(), NOW_MS).await.unwrap();
    for _ in 0..10 {
        log.append(batch(1, NOW_MS, 10), Term(0), NOW_MS).await.unwrap();
    }
    flush(&mut log).await;
    assert_eq!(log.delete_records(Offset(7)).await.unwrap(), Offset(7));
    drop(log);
    let log = PartitionLog::open(StdDisk, dir.path(), LogConfig::default(), NOW_MS).await.unwrap();
    assert_eq!(log.log_start_offset(), Offset(7));
}

#[tokio::test]
async fn idempotent_retry_returns_original_offset_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(StdDisk, dir.path(), LogConfig::default(), NOW_MS).await.unwrap();
    log.append(batch(2, NOW_MS, 10), Term(0), NOW_MS).await.unwrap();
    log.append(idempotent_batch(9, 0, 3), Term(0), NOW_MS).await.unwrap();
    flush(&mut log).await;
    drop(log);
    let mut log = PartitionLog::open(StdDisk, dir.path(), LogConfig::default(), NOW_MS).await.unwrap();
    let retry = log.append(idempotent_batch(9, 0, 3), Term(0), NOW_MS).await.unwrap();
    assert!(matches!(retry, AppendOutcome::Duplicate(info) if info.base_offset == Offset(2)));
    assert!(matches!(log.append(idempotent_batch(9, 7, 1), Term(0), NOW_MS).await, Err(StorageError::Producer(_))));
    assert_eq!(log.log_end_offset(), Offset(5));
}

#[tokio::test]
async fn timestamp_lookup_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(StdDisk, dir.path(), LogConfig::default(), NOW_MS).await.unwrap();
    for i in 0..10 {
        let term = Term(if i < 5 { 1 } else { 3 });
        log.append(batch(1, NOW_MS + i * 100, 2000), term, NOW_MS).await.unwrap();
    }
    flush(&mut log).await;
    let found = log.batch_for_timestamp(NOW_MS + 650, Offset(10)).await.unwrap().unwrap();
    assert_eq!(offsets_of(&found), vec![7]);
    assert!(log.batch_for_timestamp(NOW_MS + 5000, Offset(10)).await.unwrap().is_none());
    assert_eq!(log.end_offset_for_epoch(Term(1)), Some((Term(1), Offset(5))));
    assert_eq!(log.end_offset_for_epoch(Term(2)), Some((Term(1), Offset(5))));
    assert_eq!(log.end_offset_for_epoch(Term(3)), Some((Term(3), Offset(10))));
    assert_eq!(log.end_offset_for_epoch(Term(0)), None);
}
