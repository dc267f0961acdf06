//! Offset-to-value consistency: `OffsetsUnique`, `NoDuplicate`, `NoPhantomRead`.
//!
//! Why: the broker assigns offsets, so the partition log *is* the linearization of its sends
//! (dst.md §5.3). Then `offset -> value` must be a function (Jepsen kafka checker:
//! inconsistent-offsets), `value -> offsets` must have at most one element for idempotent
//! producers (Jepsen: duplicate; KIP-98), and every value read must come from some send (Jepsen:
//! a read with no writer is a checker error; here it is usually a corrupted payload or a record
//! appended to the wrong partition).
//!
//! The replica cross-check (dst.md §5.3: "committed prefixes byte-identical across replicas")
//! also lives here: where two replicas' committed ranges overlap, one holding a data record at an
//! offset where the other holds none is an `OffsetsUnique` violation too.

use crate::anomaly;
use crate::history::PartitionKey;
use crate::index::{Index, PartitionIndex, Replica};
use crate::report::{NO_DUPLICATE, NO_PHANTOM_READ, OFFSETS_UNIQUE, Sink};

/// Returns the number of allowed (non-idempotent) duplicates.
pub(crate) fn check(index: &Index<'_>, sink: &mut Sink) -> u64 {
    let mut duplicates_allowed = 0;
    for (partition, partition_index) in &index.partitions {
        check_offsets_unique(partition, partition_index, sink);
        check_replicas_agree(partition, partition_index, sink);
        duplicates_allowed += check_duplicates(partition, index, partition_index, sink);
        check_phantoms(partition, index, partition_index, sink);
    }
    duplicates_allowed
}

// Jepsen kafka checker: inconsistent-offsets (|log[k][o]| >= 2).
fn check_offsets_unique(key: &PartitionKey, partition: &PartitionIndex<'_>, sink: &mut Sink) {
    for (offset, values) in &partition.observed {
        assert!(!values.is_empty(), "observed offsets hold at least one value");
        if values.len() < 2 {
            continue;
        }
        let listing: Vec<String> = values.keys().map(|value| partition.witness(*offset, value)).collect();
        let message = format!("{key} offset {offset} holds {} different values: {}", values.len(), listing.join(", "));
        sink.push_as(OFFSETS_UNIQUE, anomaly::INCONSISTENT_OFFSETS, message);
    }
}

// dst.md §5.3: committed prefixes identical across replicas. Differing values at one offset are
// already reported above; here a record on one replica faces a hole on another.
fn check_replicas_agree(key: &PartitionKey, partition: &PartitionIndex<'_>, sink: &mut Sink) {
    let replicas: Vec<&Replica<'_>> = partition.replicas.values().collect();
    for (i, a) in replicas.iter().enumerate() {
        for b in &replicas[i + 1..] {
            check_pair(key, a, b, sink);
            check_pair(key, b, a, sink);
        }
    }
}

fn check_pair(key: &PartitionKey, holder: &Replica<'_>, other: &Replica<'_>, sink: &mut Sink) {
    let overlap_start = holder.log_start.max(other.log_start);
    let overlap_end = holder.high_watermark.min(other.high_watermark);
    if overlap_start >= overlap_end {
        return;
    }
    for (offset, value) in holder.records.range(overlap_start..overlap_end) {
        if !other.records.contains_key(offset) {
            let message = format!(
                "{key} offset {offset} holds {value:?} on node {} but no record on {}",
                holder.node,
                other.describe()
            );
            sink.push_as(OFFSETS_UNIQUE, anomaly::REPLICA_DIVERGENCE, message);
        }
    }
}

// Jepsen kafka checker: duplicate. Allowed without idempotence (a producer retry appends again).
fn check_duplicates(key: &PartitionKey, index: &Index<'_>, partition: &PartitionIndex<'_>, sink: &mut Sink) -> u64 {
    let mut allowed = 0;
    for (value, offsets) in &partition.offsets_by_value {
        assert!(!offsets.is_empty(), "a value is indexed at the offsets it was seen at");
        if offsets.len() < 2 {
            continue;
        }
        // A value nobody sent is reported by NoPhantomRead; whether it may repeat is unknowable.
        let Some(send) = index.send_of(value) else { continue };
        if !send.idempotent {
            allowed += 1;
            continue;
        }
        let listing: Vec<String> =
            offsets.iter().map(|offset| format!("{offset} ({})", partition.first_source(*offset, value))).collect();
        let message = format!(
            "{key} value {value:?} from idempotent process {} (op #{}) appears at {} offsets: {}",
            send.process,
            send.op,
            offsets.len(),
            listing.join(", ")
        );
        sink.push_as(NO_DUPLICATE, anomaly::DUPLICATE, message);
    }
    allowed
}

// Jepsen kafka checker: every read value has a writer.
fn check_phantoms(key: &PartitionKey, index: &Index<'_>, partition: &PartitionIndex<'_>, sink: &mut Sink) {
    for value in &partition.read_values {
        let offsets = &partition.offsets_by_value[value];
        let offset = *offsets.first().expect("a read value was seen at some offset");
        let seen = partition.witness(offset, value);
        match index.send_of(value) {
            None => {
                let message = format!("{key} offset {offset} holds {seen}, which no send produced");
                sink.push_as(NO_PHANTOM_READ, anomaly::PHANTOM_READ, message);
            }
            Some(send) if send.partition != key => {
                let message = format!(
                    "{key} offset {offset} holds {seen}, which process {} (op #{}) sent to {}",
                    send.process, send.op, send.partition
                );
                sink.push_as(NO_PHANTOM_READ, anomaly::PHANTOM_READ, message);
            }
            Some(_) => {}
        }
    }
}
