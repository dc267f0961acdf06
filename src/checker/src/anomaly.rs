//! Anomaly classes: the finer-grained name every violation is counted under in
//! `Stats::anomalies`.
//!
//! Why: a checker name (`PollMonotonic`) says which property broke; a Jepsen harness reports
//! Jepsen's classes (`poll-skip`, `int-nonmonotonic-poll`, `G1c-realtime`, ...: jepsen_tla.md
//! §1.5-1.7) so its results read like Jepsen's and compare with published ones. Every violation
//! carries exactly one class; [`ANOMALY_CLASSES`] lists Jepsen's (plus two of ours that are
//! Jepsen-shaped) in a fixed order so a harness can print every count, zeros included, and
//! [`SLUICE_ANOMALY_CLASSES`] lists the classes of our stricter checks that Jepsen has no name
//! for (kebab-case, like Jepsen's).
//!
//! Invariant: the two lists are disjoint and every class a checker reports is in one of them
//! (the report's sink asserts it).

/// An acknowledged value is missing: from a replica's final log at its acknowledged offset, or
/// (without final reads) unread though a higher offset was read. jepsen_tla.md §1.5.5.
pub const LOST_WRITE: &str = "lost-write";
/// A value of an idempotent producer at two offsets. jepsen_tla.md §1.5.2.
pub const DUPLICATE: &str = "duplicate";
/// One offset holding two values. jepsen_tla.md §1.5.1.
pub const INCONSISTENT_OFFSETS: &str = "inconsistent-offsets";
/// A consumer skipped a data record between two polls, or between its position and its first
/// record. jepsen_tla.md §1.5.9.
pub const POLL_SKIP: &str = "poll-skip";
/// A skip inside one poll op: within one `Poll` line, or between two lines of one `op_id`.
/// jepsen_tla.md §1.5.7.
pub const INT_POLL_SKIP: &str = "int-poll-skip";
/// A consumer went backwards between two polls, or below its own fetch position.
/// jepsen_tla.md §1.5.9.
pub const NONMONOTONIC_POLL: &str = "nonmonotonic-poll";
/// Offsets going backwards inside one poll op (one line, or two lines of one `op_id`).
/// jepsen_tla.md §1.5.7.
pub const INT_NONMONOTONIC_POLL: &str = "int-nonmonotonic-poll";
/// An idempotent producer's later send landed before its earlier one. jepsen_tla.md §1.5.10.
pub const NONMONOTONIC_SEND: &str = "nonmonotonic-send";
/// The same, between two records of one send op (one `op_id`). jepsen_tla.md §1.5.8.
pub const INT_NONMONOTONIC_SEND: &str = "int-nonmonotonic-send";
/// An acknowledged value no consumer polled though the final polls reached the log end; counted
/// per value. jepsen_tla.md §1.5.6.
pub const UNSEEN: &str = "unseen";
/// Dependency cycles (Elle, jepsen_tla.md §1.6): ww only.
pub const G0: &str = "G0";
/// ww and process edges, at least one process edge.
pub const G0_PROCESS: &str = "G0-process";
/// ww, process and realtime edges, at least one realtime edge.
pub const G0_REALTIME: &str = "G0-realtime";
/// ww and wr edges, at least one wr edge.
pub const G1C: &str = "G1c";
/// ww, wr and process edges, at least one wr and one process edge.
pub const G1C_PROCESS: &str = "G1c-process";
/// ww, wr, process and realtime edges, at least one wr and one realtime edge.
pub const G1C_REALTIME: &str = "G1c-realtime";
/// Aborted read: a definitely-failed send is visible. jepsen_tla.md §1.5.3.
pub const G1A: &str = "G1a";
/// A read value no send to that partition produced (Jepsen: a read without a writer, which its
/// checker treats as an error of its own).
pub const PHANTOM_READ: &str = "phantom-read";
/// A send acknowledged before another was invoked got the larger offset. jepsen_tla.md §1.8.
pub const REALTIME_SEND_ORDER: &str = "realtime-send-order";

/// Jepsen's classes (and the two Jepsen-shaped ones above), in the order a harness prints them.
pub const ANOMALY_CLASSES: [&str; 19] = [
    LOST_WRITE,
    DUPLICATE,
    INCONSISTENT_OFFSETS,
    POLL_SKIP,
    INT_POLL_SKIP,
    NONMONOTONIC_POLL,
    INT_NONMONOTONIC_POLL,
    NONMONOTONIC_SEND,
    INT_NONMONOTONIC_SEND,
    UNSEEN,
    G0,
    G0_PROCESS,
    G0_REALTIME,
    G1C,
    G1C_PROCESS,
    G1C_REALTIME,
    G1A,
    PHANTOM_READ,
    REALTIME_SEND_ORDER,
];

/// The history breaks a promise of the harness (`HarnessError`).
pub const HARNESS_ERROR: &str = "harness-error";
/// Two replicas' committed ranges overlap but one holds a record where the other has none.
/// dst.md §5.3.
pub const REPLICA_DIVERGENCE: &str = "replica-divergence";
/// A poll returned a record at or above the high watermark of its own Fetch response.
/// dst.md §5.2.
pub const READ_ABOVE_HIGH_WATERMARK: &str = "read-above-high-watermark";
/// A poll returned a record the final logs do not hold there. dst.md §5.2, KIP-101.
pub const DIRTY_READ: &str = "dirty-read";
/// One client saw a partition's high watermark go down. dst.md §5.1.6.
pub const NONMONOTONIC_HIGH_WATERMARK: &str = "nonmonotonic-high-watermark";
/// A client saw a high watermark above every replica's final one. Raft §5.4.
pub const HIGH_WATERMARK_ABOVE_FINAL: &str = "high-watermark-above-final";
/// A group read back an offset no commit of its (group, partition) wrote with that metadata.
pub const GROUP_OFFSET_UNKNOWN_COMMIT: &str = "group-offset-unknown-commit";
/// A group read back a commit invoked only after the read completed.
pub const GROUP_OFFSET_FUTURE_READ: &str = "group-offset-future-read";
/// A group read back a commit the coordinator refused (the register form of G1a).
pub const GROUP_OFFSET_REFUSED_READ: &str = "group-offset-refused-read";
/// A group read back a commit overwritten by one acknowledged before the read began.
pub const GROUP_OFFSET_STALE_READ: &str = "group-offset-stale-read";
/// A group found no offset after a commit was acknowledged.
pub const GROUP_OFFSET_LOST: &str = "group-offset-lost";

/// Our classes, for the checks Jepsen does not make.
pub const SLUICE_ANOMALY_CLASSES: [&str; 11] = [
    HARNESS_ERROR,
    REPLICA_DIVERGENCE,
    READ_ABOVE_HIGH_WATERMARK,
    DIRTY_READ,
    NONMONOTONIC_HIGH_WATERMARK,
    HIGH_WATERMARK_ABOVE_FINAL,
    GROUP_OFFSET_UNKNOWN_COMMIT,
    GROUP_OFFSET_FUTURE_READ,
    GROUP_OFFSET_REFUSED_READ,
    GROUP_OFFSET_STALE_READ,
    GROUP_OFFSET_LOST,
];

/// Whether `class` is in one of the two lists.
pub fn is_known(class: &str) -> bool {
    ANOMALY_CLASSES.contains(&class) || SLUICE_ANOMALY_CLASSES.contains(&class)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn class_lists_are_disjoint_and_without_repeats() {
        let all: BTreeSet<&str> = ANOMALY_CLASSES.iter().chain(&SLUICE_ANOMALY_CLASSES).copied().collect();
        assert_eq!(all.len(), ANOMALY_CLASSES.len() + SLUICE_ANOMALY_CLASSES.len());
    }
}
