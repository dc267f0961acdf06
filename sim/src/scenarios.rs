//! Named scenarios: the seeds that found bugs, kept as regression cases (`sim/run --scenarios`).
//!
//! Why: a failing seed is a gift (AGENTS.md); once its bug is fixed the seed stays, so the bug
//! cannot come back unseen. Each entry says what the seed found and what fixed it. A seed's
//! schedule depends on the swarm's draw and the broker's code, so a later change may move a
//! seed off its original path; the entry still runs, and the note says which commit found it.

/// One pinned seed.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub seed: u64,
    /// What the seed found, and the fix.
    pub found: &'static str,
}

/// Every pinned seed, in the order they were found.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        seed: 19,
        found: "broker: AppendEntries spanning a segment roll was short (tiny segments); \
                Replica::batches_for reads across segments (session 5)",
    },
    Scenario {
        seed: 14,
        found: "broker: a new leader served a high watermark behind the old one; \
                ReplicaView.leader_ready holds reads until it commits in its term, Raft §8 (session 5)",
    },
    Scenario {
        seed: 31,
        found: "checker: LeaderCompleteness bound a leader of an earlier term than the commit (session 5)",
    },
    Scenario {
        seed: 57,
        found: "checker: a crash that undid an unsynced truncation looked like a removed commit; \
                the shadow log marks reverted entries (session 6)",
    },
    Scenario {
        seed: 22,
        found: "harness: a follower still catching up (madsim's 10 s TCP retry after a partition) \
                looked like lost writes; final reads wait SETTLE_MS and judge against the leader's \
                high watermark (session 6)",
    },
    Scenario { seed: 64, found: "harness: as seed 22, on five brokers with pauses (session 6)" },
    Scenario {
        seed: 94,
        found: "harness: the replica-set Metadata retries spun without letting simulated time pass \
                (session 6)",
    },
    Scenario {
        seed: 264,
        found: "checker: a vote requested to be persisted but lost in a power loss before it was \
                granted counted as a double vote; ElectionSafety reads granted votes (session 6)",
    },
    Scenario {
        seed: 121,
        found: "checker: the trace recorded a vote before the shell had persisted it; the shell \
                traces Vote and Ack as the answers leave (session 6)",
    },
    Scenario {
        seed: 153,
        found: "broker: answers held for durability whose entries a truncation removed were never \
                released, and the driver re-flushed for them in a zero-time loop (60 s of wall \
                time for 64 simulated s); truncation drops them (session 6)",
    },
    Scenario { seed: 175, found: "broker: as seed 153, with step-down buggify and tiny segments (session 6)" },
    Scenario {
        seed: 174,
        found: "broker: the cluster driver's periodic upkeep ran on the wall clock; broker 5's clock \
                jumped back 67 s, its leader reports stopped for as long, and brokers without a \
                replica answered LEADER_NOT_AVAILABLE past the liveness bound; every driver timer \
                and the reports' ageing are monotonic (session 9, with the group workload)",
    },
];
