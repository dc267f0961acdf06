//! Idempotent producer state of one partition (KIP-98), rebuilt from the log on recovery.
//!
//! For every producer id the table keeps the current epoch and the sequence ranges and offsets
//! of its last [`PRODUCER_BATCHES_RETAINED`] batches, so a retried batch is recognised and
//! answered with its original offset instead of being written twice.
//!
//! Rules (Kafka's `ProducerStateManager` / `ProducerAppendInfo`):
//! - an epoch older than the current one is fenced: INVALID_PRODUCER_EPOCH;
//! - a batch whose sequence range equals a retained batch's is a duplicate;
//! - a new epoch must start at sequence 0, unless the producer is unknown (its state was lost to
//!   retention or DeleteRecords), in which case any sequence is accepted (KIP-360);
//! - otherwise the first sequence must follow the last one, wrapping after i32::MAX:
//!   OUT_OF_ORDER_SEQUENCE_NUMBER if not.
//!
//! Batches that are already in the log (replicated from a leader, or walked at recovery) are
//! recorded with [`ProducerStateTable::replay`], which never fences: the log is the truth, and a
//! leader validated them (Kafka's `ProducerAppendInfo` with origin REPLICATION warns instead).
//!
//! Pure: no I/O. The table is bounded by [`PRODUCER_IDS_MAX`]; beyond it the producer that
//! appended least recently is forgotten (it then gets KIP-360 treatment).

use sluice_types::{BatchHeader, Offset, ProducerEpoch, ProducerId, Sequence};
use std::collections::{BTreeMap, VecDeque};

/// Batches remembered per producer: Kafka's limit on `max.in.flight.requests.per.connection`
/// with idempotence enabled.
pub const PRODUCER_BATCHES_RETAINED: usize = 5;
/// Producer ids remembered per partition.
pub const PRODUCER_IDS_MAX: usize = 65_536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchMetadata {
    first_sequence: Sequence,
    last_sequence: Sequence,
    first_offset: Offset,
    last_offset: Offset,
}

#[derive(Clone, Debug)]
struct ProducerEntry {
    epoch: ProducerEpoch,
    /// Oldest first. Invariant: at most `PRODUCER_BATCHES_RETAINED`, sequences consecutive.
    batches: VecDeque<BatchMetadata>,
}

/// Why a producer's batch is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// Kafka: INVALID_PRODUCER_EPOCH (47).
    #[error("producer {producer_id} epoch {epoch} is older than current epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    /// Kafka: OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    #[error("producer {producer_id}: sequence {received} where {expected} was expected")]
    OutOfOrderSequence { producer_id: i64, expected: i32, received: i32 },
}

/// What the table says about a batch about to be appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceVerdict {
    /// Append it.
    Append,
    /// Already in the log at these offsets: answer with them, append nothing.
    Duplicate { first_offset: Offset, last_offset: Offset },
}

#[derive(Clone, Debug, Default)]
pub struct ProducerStateTable {
    producers: BTreeMap<ProducerId, ProducerEntry>,
}

fn next_sequence(sequence: Sequence) -> Sequence {
    if sequence.0 == i32::MAX { Sequence(0) } else { Sequence(sequence.0 + 1) }
}

impl ProducerStateTable {
    /// Decides whether a batch may be appended. Batches without a producer id always may.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceVerdict, ProducerError> {
        if !header.has_producer_id() || header.is_control() {
            return Ok(SequenceVerdict::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return Ok(SequenceVerdict::Append); // Unknown producer: KIP-360 accepts any sequence.
        };
        if header.producer_epoch < entry.epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id: header.producer_id.0,
                epoch: header.producer_epoch.0,
                current: entry.epoch.0,
            });
        }
        if header.producer_epoch > entry.epoch {
            if header.base_sequence.0 != 0 {
                return Err(ProducerError::OutOfOrderSequence {
                    producer_id: header.producer_id.0,
                    expected: 0,
                    received: header.base_sequence.0,
                });
            }
            return Ok(SequenceVerdict::Append);
        }
        let duplicate = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == header.base_sequence && b.last_sequence == header.last_sequence());
        if let Some(batch) = duplicate {
            return Ok(SequenceVerdict::Duplicate { first_offset: batch.first_offset, last_offset: batch.last_offset });
        }
        let Some(last) = entry.batches.back() else {
            return Ok(SequenceVerdict::Append);
        };
        let expected = next_sequence(last.last_sequence);
        if header.base_sequence != expected {
            return Err(ProducerError::OutOfOrderSequence {
                producer_id: header.producer_id.0,
                expected: expected.0,
                received: header.base_sequence.0,
            });
        }
        Ok(SequenceVerdict::Append)
    }

    /// Records a batch that is now in the log, with its final offsets. Called on append and
    /// for every batch replayed during recovery, in log order.
    pub fn record(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() || header.is_control() {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_insert_with(|| ProducerEntry {
            epoch: header.producer_epoch,
            batches: VecDeque::with_capacity(PRODUCER_BATCHES_RETAINED),
        });
        if header.producer_epoch > entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        assert!(header.producer_epoch >= entry.epoch, "recorded a fenced producer's batch");
        if entry.batches.len() == PRODUCER_BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_sequence: header.base_sequence,
            last_sequence: header.last_sequence(),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
        assert!(entry.batches.len() <= PRODUCER_BATCHES_RETAINED);
        if self.producers.len() > PRODUCER_IDS_MAX {
            self.evict_least_recent();
        }
    }

    /// Records a batch the log already holds, whoever validated it: a replicated batch (its
    /// leader checked it) or one walked at recovery or after a truncation. Unlike
    /// [`ProducerStateTable::record`] it takes an epoch below the producer's current one as the
    /// log says (a leader whose table had evicted the producer accepts any epoch, KIP-360), so
    /// the table always describes the log's latest batches.
    pub fn replay(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() || header.is_control() {
            return;
        }
        if let Some(entry) = self.producers.get_mut(&header.producer_id)
            && header.producer_epoch < entry.epoch
        {
            tracing::warn!(
                producer_id = header.producer_id.0,
                epoch = header.producer_epoch.0,
                current = entry.epoch.0,
                offset = header.base_offset.0,
                "replicated batch of an older producer epoch"
            );
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        self.record(header);
    }

    fn evict_least_recent(&mut self) {
        let oldest = self
            .producers
            .iter()
            .min_by_key(|(_, entry)| entry.batches.back().map(|b| b.last_offset))
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.producers.remove(&id);
        }
        assert!(self.producers.len() <= PRODUCER_IDS_MAX);
    }

    /// The current epoch of a producer, if known.
    pub fn epoch_of(&self, producer_id: ProducerId) -> Option<ProducerEpoch> {
        self.producers.get(&producer_id).map(|entry| entry.epoch)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(producer: i64, epoch: i16, sequence: i32, count: i32, offset: i64) -> BatchHeader {
        let mut header = BatchHeader::template(count, 0);
        header.producer_id = ProducerId(producer);
        header.producer_epoch = ProducerEpoch(epoch);
        header.base_sequence = Sequence(sequence);
        header.base_offset = Offset(offset);
        header
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut table = ProducerStateTable::default();
        let first = batch(7, 0, 0, 3, 0);
        assert_eq!(table.check(&first), Ok(SequenceVerdict::Append));
        table.record(&first);
        let second = batch(7, 0, 3, 2, 3);
        assert_eq!(table.check(&second), Ok(SequenceVerdict::Append));
        table.record(&second);
        assert_eq!(
            table.check(&batch(7, 0, 0, 3, -1)),
            Ok(SequenceVerdict::Duplicate { first_offset: Offset(0), last_offset: Offset(2) })
        );
    }

    #[test]
    fn gaps_are_out_of_order_and_old_epochs_are_fenced() {
        let mut table = ProducerStateTable::default();
        table.record(&batch(7, 1, 0, 1, 0));
        assert!(matches!(
            table.check(&batch(7, 1, 5, 1, 0)),
            Err(ProducerError::OutOfOrderSequence { expected: 1, received: 5, .. })
        ));
        assert!(matches!(table.check(&batch(7, 0, 1, 1, 0)), Err(ProducerError::InvalidProducerEpoch { .. })));
        assert_eq!(table.check(&batch(7, 2, 0, 1, 0)), Ok(SequenceVerdict::Append));
        assert!(table.check(&batch(7, 2, 1, 1, 0)).is_err());
    }

    #[test]
    fn only_the_last_five_batches_are_retained() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            table.record(&batch(1, 0, i, 1, i64::from(i)));
        }
        assert!(table.check(&batch(1, 0, 0, 1, 0)).is_err());
        assert!(matches!(table.check(&batch(1, 0, 2, 1, 0)), Ok(SequenceVerdict::Duplicate { .. })));
    }

    #[test]
    fn replay_takes_an_older_epoch_as_the_log_says() {
        let mut table = ProducerStateTable::default();
        table.record(&batch(3, 2, 0, 1, 0));
        // `record` would assert: the single-node append path checks before it records.
        table.replay(&batch(3, 1, 7, 1, 1));
        assert_eq!(table.epoch_of(ProducerId(3)), Some(ProducerEpoch(1)));
        assert_eq!(
            table.check(&batch(3, 1, 7, 1, -1)),
            Ok(SequenceVerdict::Duplicate { first_offset: Offset(1), last_offset: Offset(1) })
        );
        assert_eq!(table.check(&batch(3, 1, 8, 1, -1)), Ok(SequenceVerdict::Append));
    }

    #[test]
    fn sequence_wraps_after_i32_max() {
        let mut table = ProducerStateTable::default();
        table.record(&batch(1, 0, i32::MAX, 1, 0));
        assert_eq!(table.check(&batch(1, 0, 0, 1, 1)), Ok(SequenceVerdict::Append));
    }
}
