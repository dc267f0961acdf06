//! Consumer-side checks: `PollMonotonic`, `ReadsBelowHighWatermark`, `HighWatermarkMonotonic`.
//!
//! Why: a consumer that neither seeks nor is reassigned reads its partition as a contiguous run
//! of the log (Jepsen kafka checker: nonmonotonic-poll, poll-skip and their int- variants); it
//! only ever sees committed records, below the high watermark, that stay in the log (dst.md
//! §5.2, "reads above HW"); and the committed prefix never shrinks (Raft §5.4, dst.md §5.1.6).
//!
//! Gaps are judged against the final log, not by counting: control batches (KIP-98 markers) and
//! Raft no-ops consume offsets but are never returned to clients. A skipped offset is a violation
//! only if some replica's final log holds a data record there.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Range;

use crate::anomaly;
use crate::history::PartitionKey;
use crate::index::{Index, PartitionIndex, PollView, Replica, SeekView};
use crate::report::{HIGH_WATERMARK_MONOTONIC, POLL_MONOTONIC, READS_BELOW_HIGH_WATERMARK, Sink};

enum Event<'i, 'h> {
    Poll(&'i PollView<'h>),
    Seek(&'i SeekView<'h>),
}

impl Event<'_, '_> {
    /// Streams are ordered by start time, then history position.
    fn order(&self) -> (u64, u64) {
        match self {
            Event::Poll(poll) => (poll.invoke_ms, poll.op),
            Event::Seek(seek) => (seek.at_ms, seek.op),
        }
    }
}

pub(crate) fn check(index: &Index<'_>, sink: &mut Sink) {
    type Streams<'i, 'h> = BTreeMap<(u64, &'h PartitionKey), Vec<Event<'i, 'h>>>;
    let mut streams: Streams<'_, '_> = BTreeMap::new();
    for poll in &index.polls {
        streams.entry((poll.process, poll.partition)).or_default().push(Event::Poll(poll));
    }
    for seek in &index.seeks {
        streams.entry((seek.process, seek.partition)).or_default().push(Event::Seek(seek));
    }
    for ((process, key), mut events) in streams {
        events.sort_by_key(Event::order);
        let partition = &index.partitions[key];
        check_poll_monotonic(key, process, partition, &events, sink);
        let polls: Vec<&PollView<'_>> = events
            .iter()
            .filter_map(|event| match event {
                Event::Poll(poll) => Some(*poll),
                Event::Seek(_) => None,
            })
            .collect();
        check_high_watermark_monotonic(key, process, &polls, sink);
    }
    for (key, partition) in &index.partitions {
        let polls: Vec<&PollView<'_>> = partition.polls.iter().map(|&i| &index.polls[i]).collect();
        for poll in &polls {
            check_reads_committed(key, partition, poll, sink);
        }
        check_high_watermark_committed(key, partition, &polls, sink);
    }
}

/// Where a consumer stands after a poll: the offset after the last record returned since the
/// last seek, the `Poll` line that returned it, and that line's Jepsen operation.
#[derive(Clone, Copy)]
struct Cursor {
    next: i64,
    op: u64,
    op_id: Option<u64>,
}

// Jepsen kafka checker: nonmonotonic-poll, poll-skip, int-nonmonotonic-poll, int-poll-skip
// (jepsen_tla.md §1.5.7, §1.5.9). The int- variants are the ones inside one poll op: within one
// `Poll` line, or between two lines of one `op_id` (a Jepsen op of two poll mops).
fn check_poll_monotonic(
    key: &PartitionKey,
    process: u64,
    partition: &PartitionIndex<'_>,
    events: &[Event<'_, '_>],
    sink: &mut Sink,
) {
    let mut cursor: Option<Cursor> = None;
    for event in events {
        let poll = match event {
            Event::Seek(_) => {
                cursor = None;
                continue;
            }
            Event::Poll(poll) => *poll,
        };
        let at = format!("{key} process {process} op #{}", poll.op);
        let Some(&(first, _)) = poll.records.first() else { continue };
        if first < poll.fetch_offset {
            // Below the position the previous polls (or a seek) left the consumer at.
            let message = format!("{at} fetched from offset {} but returned offset {first}", poll.fetch_offset);
            sink.push_as(POLL_MONOTONIC, anomaly::NONMONOTONIC_POLL, message);
        }
        match cursor {
            Some(previous) => {
                let one_op = previous.op_id.is_some() && previous.op_id == poll.op_id;
                let (backwards, skip) = if one_op {
                    (anomaly::INT_NONMONOTONIC_POLL, anomaly::INT_POLL_SKIP)
                } else {
                    (anomaly::NONMONOTONIC_POLL, anomaly::POLL_SKIP)
                };
                let (next, previous_op) = (previous.next, previous.op);
                if first < next {
                    let message = format!(
                        "{at} returned offset {first} after op #{previous_op} had returned up to offset {} (no seek between)",
                        next - 1
                    );
                    sink.push_as(POLL_MONOTONIC, backwards, message);
                } else {
                    let context = format!(
                        "between op #{previous_op} (last offset {}) and op #{} (first offset {first})",
                        next - 1,
                        poll.op
                    );
                    check_skip(key, process, partition, (next..first, skip), &context, sink);
                }
            }
            None => {
                let context =
                    format!("in op #{} (fetched from offset {}, first offset {first})", poll.op, poll.fetch_offset);
                check_skip(key, process, partition, (poll.fetch_offset..first, anomaly::POLL_SKIP), &context, sink);
            }
        }
        for pair in poll.records.windows(2) {
            let (previous, current) = (pair[0].0, pair[1].0);
            if current <= previous {
                let message = format!("{at} returned offset {current} after offset {previous}");
                sink.push_as(POLL_MONOTONIC, anomaly::INT_NONMONOTONIC_POLL, message);
            } else {
                let context = format!("within op #{} (offset {previous} then {current})", poll.op);
                let skipped = (previous.saturating_add(1)..current, anomaly::INT_POLL_SKIP);
                check_skip(key, process, partition, skipped, &context, sink);
            }
        }
        let &(last, _) = poll.records.last().expect("records are non-empty");
        cursor = Some(Cursor { next: last.saturating_add(1), op: poll.op, op_id: poll.op_id });
    }
}

/// Reports the lowest data record any replica's final log holds in the skipped range, if any,
/// under the anomaly class paired with the range.
fn check_skip(
    key: &PartitionKey,
    process: u64,
    partition: &PartitionIndex<'_>,
    (skipped, class): (Range<i64>, &'static str),
    context: &str,
    sink: &mut Sink,
) {
    if skipped.is_empty() {
        return;
    }
    let lowest = partition
        .replicas
        .values()
        .filter_map(|replica| replica.records.range(skipped.clone()).next().map(|(o, v)| (*o, *v, replica.node)))
        .min();
    if let Some((offset, value, node)) = lowest {
        let message = format!(
            "{key} process {process} skipped offsets {}..{} {context}; offset {offset} holds data record {value:?} in the final log of node {node}",
            skipped.start, skipped.end
        );
        sink.push_as(POLL_MONOTONIC, class, message);
    }
}

// dst.md §5.2: a consumer only sees committed records: below the high watermark of its Fetch
// response, and afterwards in the final log of every replica whose committed range holds that
// offset, with some replica's range reaching it (no dirty read).
fn check_reads_committed(key: &PartitionKey, partition: &PartitionIndex<'_>, poll: &PollView<'_>, sink: &mut Sink) {
    let at = format!("{key} process {} op #{}", poll.process, poll.op);
    for (offset, value) in poll.records {
        if *offset >= poll.high_watermark {
            let message = format!(
                "{at} read {value:?} at offset {offset}, at or above its high watermark {}",
                poll.high_watermark
            );
            sink.push_as(READS_BELOW_HIGH_WATERMARK, anomaly::READ_ABOVE_HIGH_WATERMARK, message);
        }
        let reaching: Vec<&Replica<'_>> = partition.replicas.values().filter(|r| r.log_start <= *offset).collect();
        if reaching.is_empty() {
            continue; // No final reads, or removed by retention: nothing to compare with.
        }
        // Replicas whose high watermark is at or below `offset` lag; NoLostWrite and
        // HighWatermarkMonotonic judge lag. Those whose committed range holds it must agree.
        let covering: Vec<&Replica<'_>> = reaching.iter().copied().filter(|r| *offset < r.high_watermark).collect();
        let Some(highest) = reaching.iter().max_by_key(|r| r.high_watermark) else { continue };
        if covering.is_empty() {
            let message = format!(
                "{at} read {value:?} at offset {offset}, but no replica's final log reaches it, the highest being {} (dirty read)",
                highest.describe()
            );
            sink.push_as(READS_BELOW_HIGH_WATERMARK, anomaly::DIRTY_READ, message);
        }
        for replica in covering {
            let held = replica.records.get(offset);
            if held == Some(&value.as_str()) {
                continue;
            }
            let instead = held.map_or_else(|| "no record".to_owned(), |held| format!("{held:?}"));
            let message = format!(
                "{at} read {value:?} at offset {offset}, but the final log of {} has {instead} there (dirty read)",
                replica.describe()
            );
            sink.push_as(READS_BELOW_HIGH_WATERMARK, anomaly::DIRTY_READ, message);
            break; // One witness per record is enough.
        }
    }
}

// dst.md §5.1.6, client-observed form: per (process, partition), a poll invoked after an earlier
// poll completed sees a high watermark at least as high. (Across processes this would need a
// linearizable HW; followers may lag, so only one client's view is checked.)
fn check_high_watermark_monotonic(key: &PartitionKey, process: u64, polls: &[&PollView<'_>], sink: &mut Sink) {
    let mut by_complete: Vec<&PollView<'_>> = polls.to_vec();
    by_complete.sort_by_key(|poll| (poll.complete_ms, poll.op));
    let mut next_completed = 0;
    let mut highest_before: Option<&PollView<'_>> = None;
    for poll in polls {
        // `polls` is in invoke order, so the set of polls completed before it only grows.
        while next_completed < by_complete.len() && by_complete[next_completed].complete_ms < poll.invoke_ms {
            let done = by_complete[next_completed];
            if highest_before.is_none_or(|highest| done.high_watermark > highest.high_watermark) {
                highest_before = Some(done);
            }
            next_completed += 1;
        }
        let Some(highest) = highest_before else { continue };
        assert!(highest.op != poll.op, "a poll completes no earlier than it is invoked");
        if poll.high_watermark < highest.high_watermark {
            let message = format!(
                "{key} process {process} saw high watermark {} in op #{} (completed at {} ms), then {} in op #{} (invoked at {} ms)",
                highest.high_watermark, highest.op, highest.complete_ms, poll.high_watermark, poll.op, poll.invoke_ms
            );
            sink.push_as(HIGH_WATERMARK_MONOTONIC, anomaly::NONMONOTONIC_HIGH_WATERMARK, message);
        }
    }
}

// Raft §5.4: the committed prefix never shrinks, so no client saw a high watermark above the
// highest one any replica ends with. Reports the highest offender per partition.
fn check_high_watermark_committed(
    key: &PartitionKey,
    partition: &PartitionIndex<'_>,
    polls: &[&PollView<'_>],
    sink: &mut Sink,
) {
    let Some(final_highest) = partition.replicas.values().max_by_key(|replica| replica.high_watermark) else { return };
    let Some(poll) = polls.iter().max_by_key(|poll| (poll.high_watermark, Reverse(poll.op))) else { return };
    if poll.high_watermark > final_highest.high_watermark {
        let message = format!(
            "{key} process {} saw high watermark {} in op #{}, above the highest final one, {}",
            poll.process,
            poll.high_watermark,
            poll.op,
            final_highest.describe()
        );
        sink.push_as(HIGH_WATERMARK_MONOTONIC, anomaly::HIGH_WATERMARK_ABOVE_FINAL, message);
    }
}
