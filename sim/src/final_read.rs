//! Final reads: every replica's log of every partition, read straight from its broker's disk
//! once the brokers have stopped.
//!
//! Why from the disk: Fetch serves only the leader, and the point is to compare *every*
//! replica. The committed prefix ends at the high watermark the leader reported after healing
//! (when no leader answered, at the end a majority of the replicas reach: Raft §5.4, nothing
//! commits before a majority holds it), so:
//! - Liveness: every healthy replica reaches the high watermark (healing and `SETTLE_MS` gave
//!   it time to catch up). A replica behind it is reported, and left out of the final reads, so
//!   one laggard is one clear violation and not a NoLostWrite per missing record.
//! - LogMatching: the batches below the committed end are byte-identical on every replica that
//!   holds them (DESIGN.md: the batch bytes are the Raft entry on every replica).
//! - The committed prefix goes to the history checkers as one `FinalRead` per replica.
//!
//! Replicas on a broker whose disk injects faults are not read: corruption there is within the
//! fault budget (a minority of any partition's replicas), and the brokers stop on it by design.

use crate::check::LIVENESS;
use crate::cluster::Cluster;
use crate::swarm::FaultMix;
use bytes::Bytes;
use sluice_checker::raft::LOG_MATCHING;
use sluice_checker::{FinalRead, NO_LOST_WRITE, PartitionKey, Violation};
use sluice_protocol::records::decode_batch;
use sluice_storage::{LogConfig, PartitionLog};
use sluice_types::{BatchHeader, Offset};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bytes one read call asks for.
const READ_BYTES: u32 = 1 << 20;
/// Batches one replica's final read may hold (bounds the loop).
const BATCHES_MAX: usize = 10_000_000;

/// One replica's log: batch bytes by base offset, and its log start.
struct ReplicaLog {
    node: u32,
    log_start: i64,
    log_end: i64,
    batches: BTreeMap<i64, (BatchHeader, Bytes)>,
}

async fn read_log(cluster: &Cluster, node: u32, dir: &Path) -> Result<Option<ReplicaLog>, String> {
    let disk = cluster.brokers[(node - 1) as usize].disk.clone();
    if !sluice_io::Disk::exists(&disk, dir).await.map_err(|e| e.to_string())? {
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
            offset = header.next_offset().0;
            batches.insert(header.base_offset.0, (header, batch));
        }
    }
    tracing::info!(target: "sluice_sim", node, dir = %dir.display(), log_start, log_end, batches = batches.len(), "final read");
    Ok(Some(ReplicaLog { node, log_start, log_end, batches }))
}

/// Reads every replica of every partition; returns the final reads and LogMatching violations.
pub async fn read_replicas(
    cluster: &Cluster,
    mix: &FaultMix,
    replicas: &BTreeMap<PartitionKey, Vec<u32>>,
    high_watermarks: &BTreeMap<PartitionKey, i64>,
) -> (Vec<FinalRead>, Vec<Violation>) {
    let mut reads = Vec::new();
    let mut violations = Vec::new();
    for topic in &mix.topics {
        for partition in 0..topic.partitions {
            let key = PartitionKey::new(topic.name.clone(), partition);
            let dir = PathBuf::from("/data").join(format!("{}-{partition}", topic.name));
            let Some(nodes) = replicas.get(&key) else {
                if !replicas.is_empty() {
                    let message = format!("{key}: no replica set from Metadata after healing");
                    violations.push(Violation { checker: LIVENESS, message });
                }
                continue;
            };
            let mut logs = Vec::new();
            for node in nodes.iter().copied() {
                if mix.faulty_disk_nodes.contains(&node) {
                    // A replica on a faulty disk is outside the durability promise (the budget
                    // keeps faulty replicas a minority); it is not read.
                    continue;
                }
                match read_log(cluster, node, &dir).await {
                    Ok(Some(log)) => logs.push(log),
                    Ok(None) => violations.push(Violation {
                        checker: NO_LOST_WRITE,
                        message: format!("{key}: replica node {node} has no log directory"),
                    }),
                    Err(message) => violations.push(Violation { checker: LOG_MATCHING, message }),
                }
            }
            let high_watermark = high_watermarks.get(&key).copied();
            let (mut partition_reads, mut partition_violations) =
                compare(&key, &logs, topic.replication_factor, high_watermark);
            reads.append(&mut partition_reads);
            violations.append(&mut partition_violations);
        }
    }
    (reads, violations)
}

/// Compares one partition's replica logs below the committed end: the leader's high watermark,
/// or (no leader answered) the largest end a majority of the replicas reach.
fn compare(
    key: &PartitionKey,
    logs: &[ReplicaLog],
    replication_factor: i16,
    high_watermark: Option<i64>,
) -> (Vec<FinalRead>, Vec<Violation>) {
    let mut violations = Vec::new();
    let majority = replication_factor as usize / 2 + 1;
    let mut ends: Vec<i64> = logs.iter().map(|l| l.log_end).collect();
    ends.sort_unstable_by(|a, b| b.cmp(a));
    let committed_end = high_watermark.unwrap_or_else(|| ends.get(majority - 1).copied().unwrap_or(0));
    // LogMatching over the committed prefix: every replica holding a batch below the end holds
    // the same bytes as the first replica that has it.
    let reference = logs.iter().max_by_key(|l| l.log_end);
    if let Some(reference) = reference {
        for log in logs {
            for (base, (header, bytes)) in log.batches.range(..committed_end) {
                match reference.batches.get(base) {
                    Some((_, theirs)) if theirs == bytes => {}
                    Some(_) => violations.push(Violation {
                        checker: LOG_MATCHING,
                        message: format!(
                            "{key}: the committed batch at offset {base}..{} differs between node {} and node {}",
                            header.next_offset().0,
                            log.node,
                            reference.node
                        ),
                    }),
                    None if *base >= reference.log_start => violations.push(Violation {
                        checker: LOG_MATCHING,
                        message: format!(
                            "{key}: node {} holds a committed batch at offset {base} that node {} lacks",
                            log.node, reference.node
                        ),
                    }),
                    None => {}
                }
            }
        }
    }
    let mut reads = Vec::new();
    for log in logs {
        if log.log_end < committed_end && high_watermark.is_some() {
            let settle_s = crate::run::SETTLE_MS / 1000;
            let message = format!(
                "{key}: node {}'s replica ends at offset {}, behind its leader's high watermark {committed_end}, {settle_s} s after the cluster served again",
                log.node, log.log_end
            );
            violations.push(Violation { checker: LIVENESS, message });
            continue;
        }
        let high_watermark = committed_end.min(log.log_end);
        let mut records = Vec::new();
        for (_, (header, bytes)) in log.batches.range(..high_watermark) {
            if header.is_control() {
                continue;
            }
            match decode_batch(bytes, 64 << 20) {
                Ok((header, decoded)) => {
                    for record in decoded {
                        let offset = header.base_offset.0 + i64::from(record.offset_delta);
                        let value = record.value.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
                        records.push((offset, value));
                    }
                }
                Err(error) => violations.push(Violation {
                    checker: LOG_MATCHING,
                    message: format!(
                        "{key}: node {} batch at {} does not decode: {error}",
                        log.node, header.base_offset.0
                    ),
                }),
            }
        }
        reads.push(FinalRead {
            node: log.node,
            partition: key.clone(),
            high_watermark: high_watermark.max(log.log_start),
            log_start: log.log_start,
            records,
        });
    }
    (reads, violations)
}
