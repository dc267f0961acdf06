//! Which version of each Kafka API this client speaks: kafka-protocol's full range, capped where
//! a newer version needs state the client does not keep.
//!
//! The rule (Kafka protocol: ApiVersions; KIP-35): use the highest version in both the client's
//! range and the broker's advertised range. The caps:
//!
//! - Fetch v13+ names topics by id only (KIP-516), and Produce v13 likewise; this client names
//!   topics, so it stops at Fetch v12 and Produce v12 (v12 differs from v11 only for
//!   transactional producers, KIP-890, which this client is not).

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Request;

/// Sent in ApiVersions v3+ (KIP-511) so broker logs and metrics can tell clients apart.
pub const CLIENT_SOFTWARE_NAME: &str = "sluice-client";
/// Fetch v13+ identifies topics by id only (KIP-516).
const FETCH_VERSION_MAX: i16 = 12;
/// Produce v13 identifies topics by id only (KIP-516).
const PRODUCE_VERSION_MAX: i16 = 12;

/// The inclusive range of versions of one API that this client can speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientVersions {
    pub min: i16,
    pub max: i16,
}

impl ClientVersions {
    /// The client's range for request type `R`.
    pub fn of<R: Request>() -> ClientVersions {
        let cap = match ApiKey::try_from(R::KEY) {
            Ok(ApiKey::Fetch) => FETCH_VERSION_MAX,
            Ok(ApiKey::Produce) => PRODUCE_VERSION_MAX,
            _ => i16::MAX,
        };
        let range = ClientVersions { min: R::VERSIONS.min, max: R::VERSIONS.max.min(cap) };
        assert!(range.min <= range.max, "client version range of API {} is empty", R::KEY);
        range
    }

    /// The highest version in both this range and the broker's `(min, max)`, if any.
    pub fn highest_common(self, broker: (i16, i16)) -> Option<i16> {
        let (broker_min, broker_max) = broker;
        let highest = self.max.min(broker_max);
        (highest >= self.min.max(broker_min)).then_some(highest)
    }
}

/// Kafka's name for an API key (the request name without "Request"), for errors and logs.
pub fn api_name(api_key: i16) -> &'static str {
    match ApiKey::try_from(api_key) {
        Ok(ApiKey::Produce) => "Produce",
        Ok(ApiKey::Fetch) => "Fetch",
        Ok(ApiKey::ListOffsets) => "ListOffsets",
        Ok(ApiKey::Metadata) => "Metadata",
        Ok(ApiKey::ApiVersions) => "ApiVersions",
        Ok(ApiKey::CreateTopics) => "CreateTopics",
        Ok(ApiKey::DeleteTopics) => "DeleteTopics",
        Ok(ApiKey::DescribeConfigs) => "DescribeConfigs",
        Ok(ApiKey::CreatePartitions) => "CreatePartitions",
        Ok(ApiKey::IncrementalAlterConfigs) => "IncrementalAlterConfigs",
        Ok(ApiKey::DescribeCluster) => "DescribeCluster",
        Ok(ApiKey::InitProducerId) => "InitProducerId",
        Ok(ApiKey::FindCoordinator) => "FindCoordinator",
        Ok(ApiKey::JoinGroup) => "JoinGroup",
        Ok(ApiKey::SyncGroup) => "SyncGroup",
        Ok(ApiKey::Heartbeat) => "Heartbeat",
        Ok(ApiKey::LeaveGroup) => "LeaveGroup",
        Ok(ApiKey::OffsetCommit) => "OffsetCommit",
        Ok(ApiKey::OffsetFetch) => "OffsetFetch",
        Ok(ApiKey::OffsetDelete) => "OffsetDelete",
        Ok(ApiKey::ListGroups) => "ListGroups",
        Ok(ApiKey::DescribeGroups) => "DescribeGroups",
        Ok(ApiKey::DeleteGroups) => "DeleteGroups",
        Ok(_) => "another API",
        Err(_) => "an unknown API",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{FetchRequest, MetadataRequest, ProduceRequest};

    #[test]
    fn picks_the_highest_common_version() {
        let client = ClientVersions { min: 3, max: 12 };
        assert_eq!(client.highest_common((0, 9)), Some(9));
        assert_eq!(client.highest_common((5, 13)), Some(12));
        assert_eq!(client.highest_common((0, 2)), None);
        assert_eq!(client.highest_common((13, 16)), None);
    }

    #[test]
    fn topic_id_only_versions_are_capped() {
        assert_eq!(ClientVersions::of::<FetchRequest>().max, 12);
        assert_eq!(ClientVersions::of::<ProduceRequest>().max, 12);
        assert_eq!(ClientVersions::of::<MetadataRequest>().max, 13);
    }
}
