//! `GroupId`: which Raft group a message belongs to.
//!
//! A broker runs one Raft group per partition replica it hosts plus the controller group, and
//! one PeerBatch carries messages of many of them. Partitions are named by topic *id*, not by
//! name, so a topic deleted and recreated under the same name is a different group: traffic of
//! the old group (still in flight, or from a peer that has not yet learned of the deletion)
//! never reaches the new one (KIP-516: topic ids).

use sluice_types::PartitionId;
pub use sluice_types::TopicId;

/// A Raft group. Ordered (controller first, then by topic id and partition) so maps keyed by
/// it iterate deterministically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupId {
    /// The controller's metadata group (KRaft's `__cluster_metadata`).
    Controller,
    /// One partition's replicas. Invariant: `partition >= 0` (Kafka partition indexes).
    Partition { topic_id: TopicId, partition: PartitionId },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_orders_before_every_partition() {
        let partition = GroupId::Partition { topic_id: TopicId([0; 16]), partition: PartitionId(0) };
        assert!(GroupId::Controller < partition);
    }

    #[test]
    fn topic_id_prints_as_hex() {
        let mut bytes = [0u8; 16];
        bytes[0] = 0xab;
        bytes[15] = 0x01;
        assert_eq!(format!("{:?}", TopicId(bytes)), "TopicId(ab000000000000000000000000000001)");
    }
}
