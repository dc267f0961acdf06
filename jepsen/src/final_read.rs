//! Final reads from disk: once the brokers have stopped, every replica of every partition is
//! read from its host's data directory, the replicas are compared below the committed end, and
//! each replica's committed records become a `FinalRead` history line.
//!
//! Why from disk, as `sim/` does: Fetch serves only the leader, and the promise is about every
//! replica (an acknowledged write survives on a majority; committed batches are byte-identical
//! on every replica). The reading and comparison are `sluice_storage::read_replica_log` and
//! `compare_replicas`, shared with the simulator.

use crate::config::{REPLICATION_FACTOR, RunConfig, all_partitions};
use crate::recorder::Recorder;
use sluice_checker::{FinalRead, Line, PartitionKey};
use sluice_io::StdDisk;
use sluice_storage::{compare_replicas, read_replica_log};
use std::collections::BTreeMap;

/// Reads, compares and records every partition's replicas (the leader's replica set, or, with no
/// leader, every host holding the partition); returns what the comparison found (replicas
/// that differ, lag behind the high watermark, or are missing), one line each.
pub fn read_all(
    config: &RunConfig,
    leaders: &BTreeMap<PartitionKey, (Option<i64>, Option<Vec<u32>>)>,
    recorder: &Recorder,
) -> anyhow::Result<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut findings = Vec::new();
    let replication_factor = REPLICATION_FACTOR.min(config.nodes);
    for (topic, partition) in all_partitions() {
        let key = PartitionKey::new(topic.clone(), partition);
        let (high_watermark, replicas) = leaders.get(&key).cloned().unwrap_or((None, None));
        let mut logs = Vec::new();
        // The leader's replica set; without a leader, every host holding the partition.
        for node in replicas.unwrap_or_else(|| (1..=config.nodes).collect()) {
            let dir = config.data_dir(node).join(format!("{topic}-{partition}"));
            match runtime.block_on(read_replica_log(StdDisk, node, &dir)) {
                Ok(Some(log)) => logs.push(log),
                Ok(None) => {}
                Err(error) => findings.push(format!("{key}: {error}")),
            }
        }
        if logs.len() < replication_factor as usize {
            findings.push(format!("{key}: {} replicas on disk, expected {replication_factor}", logs.len()));
        }
        let found = compare_replicas(&key.to_string(), &logs, replication_factor as i16, high_watermark);
        findings.extend(found.mismatches);
        for (node, log_end) in found.behind {
            findings.push(format!(
                "{key}: node {node}'s replica ends at offset {log_end}, behind the high watermark {} after the final phase",
                found.committed_end
            ));
        }
        for read in found.reads {
            recorder.record(&Line::FinalRead(FinalRead {
                node: read.node,
                partition: key.clone(),
                high_watermark: read.high_watermark,
                log_start: read.log_start,
                records: read.records,
            }));
        }
    }
    Ok(findings)
}
