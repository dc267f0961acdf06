//! The checker's verdict: named violations plus counts of what was checked.
//!
//! Why named: a failing simulation seed must say *which* property broke in one line, so every
//! violation carries one of the checker-name constants below (stable strings: tests and CI
//! dashboards match on them), and is counted under one anomaly class (crate::anomaly) in
//! `Stats::anomalies`, before the per-checker cap. Invariant: a report with no violations means
//! every checker ran over the whole history and found nothing (`Stats::cycle_search_truncated`
//! and `Stats::final_polls_unreached` say where "nothing" means "unknown").

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// One offset holds two different values across acks, polls and final reads, or two replicas'
/// committed logs disagree. Jepsen kafka checker: inconsistent-offsets; dst.md §5.3 replica
/// cross-check.
pub const OFFSETS_UNIQUE: &str = "OffsetsUnique";
/// An acknowledged send is missing from its acknowledged offset in a replica's final log, or
/// (without final reads) unread though a higher offset was read. Jepsen kafka checker:
/// lost-write (counted as `lost-write`; `Unseen` is Jepsen's unseen).
pub const NO_LOST_WRITE: &str = "NoLostWrite";
/// A value from an idempotent producer sits at two offsets. Jepsen kafka checker: duplicate.
pub const NO_DUPLICATE: &str = "NoDuplicate";
/// A consumer went backwards or skipped a data record without a seek. Jepsen kafka checker:
/// nonmonotonic-poll, poll-skip, int-nonmonotonic-poll, int-poll-skip.
pub const POLL_MONOTONIC: &str = "PollMonotonic";
/// A poll returned a record at or above its high watermark, or one the final log lacks (a dirty
/// read). dst.md §5.2: "reads above HW".
pub const READS_BELOW_HIGH_WATERMARK: &str = "ReadsBelowHighWatermark";
/// An idempotent producer's later send landed before its earlier one. Jepsen kafka checker:
/// nonmonotonic-send.
pub const SEND_MONOTONIC: &str = "SendMonotonic";
/// A send acknowledged before another was invoked got a larger offset. jepsen_tla.md §1.8:
/// realtime append order (linearizability of appends; dst.md §5.3).
pub const SEND_REALTIME_ORDER: &str = "SendRealtimeOrder";
/// After healing, consumers polled a partition up to its log end, yet an acknowledged send to it
/// was never polled. Jepsen kafka checker: unseen (jepsen_tla.md §1.5.6), made meaningful by the
/// final-poll phase (`FinalPolls` lines).
pub const UNSEEN: &str = "Unseen";
/// The ops' dependency graph (ww, wr, process and realtime edges) has a cycle: no order of the
/// ops explains what clients saw. Elle, as Jepsen's kafka checker uses it (jepsen_tla.md §1.6);
/// the anomaly class (G0, G1c, ...-process, ...-realtime) is in the message and in
/// `Stats::anomalies`.
pub const DEPENDENCY_CYCLE: &str = "DependencyCycle";
/// A client saw the high watermark go down, or above what the cluster finally committed.
/// dst.md §5.1.6, in its client-observed form: per (process, partition), over polls ordered in
/// real time (not the replicas' internal commit index, which a Raft trace checker judges).
pub const HIGH_WATERMARK_MONOTONIC: &str = "HighWatermarkMonotonic";
/// A send that definitely failed is visible. Jepsen kafka checker: G1a (aborted read).
pub const ABORTED_READ: &str = "AbortedRead";
/// A read value that no send produced (corrupted payload, or a send landed in another
/// partition). Jepsen kafka checker: a value with no writer.
pub const NO_PHANTOM_READ: &str = "NoPhantomRead";
/// A consumer group read back a committed offset nobody committed (or with another offset, or
/// whose commit was refused, or not yet invoked), an offset older than one acknowledged before
/// the read began, or nothing after an acknowledged commit. Kafka protocol guide, OffsetCommit:
/// an acknowledged commit is durable; judged with the register rule of linearizability (Herlihy
/// & Wing 1990) as Jepsen's register checkers apply it to unique values.
pub const GROUP_OFFSETS_DURABLE: &str = "GroupOffsetsDurable";
/// The history breaks a promise the harness makes (unique values, sane times and offsets,
/// final reads for every partition). Not a broker bug, but the run proves nothing.
pub const HARNESS_ERROR: &str = "HarnessError";

/// Every checker name, in report order.
pub const CHECKER_NAMES: [&str; 14] = [
    HARNESS_ERROR,
    OFFSETS_UNIQUE,
    NO_LOST_WRITE,
    UNSEEN,
    NO_DUPLICATE,
    ABORTED_READ,
    NO_PHANTOM_READ,
    POLL_MONOTONIC,
    READS_BELOW_HIGH_WATERMARK,
    SEND_MONOTONIC,
    SEND_REALTIME_ORDER,
    DEPENDENCY_CYCLE,
    HIGH_WATERMARK_MONOTONIC,
    GROUP_OFFSETS_DURABLE,
];

/// How many violations one checker reports in full; the rest are only counted
/// (`Stats::violations_suppressed`). One root cause often breaks hundreds of records.
pub const VIOLATIONS_PER_CHECKER_MAX: u64 = 64;

/// One broken property, with enough detail to find it in the history.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// One of the checker-name constants.
    pub checker: &'static str,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.checker, self.message)
    }
}

/// Counts of what the history held.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub sends_ok: u64,
    pub sends_failed: u64,
    pub sends_indeterminate: u64,
    pub polls: u64,
    pub seeks: u64,
    /// `Commit` ops: OffsetCommits of one partition, whatever their outcome.
    pub commits: u64,
    /// `FetchCommitted` ops: OffsetFetch answers for one partition, with or without an offset.
    pub committed_reads: u64,
    /// Records returned by polls (with repeats).
    pub records_read: u64,
    /// Values at more than one offset whose send was not idempotent (legal in Kafka).
    pub duplicates_allowed: u64,
    /// Final reads, one per (replica, partition).
    pub final_read_replicas: u64,
    /// Distinct partitions named by sends, polls, seeks or final reads (group offset ops name
    /// partitions too, but do not access their logs).
    pub partitions: u64,
    /// Violations beyond `VIOLATIONS_PER_CHECKER_MAX` per checker, counted but not listed.
    pub violations_suppressed: u64,
    /// Anomaly class (crate::anomaly) -> how many violations of it were found, listed or
    /// suppressed; `unseen` counts values rather than violations. Classes never found are
    /// absent: print `ANOMALY_CLASSES` with [`Stats::anomaly_count`] to show zeros.
    pub anomalies: BTreeMap<String, u64>,
    /// `Nemesis` lines (faults injected or healed).
    pub nemesis_events: u64,
    /// `FinalPolls` lines.
    pub final_polls: u64,
    /// Partitions whose final polls never reached their log end: `Unseen` did not judge them,
    /// so a harness must call unseen "unknown" there, not "none".
    pub final_polls_unreached: u64,
    /// True when the dependency-cycle search hit a work bound (cycles.rs): cycles, or classes
    /// of cycles, may have been missed. A harness must then call the absence of
    /// `DependencyCycle` violations (and zero G0/G1c counts) "unknown", not "valid".
    pub cycle_search_truncated: bool,
}

impl Stats {
    /// How many violations of `class` were found (0 if none).
    pub fn anomaly_count(&self, class: &str) -> u64 {
        self.anomalies.get(class).copied().unwrap_or(0)
    }
}

/// The verdict of `check`.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub stats: Stats,
}

impl Report {
    /// True when no checker found anything (suppressed violations count too).
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty() && self.stats.violations_suppressed == 0
    }

    /// The violations reported by one checker.
    pub fn violations_of<'r>(&'r self, checker: &'r str) -> impl Iterator<Item = &'r Violation> {
        self.violations.iter().filter(move |v| v.checker == checker)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for violation in &self.violations {
            writeln!(f, "{violation}")?;
        }
        if self.stats.violations_suppressed > 0 {
            writeln!(f, "... and {} more violations", self.stats.violations_suppressed)?;
        }
        write!(f, "{:?}", self.stats)
    }
}

/// Collects violations while the checkers run, capping each checker's list.
pub(crate) struct Sink {
    violations: Vec<Violation>,
    counts: BTreeMap<&'static str, u64>,
    /// Anomaly class -> instances, counted before the cap.
    anomalies: BTreeMap<&'static str, u64>,
    suppressed: u64,
    /// Violations listed per checker; the rest are only counted.
    per_checker_max: u64,
}

impl Default for Sink {
    fn default() -> Self {
        Sink::capped(VIOLATIONS_PER_CHECKER_MAX)
    }
}

impl Sink {
    pub(crate) fn capped(per_checker_max: u64) -> Sink {
        Sink {
            violations: Vec::new(),
            counts: BTreeMap::new(),
            anomalies: BTreeMap::new(),
            suppressed: 0,
            per_checker_max,
        }
    }

    /// Reports one violation of `checker`, counted as one instance of anomaly `class`.
    pub(crate) fn push_as(&mut self, checker: &'static str, class: &'static str, message: String) {
        self.push_instances(checker, class, 1, message);
    }

    /// Reports one violation of `checker` that stands for `instances` instances of `class` (an
    /// `Unseen` violation lists a partition's unseen values; each value is one instance).
    pub(crate) fn push_instances(
        &mut self,
        checker: &'static str,
        class: &'static str,
        instances: u64,
        message: String,
    ) {
        assert!(CHECKER_NAMES.contains(&checker), "unknown history checker name {checker}");
        assert!(crate::anomaly::is_known(class), "unknown anomaly class {class}");
        assert!(instances > 0, "a violation is at least one instance of its class");
        *self.anomalies.entry(class).or_insert(0) += instances;
        self.push_listed(checker, message);
    }

    /// Reports a violation of a Raft trace check (raft.rs). Those have no anomaly class: Jepsen
    /// never sees a replica's internal state, and their verdict is not a `Report`.
    pub(crate) fn push(&mut self, checker: &'static str, message: String) {
        assert!(crate::raft::RAFT_CHECKER_NAMES.contains(&checker), "unknown Raft checker name {checker}");
        self.push_listed(checker, message);
    }

    fn push_listed(&mut self, checker: &'static str, message: String) {
        let count = self.counts.entry(checker).or_insert(0);
        *count += 1;
        if *count > self.per_checker_max {
            self.suppressed += 1;
        } else {
            self.violations.push(Violation { checker, message });
        }
    }

    /// The listed violations, in the order they were found.
    pub(crate) fn into_violations(self) -> Vec<Violation> {
        self.violations
    }

    pub(crate) fn finish(mut self, mut stats: Stats) -> Report {
        // Group by checker in CHECKER_NAMES order; stable, so each checker keeps its own order.
        let rank = |name: &str| CHECKER_NAMES.iter().position(|n| *n == name);
        self.violations.sort_by_key(|v| rank(v.checker));
        stats.violations_suppressed = self.suppressed;
        assert!(stats.anomalies.is_empty(), "the sink alone counts anomalies");
        stats.anomalies = self.anomalies.into_iter().map(|(class, count)| (class.to_owned(), count)).collect();
        Report { violations: self.violations, stats }
    }
}
