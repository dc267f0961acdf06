//! Final reads for test harnesses: one replica's partition log read whole from its data
//! directory once its broker has stopped, and the comparison of a partition's replicas below
//! the committed end.
//!
//! Why here: the simulator (`sim/`) and the real-process harness (`jepsen/`) both judge every
//! replica, not only what a leader serves over Fetch, and must judge them the same way. They
//! differ only in the `Disk` they read through (`SimDisk` after a simulated stop, `StdDisk` on a
//! real data directory), so the reading and the comparison live once, here, generic over it.
//!
//! The comparison (`compare_replicas`):
//! - the committed end is the leader's high watermark, or, when no leader answered, the largest
//!   end a majority of the replicas reach (Raft §5.4: nothing commits before a majority holds it);
//! - LogMatching over the committed prefix: every replica holding a batch below that end holds
//!   the same bytes as the longest replica (DESIGN.md: the batch bytes are the Raft entry on
//!   every replica), Raft §5.3's Log Matching property observed on disk;
//! - a replica that ends below a known high watermark is reported as behind and left out of the
//!   records, so one laggard is one finding and not a lost write per missing record;
//! - the data records below the end, per replica, with control batches skipped.

use crate::{LogConfig, PartitionLog};
use bytes::Bytes;
use sluice_io::Disk;
use sluice_protocol::records::decode_batch;
use sluice_types::{BatchHeader, Offset};
use std::collections::BTreeMap;
use std::path::Path;

/// Bytes one read call asks for.
const READ_BYTES: u32 = 1 << 20;
/// Batches one replica's final read may hold (bounds the read loop).
const BATCHES_MAX: usize = 10_000_000;
/// The largest decoded batch accepted (a batch is at most a segment's size).
const DECODE_BYTES_MAX: u64 = 64 << 20;

/// One replica's log: batch bytes by base offset, and its bounds.
pub struct ReplicaLog {
    pub node: u32,
    pub log_start: i64,
    pub log_end: i64,
    pub batches: BTreeMap<i64, (BatchHeader, Bytes)>,
}

/// Reads every batch of the partition log in `dir`, or None when the directory does not exist.
/// Opening runs the log's recovery, as a restarting broker would.
pub async fn read_replica_log<D: Disk>(disk: D, node: u32, dir: &Path) -> Result<Option<ReplicaLog>, String> {
    if !disk.exists(dir).await.map_err(|e| e.to_string())? {
        return Ok(None);
    }
    let log = PartitionLog::open(disk, dir, LogConfig::default(), 0)
        .await
        .map_err(|e| format!("node {node} {}: {e}", dir.display()))?;
    let (log_start, log_end) = (log.log_start_offset().0, log.log_end_offset().0);
    let mut batches = BTreeMap::new();
    let mut offset = log_start;
    while offset < log_end {
        assert!(batches.len() < BATCHES_MAX, "final read over BATCHES_MAX");
        let read = log
            .read(Offset(offset), READ_BYTES, Offset(log_end))
            .await
            .map_err(|e| format!("node {node} read at {offset}: {e}"))?;
        let mut rest = read.records.clone();
        if rest.is_empty() {
            break;
        }
        while !rest.is_empty() {
            let header =
                BatchHeader::parse_verified(&rest).map_err(|e| format!("node {node} batch at {offset}: {e}"))?;
            let size = header.size_bytes() as usize;
            let batch = rest.split_to(size);
            let next = header.next_offset().0;
            assert!(next > offset, "batches advance the read offset");
            offset = next;
            batches.insert(header.base_offset.0, (header, batch));
        }
    }
    Ok(Some(ReplicaLog { node, log_start, log_end, batches }))
}

/// One replica's committed data records.
pub struct ReplicaRecords {
    pub node: u32,
    /// The committed end on this replica: `min(committed end, log end)`, at least `log_start`.
    pub high_watermark: i64,
    pub log_start: i64,
    /// (offset, value) of every data record below `high_watermark`; a null value reads as "".
    pub records: Vec<(i64, String)>,
}

/// What `compare_replicas` found for one partition.
#[derive(Default)]
pub struct ReplicaComparison {
    pub committed_end: i64,
    pub reads: Vec<ReplicaRecords>,
    /// LogMatching failures (differing or missing committed batches, undecodable batches).
    pub mismatches: Vec<String>,
    /// (node, log end) of replicas that end below a known high watermark.
    pub behind: Vec<(u32, i64)>,
}

/// Compares one partition's replica logs below the committed end: the leader's high watermark,
/// or (no leader answered) the largest end a majority of the replicas reach.
pub fn compare_replicas(
    partition: &str,
    logs: &[ReplicaLog],
    replication_factor: i16,
    high_watermark: Option<i64>,
) -> ReplicaComparison {
    assert!(replication_factor >= 1, "a partition has a replica");
    let mut found = ReplicaComparison::default();
    let majority = replication_factor as usize / 2 + 1;
    let mut ends: Vec<i64> = logs.iter().map(|l| l.log_end).collect();
    ends.sort_unstable_by(|a, b| b.cmp(a));
    let committed_end = high_watermark.unwrap_or_else(|| ends.get(majority - 1).copied().unwrap_or(0));
    found.committed_end = committed_end;
    if let Some(reference) = logs.iter().max_by_key(|l| l.log_end) {
        for log in logs {
            for (base, (header, bytes)) in log.batches.range(..committed_end) {
                match reference.batches.get(base) {
                    Some((_, theirs)) if theirs == bytes => {}
                    Some(_) => found.mismatches.push(format!(
                        "{partition}: the committed batch at offset {base}..{} differs between node {} and node {}",
                        header.next_offset().0,
                        log.node,
                        reference.node
                    )),
                    None if *base >= reference.log_start => found.mismatches.push(format!(
                        "{partition}: node {} holds a committed batch at offset {base} that node {} lacks",
                        log.node, reference.node
                    )),
                    None => {}
                }
            }
        }
    }
    for log in logs {
        if log.log_end < committed_end && high_watermark.is_some() {
            found.behind.push((log.node, log.log_end));
            continue;
        }
        let end = committed_end.min(log.log_end);
        let mut records = Vec::new();
        for (_, (header, bytes)) in log.batches.range(..end) {
            if header.is_control() {
                continue;
            }
            match decode_batch(bytes, DECODE_BYTES_MAX) {
                Ok((header, decoded)) => {
                    for record in decoded {
                        let offset = header.base_offset.0 + i64::from(record.offset_delta);
                        let value = record.value.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
                        records.push((offset, value));
                    }
                }
                Err(error) => found.mismatches.push(format!(
                    "{partition}: node {} batch at {} does not decode: {error}",
                    log.node, header.base_offset.0
                )),
            }
        }
        found.reads.push(ReplicaRecords {
            node: log.node,
            high_watermark: end.max(log.log_start),
            log_start: log.log_start,
            records,
        });
    }
    found
}
