//! Identifier and position newtypes with the widths Kafka uses on the wire.
//!
//! Kafka's words for Kafka things: a broker is identified by an `int32` id, offsets are `int64`,
//! a partition index is `int32`, the leader epoch is `int32`. Sluice's Raft term *is* the Kafka
//! leader epoch (DESIGN.md, Replication), so `Term` has the epoch's width.

use std::fmt;

macro_rules! newtype {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }
    };
}

newtype!(
    /// A broker's `node.id` (Kafka protocol: `int32 broker_id`).
    NodeId(i32)
);
newtype!(
    /// A position in a partition log (Kafka protocol: `int64 offset`). Invariant: >= 0 when stored.
    Offset(i64)
);
newtype!(
    /// A partition index within a topic (Kafka protocol: `int32 partition_index`).
    PartitionId(i32)
);
newtype!(
    /// The Raft term, which is the Kafka partition leader epoch (`int32 partitionLeaderEpoch`).
    Term(i32)
);
newtype!(
    /// An idempotent producer's id (KIP-98: `int64 producerId`; -1 means none).
    ProducerId(i64)
);
newtype!(
    /// An idempotent producer's epoch (KIP-98: `int16 producerEpoch`; -1 means none).
    ProducerEpoch(i16)
);
newtype!(
    /// A batch's base sequence number for its producer and partition (KIP-98: `int32`).
    Sequence(i32)
);

impl Offset {
    /// The offset after this one.
    pub fn next(self) -> Offset {
        assert!(self.0 < i64::MAX, "offset overflow");
        Offset(self.0 + 1)
    }
}
