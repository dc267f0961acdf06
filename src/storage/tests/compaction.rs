//! Log compaction on the real file system: the latest record of each key survives with its
//! offset, older ones and old tombstones go, batches keep their offset ranges, the result
//! survives a reopen, and an interrupted cleaning is discarded (`.cleaned`) or completed
//! (`.swap`) at open.

use bytes::{Bytes, BytesMut};
use sluice_io::{Disk, File, StdDisk};
use sluice_protocol::records::{BatchOptions, Record, decode_batches, encode_batch};
use sluice_storage::{CleanupPolicy, KeyMap, LogConfig, PartitionLog, clean_batch};
use sluice_types::batch::batches;
use sluice_types::{Compression, Offset, Term};
use std::collections::BTreeMap;

const NOW_MS: i64 = 1_700_000_000_000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn config() -> LogConfig {
    LogConfig { segment_bytes: 1024, cleanup_policy: CleanupPolicy::Compact, ..LogConfig::default() }
}

/// One batch of (key, value) records (value `None`: a tombstone), stamped `timestamp_ms`.
fn batch(records: &[(&str, Option<&str>)], timestamp_ms: i64, codec: Compression) -> BytesMut {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            offset_delta: i as i32,
            timestamp_delta: 0,
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Vec::new(),
        })
        .collect();
    let options = BatchOptions { base_timestamp: timestamp_ms, ..BatchOptions::default() };
    BytesMut::from(&encode_batch(&records, codec, &options).unwrap()[..])
}

async fn flush(log: &mut PartitionLog<StdDisk>) {
    if let Some(plan) = log.flush_plan() {
        for file in &plan.files {
            file.sync_data().await.unwrap();
        }
        log.complete_flush(plan.end_offset, NOW_MS).await.unwrap();
    }
}

/// Every record in the log: offset to (key, value).
async fn contents(log: &PartitionLog<StdDisk>) -> BTreeMap<i64, (String, Option<String>)> {
    let mut all = BTreeMap::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1 << 20, log.log_end_offset()).await.unwrap();
        for (header, records) in decode_batches(&read.records, 1 << 30).unwrap() {
            for record in records {
                let key = String::from_utf8(record.key.clone().unwrap().to_vec()).unwrap();
                let value = record.value.as_ref().map(|v| String::from_utf8(v.to_vec()).unwrap());
                all.insert(record.offset(&header).0, (key, value));
            }
            offset = header.next_offset();
        }
    }
    all
}

/// Every stored batch in `[from, end)` (one read stops at a segment's end, so read in a loop).
async fn batches_in(log: &PartitionLog<StdDisk>, from: Offset, end: Offset) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < end {
        let read = log.read(offset, u32::MAX, end).await.unwrap();
        for batch in batches(&read.records) {
            let (header, range) = batch.unwrap();
            out.push(read.records.slice(range));
            offset = header.next_offset();
        }
    }
    out
}

/// The cleaner's three steps (as the broker runs them) over every sealed, flushed segment.
/// Returns how many segments were replaced.
async fn compact(log: &mut PartitionLog<StdDisk>, horizon_ms: i64) -> usize {
    let spans = log.sealed_segments_below(log.flushed_offset());
    let (Some(first), Some(last)) = (spans.first().copied(), spans.last().copied()) else { return 0 };
    let mut map = KeyMap::new(1 << 20, first.base_offset);
    for batch in batches_in(log, first.base_offset, last.next_offset).await {
        assert!(map.add_batch(&batch).unwrap());
    }
    assert_eq!(map.covered_end(), last.next_offset);
    let mut replaced = 0;
    for span in spans {
        let mut cleaned = log.begin_clean(span).await.unwrap();
        for batch in batches_in(log, span.base_offset, span.next_offset).await {
            let (kept, _) = clean_batch(&batch, &map, horizon_ms).unwrap();
            cleaned.write(kept).await.unwrap();
        }
        if log.install_cleaned(cleaned, NOW_MS).await.unwrap() {
            replaced += 1;
        }
    }
    replaced
}

#[tokio::test]
async fn compaction_keeps_the_latest_record_per_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(StdDisk, dir.path(), config(), NOW_MS).await.unwrap();
    let mut written: BTreeMap<i64, (String, Option<String>)> = BTreeMap::new();
    let codecs = [Compression::None, Compression::Gzip, Compression::Lz4, Compression::Zstd, Compression::Snappy];
    for round in 0..40 {
        let keys: Vec<(String, Option<String>)> =
            (0..3).map(|i| (format!("k{}", (round * 3 + i) % 7), Some(format!("v{round}-{i}")))).collect();
        let records: Vec<(&str, Option<&str>)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        let info =
            log.append(batch(&records, NOW_MS, codecs[round % codecs.len()]), Term(0), NOW_MS).await.unwrap().info();
        for (i, (k, v)) in keys.into_iter().enumerate() {
            written.insert(info.base_offset.0 + i as i64, (k, v));
        }
    }
    // A key deleted long ago (its tombstone goes too) and one deleted just now (kept).
    for (key, timestamp_ms) in [("old", NOW_MS - 2 * DAY_MS), ("new", NOW_MS)] {
        for value in [Some("alive"), None] {
            let info =
                log.append(batch(&[(key, value)], timestamp_ms, Compression::None), Term(0), NOW_MS).await.unwrap();
            written.insert(info.info().base_offset.0, (key.to_string(), value.map(str::to_string)));
        }
    }
    // Roll: everything above goes into sealed segments.
    for _ in 0..12 {
        let info = log.append(batch(&[("tail", Some("t"))], NOW_MS, Compression::None), Term(0), NOW_MS).await.unwrap();
        written.insert(info.info().base_offset.0, ("tail".to_string(), Some("t".to_string())));
    }
    flush(&mut log).await;
    let end_before = log.log_end_offset();
    let size_before = log.size_bytes();
    assert!(log.segment_count() > 3, "the test needs several sealed segments");
    let sealed_end = log.sealed_segments_below(log.flushed_offset()).last().unwrap().next_offset;

    assert!(compact(&mut log, NOW_MS - DAY_MS).await > 0);
    let after = contents(&log).await;
    assert_eq!(log.log_end_offset(), end_before, "compaction never moves the log end");
    assert!(log.size_bytes() < size_before, "compaction frees space");
    // Every kept record is the one written at that offset.
    for (offset, record) in &after {
        assert_eq!(written.get(offset), Some(record), "offset {offset} changed its record");
    }
    // Within the cleaned range, each key keeps only its latest record there...
    let mut latest_cleaned: BTreeMap<&str, i64> = BTreeMap::new();
    for (offset, (key, _)) in written.range(..sealed_end.0) {
        latest_cleaned.insert(key, *offset);
    }
    for (offset, (key, value)) in after.range(..sealed_end.0) {
        assert_eq!(latest_cleaned[key.as_str()], *offset, "{key} keeps an older record at {offset}");
        assert!(!(key == "old" && value.is_none()), "an old tombstone outlived delete.retention.ms");
    }
    // ...and every key's last value overall is still there.
    let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
    for (offset, (key, _)) in &written {
        latest.insert(key, *offset);
    }
    for (key, offset) in &latest {
        if *key == "old" {
            assert!(!after.contains_key(offset), "the expired tombstone of 'old' is gone");
            continue;
        }
        assert_eq!(after.get(offset), written.get(offset), "{key}'s latest record at {offset} is kept");
    }
    assert!(after.values().any(|(k, v)| k == "new" && v.is_none()), "a fresh tombstone is kept");

    // The compacted log survives a reopen unchanged, and compacting again changes nothing.
    drop(log);
    let mut log = PartitionLog::open(StdDisk, dir.path(), config(), NOW_MS).await.unwrap();
    assert_eq!(log.log_end_offset(), end_before);
    assert_eq!(contents(&log).await, after);
    compact(&mut log, NOW_MS - DAY_MS).await;
    assert_eq!(contents(&log).await, after);
}

#[tokio::test]
async fn an_interrupted_cleaning_is_discarded_and_a_finished_swap_is_completed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(StdDisk, dir.path(), config(), NOW_MS).await.unwrap();
    for round in 0..60 {
        let value = format!("v{round}");
        log.append(batch(&[("same", Some(value.as_str()))], NOW_MS, Compression::None), Term(0), NOW_MS).await.unwrap();
    }
    flush(&mut log).await;
    let before = contents(&log).await;
    let spans = log.sealed_segments_below(log.flushed_offset());
    let span = spans[0];
    let mut map = KeyMap::new(1 << 20, span.base_offset);
    for batch in batches_in(&log, span.base_offset, log.flushed_offset()).await {
        map.add_batch(&batch).unwrap();
    }
    let mut cleaned = log.begin_clean(span).await.unwrap();
    for batch in batches_in(&log, span.base_offset, span.next_offset).await {
        cleaned.write(clean_batch(&batch, &map, 0).unwrap().0).await.unwrap();
    }
    drop(cleaned);
    drop(log);
    let name = |ext: &str| dir.path().join(format!("{:020}.{ext}", span.base_offset.0));
    assert!(StdDisk.exists(&name("log.cleaned")).await.unwrap());

    // A crash before the swap: the copy is dropped and the log is as it was.
    let log = PartitionLog::open(StdDisk, dir.path(), config(), NOW_MS).await.unwrap();
    assert!(!StdDisk.exists(&name("log.cleaned")).await.unwrap());
    assert_eq!(contents(&log).await, before);

    // A crash after the cleaned copy became the swap: opening completes it.
    let mut cleaned = log.begin_clean(span).await.unwrap();
    for batch in batches_in(&log, span.base_offset, span.next_offset).await {
        cleaned.write(clean_batch(&batch, &map, 0).unwrap().0).await.unwrap();
    }
    drop(cleaned);
    drop(log);
    std::fs::rename(name("log.cleaned"), name("log.swap")).unwrap();
    let log = PartitionLog::open(StdDisk, dir.path(), config(), NOW_MS).await.unwrap();
    assert!(!StdDisk.exists(&name("log.swap")).await.unwrap());
    let after = contents(&log).await;
    let in_span = |(offset, _): (&i64, _)| (span.base_offset.0..span.next_offset.0).contains(offset);
    assert_eq!(after.iter().filter(|e| in_span(*e)).count(), 0, "every record of the span was superseded");
    assert_eq!(
        after.iter().filter(|e| !in_span(*e)).collect::<Vec<_>>(),
        before.iter().filter(|e| !in_span(*e)).collect::<Vec<_>>()
    );
    assert_eq!(log.log_end_offset(), Offset(60));
}
