//! `Unseen`: after the final-poll phase reached a partition's log end, every acknowledged send
//! to that partition was polled by someone.
//!
//! Why: Jepsen's kafka checker reports `:unseen`, the acknowledged values no poll returned
//! (jepsen_tla.md §1.5.6). On its own that cannot tell a lost write from a late one; the final
//! phase (heal everything, then poll every partition from its start to its log end, §1.3) makes
//! it decisive, so a partition is judged only when its `FinalPolls` line says the consumers got
//! there (`reached`). An acknowledged send is committed (acks=all) and a committed record is
//! never removed (Raft §5.4), so a consumer that read the whole log must have seen it.
//!
//! Partitions without a `FinalPolls` line (every simulator history) are not judged; those whose
//! final polls never reached the end are counted in `Stats::final_polls_unreached` ("unknown").
//! Values below a replica's log start (retention) are still expected: the final phase starts
//! from the log start, so a harness that deletes records must not write `FinalPolls` for them.

use std::collections::{BTreeMap, BTreeSet};

use crate::anomaly;
use crate::history::{History, PartitionKey};
use crate::index::Index;
use crate::report::{Sink, UNSEEN};

/// Unseen values named per violation; the rest are only counted.
pub(crate) const UNSEEN_VALUES_LISTED_MAX: usize = 8;

/// Returns how many partitions had final polls that never reached their end.
pub(crate) fn check(history: &History, index: &Index<'_>, sink: &mut Sink) -> u64 {
    // partition -> whether some final poll of it reached the end offset.
    let mut reached: BTreeMap<&PartitionKey, bool> = BTreeMap::new();
    for verdict in &history.final_polls {
        *reached.entry(&verdict.partition).or_insert(false) |= verdict.reached;
    }
    let mut unreached = 0;
    for (key, reached) in reached {
        if !reached {
            unreached += 1;
            continue;
        }
        let Some(partition) = index.partitions.get(key) else { continue };
        let polled: BTreeSet<&str> = partition
            .polls
            .iter()
            .flat_map(|&i| index.polls[i].records.iter().map(|(_, value)| value.as_str()))
            .collect();
        let unseen: Vec<(i64, &str)> = partition
            .sends
            .iter()
            .map(|&i| &index.sends[i])
            .filter_map(|send| send.acked_offset().map(|offset| (offset, send.value)))
            .filter(|(_, value)| !polled.contains(value))
            .collect();
        let Some(count) = u64::try_from(unseen.len()).ok().filter(|count| *count > 0) else { continue };
        let listing: Vec<String> = unseen
            .iter()
            .take(UNSEEN_VALUES_LISTED_MAX)
            .map(|(offset, value)| format!("{value:?} (acknowledged at {offset})"))
            .collect();
        let more = unseen.len().saturating_sub(UNSEEN_VALUES_LISTED_MAX);
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        let message = format!(
            "{key}: the final polls reached the log end, yet {count} acknowledged values were never polled: {}{tail}",
            listing.join(", ")
        );
        sink.push_instances(UNSEEN, anomaly::UNSEEN, count, message);
    }
    unreached
}
