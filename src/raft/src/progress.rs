//! A leader's view of one follower's replication (Raft §5.3 nextIndex/matchIndex, with etcd
//! raft's probe/replicate states and inflight window).
//!
//! Invariants: `matched.index <= next_prev`; the inflight window holds the last index of each
//! unacknowledged AppendEntries, increasing, at most `inflight_messages_max` of them and at
//! most `inflight_bytes_max` entry bytes.

use sluice_types::Offset;
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Where the follower's log matches is unknown: one AppendEntries at a time.
    Probe,
    /// The follower matches: pipeline within the inflight window.
    Replicate,
}

#[derive(Clone, Debug)]
pub struct Progress {
    /// The highest index the follower has acknowledged (durably appended).
    pub matched: Offset,
    /// The `prev` index of the next AppendEntries: everything up to it has been sent.
    pub next_prev: Offset,
    pub state: ProgressState,
    /// (last index sent, entry bytes) per unacknowledged AppendEntries.
    pub inflight: VecDeque<(Offset, u64)>,
    pub inflight_bytes: u64,
    /// Leader ticks since this follower last answered (Raft thesis §6.2, check-quorum).
    pub heard_ticks_ago: u32,
}

impl Progress {
    pub fn new(last_index: Offset) -> Progress {
        Progress {
            matched: Offset(-1),
            next_prev: last_index,
            state: ProgressState::Probe,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            heard_ticks_ago: 0,
        }
    }

    pub fn window_full(&self, messages_max: u32, bytes_max: u64) -> bool {
        match self.state {
            // A probe waits for its answer before sending more.
            ProgressState::Probe => !self.inflight.is_empty(),
            ProgressState::Replicate => {
                self.inflight.len() >= messages_max as usize || self.inflight_bytes >= bytes_max
            }
        }
    }

    pub fn sent(&mut self, last_index: Offset, bytes: u64) {
        assert!(self.inflight.back().is_none_or(|(last, _)| *last < last_index) || bytes == 0);
        self.inflight.push_back((last_index, bytes));
        self.inflight_bytes += bytes;
        self.next_prev = self.next_prev.max(last_index);
    }

    /// Acknowledgement up to `index`: frees the window and moves `matched`.
    pub fn acknowledged(&mut self, index: Offset) -> bool {
        while let Some((last, bytes)) = self.inflight.front().copied() {
            if last > index {
                break;
            }
            self.inflight.pop_front();
            self.inflight_bytes -= bytes;
        }
        self.state = ProgressState::Replicate;
        if index > self.matched {
            self.matched = index;
            self.next_prev = self.next_prev.max(index);
            return true;
        }
        false
    }

    /// A rejected append: resume after `prev` in probe mode.
    pub fn rejected(&mut self, prev: Offset) {
        self.state = ProgressState::Probe;
        self.inflight.clear();
        self.inflight_bytes = 0;
        self.next_prev = prev.max(self.matched);
    }
}
