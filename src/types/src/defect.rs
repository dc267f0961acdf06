//! Planted defects: deliberately wrong code paths that exist only in simulation builds.
//!
//! Why: a simulator that never fails proves nothing. Each defect re-creates a classic
//! replication bug; `sim/run --defect NAME` turns one on and the run must fail with a checker
//! message. This is how we know the simulator can find real bugs (issue 5).
//!
//! In production builds (`not(madsim)`) [`active`] is a constant `false`, so every defect site
//! compiles away. Under `--cfg madsim` the choice is per OS thread: madsim runs each seed on its
//! own thread, and every simulated node of that seed runs on it.

/// A planted defect. Names are the `--defect` spellings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Defect {
    /// Acknowledge appends before they are durable: a leader counts itself and a follower
    /// answers an append before fsync (breaks Raft §5.2's "respond after persisting").
    AckBeforeFsync,
    /// Commit an entry of an earlier term by counting replicas (Raft §5.4.2, Figure 8).
    CommitOldTerm,
    /// Serve Fetch up to the log end instead of the high watermark (KIP-101/279 dirty reads).
    FetchAboveHw,
    /// Persist the term but not the vote, so a restarted voter can vote twice in a term
    /// (Raft Figure 2: votedFor is persistent state).
    ForgetVote,
    /// A follower truncates its log after a stale (duplicated or reordered) AppendEntries whose
    /// entries all match (Raft §5.3: truncate only on a conflict).
    TruncateOnStaleAppend,
    /// The leader appends an idempotent producer's retried batch again instead of answering it
    /// with the first write's offset (KIP-98: the broker deduplicates by producer id, epoch and
    /// sequence).
    AppendDuplicateRetry,
    /// The group coordinator reports its writes durable once appended on the leader, before the
    /// high watermark covers them: an acknowledged OffsetCommit can be lost in a failover (Kafka
    /// protocol, OffsetCommit: an acknowledged commit is durable; GroupOffsetsDurable).
    GroupCommitBeforeDurable,
}

impl Defect {
    pub const ALL: [Defect; 7] = [
        Defect::AckBeforeFsync,
        Defect::CommitOldTerm,
        Defect::FetchAboveHw,
        Defect::ForgetVote,
        Defect::TruncateOnStaleAppend,
        Defect::AppendDuplicateRetry,
        Defect::GroupCommitBeforeDurable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Defect::AckBeforeFsync => "ack-before-fsync",
            Defect::CommitOldTerm => "commit-old-term",
            Defect::FetchAboveHw => "fetch-above-hw",
            Defect::ForgetVote => "forget-vote",
            Defect::TruncateOnStaleAppend => "truncate-on-stale-append",
            Defect::AppendDuplicateRetry => "append-duplicate-retry",
            Defect::GroupCommitBeforeDurable => "group-commit-before-durable",
        }
    }

    pub fn parse(name: &str) -> Option<Defect> {
        Defect::ALL.into_iter().find(|d| d.name() == name)
    }
}

#[cfg(madsim)]
thread_local! {
    static ACTIVE: std::cell::Cell<Option<Defect>> = const { std::cell::Cell::new(None) };
}

/// Turns `defect` on (or every defect off) for this thread's simulation.
#[cfg(madsim)]
pub fn set_active(defect: Option<Defect>) {
    ACTIVE.with(|active| active.set(defect));
}

/// Whether `defect` is on. Always `false` outside simulation builds.
#[inline]
pub fn active(defect: Defect) -> bool {
    #[cfg(madsim)]
    {
        ACTIVE.with(|active| active.get() == Some(defect))
    }
    #[cfg(not(madsim))]
    {
        let _ = defect;
        false
    }
}
