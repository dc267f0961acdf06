//! The client's typed errors: transport failures, protocol violations, and Kafka error codes
//! returned by a broker, which keep both the numeric code and Kafka's name for it
//! (`UNKNOWN_TOPIC_OR_PARTITION`), so that a CLI can print what a Kafka user would search for.

use std::fmt;

use kafka_protocol::ResponseError;
use sluice_protocol::records::RecordsError;

/// An error code a broker returned (Kafka protocol: "Error Codes"), never 0 (NONE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaError {
    pub code: i16,
    /// The broker's `error_message`, when the response has one and it was set.
    pub message: Option<String>,
}

impl KafkaError {
    /// `None` for code 0 (NONE), else the error.
    pub fn from_code(code: i16, message: Option<&str>) -> Option<KafkaError> {
        if code == 0 {
            return None;
        }
        Some(KafkaError { code, message: message.map(str::to_owned) })
    }

    /// Kafka's name for the code, as in `Errors.java` (`NOT_LEADER_OR_FOLLOWER`), or
    /// `UNKNOWN_ERROR_CODE_<n>` for a code this client does not know.
    pub fn name(&self) -> String {
        error_name(self.code)
    }

    /// Whether Kafka marks the error retriable (the same request may succeed later).
    pub fn is_retriable(&self) -> bool {
        ResponseError::try_from_code(self.code).is_some_and(|error| error.is_retriable())
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (error code {})", self.name(), self.code)?;
        match &self.message {
            Some(message) if !message.is_empty() => write!(f, ": {message}"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for KafkaError {}

/// Kafka's SCREAMING_SNAKE name for an error code, derived from kafka-protocol's CamelCase
/// variant names (`UnknownTopicOrPartition` becomes `UNKNOWN_TOPIC_OR_PARTITION`).
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(error) => {
            let camel = error.to_string();
            let mut name = String::with_capacity(camel.len() + 8);
            for (index, character) in camel.chars().enumerate() {
                if character.is_ascii_uppercase() && index > 0 {
                    name.push('_');
                }
                name.push(character.to_ascii_uppercase());
            }
            name
        }
    }
}

/// Why a client call failed as a whole. Per-item failures of admin calls (one topic of several)
/// are returned as `Result<_, KafkaError>` items instead, so callers can report each.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {address}: {source}")]
    Connect { address: String, source: std::io::Error },
    #[error("connection to {address} failed: {source}")]
    Io { address: String, source: std::io::Error },
    #[error("{api} request to {address} timed out after {timeout_ms} ms")]
    Timeout { api: &'static str, address: String, timeout_ms: u64 },
    #[error("response frame of {size_bytes} bytes from {address} is outside 4..={limit_bytes}")]
    FrameSize { address: String, size_bytes: i64, limit_bytes: u32 },
    #[error("cannot encode {api} v{version}: {detail}")]
    Encode { api: &'static str, version: i16, detail: String },
    #[error("cannot decode {api} v{version} response from {address}: {detail}")]
    Decode { api: &'static str, version: i16, address: String, detail: String },
    #[error("response from {address} has correlation id {actual}, expected {expected}")]
    CorrelationMismatch { address: String, expected: i32, actual: i32 },
    #[error("broker {address} does not support {api} in versions {client_min}..={client_max}")]
    UnsupportedVersion { api: &'static str, address: String, client_min: i16, client_max: i16 },
    #[error("{context}: {error}")]
    Kafka { context: String, error: KafkaError },
    #[error("no usable broker address for node {node_id} ({detail})")]
    NoBroker { node_id: i32, detail: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("cannot decode records of {topic}-{partition}: {source}")]
    Records { topic: String, partition: i32, source: RecordsError },
    #[error("cannot encode records: {0}")]
    Encoding(RecordsError),
}

impl ClientError {
    /// The Kafka error this failure carries, if a broker returned one.
    pub fn kafka_error(&self) -> Option<&KafkaError> {
        match self {
            ClientError::Kafka { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether the connection this error came from must be dropped: after a timeout or a
    /// protocol violation the byte stream's position is unknown.
    pub(crate) fn poisons_connection(&self) -> bool {
        matches!(
            self,
            ClientError::Io { .. }
                | ClientError::Timeout { .. }
                | ClientError::FrameSize { .. }
                | ClientError::Decode { .. }
                | ClientError::CorrelationMismatch { .. }
        )
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_errors_java() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(31_000), "UNKNOWN_ERROR_CODE_31000");
    }

    #[test]
    fn display_carries_name_code_and_message() {
        let error = KafkaError::from_code(36, Some("Topic 'a' already exists.")).unwrap();
        assert_eq!(error.to_string(), "TOPIC_ALREADY_EXISTS (error code 36): Topic 'a' already exists.");
        assert!(KafkaError::from_code(0, None).is_none());
    }
}
