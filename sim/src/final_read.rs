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
use sluice_checker::raft::LOG_MATCHING;
use sluice_checker::{FinalRead, NO_LOST_WRITE, PartitionKey, Violation};
use sluice_storage::{ReplicaLog, compare_replicas, read_replica_log};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

async fn read_log(cluster: &Cluster, node: u32, dir: &Path) -> Result<Option<ReplicaLog>, String> {
    let disk = cluster.brokers[(node - 1) as usize].disk.clone();
    let log = read_replica_log(disk, node, dir).await?;
    if let Some(log) = &log {
        let (log_start, log_end, batches) = (log.log_start, log.log_end, log.batches.len());
        tracing::info!(target: "sluice_sim", node, dir = %dir.display(), log_start, log_end, batches, "final read");
    }
    Ok(log)
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

/// Compares one partition's replica logs (`sluice_storage::compare_replicas`) and names what
/// it found with the simulator's checkers.
fn compare(
    key: &PartitionKey,
    logs: &[ReplicaLog],
    replication_factor: i16,
    high_watermark: Option<i64>,
) -> (Vec<FinalRead>, Vec<Violation>) {
    let found = compare_replicas(&key.to_string(), logs, replication_factor, high_watermark);
    let mut violations: Vec<Violation> =
        found.mismatches.into_iter().map(|message| Violation { checker: LOG_MATCHING, message }).collect();
    let settle_s = crate::run::SETTLE_MS / 1000;
    for (node, log_end) in found.behind {
        let message = format!(
            "{key}: node {node}'s replica ends at offset {log_end}, behind its leader's high watermark {}, {settle_s} s after the cluster served again",
            found.committed_end
        );
        violations.push(Violation { checker: LIVENESS, message });
    }
    let reads = found
        .reads
        .into_iter()
        .map(|read| FinalRead {
            node: read.node,
            partition: key.clone(),
            high_watermark: read.high_watermark,
            log_start: read.log_start,
            records: read.records,
        })
        .collect();
    (reads, violations)
}
