//! Property test: 3 and 5 replicas of the sans-IO Raft core (`sluice_raft::Raft`) under generated
//! adversarial schedules, with Raft's safety invariants checked after every input and a
//! heal-and-converge liveness phase at the end of every case.
//!
//! What: proptest generates a schedule of steps: deliver any in-flight message (chosen by
//! position, so any order), the oldest one, or all of them; drop, duplicate or leave a message in
//! flight (delay); tick a node (with a randomized election timeout in `[min, 2 * min)`) or make
//! it campaign; propose at a leader; make a node's queued writes durable ("flush"), report
//! durability to the core (`Input::Persisted`), or both ("sync", a group commit); crash and
//! restart a node; cut links (a partition or one direction of one link) and heal them; move a
//! node's log start (retention, `Input::LogStartMoved`); start a leadership transfer. Each case
//! enables a random subset of the fault kinds (swarm testing), and draws pre-vote, check-quorum
//! and the pipelining window. A shell model per replica keeps the effect contract of
//! `src/raft/src/effect.rs` exactly:
//!
//! - effects run in order; `PersistHardState`, `Truncate`, `Append` and `ResetLog` change the
//!   replica's volatile log at once and join a queue of writes that are not yet durable;
//! - a `Send` first makes every earlier queued write durable (rule 2), a `Replicate` goes to the
//!   network at once; otherwise writes become durable only through a generated flush;
//! - `Input::Persisted { index }` reports the longest prefix of the current log that is durable;
//! - retention first makes the queued writes durable, then drops the prefix from both views;
//! - a crash loses the volatile log and the queue, except that a generated prefix of the queued
//!   log writes and of the queued hard state writes may have reached the disk (two files, each
//!   written in order); a restart rebuilds the replica from its durable hard state and log with
//!   `RaftLog::recovered`, with the commit index at the log start (the high watermark is not
//!   persisted; anything higher would be a guess).
//!
//! After every input the test checks (names as in DESIGN.md, "Verification"):
//!
//! - ElectionSafety (Raft §5.2): at most one leader per term, over the whole run;
//! - LogMatching (Raft §5.3): two logs holding an entry with the same index and term are
//!   identical up to it (live replicas' logs, crashed replicas' durable logs);
//! - LeaderCompleteness (Raft §5.4): a leader of term T holds every entry known committed in a
//!   term up to T;
//! - CommittedNeverLost (Raft §5.4.3): every committed entry stays in a majority of durable logs;
//! - HighWatermarkMonotonic (Raft §5.4.3, Kafka's high watermark): a replica's `Committed`
//!   indexes increase while it lives, and the committed prefix, cluster-wide, only grows;
//! - NoAckBeyondMajorityPersisted (Raft Figure 2, §5.3): when a replica reports `Committed`, a
//!   majority of voters' durable logs hold that entry; the core never believes more of its log
//!   durable than is;
//! - ShellMirrorsCore (effect.rs): replaying the effects reproduces the core's log and hard state.
//!
//! A panic in the core (its own assertions) fails the case like a broken invariant. After the
//! faulty schedule every case heals: all links up, crashed replicas restarted, no more drops,
//! every write flushed; within `LIVENESS_ELECTION_TIMEOUTS` election timeouts exactly one leader
//! must exist and a new proposal must commit on every replica (a livelock fails at once).
//!
//! Why: the smoke test (src/raft/tests/cluster_smoke.rs) shows the happy path and the scenario
//! tests pin known-hard cases; this searches the interleavings nobody thought of and shrinks a
//! failure to a short schedule (DESIGN.md, "Verification"; reference/dst.md §4.5, §5.1).
//!
//! Replay: a failure prints the minimal schedule one step per line, the invariant that broke,
//! the tail of a trace of every input and effect, and each replica's final state. The run is a
//! pure function of the printed case. `PROPTEST_CASES` raises the case count,
//! `PROPTEST_MAX_SHRINK_ITERS` bounds shrinking, `RAFT_MODEL_COVERAGE=1` (with `--nocapture`)
//! prints what each case exercised. Failing seeds are kept in `raft_model.proptest-regressions`
//! beside this file and re-run first; they replay only while the generator is unchanged, so a
//! bug found is also pinned below as a named schedule (`pinned_*`).

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_raft::{Config, Effect, EntryKind, EntryMeta, Envelope, HardState, Input, LogPosition, Message, Raft};
use sluice_raft::{RaftLog, Role};
use sluice_types::{NodeId, Offset, Term};
use std::cell::{Cell, RefCell};
use std::collections::btree_map::Entry as MapEntry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

/// Cases per run for each cluster size unless `PROPTEST_CASES` says otherwise (about 20 s of
/// debug build in all on a 2-core machine).
const CASES_DEFAULT_3_REPLICAS: u32 = 1_000;
const CASES_DEFAULT_5_REPLICAS: u32 = 640;
/// Steps per generated schedule.
const STEPS_MAX: usize = 400;
/// The core's election timeout lower bound; the shell draws each timeout in `[min, 2 * min)`.
const ELECTION_TIMEOUT_TICKS_MIN: u32 = 4;
const HEARTBEAT_INTERVAL_TICKS: u32 = 2;
/// Ticks one `Tick` step gives one replica.
const TICKS_PER_STEP_MAX: u32 = ELECTION_TIMEOUT_TICKS_MIN;
/// Offsets one proposed batch covers: 1..=OFFSETS_PER_BATCH_MAX.
const OFFSETS_PER_BATCH_MAX: u32 = 5;
/// A proposed batch's size: 1..=BATCH_BYTES_MAX bytes.
const BATCH_BYTES_MAX: u32 = 2_000;
/// Small flow-control windows, so pipelining, byte limits and backpressure all happen.
const APPEND_BYTES_MAX: u64 = 3_000;
const INFLIGHT_BYTES_MAX: u64 = 6_000;
const INFLIGHT_MESSAGES_MAX_MAX: u32 = 4;
const UNCOMMITTED_ENTRIES_MAX: u32 = 12;
/// Queued writes one `Flush` step makes durable: 1..=FLUSH_WRITES_MAX.
const FLUSH_WRITES_MAX: usize = 4;
/// Messages in flight during the faulty phase; a message sent into a full network is lost.
const NETWORK_MESSAGES_MAX: usize = 1_000;
/// Liveness bound: after healing, a leader and a committed proposal within this many election
/// timeouts (each at most `2 * ELECTION_TIMEOUT_TICKS_MIN` ticks; one tick per round).
const LIVENESS_ELECTION_TIMEOUTS: u32 = 50;
const LIVENESS_ROUNDS_MAX: u32 = LIVENESS_ELECTION_TIMEOUTS * 2 * ELECTION_TIMEOUT_TICKS_MIN;
/// Deliveries one round of the liveness phase may take before the network must be quiet.
const SETTLE_DELIVERIES_MAX: usize = 2_000;
/// Times the liveness phase's delivery loop may see the same messages and states before it
/// reports a livelock.
const LIVELOCK_PASSES: u32 = 3;
/// The liveness proposal.
const LIVENESS_PROPOSAL_OFFSETS: u32 = 1;
const LIVENESS_PROPOSAL_BYTES: u32 = 100;
/// Shrinking attempts after a failure (proptest's default is only 4 per case).
const SHRINK_ITERATIONS_MAX: u32 = 4_096;
/// Trace lines a failure report shows (the last ones).
const TRACE_LINES_MAX: usize = 400;

// ---------------------------------------------------------------------------------------------
// The generated case.
// ---------------------------------------------------------------------------------------------

/// A choice among the things present when a step runs (in-flight messages, leaders, entries):
/// the `n % len`-th. Shrinks toward the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pick(u16);

impl Arbitrary for Pick {
    type Parameters = ();
    type Strategy = prop::strategy::Map<std::ops::RangeInclusive<u16>, fn(u16) -> Pick>;

    fn arbitrary_with((): ()) -> Self::Strategy {
        (0..=u16::MAX).prop_map(Pick)
    }
}

impl Pick {
    fn of(self, len: usize) -> usize {
        assert!(len > 0, "a pick needs something to choose from");
        usize::from(self.0) % len
    }
}

/// One step of a schedule. Replicas are named by position (`node` 0 is `NodeId(1)`); in-flight
/// messages and leaders by a `Pick` from the current list, so a schedule stays meaningful
/// while shrinking removes steps.
#[derive(Clone, Debug)]
enum Step {
    /// Deliver the in-flight message at this position (any order: reordering and delay).
    Deliver(Pick),
    /// Deliver the oldest message in flight (most networks are mostly FIFO).
    DeliverOldest,
    /// Deliver every message now in flight, oldest first.
    DeliverAll,
    Drop(Pick),
    Duplicate(Pick),
    /// `ticks` ticks at `node`; each draws this randomized election timeout.
    Tick {
        node: usize,
        ticks: u32,
        timeout_ticks: u32,
    },
    /// `Input::Campaign`: `node` starts an election now (as a timeout would, without the wait).
    Campaign {
        node: usize,
    },
    /// A producer batch at one of the replicas that believe they lead.
    Propose {
        leader: Pick,
        offsets: u32,
        size_bytes: u32,
    },
    /// The oldest `writes` queued writes of `node` become durable.
    Flush {
        node: usize,
        writes: usize,
    },
    /// `Input::Persisted` with the durable prefix of `node`'s log.
    Persisted {
        node: usize,
    },
    /// A group commit: every queued write of `node` becomes durable, then `Input::Persisted`.
    Sync {
        node: usize,
    },
    /// Power loss: the replica is down, its volatile state is gone, and of its queued writes
    /// only the oldest `log_writes_surviving` log writes and the oldest
    /// `hard_state_writes_surviving` hard state writes reached the disk. The log and the hard
    /// state are separate files, each written in order, so either may be ahead of the other.
    Crash {
        node: usize,
        log_writes_surviving: usize,
        hard_state_writes_surviving: usize,
    },
    Restart {
        node: usize,
    },
    /// Cut every link (both ways) between the replicas in the bit set `side` and the others.
    Partition {
        side: u8,
    },
    /// Cut one direction of one link.
    CutLink {
        from: usize,
        to: usize,
    },
    Heal,
    /// Retention: move `node`'s log start past one of its committed entries.
    MoveLogStart {
        node: usize,
        at: Pick,
    },
    TransferLeadership {
        leader: Pick,
        to: usize,
    },
}

#[derive(Clone)]
struct Case {
    replicas: usize,
    pre_vote: bool,
    check_quorum: bool,
    inflight_messages_max: u32,
    /// The fault kinds this case's schedule uses (swarm testing).
    faults: Vec<&'static str>,
    /// Seeds the liveness phase's election timeouts.
    liveness_seed: u64,
    steps: Vec<Step>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Case {{ replicas: {}, pre_vote: {}, check_quorum: {}, inflight_messages_max: {}, faults: {:?}, liveness_seed: {} }}",
            self.replicas,
            self.pre_vote,
            self.check_quorum,
            self.inflight_messages_max,
            self.faults,
            self.liveness_seed
        )?;
        for (number, step) in self.steps.iter().enumerate() {
            writeln!(f, "  {number:>3}: {step:?}")?;
        }
        Ok(())
    }
}

fn step_strategy(replicas: usize) -> impl Strategy<Value = Step> {
    let node = 0..replicas;
    let side = 1..(1u8 << replicas) - 1;
    prop_oneof![
        12 => any::<Pick>().prop_map(Step::Deliver),
        18 => Just(Step::DeliverOldest),
        5 => Just(Step::DeliverAll),
        3 => any::<Pick>().prop_map(Step::Drop),
        3 => any::<Pick>().prop_map(Step::Duplicate),
        14 => (node.clone(), 1..=TICKS_PER_STEP_MAX, ELECTION_TIMEOUT_TICKS_MIN..2 * ELECTION_TIMEOUT_TICKS_MIN)
            .prop_map(|(node, ticks, timeout_ticks)| Step::Tick { node, ticks, timeout_ticks }),
        3 => node.clone().prop_map(|node| Step::Campaign { node }),
        8 => (any::<Pick>(), 1..=OFFSETS_PER_BATCH_MAX, 1..=BATCH_BYTES_MAX)
            .prop_map(|(leader, offsets, size_bytes)| Step::Propose { leader, offsets, size_bytes }),
        3 => (node.clone(), 1..=FLUSH_WRITES_MAX).prop_map(|(node, writes)| Step::Flush { node, writes }),
        3 => node.clone().prop_map(|node| Step::Persisted { node }),
        6 => node.clone().prop_map(|node| Step::Sync { node }),
        2 => (node.clone(), 0..=FLUSH_WRITES_MAX, 0..=FLUSH_WRITES_MAX).prop_map(
            |(node, log_writes_surviving, hard_state_writes_surviving)| Step::Crash {
                node,
                log_writes_surviving,
                hard_state_writes_surviving
            }
        ),
        2 => node.clone().prop_map(|node| Step::Restart { node }),
        2 => side.prop_map(|side| Step::Partition { side }),
        1 => (node.clone(), node.clone()).prop_map(|(from, to)| Step::CutLink { from, to }),
        2 => Just(Step::Heal),
        3 => (node.clone(), any::<Pick>()).prop_map(|(node, at)| Step::MoveLogStart { node, at }),
        1 => (any::<Pick>(), node).prop_map(|(leader, to)| Step::TransferLeadership { leader, to }),
    ]
}

/// A replica's log as the invariants see it: id, label, log, and (live) role and term.
type ReplicaLog = (NodeId, String, Storage, Option<(Role, Term)>);

/// Whether a step belongs to a fault kind.
type StepFilter = fn(&Step) -> bool;

/// Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012): each case enables a random subset
/// of the fault kinds, so some cases are calm enough to make progress and others pile one kind
/// of fault on. Steps of a disabled kind are removed from the schedule.
const FAULT_KINDS: [(&str, StepFilter); 8] = [
    ("reorder", |step| matches!(step, Step::Deliver(_))),
    ("drop", |step| matches!(step, Step::Drop(_))),
    ("duplicate", |step| matches!(step, Step::Duplicate(_))),
    ("crash", |step| matches!(step, Step::Crash { .. } | Step::Restart { .. })),
    ("partition", |step| matches!(step, Step::Partition { .. } | Step::CutLink { .. } | Step::Heal)),
    ("retention", |step| matches!(step, Step::MoveLogStart { .. })),
    ("transfer", |step| matches!(step, Step::TransferLeadership { .. })),
    ("slow_disk", |step| matches!(step, Step::Flush { .. } | Step::Persisted { .. })),
];

fn case_strategy(replicas: usize) -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        any::<bool>(),
        1..=INFLIGHT_MESSAGES_MAX_MAX,
        any::<u64>(),
        any::<[bool; FAULT_KINDS.len()]>(),
        prop::collection::vec(step_strategy(replicas), 0..=STEPS_MAX),
    )
        .prop_map(move |(pre_vote, check_quorum, inflight_messages_max, liveness_seed, enabled, steps)| {
            let faults: Vec<&'static str> =
                FAULT_KINDS.iter().zip(enabled).filter(|(_, on)| *on).map(|((name, _), _)| *name).collect();
            let allowed = |step: &Step| FAULT_KINDS.iter().zip(enabled).all(|((_, is_kind), on)| on || !is_kind(step));
            let steps = steps.into_iter().filter(allowed).collect();
            Case { replicas, pre_vote, check_quorum, inflight_messages_max, faults, liveness_seed, steps }
        })
}

// ---------------------------------------------------------------------------------------------
// Storage as the shell sees it: what the effects did, and what of that is durable.
// ---------------------------------------------------------------------------------------------

/// A replica's hard state and log, as written by effects. Invariant: entry indexes increase
/// and all are above `before_start.index`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Storage {
    hard: HardState,
    before_start: LogPosition,
    entries: Vec<EntryMeta>,
}

/// One persist effect, queued until it is durable.
#[derive(Clone, Debug)]
enum Write {
    HardState(HardState),
    Truncate { after: LogPosition },
    Append(Vec<EntryMeta>),
    Reset { before_start: LogPosition },
}

impl Storage {
    fn empty() -> Storage {
        Storage { hard: HardState::default(), before_start: LogPosition::EMPTY, entries: Vec::new() }
    }

    fn of(raft: &Raft) -> Storage {
        Storage {
            hard: raft.hard_state(),
            before_start: raft.log().before_start(),
            entries: raft.log().entries().copied().collect(),
        }
    }

    fn last(&self) -> LogPosition {
        self.entries.last().map_or(self.before_start, |e| LogPosition { term: e.term, index: e.index })
    }

    fn entry_at(&self, index: Offset) -> Option<&EntryMeta> {
        self.entries.binary_search_by(|e| e.index.cmp(&index)).ok().map(|at| &self.entries[at])
    }

    fn term_at(&self, index: Offset) -> Option<Term> {
        if index == self.before_start.index {
            return Some(self.before_start.term);
        }
        self.entry_at(index).map(|e| e.term)
    }

    /// Whether this log holds `entry`, or removed it from its prefix (retention and log-start
    /// catch-up remove committed entries only).
    fn holds(&self, entry: &EntryMeta) -> bool {
        entry.index < self.before_start.index
            || (entry.index == self.before_start.index && entry.term == self.before_start.term)
            || self.entry_at(entry.index) == Some(entry)
    }

    fn apply(&mut self, write: &Write) {
        match write {
            Write::HardState(hard) => self.hard = *hard,
            Write::Truncate { after } => {
                assert_eq!(self.term_at(after.index), Some(after.term), "model: truncation point not in the log");
                self.entries.retain(|e| e.index <= after.index);
            }
            Write::Append(entries) => {
                for entry in entries {
                    assert!(entry.index > self.last().index, "model: append not after the log end");
                    self.entries.push(*entry);
                }
            }
            Write::Reset { before_start } => {
                self.entries.clear();
                self.before_start = *before_start;
            }
        }
    }

    /// Retention: forget every entry up to `before_start`.
    fn forget_through(&mut self, before_start: LogPosition) {
        if before_start.index > self.before_start.index {
            self.entries.retain(|e| e.index > before_start.index);
            self.before_start = before_start;
        }
    }

    fn summary(&self) -> String {
        format!(
            "start after {} [{}] {}",
            position(self.before_start),
            entries_text(&self.entries),
            hard_text(self.hard)
        )
    }
}

/// One replica and its shell.
struct Replica {
    id: NodeId,
    /// `None` while crashed.
    raft: Option<Raft>,
    /// What survives a crash.
    durable: Storage,
    /// What the effects did so far (the core's log, mirrored).
    volatile: Storage,
    /// Persist effects not yet durable, oldest first.
    queued: VecDeque<Write>,
    /// The highest `Committed` this incarnation reported, and the core's commit index at the
    /// last check (HighWatermarkMonotonic).
    committed_reported: Offset,
    committed_seen: Offset,
}

impl Replica {
    /// The last index of the current log whose entries are all durable: what the shell
    /// reports with `Input::Persisted`. An undurable reset makes nothing past its start durable.
    fn durable_prefix(&self) -> LogPosition {
        if self.durable.before_start != self.volatile.before_start {
            return self.volatile.before_start;
        }
        let mut last = self.volatile.before_start;
        for (volatile, durable) in self.volatile.entries.iter().zip(&self.durable.entries) {
            if volatile != durable {
                break;
            }
            last = LogPosition { term: volatile.term, index: volatile.index };
        }
        last
    }

    /// Makes the oldest `writes` queued writes durable.
    fn flush(&mut self, writes: usize) {
        for _ in 0..writes {
            let Some(write) = self.queued.pop_front() else { return };
            self.durable.apply(&write);
        }
    }
}

/// An entry known committed, and the lowest term of a replica that reported it: it was
/// committed in that term or earlier.
#[derive(Clone, Copy, Debug)]
struct Committed {
    entry: EntryMeta,
    term_known: Term,
}

// ---------------------------------------------------------------------------------------------
// Invariants. Each returns the violation, named as in DESIGN.md.
// ---------------------------------------------------------------------------------------------

/// ElectionSafety (Raft §5.2, Figure 3): at most one leader can be elected in a given term.
/// `leaders_by_term` remembers every leader seen in the whole run.
fn election_safety(leaders_by_term: &mut BTreeMap<Term, NodeId>, term: Term, leader: NodeId) -> Result<(), String> {
    match leaders_by_term.entry(term) {
        MapEntry::Vacant(vacant) => {
            vacant.insert(leader);
            Ok(())
        }
        MapEntry::Occupied(known) if *known.get() == leader => Ok(()),
        MapEntry::Occupied(known) => {
            Err(format!("ElectionSafety: term {term} has two leaders, n{} and n{leader}", known.get()))
        }
    }
}

/// LogMatching (Raft §5.3, Figure 3): if two logs contain an entry with the same index and
/// term, the logs are identical in all entries up through that index. Compared above the higher
/// of the two log starts; a log start counts as an entry with the removed entry's position.
fn log_matching(a_name: &str, a: &Storage, b_name: &str, b: &Storage) -> Result<(), String> {
    let low = a.before_start.index.max(b.before_start.index);
    let items = |log: &Storage| -> Vec<(LogPosition, Option<EntryMeta>)> {
        let start = (log.before_start.index == low).then_some((log.before_start, None));
        let entries = log.entries.iter().filter(|e| e.index >= low);
        start.into_iter().chain(entries.map(|e| (LogPosition { term: e.term, index: e.index }, Some(*e)))).collect()
    };
    let (a_items, b_items) = (items(a), items(b));
    let same = |x: &(LogPosition, Option<EntryMeta>), y: &(LogPosition, Option<EntryMeta>)| {
        x.0 == y.0 && (x.1.is_none() || y.1.is_none() || x.1 == y.1)
    };
    let prefix = a_items.iter().zip(&b_items).take_while(|(x, y)| same(x, y)).count();
    let (mut i, mut j) = (prefix, prefix);
    while i < a_items.len() && j < b_items.len() {
        let (x, y) = (a_items[i].0, b_items[j].0);
        if x == y {
            let differ = a_items.get(prefix).map_or("-".to_string(), |item| position(item.0));
            return Err(format!(
                "LogMatching: {a_name} and {b_name} both hold {} but differ at or before it (first difference at \
                 {a_name}'s {differ}): {a_name} {} / {b_name} {}",
                position(x),
                a.summary(),
                b.summary()
            ));
        }
        if x.index <= y.index {
            i += 1;
        } else {
            j += 1;
        }
    }
    Ok(())
}

/// LeaderCompleteness (Raft §5.4, Figure 3): if an entry is committed in a given term, it is
/// present in the logs of the leaders of all higher-numbered terms. An entry counts as
/// committed in the lowest term of any replica that reported it, so a leader of that term or a
/// later one must hold it (unless retention already removed it from the leader's prefix).
fn leader_completeness(
    leader: NodeId,
    term: Term,
    log: &Storage,
    committed: &BTreeMap<Offset, Committed>,
) -> Result<(), String> {
    for known in committed.values().filter(|c| c.term_known <= term) {
        if !log.holds(&known.entry) {
            return Err(format!(
                "LeaderCompleteness: leader n{leader} of term {term} lacks {} (committed by term {}): {}",
                entry_text(&known.entry),
                known.term_known,
                log.summary()
            ));
        }
    }
    Ok(())
}

/// CommittedNeverLost (Raft §5.4.3 State Machine Safety, resting on §5.4.1: a committed entry
/// is on a majority, so every later leader has it): every entry ever committed stays in a
/// majority of voters' durable logs, whatever crashes and truncations happened since.
fn committed_never_lost(
    durable: &[(NodeId, &Storage)],
    quorum: usize,
    committed: &BTreeMap<Offset, Committed>,
) -> Result<(), String> {
    for known in committed.values() {
        let holders: Vec<NodeId> =
            durable.iter().filter(|(_, log)| log.holds(&known.entry)).map(|(id, _)| *id).collect();
        if holders.len() < quorum {
            return Err(format!(
                "CommittedNeverLost: committed {} is durable only on {holders:?}, below a majority of {quorum}",
                entry_text(&known.entry)
            ));
        }
    }
    Ok(())
}

/// NoAckBeyondMajorityPersisted (Raft Figure 2: persistent state is updated on stable storage
/// before responding to RPCs; §5.3: an entry is committed once replicated on a majority): when a
/// replica reports `Committed { index }`, a majority of voters' durable logs hold that entry.
fn no_ack_beyond_majority_persisted(
    reporter: NodeId,
    entry: &EntryMeta,
    durable: &[(NodeId, &Storage)],
    quorum: usize,
) -> Result<(), String> {
    let holders: Vec<NodeId> = durable.iter().filter(|(_, log)| log.holds(entry)).map(|(id, _)| *id).collect();
    if holders.len() < quorum {
        return Err(format!(
            "NoAckBeyondMajorityPersisted: n{reporter} reports {} committed, durable only on {holders:?} (majority {quorum})",
            entry_text(entry)
        ));
    }
    Ok(())
}

/// HighWatermarkMonotonic (Raft §5.4.3: a committed prefix never changes; Kafka: the high
/// watermark never goes back): the entries a replica reports committed agree with everything
/// reported committed before, and the cluster-wide committed prefix only grows. Records the
/// newly committed entries.
fn committed_prefix_agrees(
    reporter: NodeId,
    term: Term,
    log: &Storage,
    index: Offset,
    committed: &mut BTreeMap<Offset, Committed>,
) -> Result<(), String> {
    let known_max = committed.keys().next_back().copied().unwrap_or(Offset(-1));
    let start = log.before_start;
    // Log starts only move past committed entries, so the known committed prefix reaches every
    // replica's log start (the checks below rely on it).
    if start.index > known_max {
        return Err(format!(
            "HighWatermarkMonotonic: n{reporter}'s log starts after {} beyond every known committed entry ({known_max})",
            position(start)
        ));
    }
    if start.index >= Offset(0) && committed.get(&start.index).map(|c| c.entry.term) != Some(start.term) {
        return Err(format!(
            "HighWatermarkMonotonic: n{reporter}'s log starts after {}, not a committed entry",
            position(start)
        ));
    }
    let (lower, upper) = (start.index.next(), index.min(known_max));
    let known_in_log =
        if lower <= upper { committed.range(lower..=upper).map(|(_, c)| c).collect() } else { Vec::new() };
    for known in known_in_log {
        if log.entry_at(known.entry.index) != Some(&known.entry) {
            return Err(format!(
                "HighWatermarkMonotonic: n{reporter} commits up to {index} without committed {}: {}",
                entry_text(&known.entry),
                log.summary()
            ));
        }
    }
    for entry in log.entries.iter().filter(|e| e.index <= index) {
        match committed.entry(entry.index) {
            MapEntry::Occupied(mut known) => {
                let known = known.get_mut();
                known.term_known = known.term_known.min(term);
            }
            MapEntry::Vacant(_) if entry.index <= known_max => {
                return Err(format!(
                    "HighWatermarkMonotonic: n{reporter} commits {} inside the committed prefix, where no entry ends",
                    entry_text(entry)
                ));
            }
            MapEntry::Vacant(vacant) => {
                vacant.insert(Committed { entry: *entry, term_known: term });
            }
        }
    }
    Ok(())
}

/// ShellMirrorsCore (effect.rs): the core changes its log and hard state only through effects
/// (and retention, which the shell itself starts), so replaying them gives the core's state.
fn shell_mirrors_core(id: NodeId, mirrored: &Storage, raft: &Raft) -> Result<(), String> {
    let core = Storage::of(raft);
    if *mirrored != core {
        return Err(format!(
            "ShellMirrorsCore: n{id}'s effects give {} but the core holds {}",
            mirrored.summary(),
            core.summary()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The cluster: replicas, their shells, the network and the checker's memory.
// ---------------------------------------------------------------------------------------------

/// What a case exercised, printed per case with `RAFT_MODEL_COVERAGE=1`: a schedule generator
/// that never reaches truncation or log-start catch-up checks little.
#[derive(Debug, Default)]
struct Coverage {
    leaders_elected: u32,
    committed_max: i64,
    truncations: u32,
    log_resets: u32,
    log_start_messages: u32,
    log_start_moves: u32,
    restarts_with_entries: u32,
    timeout_now: u32,
    proposals_accepted: u32,
    /// Leaders and highest commit before the liveness phase.
    leaders_elected_faulty: u32,
    committed_max_faulty: i64,
    liveness_rounds: u32,
}

struct Cluster {
    coverage: Coverage,
    config: Config,
    voters: BTreeSet<NodeId>,
    replicas: Vec<Replica>,
    network: Vec<Envelope>,
    /// Directed links that lose every message.
    cut: BTreeSet<(NodeId, NodeId)>,
    leaders_by_term: BTreeMap<Term, NodeId>,
    committed: BTreeMap<Offset, Committed>,
    /// The liveness phase loses no message.
    healed: bool,
    trace: Option<VecDeque<String>>,
}

thread_local! {
    static IN_CORE: Cell<bool> = const { Cell::new(false) };
    static CORE_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs a call into the core, turning a panic (a broken assertion) into a failure. The panic
/// message is captured instead of printed: shrinking provokes it hundreds of times.
fn guarded<T>(call: impl FnOnce() -> T) -> Result<T, String> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let default_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_CORE.with(Cell::get) {
                CORE_PANIC.with(|last| *last.borrow_mut() = Some(info.to_string()));
            } else {
                default_hook(info);
            }
        }));
    });
    IN_CORE.with(|flag| flag.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(call));
    IN_CORE.with(|flag| flag.set(false));
    result.map_err(|_| {
        let message = CORE_PANIC.with(|last| last.borrow_mut().take()).unwrap_or_default();
        format!("core panicked: {message}")
    })
}

impl Cluster {
    fn new(case: &Case, trace: bool) -> Cluster {
        let voters: BTreeSet<NodeId> = (1..=case.replicas as i32).map(NodeId).collect();
        let config = Config {
            heartbeat_interval_ticks: HEARTBEAT_INTERVAL_TICKS,
            election_timeout_ticks_min: ELECTION_TIMEOUT_TICKS_MIN,
            pre_vote: case.pre_vote,
            check_quorum: case.check_quorum,
            inflight_messages_max: case.inflight_messages_max,
            inflight_bytes_max: INFLIGHT_BYTES_MAX,
            append_bytes_max: APPEND_BYTES_MAX,
            uncommitted_entries_max: UNCOMMITTED_ENTRIES_MAX,
            ..Config::new(NodeId(0))
        };
        let replicas = voters
            .iter()
            .map(|id| Replica {
                id: *id,
                raft: None,
                durable: Storage::empty(),
                volatile: Storage::empty(),
                queued: VecDeque::new(),
                committed_reported: Offset(-1),
                committed_seen: Offset(-1),
            })
            .collect();
        let mut cluster = Cluster {
            coverage: Coverage::default(),
            config,
            voters,
            replicas,
            network: Vec::new(),
            cut: BTreeSet::new(),
            leaders_by_term: BTreeMap::new(),
            committed: BTreeMap::new(),
            healed: false,
            trace: trace.then(VecDeque::new),
        };
        for at in 0..case.replicas {
            cluster.restart(at);
        }
        cluster
    }

    fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = self.trace.as_mut() {
            if trace.len() == TRACE_LINES_MAX {
                trace.pop_front();
            }
            trace.push_back(line());
        }
    }

    fn leaders(&self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|at| self.replicas[*at].raft.as_ref().is_some_and(|raft| raft.role() == Role::Leader))
            .collect()
    }

    fn durable_logs(&self) -> Vec<(NodeId, &Storage)> {
        self.replicas.iter().filter(|r| self.voters.contains(&r.id)).map(|r| (r.id, &r.durable)).collect()
    }

    // --- Inputs to the core -------------------------------------------------------------------

    /// Feeds one input to a live replica, runs the effects and checks every invariant.
    fn step_core(&mut self, at: usize, input: Input) -> Result<(), String> {
        if self.replicas[at].raft.is_none() {
            return Ok(());
        }
        let id = self.replicas[at].id;
        self.note(|| format!("  n{id} <- {}", input_text(&input)));
        let moves_start = matches!(input, Input::LogStartMoved { .. });
        let raft = self.replicas[at].raft.as_mut().expect("live");
        let effects = guarded(|| raft.step(input))?;
        if moves_start {
            self.coverage.log_start_moves += 1;
            // Retention is the shell's own doing: it drops the prefix from its storage.
            let replica = &mut self.replicas[at];
            let before_start = replica.raft.as_ref().expect("live").log().before_start();
            replica.volatile.forget_through(before_start);
            replica.durable.forget_through(before_start);
        }
        self.run_effects(at, effects)?;
        self.check(at)
    }

    fn propose(&mut self, at: usize, offsets: u32, size_bytes: u32) -> Result<Option<EntryMeta>, String> {
        let id = self.replicas[at].id;
        let raft = self.replicas[at].raft.as_mut().expect("a leader is live");
        match guarded(|| raft.propose(offsets, size_bytes))? {
            Ok((entry, effects)) => {
                self.note(|| format!("  n{id} <- propose {offsets} offsets, {size_bytes} B: {}", entry_text(&entry)));
                self.coverage.proposals_accepted += 1;
                self.run_effects(at, effects)?;
                self.check(at)?;
                Ok(Some(entry))
            }
            Err(refused) => {
                self.note(|| format!("  n{id} <- propose refused: {refused:?}"));
                Ok(None)
            }
        }
    }

    /// Executes effects in order, as the contract in effect.rs says.
    fn run_effects(&mut self, at: usize, effects: Vec<Effect>) -> Result<(), String> {
        let id = self.replicas[at].id;
        for effect in effects {
            self.note(|| format!("  n{id} -> {}", effect_text(&effect)));
            self.count(&effect);
            let write = match effect {
                Effect::PersistHardState(hard) => Write::HardState(hard),
                Effect::Truncate { after } => Write::Truncate { after },
                Effect::Append { entries } => Write::Append(entries),
                Effect::ResetLog { before_start, .. } => {
                    let core_start = self.replicas[at].raft.as_ref().expect("live").log().before_start();
                    if core_start != before_start {
                        return Err(format!(
                            "ShellMirrorsCore: n{id} ResetLog after {}, core starts after {}",
                            position(before_start),
                            position(core_start)
                        ));
                    }
                    Write::Reset { before_start }
                }
                Effect::Send(envelope) => {
                    // Rule 2: every earlier write is durable before the message leaves.
                    let replica = &mut self.replicas[at];
                    replica.flush(replica.queued.len());
                    self.post(envelope);
                    continue;
                }
                Effect::Replicate(envelope) => {
                    self.post(envelope);
                    continue;
                }
                Effect::Committed { index } => {
                    self.on_committed(at, index)?;
                    continue;
                }
                Effect::LeaderChanged { leader, term, role } => {
                    if role == Role::Leader {
                        if leader != Some(id) {
                            return Err(format!("n{id} became leader of term {term} naming {leader:?}"));
                        }
                        election_safety(&mut self.leaders_by_term, term, id)?;
                    }
                    continue;
                }
            };
            let replica = &mut self.replicas[at];
            replica.volatile.apply(&write);
            replica.queued.push_back(write);
        }
        Ok(())
    }

    fn count(&mut self, effect: &Effect) {
        let coverage = &mut self.coverage;
        match effect {
            Effect::Truncate { .. } => coverage.truncations += 1,
            Effect::ResetLog { .. } => coverage.log_resets += 1,
            Effect::Replicate(Envelope { message: Message::LogStart { .. }, .. }) => coverage.log_start_messages += 1,
            Effect::Send(Envelope { message: Message::TimeoutNow { .. }, .. }) => coverage.timeout_now += 1,
            Effect::Committed { index } => coverage.committed_max = coverage.committed_max.max(index.0),
            Effect::LeaderChanged { role: Role::Leader, .. } => coverage.leaders_elected += 1,
            _ => {}
        }
    }

    fn on_committed(&mut self, at: usize, index: Offset) -> Result<(), String> {
        let replica = &self.replicas[at];
        let id = replica.id;
        if index <= replica.committed_reported {
            return Err(format!(
                "HighWatermarkMonotonic: n{id} reports Committed {index} after {}",
                replica.committed_reported
            ));
        }
        // After a reset (LogStart), the commit index is the position before the new log start:
        // an entry this log no longer holds, which must be one already known committed.
        let start = replica.volatile.before_start;
        let at_start = self.committed.get(&index).map(|c| c.entry).filter(|_| index == start.index);
        let Some(entry) = replica.volatile.entry_at(index).copied().or(at_start) else {
            return Err(format!("n{id} commits {index}, where its log has no entry: {}", replica.volatile.summary()));
        };
        if index == start.index && entry.term != start.term {
            return Err(format!(
                "n{id} commits its log start {}, committed is {}",
                position(start),
                entry_text(&entry)
            ));
        }
        let term = replica.raft.as_ref().expect("live").term();
        no_ack_beyond_majority_persisted(id, &entry, &self.durable_logs(), self.quorum())?;
        let log = replica.volatile.clone();
        committed_prefix_agrees(id, term, &log, index, &mut self.committed)?;
        self.replicas[at].committed_reported = index;
        Ok(())
    }

    fn post(&mut self, envelope: Envelope) {
        if !self.healed && self.network.len() >= NETWORK_MESSAGES_MAX {
            self.note(|| format!("  lost (network full): {}", envelope_text(&envelope)));
            return;
        }
        self.network.push(envelope);
    }

    // --- Faults and the shell's own actions ---------------------------------------------------

    fn deliver(&mut self, envelope: Envelope) -> Result<(), String> {
        let at = (envelope.to.0 - 1) as usize;
        if self.cut.contains(&(envelope.from, envelope.to)) {
            self.note(|| format!("  lost (link cut): {}", envelope_text(&envelope)));
            return Ok(());
        }
        if self.replicas[at].raft.is_none() {
            self.note(|| format!("  lost (n{} down): {}", envelope.to, envelope_text(&envelope)));
            return Ok(());
        }
        self.step_core(at, Input::Receive(envelope))
    }

    fn report_persisted(&mut self, at: usize) -> Result<(), String> {
        let last = self.replicas[at].durable_prefix();
        self.step_core(at, Input::Persisted { last })
    }

    fn crash(&mut self, at: usize, log_writes_surviving: usize, hard_state_writes_surviving: usize) {
        let replica = &mut self.replicas[at];
        if replica.raft.take().is_none() {
            return;
        }
        let (hard_state_writes, log_writes): (Vec<Write>, Vec<Write>) =
            replica.queued.drain(..).partition(|write| matches!(write, Write::HardState(_)));
        for write in log_writes
            .iter()
            .take(log_writes_surviving)
            .chain(hard_state_writes.iter().take(hard_state_writes_surviving))
        {
            replica.durable.apply(write);
        }
        replica.volatile = replica.durable.clone();
    }

    /// (Re)starts a down replica from its durable state. The commit index is not persisted, so
    /// it restarts at the log start.
    fn restart(&mut self, at: usize) {
        let replica = &mut self.replicas[at];
        if replica.raft.is_some() {
            return;
        }
        let durable = &replica.durable;
        let log = RaftLog::recovered(durable.before_start, durable.entries.clone(), durable.before_start.index);
        let config = Config { id: replica.id, ..self.config.clone() };
        let raft = Raft::new(config, self.voters.clone(), BTreeSet::new(), durable.hard, log);
        replica.committed_reported = raft.committed();
        replica.committed_seen = raft.committed();
        if !durable.entries.is_empty() {
            self.coverage.restarts_with_entries += 1;
        }
        replica.volatile = durable.clone();
        replica.raft = Some(raft);
    }

    fn run_step(&mut self, step: &Step) -> Result<(), String> {
        match *step {
            Step::Deliver(which) if !self.network.is_empty() => {
                let envelope = self.network.remove(which.of(self.network.len()));
                self.deliver(envelope)?;
            }
            Step::Deliver(_) => {}
            Step::DeliverOldest if !self.network.is_empty() => {
                let envelope = self.network.remove(0);
                self.deliver(envelope)?;
            }
            Step::DeliverOldest => {}
            Step::DeliverAll => {
                for envelope in std::mem::take(&mut self.network) {
                    self.deliver(envelope)?;
                }
            }
            Step::Drop(which) if !self.network.is_empty() => {
                let envelope = self.network.remove(which.of(self.network.len()));
                self.note(|| format!("  dropped: {}", envelope_text(&envelope)));
            }
            Step::Duplicate(which) if !self.network.is_empty() => {
                let envelope = self.network[which.of(self.network.len())].clone();
                self.post(envelope);
            }
            Step::Drop(_) | Step::Duplicate(_) => {}
            Step::Tick { node, ticks, timeout_ticks } => {
                for _ in 0..ticks {
                    self.step_core(node, Input::Tick { randomized_election_timeout_ticks: timeout_ticks })?;
                }
            }
            Step::Campaign { node } => self.step_core(node, Input::Campaign)?,
            Step::Propose { leader, offsets, size_bytes } => {
                let leaders = self.leaders();
                if !leaders.is_empty() {
                    self.propose(leaders[leader.of(leaders.len())], offsets, size_bytes)?;
                }
            }
            Step::Flush { node, writes } => self.replicas[node].flush(writes),
            Step::Persisted { node } => self.report_persisted(node)?,
            Step::Sync { node } => {
                let replica = &mut self.replicas[node];
                replica.flush(replica.queued.len());
                self.report_persisted(node)?;
            }
            Step::Crash { node, log_writes_surviving, hard_state_writes_surviving } => {
                self.crash(node, log_writes_surviving, hard_state_writes_surviving)
            }
            Step::Restart { node } => self.restart(node),
            Step::Partition { side } => {
                for (a, b) in self.links() {
                    let inside = |id: NodeId| side & (1 << (id.0 - 1)) != 0;
                    if inside(a) != inside(b) {
                        self.cut.insert((a, b));
                    }
                }
            }
            Step::CutLink { from, to } if from != to => {
                self.cut.insert((self.replicas[from].id, self.replicas[to].id));
            }
            Step::CutLink { .. } => {}
            Step::Heal => self.cut.clear(),
            Step::MoveLogStart { node, at } => self.move_log_start(node, at)?,
            Step::TransferLeadership { leader, to } => {
                let leaders = self.leaders();
                if !leaders.is_empty() {
                    let to = self.replicas[to].id;
                    self.step_core(leaders[leader.of(leaders.len())], Input::TransferLeadership { to })?;
                }
            }
        }
        Ok(())
    }

    fn links(&self) -> Vec<(NodeId, NodeId)> {
        let ids: Vec<NodeId> = self.replicas.iter().map(|r| r.id).collect();
        ids.iter().flat_map(|a| ids.iter().filter(move |b| *b != a).map(move |b| (*a, *b))).collect()
    }

    /// Retention past one of the replica's committed entries. The shell makes its queued writes
    /// durable first, so the durable log never starts past its own end.
    fn move_log_start(&mut self, at: usize, which: Pick) -> Result<(), String> {
        let Some(raft) = self.replicas[at].raft.as_ref() else { return Ok(()) };
        let committed = raft.committed();
        let candidates: Vec<Offset> = raft.log().entries().filter(|e| e.index <= committed).map(|e| e.index).collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let log_start = candidates[which.of(candidates.len())].next();
        let replica = &mut self.replicas[at];
        replica.flush(replica.queued.len());
        self.step_core(at, Input::LogStartMoved { log_start })
    }

    // --- Checks ------------------------------------------------------------------------------

    /// Every invariant, after an input to replica `at` (LogMatching then compares `at`'s log
    /// with the others: no other log changed).
    fn check(&mut self, at: usize) -> Result<(), String> {
        self.check_replica(at)?;
        self.check_cluster(Some(at))
    }

    /// Every invariant, after a step: all pairs of logs.
    fn check_all(&mut self) -> Result<(), String> {
        for at in 0..self.replicas.len() {
            self.check_replica(at)?;
        }
        self.check_cluster(None)
    }

    /// ShellMirrorsCore, HighWatermarkMonotonic and NoAckBeyondMajorityPersisted for one replica.
    fn check_replica(&mut self, at: usize) -> Result<(), String> {
        let replica = &mut self.replicas[at];
        if let Some(raft) = replica.raft.as_ref() {
            shell_mirrors_core(replica.id, &replica.volatile, raft)?;
            // HighWatermarkMonotonic: the core's commit index never goes back while it lives.
            if raft.committed() < replica.committed_seen {
                return Err(format!(
                    "HighWatermarkMonotonic: n{}'s commit index went from {} to {}",
                    replica.id,
                    replica.committed_seen,
                    raft.committed()
                ));
            }
            replica.committed_seen = raft.committed();
            // NoAckBeyondMajorityPersisted: the core counts as durable only what is.
            let durable_index = replica.durable_prefix().index;
            if raft.log().persisted() > durable_index {
                return Err(format!(
                    "NoAckBeyondMajorityPersisted: n{} believes its log durable to {}, only {durable_index} is",
                    replica.id,
                    raft.log().persisted()
                ));
            }
        }
        Ok(())
    }

    /// ElectionSafety, LeaderCompleteness, LogMatching (pairs with `changed`, or all pairs) and
    /// CommittedNeverLost.
    fn check_cluster(&mut self, changed: Option<usize>) -> Result<(), String> {
        // Live replicas by their logs, crashed ones by what they will restart from.
        let logs: Vec<ReplicaLog> = self
            .replicas
            .iter()
            .map(|r| match r.raft.as_ref() {
                Some(raft) => (r.id, format!("n{}", r.id), Storage::of(raft), Some((raft.role(), raft.term()))),
                None => (r.id, format!("n{} (down, durable log)", r.id), r.durable.clone(), None),
            })
            .collect();
        for (id, _, log, role) in &logs {
            if let Some((Role::Leader, term)) = role {
                election_safety(&mut self.leaders_by_term, *term, *id)?;
                leader_completeness(*id, *term, log, &self.committed)?;
            }
        }
        for (i, (_, a_name, a, _)) in logs.iter().enumerate() {
            for (j, (_, b_name, b, _)) in logs.iter().enumerate().skip(i + 1) {
                if changed.is_none_or(|at| at == i || at == j) {
                    log_matching(a_name, a, b_name, b)?;
                }
            }
        }
        committed_never_lost(&self.durable_logs(), self.quorum(), &self.committed)
    }

    // --- Liveness ----------------------------------------------------------------------------

    /// Heal everything and require a leader and a committed proposal on every replica within
    /// `LIVENESS_ROUNDS_MAX` rounds. A round ticks every replica once, then delivers and flushes
    /// until the network is quiet.
    fn converge(&mut self, seed: u64) -> Result<(), String> {
        self.note(|| "liveness: heal, restart, no more faults".to_string());
        self.healed = true;
        self.cut.clear();
        self.coverage.leaders_elected_faulty = self.coverage.leaders_elected;
        self.coverage.committed_max_faulty = self.coverage.committed_max;
        for at in 0..self.replicas.len() {
            self.restart(at);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut proposals: Vec<EntryMeta> = Vec::new();
        for round in 0..LIVENESS_ROUNDS_MAX {
            self.note(|| format!("liveness round {round}"));
            self.coverage.liveness_rounds = round + 1;
            for at in 0..self.replicas.len() {
                let timeout = rng.gen_range(ELECTION_TIMEOUT_TICKS_MIN..2 * ELECTION_TIMEOUT_TICKS_MIN);
                self.step_core(at, Input::Tick { randomized_election_timeout_ticks: timeout })?;
            }
            self.settle()?;
            let leaders = self.leaders();
            if let [leader] = leaders[..] {
                let term = self.replicas[leader].raft.as_ref().expect("live").term();
                if !proposals.iter().any(|p| p.term == term) {
                    if let Some(entry) = self.propose(leader, LIVENESS_PROPOSAL_OFFSETS, LIVENESS_PROPOSAL_BYTES)? {
                        proposals.push(entry);
                    }
                    self.settle()?;
                }
                if self.leaders().len() == 1 && proposals.iter().any(|p| self.committed_everywhere(p)) {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "Liveness: after healing, no single leader with a proposal committed on every replica within \
             {LIVENESS_ELECTION_TIMEOUTS} election timeouts ({LIVENESS_ROUNDS_MAX} rounds); leaders {:?}, proposals [{}]",
            self.leaders().iter().map(|at| self.replicas[*at].id).collect::<Vec<_>>(),
            entries_text(&proposals)
        ))
    }

    /// Delivers every message and flushes every write, until the network is quiet. Fails fast
    /// on a livelock: the same messages in flight and the same replica states at the start of
    /// `LIVELOCK_PASSES` passes (a cycle: no tick happens here, so nothing else can change).
    fn settle(&mut self) -> Result<(), String> {
        let mut deliveries = 0;
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        loop {
            for at in 0..self.replicas.len() {
                let replica = &mut self.replicas[at];
                replica.flush(replica.queued.len());
                self.report_persisted(at)?;
            }
            if self.network.is_empty() {
                return Ok(());
            }
            let repeats = seen.entry(self.fingerprint()).or_insert(0);
            *repeats += 1;
            if *repeats == LIVELOCK_PASSES {
                return Err(format!(
                    "Liveness: livelock, the network repeats itself: {}",
                    self.network.iter().map(envelope_text).collect::<Vec<_>>().join("; ")
                ));
            }
            for envelope in std::mem::take(&mut self.network) {
                deliveries += 1;
                if deliveries > SETTLE_DELIVERIES_MAX {
                    return Err(format!(
                        "Liveness: the network did not quiet within {SETTLE_DELIVERIES_MAX} deliveries"
                    ));
                }
                self.deliver(envelope)?;
            }
        }
    }

    /// The messages in flight and every replica's visible state.
    fn fingerprint(&self) -> String {
        let states: Vec<String> = self
            .replicas
            .iter()
            .filter_map(|r| r.raft.as_ref())
            .map(|raft| {
                format!("{:?} {:?} {} {}", raft.role(), Storage::of(raft), raft.committed(), raft.log().persisted())
            })
            .collect();
        format!("{:?} {states:?}", self.network)
    }

    fn committed_everywhere(&self, entry: &EntryMeta) -> bool {
        self.replicas.iter().all(|r| {
            r.raft.as_ref().is_some_and(|raft| raft.committed() >= entry.index && Storage::of(raft).holds(entry))
        })
    }

    fn state_text(&self) -> String {
        let mut text = String::new();
        for replica in &self.replicas {
            match replica.raft.as_ref() {
                Some(raft) => text.push_str(&format!(
                    "  n{}: {:?} term {} leader {:?} committed {} persisted {}\n      log     {}\n      durable {}\n",
                    replica.id,
                    raft.role(),
                    raft.term(),
                    raft.leader().map(|l| l.0),
                    raft.committed(),
                    raft.log().persisted(),
                    Storage::of(raft).summary(),
                    replica.durable.summary()
                )),
                None => {
                    text.push_str(&format!("  n{}: down\n      durable {}\n", replica.id, replica.durable.summary()))
                }
            }
        }
        text.push_str(&format!("  in flight: {}\n  cut links: {:?}\n", self.network.len(), self.cut));
        text
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case.
// ---------------------------------------------------------------------------------------------

/// Runs the schedule, then the liveness phase. On failure returns the violation, with the trace
/// tail and final state when `trace` is on.
fn simulate(case: &Case, trace: bool) -> Result<(), String> {
    let mut cluster = Cluster::new(case, trace);
    let mut outcome = Ok(());
    for (number, step) in case.steps.iter().enumerate() {
        cluster.note(|| format!("step {number}: {step:?}"));
        outcome = cluster
            .run_step(step)
            .and_then(|()| cluster.check_all())
            .map_err(|violation| format!("at step {number} ({step:?}): {violation}"));
        if outcome.is_err() {
            break;
        }
    }
    if outcome.is_ok() {
        outcome =
            cluster.converge(case.liveness_seed).map_err(|violation| format!("in the liveness phase: {violation}"));
    }
    if std::env::var_os("RAFT_MODEL_COVERAGE").is_some() && !trace {
        eprintln!("coverage: {} replicas, {} steps, {:?}", case.replicas, case.steps.len(), cluster.coverage);
    }
    outcome.map_err(|violation| match cluster.trace.as_ref() {
        Some(lines) => {
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            format!(
                "{violation}\n\ntrace (last {TRACE_LINES_MAX} lines):\n{}\n\nstate:\n{}",
                lines.join("\n"),
                cluster.state_text()
            )
        }
        None => violation,
    })
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    if simulate(case, false).is_ok() {
        return Ok(());
    }
    // Run it again with the trace on: the run is deterministic.
    match simulate(case, true) {
        Ok(()) => Err(TestCaseError::fail("nondeterministic: the case failed once, then passed with tracing on")),
        Err(report) => Err(TestCaseError::fail(report)),
    }
}

/// A setting from the environment (`PROPTEST_CASES`, `PROPTEST_MAX_SHRINK_ITERS`), else `default`.
fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn proptest_config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: env_or("PROPTEST_CASES", default_cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        max_shrink_iters: env_or("PROPTEST_MAX_SHRINK_ITERS", SHRINK_ITERATIONS_MAX),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config(CASES_DEFAULT_3_REPLICAS))]

    /// Three replicas tolerate one failure: every invariant holds under any schedule, and the
    /// healed cluster elects a leader and commits.
    #[test]
    fn three_replicas_stay_safe_under_faults_and_converge_after_healing(case in case_strategy(3)) {
        run_case(&case)?;
    }
}

proptest! {
    #![proptest_config(proptest_config(CASES_DEFAULT_5_REPLICAS))]

    /// Five replicas tolerate two failures: the same specification.
    #[test]
    fn five_replicas_stay_safe_under_faults_and_converge_after_healing(case in case_strategy(5)) {
        run_case(&case)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Pinned schedules: bugs this test found, minimized by hand so they survive changes to the
// generator (a seed in the regressions file replays only while the strategy stays the same).
// ---------------------------------------------------------------------------------------------

/// A three-replica case (no pre-vote, no check-quorum, one append in flight) running `steps`,
/// which only partition and move log starts, then the liveness phase.
fn pinned(steps: Vec<Step>) -> Case {
    Case {
        replicas: 3,
        pre_vote: false,
        check_quorum: false,
        inflight_messages_max: 1,
        faults: vec!["partition", "retention"],
        liveness_seed: 0,
        steps,
    }
}

fn assert_passes(case: &Case) {
    if let Err(report) = simulate(case, true) {
        panic!("{report}\n\ncase: {case:?}");
    }
}

/// Found by this test (livelock of refused appends): n2 leads term 1, commits its no-op 0@t1
/// with n3 and moves its log start past it while n1 is cut off with an empty log. After
/// healing, every AppendEntries from n2 has `prev` 0@t1, n1 refuses it with the hint -1, and
/// the leader resumed at its log start again instead of sending LogStart.
#[test]
fn pinned_follower_with_empty_log_behind_the_leaders_log_start_catches_up() {
    let node = |at: usize| at;
    assert_passes(&pinned(vec![
        Step::Partition { side: 0b001 },
        Step::Tick { node: node(1), ticks: 4, timeout_ticks: 4 },
        Step::DeliverAll, // n3 grants n2 its vote.
        Step::DeliverAll, // n2 leads term 1, appends 0@t1 and replicates it to n3 (n1 cut off).
        Step::DeliverAll, // n3 appends and acknowledges.
        Step::DeliverAll,
        Step::Sync { node: node(1) }, // n2's no-op is durable: 0@t1 commits.
        Step::MoveLogStart { node: node(1), at: Pick(0) },
    ]));
}

/// Found by this test (livelock of refused appends, the second form): n1 leads term 1 but its
/// no-op 0@t1 never leaves it; n2 leads term 2, commits 0@t2 with n3 and moves its log start
/// past it. After healing n1 refuses `prev` 0@t2 with the hint 0@t1; n2 has no entry at or below
/// that hint, so it resumed at its log start, forever, instead of sending LogStart.
#[test]
fn pinned_follower_diverging_at_the_leaders_log_start_catches_up() {
    let node = |at: usize| at;
    assert_passes(&pinned(vec![
        Step::Tick { node: node(0), ticks: 4, timeout_ticks: 4 },
        Step::DeliverAll, // n2 and n3 grant n1 their votes.
        Step::DeliverAll, // n1 leads term 1 and appends 0@t1.
        Step::Partition { side: 0b001 },
        Step::DeliverAll, // n1's appends are lost.
        Step::Tick { node: node(1), ticks: 4, timeout_ticks: 4 },
        Step::DeliverAll, // n3 grants n2 its vote for term 2.
        Step::DeliverAll, // n2 leads term 2 and appends 0@t2.
        Step::DeliverAll, // n3 appends and acknowledges.
        Step::DeliverAll,
        Step::Sync { node: node(1) }, // 0@t2 commits.
        Step::MoveLogStart { node: node(1), at: Pick(0) },
    ]));
}

// ---------------------------------------------------------------------------------------------
// Trace text: compact, one input or effect per line.
// ---------------------------------------------------------------------------------------------

fn position(position: LogPosition) -> String {
    format!("{}@t{}", position.index, position.term)
}

fn entry_text(entry: &EntryMeta) -> String {
    let kind = match entry.kind {
        EntryKind::Data => String::new(),
        EntryKind::LeaderNoop => "(noop)".to_string(),
        EntryKind::Membership(change) => format!("({change:?})"),
    };
    format!("{}@t{}{kind}", entry.index, entry.term)
}

fn entries_text(entries: &[EntryMeta]) -> String {
    entries.iter().map(entry_text).collect::<Vec<_>>().join(" ")
}

fn hard_text(hard: HardState) -> String {
    format!("(term {} vote {:?})", hard.term, hard.voted_for.map(|v| v.0))
}

fn message_text(message: &Message) -> String {
    match message {
        Message::PreVote { term, last } => format!("PreVote t{term} last {}", position(*last)),
        Message::PreVoteResponse { term, granted } => format!("PreVoteResponse t{term} granted {granted}"),
        Message::Vote { term, last, transfer } => format!("Vote t{term} last {} transfer {transfer}", position(*last)),
        Message::VoteResponse { term, granted } => format!("VoteResponse t{term} granted {granted}"),
        Message::AppendEntries { term, prev, entries, commit, log_start } => format!(
            "AppendEntries t{term} prev {} [{}] commit {commit} log_start {log_start}",
            position(*prev),
            entries_text(entries)
        ),
        Message::AppendResponse { term, success, matched } => {
            format!("AppendResponse t{term} success {success} matched {}", position(*matched))
        }
        Message::LogStart { term, log_start, log_start_term, .. } => {
            format!("LogStart t{term} log_start {log_start} (after t{log_start_term})")
        }
        Message::TimeoutNow { term } => format!("TimeoutNow t{term}"),
    }
}

fn envelope_text(envelope: &Envelope) -> String {
    format!("n{}->n{} {}", envelope.from, envelope.to, message_text(&envelope.message))
}

fn input_text(input: &Input) -> String {
    match input {
        Input::Receive(envelope) => format!("receive {}", envelope_text(envelope)),
        other => format!("{other:?}"),
    }
}

fn effect_text(effect: &Effect) -> String {
    match effect {
        Effect::PersistHardState(hard) => format!("PersistHardState {}", hard_text(*hard)),
        Effect::Truncate { after } => format!("Truncate after {}", position(*after)),
        Effect::Append { entries } => format!("Append [{}]", entries_text(entries)),
        Effect::ResetLog { before_start, .. } => format!("ResetLog after {}", position(*before_start)),
        Effect::Send(envelope) => format!("Send {}", envelope_text(envelope)),
        Effect::Replicate(envelope) => format!("Replicate {}", envelope_text(envelope)),
        Effect::Committed { index } => format!("Committed {index}"),
        Effect::LeaderChanged { leader, term, role } => {
            format!("LeaderChanged leader {:?} term {term} {role:?}", leader.map(|l| l.0))
        }
    }
}
