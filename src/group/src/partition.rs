//! Which `__consumer_offsets` partition holds a group: Kafka's
//! `Utils.abs(groupId.hashCode) % offsets.topic.num.partitions`, with Java's `String.hashCode`
//! over UTF-16 code units. Kafka clients never compute it (FindCoordinator asks the broker),
//! but keeping Kafka's function keeps a group on the partition Kafka's tools expect.

/// `offsets.topic.num.partitions`'s default.
pub const OFFSETS_TOPIC_PARTITIONS_DEFAULT: i32 = 50;
/// The internal topic's name.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode`.
pub fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// The partition of `__consumer_offsets` (with `partition_count` partitions) for `group_id`.
pub fn partition_for_group(group_id: &str, partition_count: i32) -> i32 {
    assert!(partition_count > 0, "__consumer_offsets has {partition_count} partitions");
    // Kafka's Utils.abs (not the producer's toPositive): |h|, with i32::MIN mapped to 0.
    java_string_hash(group_id).checked_abs().unwrap_or(0) % partition_count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_java() {
        // "hello".hashCode() == 99162322 in Java; "" hashes to 0.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash(""), 0);
        // Overflowing: "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for_group("polygenelubricants", 50), 0);
        assert_eq!(partition_for_group("hello", 50), 99_162_322 % 50);
        // A negative hash: "my-group".hashCode() == -1906497762, on partition 12 in Kafka.
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for_group("my-group", 50), 12);
    }
}
