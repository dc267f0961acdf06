//! `HarnessError`: the history keeps the promises the checkers rely on.
//!
//! Why: every other checker assumes unique sent values (Jepsen kafka workload: values unique per
//! key, "the checker depends on this"), sane times and offsets, and final reads that hold only
//! committed records for every partition. A history that breaks these proves nothing either way,
//! so it is reported loudly instead of silently weakening the checks. `GroupOffsetsDurable`
//! likewise assumes unique commit metadata (a fetched offset names the one commit it came from,
//! as Jepsen's register workloads write unique values) and sane times and offsets.

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{FinalRead, History, Op, PartitionKey, SendOutcome};
use crate::index::Index;
use crate::report::{HARNESS_ERROR, Sink};

pub(crate) fn check(history: &History, index: &Index<'_>, sink: &mut Sink) {
    check_unique_values(index, sink);
    check_unique_metadata(history, sink);
    for (position, op) in history.ops.iter().enumerate() {
        check_op(u64::try_from(position).expect("usize fits u64"), op, sink);
    }
    let mut seen: BTreeSet<(&PartitionKey, u32)> = BTreeSet::new();
    for read in &history.final_reads {
        if !seen.insert((&read.partition, read.node)) {
            let message = format!("{} has two final reads from node {}", read.partition, read.node);
            sink.push(HARNESS_ERROR, message);
        }
        check_final_read(read, sink);
    }
    // Without any final read the harness opted out of durability checks; with some, a missing
    // partition would silently skip NoLostWrite for it.
    if !history.final_reads.is_empty() {
        for (partition, partition_index) in &index.partitions {
            if partition_index.replicas.is_empty() {
                let message = format!("{partition} has operations but no final read");
                sink.push(HARNESS_ERROR, message);
            }
        }
    }
}

fn check_unique_values(index: &Index<'_>, sink: &mut Sink) {
    let mut ops_by_value: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for send in &index.sends {
        ops_by_value.entry(send.value).or_default().push(send.op);
    }
    for (value, ops) in ops_by_value {
        if ops.len() > 1 {
            let message = format!(
                "value {value:?} was sent {} times (ops {ops:?}); the workload must send unique values",
                ops.len()
            );
            sink.push(HARNESS_ERROR, message);
        }
    }
}

fn check_unique_metadata(history: &History, sink: &mut Sink) {
    let mut ops_by_metadata: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (position, op) in history.ops.iter().enumerate() {
        if let Op::Commit { metadata, .. } = op {
            let op_number = u64::try_from(position).expect("usize fits u64");
            ops_by_metadata.entry(metadata).or_default().push(op_number);
        }
    }
    for (metadata, ops) in ops_by_metadata {
        if ops.len() > 1 {
            let message = format!(
                "commit metadata {metadata:?} was used {} times (ops {ops:?}); the workload must commit unique metadata",
                ops.len()
            );
            sink.push(HARNESS_ERROR, message);
        }
    }
}

fn check_op(op_number: u64, op: &Op, sink: &mut Sink) {
    let mut problems: Vec<String> = Vec::new();
    if op.partition().partition < 0 {
        problems.push("negative partition".to_owned());
    }
    match op {
        Op::Send { invoke_ms, complete_ms, outcome, .. } => {
            if complete_ms < invoke_ms {
                problems.push(format!("completes at {complete_ms} ms before invoke at {invoke_ms} ms"));
            }
            if let SendOutcome::Ok { offset } = outcome
                && *offset < 0
            {
                problems.push(format!("acknowledged at negative offset {offset}"));
            }
        }
        Op::Poll { fetch_offset, invoke_ms, complete_ms, high_watermark, records, .. } => {
            if complete_ms < invoke_ms {
                problems.push(format!("completes at {complete_ms} ms before invoke at {invoke_ms} ms"));
            }
            if *fetch_offset < 0 || *high_watermark < 0 {
                problems.push(format!("fetch offset {fetch_offset} or high watermark {high_watermark} is negative"));
            }
            if let Some((offset, _)) = records.iter().find(|(offset, _)| *offset < 0) {
                problems.push(format!("returned negative offset {offset}"));
            }
        }
        Op::Seek { offset, .. } => {
            if *offset < 0 {
                problems.push(format!("seeks to negative offset {offset}"));
            }
        }
        Op::Commit { group, offset, invoke_ms, complete_ms, .. } => {
            if complete_ms < invoke_ms {
                problems.push(format!(
                    "commit of group {group:?} completes at {complete_ms} ms before invoke at {invoke_ms} ms"
                ));
            }
            if *offset < 0 {
                problems.push(format!("commit of group {group:?} commits negative offset {offset}"));
            }
        }
        Op::FetchCommitted { group, invoke_ms, complete_ms, committed, .. } => {
            if complete_ms < invoke_ms {
                problems.push(format!(
                    "fetch of group {group:?} completes at {complete_ms} ms before invoke at {invoke_ms} ms"
                ));
            }
            // Kafka answers -1 for "no offset"; the harness must record that as None.
            if let Some((offset, _)) = committed
                && *offset < 0
            {
                problems.push(format!("fetch of group {group:?} returned negative offset {offset}"));
            }
        }
    }
    for problem in problems {
        let message = format!("op #{op_number} on {} by process {}: {problem}", op.partition(), op.process());
        sink.push(HARNESS_ERROR, message);
    }
}

fn check_final_read(read: &FinalRead, sink: &mut Sink) {
    let at = format!("final read of {} from node {}", read.partition, read.node);
    if read.partition.partition < 0 || read.log_start < 0 || read.log_start > read.high_watermark {
        let message = format!(
            "{at}: bad bounds (partition {}, log start {}, high watermark {})",
            read.partition.partition, read.log_start, read.high_watermark
        );
        sink.push(HARNESS_ERROR, message);
    }
    let committed = read.log_start..read.high_watermark;
    if let Some((offset, value)) = read.records.iter().find(|(offset, _)| !committed.contains(offset)) {
        let message = format!(
            "{at}: record {value:?} at offset {offset} is outside the committed range {}..{}",
            read.log_start, read.high_watermark
        );
        sink.push(HARNESS_ERROR, message);
    }
    if let Some(pair) = read.records.windows(2).find(|pair| pair[1].0 <= pair[0].0) {
        let message = format!("{at}: offsets not strictly increasing ({} then {})", pair[0].0, pair[1].0);
        sink.push(HARNESS_ERROR, message);
    }
}
