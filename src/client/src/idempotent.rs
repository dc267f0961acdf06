//! The idempotent producer's client side (KIP-98): a producer id and epoch from InitProducerId,
//! a sequence number per partition stamped into every batch, and batches kept as encoded bytes
//! so that a send whose fate is unknown (a timeout, a dropped connection) can be sent again
//! unchanged. The broker recognises the retry by its producer id, epoch and sequence range and
//! answers with the first write's offset instead of appending it twice.
//!
//! Rules (KIP-98; Kafka's `TransactionManager` and producer configs):
//! - idempotence requires acks=all, so [`Client::send_sequenced`] always asks for it;
//! - each partition's sequences start at 0 under a new epoch and go up by the record count,
//!   wrapping after `i32::MAX` (Kafka's `DefaultRecordBatch.incrementSequence`);
//! - a batch given up on leaves its partition's sequence in doubt: the producer must take a new
//!   epoch ([`Client::init_producer_id`] with its current identity, KIP-360) and start over with
//!   [`IdempotentProducer::reset`]. A record resent under the new epoch is a new record.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};

use crate::client::{Client, Target};
use crate::error::{ClientError, KafkaError, Result};
use crate::produce::{
    Acks, PRODUCE_BATCH_RECORDS_MAX, PartitionProduceResult, PendingBatch, ProduceRecord, encode_chunk,
};
use sluice_types::{Compression, PartitionId};

/// How long the broker may take to answer InitProducerId.
const INIT_PRODUCER_ID_WAIT: Duration = Duration::from_secs(30);
/// The transaction timeout an idempotent (non-transactional) producer declares: unused by the
/// broker, sent as the Java client does.
const TRANSACTION_TIMEOUT_MS_UNUSED: i32 = i32::MAX;

/// A producer id and the epoch it is used under (KIP-98; epochs bumped by KIP-360).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// An idempotent producer's state: its identity and the next base sequence of every
/// `(topic, partition)` it has written to under that identity.
#[derive(Clone, Debug)]
pub struct IdempotentProducer {
    identity: ProducerIdentity,
    next_sequence: BTreeMap<(String, PartitionId), i32>,
}

/// One encoded batch with its sequence range, ready to be sent and, after an indeterminate
/// failure, sent again byte for byte.
#[derive(Clone, Debug)]
pub struct SequencedBatch {
    pub topic: String,
    pub partition: PartitionId,
    pub identity: ProducerIdentity,
    pub base_sequence: i32,
    pub record_count: u64,
    batch: Bytes,
}

impl IdempotentProducer {
    pub fn new(identity: ProducerIdentity) -> IdempotentProducer {
        assert!(identity.producer_id >= 0 && identity.producer_epoch >= 0, "identity {identity:?} is not assigned");
        IdempotentProducer { identity, next_sequence: BTreeMap::new() }
    }

    pub fn identity(&self) -> ProducerIdentity {
        self.identity
    }

    /// Continues under a new identity (a bumped epoch or a new id): every partition's sequence
    /// starts again at 0 (KIP-360).
    pub fn reset(&mut self, identity: ProducerIdentity) {
        assert!(identity != self.identity, "reset to the same identity {identity:?} would reuse sequences");
        *self = IdempotentProducer::new(identity);
    }

    /// The base sequence the next batch for `topic`'s `partition` gets.
    pub fn next_sequence(&self, topic: &str, partition: PartitionId) -> i32 {
        self.next_sequence.get(&(topic.to_owned(), partition)).copied().unwrap_or(0)
    }

    /// Encodes `records` as one batch for `topic`'s `partition` under the next sequence, and
    /// moves the partition's sequence past it. The batch must then be sent until it is
    /// acknowledged or given up on (see the module's rules).
    pub fn batch(
        &mut self,
        topic: &str,
        partition: PartitionId,
        records: Vec<ProduceRecord>,
        compression: Compression,
    ) -> Result<SequencedBatch> {
        if records.is_empty() || records.len() > PRODUCE_BATCH_RECORDS_MAX {
            let detail = format!("an idempotent batch holds 1..={PRODUCE_BATCH_RECORDS_MAX} records");
            return Err(ClientError::InvalidArgument(detail));
        }
        let base_sequence = self.next_sequence(topic, partition);
        let pending = encode_chunk(records, compression, Some((self.identity, base_sequence)))?;
        let record_count = pending.record_count;
        let next = sequence_after(base_sequence, record_count);
        self.next_sequence.insert((topic.to_owned(), partition), next);
        Ok(SequencedBatch {
            topic: topic.to_owned(),
            partition,
            identity: self.identity,
            base_sequence,
            record_count,
            batch: pending.batch,
        })
    }
}

/// The sequence after a batch of `record_count` records starting at `base`, wrapping after
/// `i32::MAX` to 0 (Kafka's `DefaultRecordBatch.incrementSequence`).
pub fn sequence_after(base: i32, record_count: u64) -> i32 {
    assert!(base >= 0, "sequence {base} is negative");
    assert!(record_count as usize <= PRODUCE_BATCH_RECORDS_MAX, "batch of {record_count} records");
    let span = i64::from(i32::MAX) + 1;
    let next = (i64::from(base) + record_count as i64) % span;
    i32::try_from(next).expect("reduced modulo 2^31")
}

impl Client {
    /// InitProducerId without a transactional id: a fresh producer id at epoch 0, or, given
    /// the identity in use (v3+, KIP-360), the same id at the next epoch.
    pub async fn init_producer_id(&mut self, current: Option<ProducerIdentity>) -> Result<ProducerIdentity> {
        let (id, epoch) = current.map_or((-1, -1), |c| (c.producer_id, c.producer_epoch));
        let (_, response) = self
            .call(Target::Any, INIT_PRODUCER_ID_WAIT, |_| {
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(TRANSACTION_TIMEOUT_MS_UNUSED)
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(epoch)
            })
            .await?;
        if response.error_code != 0 {
            let error = KafkaError { code: response.error_code, message: None };
            return Err(ClientError::Kafka { context: "InitProducerId".to_owned(), error });
        }
        let identity =
            ProducerIdentity { producer_id: response.producer_id.0, producer_epoch: response.producer_epoch };
        if identity.producer_id < 0 || identity.producer_epoch < 0 {
            let detail = format!("InitProducerId answered {identity:?} without an error");
            return Err(ClientError::InvalidArgument(detail));
        }
        Ok(identity)
    }

    /// Sends one sequenced batch with acks=all, retrying a stale layout as
    /// [`Client::produce`] does. After an `Err` or a timeout the batch may or may not be in the
    /// log: send the same batch again (the broker answers a duplicate with its first offset),
    /// or give it up and take a new epoch.
    pub async fn send_sequenced(&mut self, batch: &SequencedBatch) -> Result<PartitionProduceResult> {
        let partition = batch.partition;
        let pending = PendingBatch { batch: batch.batch.clone(), record_count: batch.record_count, attempts: 0 };
        let mut queues = BTreeMap::from([(partition, VecDeque::from([pending]))]);
        let result =
            PartitionProduceResult { partition, record_count: batch.record_count, base_offset: None, error: None };
        let mut results = BTreeMap::from([(partition, result)]);
        // Bounded: every round pops the batch or counts an attempt against it.
        while queues.values().any(|queue| !queue.is_empty()) {
            self.produce_round(&batch.topic, Acks::All, &mut queues, &mut results).await?;
        }
        Ok(results.remove(&partition).expect("one result for the one partition"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::records::decode_batch;

    fn record(value: &str) -> ProduceRecord {
        ProduceRecord { value: Some(Bytes::copy_from_slice(value.as_bytes())), ..Default::default() }
    }

    #[test]
    fn sequences_advance_per_partition_and_restart_under_a_new_epoch() {
        let identity = ProducerIdentity { producer_id: 7, producer_epoch: 0 };
        let mut producer = IdempotentProducer::new(identity);
        let first = producer.batch("t", PartitionId(0), vec![record("a"), record("b")], Compression::None).unwrap();
        let second = producer.batch("t", PartitionId(0), vec![record("c")], Compression::Lz4).unwrap();
        let other = producer.batch("t", PartitionId(1), vec![record("d")], Compression::None).unwrap();
        assert_eq!((first.base_sequence, second.base_sequence, other.base_sequence), (0, 2, 0));
        assert_eq!(producer.next_sequence("t", PartitionId(0)), 3);

        let (header, records) = decode_batch(&second.batch, 1 << 20).unwrap();
        assert_eq!(header.producer_id.0, 7);
        assert_eq!(header.producer_epoch.0, 0);
        assert_eq!(header.base_sequence.0, 2);
        assert_eq!(records[0].value.as_deref(), Some(&b"c"[..]));

        producer.reset(ProducerIdentity { producer_id: 7, producer_epoch: 1 });
        assert_eq!(producer.next_sequence("t", PartitionId(0)), 0);
        let bumped = producer.batch("t", PartitionId(0), vec![record("e")], Compression::None).unwrap();
        let (header, _) = decode_batch(&bumped.batch, 1 << 20).unwrap();
        assert_eq!((header.producer_epoch.0, header.base_sequence.0), (1, 0));
    }

    #[test]
    fn sequences_wrap_after_i32_max() {
        assert_eq!(sequence_after(0, 1), 1);
        assert_eq!(sequence_after(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(sequence_after(i32::MAX, 1), 0);
        assert_eq!(sequence_after(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn empty_batches_are_refused() {
        let mut producer = IdempotentProducer::new(ProducerIdentity { producer_id: 1, producer_epoch: 0 });
        assert!(producer.batch("t", PartitionId(0), Vec::new(), Compression::None).is_err());
        assert_eq!(producer.next_sequence("t", PartitionId(0)), 0);
    }
}
