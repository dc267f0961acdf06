//! Static settings of one Raft replica. Times are in ticks: the core has no clock (etcd raft:
//! "internally to the raft package time is represented by an abstract tick").

use sluice_types::NodeId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub id: NodeId,
    /// A leader sends heartbeats this often.
    pub heartbeat_interval_ticks: u32,
    /// Lower bound of the randomized election timeout (the shell draws the random part).
    /// Invariant: > heartbeat_interval_ticks.
    pub election_timeout_ticks_min: u32,
    /// Raft thesis §9.6: ask for votes without disturbing the cluster first.
    pub pre_vote: bool,
    /// Raft thesis §6.2: a leader that has not heard from a majority for an election timeout
    /// steps down.
    pub check_quorum: bool,
    /// AppendEntries messages unacknowledged per follower (pipelining bound).
    pub inflight_messages_max: u32,
    /// Entry bytes unacknowledged per follower.
    pub inflight_bytes_max: u64,
    /// Entry bytes in one AppendEntries (at least one entry is always sent).
    pub append_bytes_max: u64,
    /// Entries proposed but not yet appended a leader accepts (propose backpressure).
    pub uncommitted_entries_max: u32,
}

impl Config {
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            heartbeat_interval_ticks: 1,
            election_timeout_ticks_min: 10,
            pre_vote: true,
            check_quorum: true,
            inflight_messages_max: 64,
            inflight_bytes_max: 64 * 1024 * 1024,
            append_bytes_max: 4 * 1024 * 1024,
            uncommitted_entries_max: 100_000,
        }
    }

    pub fn validate(&self) {
        assert!(self.heartbeat_interval_ticks > 0);
        assert!(
            self.election_timeout_ticks_min > self.heartbeat_interval_ticks,
            "election timeout must exceed heartbeats"
        );
        assert!(
            self.inflight_messages_max > 0 && self.inflight_bytes_max > 0 && self.append_bytes_max > 0,
            "flow control limits must be positive"
        );
    }
}
