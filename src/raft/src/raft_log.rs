//! The replica's log as consensus sees it: entry metadata, the log start, and what is durable.
//!
//! Invariants (checked by `validate`):
//! - entry indexes strictly increase and terms never decrease (Raft §5.3 with one leader per
//!   term; Kafka: offsets increase, leader epochs never decrease);
//! - the first entry follows `before_start`: it is the last entry removed from the prefix (log
//!   start movement, the partition log's form of a snapshot), or the empty position;
//! - `before_start.index <= persisted <= last.index`, and `committed <= last.index`.
//!
//! Known limit: one `EntryMeta` (24 bytes) per retained batch is kept in memory. Retention
//! bounds it; compacting it to the epoch history plus storage reads is planned work.

use crate::message::{EntryMeta, LogPosition};
use sluice_types::{Offset, Term};
use std::collections::VecDeque;

#[derive(Clone, Debug)]
pub struct RaftLog {
    before_start: LogPosition,
    entries: VecDeque<EntryMeta>,
    /// Highest index made durable locally (`Input::Persisted`).
    persisted: Offset,
    /// Highest index known committed (the high watermark). Never decreases.
    committed: Offset,
}

impl Default for RaftLog {
    fn default() -> Self {
        RaftLog::starting_at(LogPosition::EMPTY)
    }
}

impl RaftLog {
    /// A log that begins after `before_start` (empty when that is `LogPosition::EMPTY`).
    pub fn starting_at(before_start: LogPosition) -> RaftLog {
        RaftLog { before_start, entries: VecDeque::new(), persisted: before_start.index, committed: before_start.index }
    }

    /// Rebuilds the view of a log recovered from storage: everything in it is durable.
    pub fn recovered(before_start: LogPosition, entries: Vec<EntryMeta>, committed: Offset) -> RaftLog {
        let mut log = RaftLog::starting_at(before_start);
        log.append(&entries);
        log.persisted = log.last().index;
        log.committed = committed.max(before_start.index).min(log.persisted);
        log.validate();
        log
    }

    pub fn last(&self) -> LogPosition {
        self.entries.back().map_or(self.before_start, |e| LogPosition { term: e.term, index: e.index })
    }

    pub fn before_start(&self) -> LogPosition {
        self.before_start
    }

    /// The first offset still in the log.
    pub fn log_start(&self) -> Offset {
        self.before_start.index.next()
    }

    pub fn persisted(&self) -> Offset {
        self.persisted
    }

    pub fn committed(&self) -> Offset {
        self.committed
    }

    /// Entries above the commit index (binary search: proposals stay O(log n)).
    pub fn uncommitted_len(&self) -> usize {
        self.entries.len() - self.entries.partition_point(|e| e.index <= self.committed)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = &EntryMeta> {
        self.entries.iter()
    }

    fn position_of(&self, index: Offset) -> Option<usize> {
        self.entries.binary_search_by(|e| e.index.cmp(&index)).ok()
    }

    /// The term of the entry whose index is `index`, if this log holds it (or it is the
    /// position just before the log start).
    pub fn term_at(&self, index: Offset) -> Option<Term> {
        if index == self.before_start.index {
            return Some(self.before_start.term);
        }
        self.position_of(index).map(|at| self.entries[at].term)
    }

    /// Whether this log holds an entry at `position` (Raft §5.3's consistency check).
    pub fn matches(&self, position: LogPosition) -> bool {
        self.term_at(position.index) == Some(position.term)
    }

    /// The last entry at or below `index` with term at most `term`: where a leader may resume
    /// after a failed append (etcd raft's findConflictByTerm, for fast backtracking).
    pub fn hint_at_or_below(&self, index: Offset, term: Term) -> LogPosition {
        let below = self.entries.partition_point(|e| e.index <= index);
        self.entries
            .iter()
            .take(below)
            .rev()
            .find(|e| e.term <= term)
            .map_or(self.before_start, |e| LogPosition { term: e.term, index: e.index })
    }

    /// Entries after `prev_index`: at least one (if any), then more while within `bytes_max`.
    pub fn entries_after(&self, prev_index: Offset, bytes_max: u64) -> Vec<EntryMeta> {
        let from = self.entries.partition_point(|e| e.index <= prev_index);
        let mut taken = Vec::new();
        let mut bytes = 0u64;
        for entry in self.entries.iter().skip(from) {
            if !taken.is_empty() && bytes + u64::from(entry.size_bytes) > bytes_max {
                break;
            }
            bytes += u64::from(entry.size_bytes);
            taken.push(*entry);
        }
        taken
    }

    pub fn append(&mut self, entries: &[EntryMeta]) {
        for entry in entries {
            let last = self.last();
            assert!(entry.index > last.index, "entry index {} not after {}", entry.index, last.index);
            assert!(entry.term >= last.term, "entry term {} below {}", entry.term, last.term);
            self.entries.push_back(*entry);
        }
    }

    /// Removes every entry after `keep` (Raft §5.3). Committed entries are never removed.
    pub fn truncate_after(&mut self, keep: LogPosition) {
        assert!(keep.index >= self.committed, "truncating committed entries: {} < {}", keep.index, self.committed);
        assert!(self.matches(keep), "truncation point {keep:?} is not in the log");
        let keep_len = self.entries.partition_point(|e| e.index <= keep.index);
        self.entries.truncate(keep_len);
        self.persisted = self.persisted.min(keep.index);
    }

    /// Drops everything and starts the log after `before_start` (a follower behind the
    /// leader's log start). Only entries the leader committed can be behind its log start.
    pub fn reset(&mut self, before_start: LogPosition) {
        assert!(before_start.index >= self.committed, "reset below the commit index");
        self.entries.clear();
        self.before_start = before_start;
        self.persisted = before_start.index;
        self.committed = before_start.index;
    }

    /// Forgets entries wholly below `log_start` (retention, DeleteRecords). Only committed
    /// entries may be forgotten.
    pub fn move_start(&mut self, log_start: Offset) {
        while let Some(first) = self.entries.front().copied() {
            if first.index >= log_start || first.index > self.committed {
                break;
            }
            self.before_start = LogPosition { term: first.term, index: first.index };
            self.entries.pop_front();
        }
        self.persisted = self.persisted.max(self.before_start.index);
    }

    /// The shell made the log durable through `last`. A position this log does not hold is a
    /// report about entries since truncated (and maybe replaced at the same index by entries of
    /// a later term): it says nothing about the current entries, so it is ignored.
    pub fn mark_persisted(&mut self, last: LogPosition) {
        if self.matches(last) && last.index > self.persisted {
            self.persisted = last.index;
        }
    }

    /// Advances the commit index; returns whether it moved.
    pub fn commit_to(&mut self, index: Offset) -> bool {
        assert!(index <= self.last().index, "committing beyond the log end");
        if index > self.committed {
            self.committed = index;
            return true;
        }
        false
    }

    pub fn validate(&self) {
        let mut previous = self.before_start;
        for entry in &self.entries {
            assert!(entry.index > previous.index && entry.term >= previous.term, "log order broken at {entry:?}");
            previous = LogPosition { term: entry.term, index: entry.index };
        }
        assert!(self.persisted >= self.before_start.index && self.persisted <= self.last().index);
        assert!(self.committed >= self.before_start.index && self.committed <= self.last().index);
    }
}
