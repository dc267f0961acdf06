//! ApiVersions (0-4): the table from `sluice_protocol::api_versions`.
//!
//! Tagged fields that hold their defaults are never sent (librdkafka before 2.2.0 mis-skips
//! them: reference/clients_perf.md §1a); the kafka-protocol encoder already omits them.

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use sluice_protocol::api_versions::SUPPORTED_APIS;

pub fn response() -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = SUPPORTED_APIS
        .iter()
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.api_key as i16)
                .with_min_version(api.min_version)
                .with_max_version(api.max_version)
        })
        .collect();
    response
}
