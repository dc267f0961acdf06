//! Kafka's default partitioner for keyed records: `toPositive(murmur2(key)) % partitionCount`
//! (Kafka's `BuiltInPartitioner.partitionForKey`, with `Utils.murmur2` and seed 0x9747b28c).
//!
//! Why it matters: a record's key decides its partition, and every Kafka client computes the same
//! partition for the same key, so Sluice's own client must too, or keyed data produced by the
//! CLI and by a Java or librdkafka producer (`murmur2_random`) would land in different
//! partitions and lose per-key ordering. Records without a key are the caller's choice
//! (round-robin or sticky), not this module's.

use sluice_types::PartitionId;

/// Java's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on `i32::MIN`).
const TO_POSITIVE_MASK: u32 = 0x7fff_ffff;

/// Kafka's `Utils.murmur2(key)` as the signed 32-bit value Java computes.
pub fn murmur2_kafka(key: &[u8]) -> i32 {
    murmur2::murmur2(key, murmur2::KAFKA_SEED) as i32
}

/// The partition Kafka's default partitioner picks for `key` among `partition_count` partitions.
/// Panics if `partition_count` is not positive (a topic always has at least one partition).
pub fn partition_for_key(key: &[u8], partition_count: i32) -> PartitionId {
    assert!(partition_count > 0, "partition count must be positive, got {partition_count}");
    let positive = murmur2::murmur2(key, murmur2::KAFKA_SEED) & TO_POSITIVE_MASK;
    let partition = positive % partition_count as u32;
    PartitionId(i32::try_from(partition).expect("below partition_count"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `UtilsTest.testMurmur2` vectors (clients/src/test/.../UtilsTest.java).
    const KAFKA_MURMUR2_VECTORS: [(&str, i32); 6] = [
        ("21", -973932308),
        ("foobar", -790332482),
        ("a-little-bit-long-string", -985981536),
        ("a-little-bit-longer-string", -1486304829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        ("abc", 479470107),
    ];

    #[test]
    fn murmur2_matches_kafka_test_vectors() {
        for (key, expected) in KAFKA_MURMUR2_VECTORS {
            assert_eq!(murmur2_kafka(key.as_bytes()), expected, "key {key:?}");
        }
    }

    #[test]
    fn partition_is_the_positive_hash_modulo_the_count() {
        for (key, hash) in KAFKA_MURMUR2_VECTORS {
            for partition_count in [1, 3, 6, 7, 100] {
                let expected = (hash & 0x7fff_ffff) % partition_count;
                let partition = partition_for_key(key.as_bytes(), partition_count);
                assert_eq!(partition, PartitionId(expected), "key {key:?} of {partition_count}");
            }
        }
        // "21" hashes negative: the sign bit is cleared, not the value negated.
        assert_eq!(partition_for_key(b"21", 1 << 30), PartitionId(-973932308 & 0x3fff_ffff));
    }

    #[test]
    #[should_panic(expected = "partition count must be positive")]
    fn zero_partitions_is_a_caller_bug() {
        partition_for_key(b"key", 0);
    }
}
