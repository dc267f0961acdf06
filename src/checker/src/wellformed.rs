//! `HarnessError`: the history keeps the promises the checkers rely on.
//!
//! Why: every other checker assumes unique sent values (Jepsen kafka workload: values unique per
//! key, "the checker depends on this"), sane times and offsets, and final reads that hold only
//! committed records for every partition. A history that breaks these proves nothing either way,
//! so it is reported loudly instead of silently weakening the checks. `GroupOffsetsDurable`
//! likewise assumes unique commit metadata (a fetched offset names the one commit it came from,
//! as Jepsen's register workloads write unique values) and sane times and offsets. The cycle
//! search (cycles.rs) assumes the lines of one `op_id` share a process, and `Unseen` a
//! non-negative final-poll end offset.

use std::collections::{BTreeMap, BTreeSet};

use crate::anomaly;
use crate::history::{FinalRead, History, Op, PartitionKey, SendOutcome};
use crate::index::Index;
use crate::report::{HARNESS_ERROR, Sink};

pub(crate) fn check(history: &History, index: &Index<'_>, sink: &mut Sink) {
    check_unique_values(index, sink);
    check_unique_metadata(history, sink);
    check_op_ids(history, sink);
    for (position, op) in history.ops.iter().enumerate() {
        check_op(u64::try_from(position).expect("usize fits u64"), op, sink);
    }
    for verdict in &history.final_polls {
        if verdict.end_offset < 0 || verdict.partition.partition < 0 {
            let message = format!("final polls of {}: negative end offset {}", verdict.partition, verdict.end_offset);
            sink.push_as(HARNESS_ERROR, anomaly::HARNESS_ERROR, message);
        }
    }
    let mut seen: BTreeSet<(&PartitionKey, u32)> = BTreeSet::new();
    for read in &history.final_reads {
        if !seen.insert((&read.partition, read.node)) {
            let message = format!("{} has two final reads from node {}", read.partition, read.node);
            sink.push_as(HARNESS_ERROR, anomaly::HARNESS_ERROR, message);
        }
        check_final_read(read, sink);
    }
    // Without any final read the harness opted out of durability checks; with some, a missing
    // partition would silently skip NoLostWrite for it.
    if !history.final_reads.is_empty() {
        for (partition, partition_index) in &index.partitions {
            if partition_index.replicas.is_empty() {
                let message = format!("{partition} has operations but no final read");
                sink.push_as(HARNESS_ERROR, anomaly::HARNESS_ERROR, message);
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
            sink.push_as(HARNESS_ERROR, anomaly::HARNESS_ERROR, message);
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
            sink.push_as(HARNESS_ERROR, anomaly::HARNESS_ERROR, message);
        }
    }
}

/// The lines of one `op_id`: its first line, process, earliest invocation, latest completion.
struct JepsenOp {
    first_line: u64,
    process: u64,
    invoke_ms: u64,
    complete_ms: u64,
}

// The lines of one Jepsen operation are one vertex of the dependency graph (cycles.rs), whose
// process edges need the vertex's process and a process that runs one operation at a time
// (jepsen_tla.md §1.2: a process's next invoke follows its previous completion).
fn check_op_ids(history: &History, sink: &mut Sink) {
    let mut jepsen_ops: BTreeMap<u64, JepsenOp> = BTreeMap::new();
    for (position, op) in history.ops.iter().enumerate() {
        let (Some(op_id), Op::Send { invoke_ms, complete_ms, .. } | Op::Poll { invoke_ms, complete_ms, .. }) =
            (op.op_id(), op)
        else {
            continue;
        };
        let op_number = u64::try_from(position).expect("usize fits u64");
        let (invoke_ms, complete_ms) = (*invoke_ms, (*complete_ms).max(*invoke_ms));
        let first = jepsen_ops.entry(op_id).or_insert(JepsenOp {
            first_line: op_number,
            process: op.process(),
            invoke_ms,
            complete_ms,
        });
        (first.invoke_ms, first.complete_ms) = (first.invoke_ms.min(invoke_ms), first.complete_ms.max(complete_ms));
        if first.process != op.process() {
            let message = format!(
                "op #{op_number} by process {} has op_id {op_id}, as op #{} by process {} does; one operation has one process",
                op.process(),
                first.first_line,
                first.process
            );
            sink.push_as(HARNESS_ERROR, anomaly::HARNESS_ERROR, message);
        }
    }
    let mut by_process: BTreeMap<u64, Vec<(u64, &JepsenOp)>> = BTreeMap::new();
    for (op_id, jepsen_op) in &jepsen_ops {
        by_process.entry(jepsen_op.process).or_default().push((*op_id, jepsen_op));
    }
    for (process, mut ops) in by_process {
        ops.sort_by_key(|(_, op)| (op.invoke_ms, op.first_line));
        if let Some(pair) = ops.windows(2).find(|pair| pair[1].1.invoke_ms < pair[0].1.complete_ms) {
            let ((earlier_id, earlier), (later_id, later)) = (pair[0], pair[1]);
            let message = format!(
                "process {process} invoked op_id {later_id} at {} ms, before its op_id {earlier_id} completed at {} ms; a process with op_ids runs one operation at a time",
                later.invoke_ms, earlier.complete_ms
            );
            sink.push_as(HARNESS_ERROR, anomaly::HARNESS_ERROR, message);
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
        sink.push_as(HARNESS_ERROR, anomaly::HARNESS_ERROR, message);
    }
}

fn check_final_read(read: &FinalRead, sink: &mut Sink) {
    let at = format!("final read of {} from node {}", read.partition, read.node);
    if read.partition.partition < 0 || read.log_start < 0 || read.log_start > read.high_watermark {
        let message = format!(
            "{at}: bad bounds (partition {}, log start {}, high watermark {})",
            read.partition.partition, read.log_start, read.high_watermark
        );
        sink.push_as(HARNESS_ERROR, anomaly::HARNESS_ERROR, message);
    }
    let committed = read.log_start..read.high_watermark;
    if let Some((offset, value)) = read.records.iter().find(|(offset, _)| !committed.contains(offset)) {
        let message = format!(
            "{at}: record {value:?} at offset {offset} is outside the committed range {}..{}",
            read.log_start, read.high_watermark
        );
        sink.push_as(HARNESS_ERROR, anomaly::HARNESS_ERROR, message);
    }
    if let Some(pair) = read.records.windows(2).find(|pair| pair[1].0 <= pair[0].0) {
        let message = format!("{at}: offsets not strictly increasing ({} then {})", pair[0].0, pair[1].0);
        sink.push_as(HARNESS_ERROR, anomaly::HARNESS_ERROR, message);
    }
}
