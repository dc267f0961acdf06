//! Producer-side checks: `NoLostWrite`, `AbortedRead`, `SendMonotonic`, `SendRealtimeOrder`.
//!
//! Why: acks=all promises that an acknowledged record is committed at its offset and survives
//! any minority failure (Raft §5.4 leader completeness); a definitely-failed send must never be
//! visible (Jepsen kafka checker: G1a); an idempotent producer's records keep their send order
//! (KIP-98, Jepsen: nonmonotonic-send); and a send acknowledged before another is invoked gets
//! the smaller offset (jepsen_tla.md §1.8, realtime append order).
//!
//! Indeterminate sends are never judged here: present or absent, once or (non-idempotent) more.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use crate::anomaly;
use crate::history::{PartitionKey, SendOutcome};
use crate::index::{Index, PartitionIndex, SendView};
use crate::report::{ABORTED_READ, NO_LOST_WRITE, SEND_MONOTONIC, SEND_REALTIME_ORDER, Sink};

pub(crate) fn check(index: &Index<'_>, sink: &mut Sink) {
    for (key, partition) in &index.partitions {
        let sends: Vec<&SendView<'_>> = partition.sends.iter().map(|&i| &index.sends[i]).collect();
        for send in &sends {
            assert!(send.partition == *key, "sends are indexed under their own partition");
            match send.outcome {
                SendOutcome::Ok { offset } => check_not_lost(key, partition, send, *offset, sink),
                SendOutcome::Failed => check_not_visible(key, partition, send, sink),
                SendOutcome::Indeterminate => {}
            }
        }
        check_realtime_order(key, &sends, sink);
    }
    check_send_monotonic(index, sink);
}

// Jepsen kafka checker: lost-write (jepsen_tla.md §1.5.5), judged against every replica's final
// log when there is one (what Jepsen's final polls plus unseen approximate).
fn check_not_lost(
    key: &PartitionKey,
    partition: &PartitionIndex<'_>,
    send: &SendView<'_>,
    offset: i64,
    sink: &mut Sink,
) {
    let value = send.value;
    let sender = format!("sent by process {} (op #{})", send.process, send.op);
    for replica in partition.replicas.values() {
        if replica.log_start > offset {
            continue; // Removed by retention or DeleteRecords: nothing to check.
        }
        let message = match replica.records.get(&offset) {
            Some(held) if *held == value => continue,
            Some(held) => format!(
                "{key} value {value:?} acknowledged at offset {offset} is missing from the final log of {}, which holds {held:?} there; {sender}",
                replica.describe()
            ),
            None => format!(
                "{key} value {value:?} acknowledged at offset {offset} is missing from the final log of {}; {sender}",
                replica.describe()
            ),
        };
        sink.push_as(NO_LOST_WRITE, anomaly::LOST_WRITE, message);
    }
    if !partition.replicas.is_empty() {
        return;
    }
    // No final reads (a Jepsen-style history): Jepsen's lost-write. If someone polled an offset
    // b > a, every committed value at offsets <= b must have been read by someone.
    if partition.read_values.contains(value) {
        return;
    }
    let polled_above = partition.highest_polled.filter(|(polled, _)| *polled > offset);
    if let Some((polled, source)) = polled_above {
        let message = format!(
            "{key} value {value:?} acknowledged at offset {offset} was never read, though offset {polled} was ({source}); {sender}"
        );
        sink.push_as(NO_LOST_WRITE, anomaly::LOST_WRITE, message);
    }
}

// Jepsen kafka checker: G1a. A definitely-failed send is visible to a poll or in a final log.
fn check_not_visible(key: &PartitionKey, partition: &PartitionIndex<'_>, send: &SendView<'_>, sink: &mut Sink) {
    if !partition.read_values.contains(send.value) {
        return;
    }
    let offsets = &partition.offsets_by_value[send.value];
    let offset = *offsets.first().expect("a read value was seen at some offset");
    let message = format!(
        "{key} value {:?} whose send definitely failed (process {}, op #{}) is visible at offset {offset}: {}",
        send.value,
        send.process,
        send.op,
        partition.witness(offset, send.value)
    );
    sink.push_as(ABORTED_READ, anomaly::G1A, message);
}

// Jepsen kafka checker: nonmonotonic-send. Per (process, partition), idempotent acked sends in
// invoke order must have increasing offsets (KIP-98 sequence numbers keep order across retries).
fn check_send_monotonic(index: &Index<'_>, sink: &mut Sink) {
    let mut streams: BTreeMap<(u64, &PartitionKey), Vec<(&SendView<'_>, i64)>> = BTreeMap::new();
    for send in index.sends.iter().filter(|send| send.idempotent) {
        if let Some(offset) = send.acked_offset() {
            streams.entry((send.process, send.partition)).or_default().push((send, offset));
        }
    }
    for ((process, key), mut sends) in streams {
        sends.sort_by_key(|(send, _)| (send.invoke_ms, send.op));
        for pair in sends.windows(2) {
            let ((earlier, earlier_offset), (later, later_offset)) = (pair[0], pair[1]);
            if later_offset > earlier_offset {
                continue;
            }
            let message = format!(
                "{key} idempotent process {process} sent {:?} (op #{}, invoked at {} ms) before {:?} (op #{}, invoked at {} ms), but they landed at offsets {earlier_offset} and {later_offset}",
                earlier.value, earlier.op, earlier.invoke_ms, later.value, later.op, later.invoke_ms
            );
            // jepsen_tla.md §1.5.8: two records of one send op are its int- variant.
            let one_op = earlier.op_id.is_some() && earlier.op_id == later.op_id;
            let class = if one_op { anomaly::INT_NONMONOTONIC_SEND } else { anomaly::NONMONOTONIC_SEND };
            sink.push_as(SEND_MONOTONIC, class, message);
        }
    }
}

// jepsen_tla.md §1.8 / dst.md §5.3: if send A was acknowledged before send B was invoked, then
// offset(A) < offset(B). Sweep sends by offset, highest first, remembering the earliest
// completion among strictly higher offsets: O(n log n).
fn check_realtime_order(key: &PartitionKey, sends: &[&SendView<'_>], sink: &mut Sink) {
    let mut acked: Vec<(&SendView<'_>, i64)> =
        sends.iter().filter_map(|send| send.acked_offset().map(|offset| (*send, offset))).collect();
    acked.sort_by_key(|(send, offset)| (Reverse(*offset), send.op));
    let mut earliest_above: Option<(&SendView<'_>, i64)> = None;
    let mut group_start = 0;
    while group_start < acked.len() {
        let group_offset = acked[group_start].1;
        let group_len = acked[group_start..].iter().take_while(|(_, offset)| *offset == group_offset).count();
        let group = &acked[group_start..group_start + group_len];
        for (later, later_offset) in group {
            let Some((earlier, earlier_offset)) = earliest_above else { break };
            assert!(earlier_offset > *later_offset, "the sweep only remembers higher offsets");
            if earlier.complete_ms < later.invoke_ms {
                let message = format!(
                    "{key} {:?} was acknowledged at offset {earlier_offset} at {} ms (op #{}), before {:?} was invoked at {} ms (op #{}), yet {:?} got the lower offset {later_offset}",
                    earlier.value, earlier.complete_ms, earlier.op, later.value, later.invoke_ms, later.op, later.value
                );
                sink.push_as(SEND_REALTIME_ORDER, anomaly::REALTIME_SEND_ORDER, message);
            }
        }
        for candidate in group {
            if earliest_above.is_none_or(|(earliest, _)| candidate.0.complete_ms < earliest.complete_ms) {
                earliest_above = Some(*candidate);
            }
        }
        group_start += group_len;
    }
}
