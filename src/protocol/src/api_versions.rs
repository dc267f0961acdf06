//! The ApiVersions table: which Kafka APIs and versions Sluice implements and advertises.
//!
//! The ranges are coherent with real Kafka releases, because clients infer features from them:
//! kafka-python infers a broker release from the maxima (Produce v11 reads as Kafka 3.8), kafkajs
//! needs the non-flexible versions kept, librdkafka gates idempotence and zstd on InitProducerId
//! and Produce >= 7 / Fetch >= 10 (reference/kafka_anchors.md §b). Each range is also within
//! the `kafka-protocol` crate's own `VERSIONS` for the message, so we never promise a version
//! its codec rejects (checked by a test).

use kafka_protocol::messages::ApiKey;

/// An API Sluice serves, with its inclusive version range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiRange {
    pub api_key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

const fn range(api_key: ApiKey, min_version: i16, max_version: i16) -> ApiRange {
    ApiRange { api_key, min_version, max_version }
}

/// Everything the broker implements. Order is by API key, as Kafka lists them.
pub const SUPPORTED_APIS: &[ApiRange] = &[
    range(ApiKey::Produce, 3, 11),
    range(ApiKey::Fetch, 4, 12),
    range(ApiKey::ListOffsets, 1, 7),
    range(ApiKey::Metadata, 0, 12),
    range(ApiKey::OffsetCommit, 2, 9),
    range(ApiKey::OffsetFetch, 1, 9),
    range(ApiKey::FindCoordinator, 0, 4),
    range(ApiKey::JoinGroup, 0, 7),
    range(ApiKey::Heartbeat, 0, 4),
    range(ApiKey::LeaveGroup, 0, 5),
    range(ApiKey::SyncGroup, 0, 5),
    range(ApiKey::DescribeGroups, 0, 5),
    range(ApiKey::ListGroups, 0, 5),
    range(ApiKey::ApiVersions, 0, 4),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 6),
    range(ApiKey::DeleteRecords, 0, 2),
    range(ApiKey::InitProducerId, 0, 4),
    range(ApiKey::OffsetForLeaderEpoch, 2, 4),
    range(ApiKey::DescribeConfigs, 1, 4),
    range(ApiKey::AlterConfigs, 0, 2),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::DeleteGroups, 0, 2),
    range(ApiKey::IncrementalAlterConfigs, 0, 1),
    range(ApiKey::DescribeCluster, 0, 1),
    range(ApiKey::ElectLeaders, 0, 2),
    range(ApiKey::AlterPartitionReassignments, 0, 1),
    range(ApiKey::ListPartitionReassignments, 0, 0),
    range(ApiKey::OffsetDelete, 0, 0),
    range(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    range(ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// The range for an API, if Sluice serves it.
pub fn supported_range(api_key: ApiKey) -> Option<ApiRange> {
    SUPPORTED_APIS.iter().copied().find(|r| r.api_key == api_key)
}

/// Whether the broker can decode and answer `api_key` at `version`.
pub fn is_supported(api_key: ApiKey, version: i16) -> bool {
    supported_range(api_key).is_some_and(|r| version >= r.min_version && version <= r.max_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_ranges_are_within_the_codec() {
        for api in SUPPORTED_APIS {
            let codec = api.api_key.valid_versions();
            assert!(api.min_version >= codec.min, "{:?} below codec range", api.api_key);
            assert!(api.max_version <= codec.max, "{:?} above codec range", api.api_key);
            assert!(api.min_version <= api.max_version);
        }
    }

    #[test]
    fn kafkajs_keeps_its_non_flexible_versions() {
        // kafkajs 2.2.4 speaks Metadata <= 6, Fetch <= 11, Produce <= 7, ApiVersions <= 2.
        assert!(is_supported(ApiKey::Metadata, 6));
        assert!(is_supported(ApiKey::Fetch, 11));
        assert!(is_supported(ApiKey::Produce, 7));
        assert!(is_supported(ApiKey::ApiVersions, 2));
    }
}
