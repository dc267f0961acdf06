//! One TCP connection to one broker: Kafka framing, correlation ids, per-request timeouts, and
//! the ApiVersions handshake that fixes which version of each API this connection speaks.
//!
//! Framing (Kafka protocol: "Common Request and Response Structure"):
//!
//! ```text
//!  request:  int32 size | request header (v1, or v2 for flexible versions) | request body
//!  response: int32 size | response header (v0, or v1 for flexible versions) | response body
//! ```
//!
//! Invariants: one request is in flight at a time (every call writes a frame, flushes, then
//! reads exactly its response), so correlation ids must match in order; a response frame larger
//! than [`RESPONSE_FRAME_BYTES_MAX`] is refused before it is read; every request is bounded by
//! a timeout, after which the connection is dropped (its stream position is unknown).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::{ClientError, KafkaError, Result};
use crate::versions::{self, ClientVersions};

/// How long to wait for a TCP connection to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for any response beyond the time the request itself asks the broker to
/// wait (a Fetch's `max_wait_ms`, an admin call's `timeout_ms`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response frame accepted (a Fetch with the default 50 MiB `max_bytes`, plus
/// headroom). Kafka's own clients have no such cap; a hostile or broken broker must not be able
/// to make us allocate gigabytes.
pub const RESPONSE_FRAME_BYTES_MAX: u32 = 128 * 1024 * 1024;
/// The ApiVersions version sent first. v3 (KIP-511) is what Kafka 2.4+ and librdkafka speak;
/// an older broker answers UNSUPPORTED_VERSION in v0 format and we retry with its maximum.
const API_VERSIONS_VERSION_FIRST: i16 = 3;
/// UNSUPPORTED_VERSION (Kafka protocol: error code 35).
const ERROR_UNSUPPORTED_VERSION: i16 = 35;
/// Bytes of the size prefix of every frame.
const FRAME_SIZE_BYTES: usize = 4;

/// An open, version-negotiated connection to one broker.
pub struct Connection {
    address: String,
    client_id: StrBytes,
    reader: BufReader<sluice_io::TcpReadHalf>,
    writer: sluice_io::TcpWriteHalf,
    correlation_id_next: i32,
    /// The broker's ranges from ApiVersions, by API key.
    broker_versions: BTreeMap<i16, (i16, i16)>,
}

impl Connection {
    /// Opens a connection to `address` (`host:port`) and negotiates API versions.
    pub async fn connect(address: &str, client_id: &str) -> Result<Connection> {
        let connect = TcpStream::connect(address);
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(ClientError::Connect { address: address.into(), source });
            }
            Err(_) => {
                let source = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
                return Err(ClientError::Connect { address: address.into(), source });
            }
        };
        // Requests are small and written whole; do not let Nagle delay them.
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = sluice_io::split_tcp(stream);
        let mut connection = Connection {
            address: address.to_owned(),
            client_id: StrBytes::from_string(client_id.to_owned()),
            reader: BufReader::new(read_half),
            writer: write_half,
            correlation_id_next: 0,
            broker_versions: BTreeMap::new(),
        };
        connection.negotiate_versions().await?;
        Ok(connection)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The highest version of `R` both this client and the broker support.
    pub fn version<R: Request>(&self) -> Result<i16> {
        let client = ClientVersions::of::<R>();
        let broker = self.broker_versions.get(&R::KEY).copied();
        broker.and_then(|range| client.highest_common(range)).ok_or_else(|| ClientError::UnsupportedVersion {
            api: versions::api_name(R::KEY),
            address: self.address.clone(),
            client_min: client.min,
            client_max: client.max,
        })
    }

    /// Sends `request` (built for `version`, see [`Connection::version`]) without waiting for
    /// a response: Produce with acks=0, to which a broker never answers.
    pub async fn send_only<R: Request>(&mut self, request: &R, version: i16) -> Result<()> {
        let frame = self.encode_frame(request, version)?;
        let address = self.address.clone();
        with_timeout(R::KEY, address, REQUEST_TIMEOUT, self.write_frame(&frame)).await
    }

    /// Sends `request` (built for `version`) and waits for its response, at most
    /// [`REQUEST_TIMEOUT`] plus `broker_wait` (the time the request asks the broker to wait).
    pub async fn call<R: Request>(&mut self, request: &R, version: i16, broker_wait: Duration) -> Result<R::Response> {
        let correlation_id = self.correlation_id_next;
        let frame = self.encode_frame(request, version)?;
        let timeout = REQUEST_TIMEOUT + broker_wait;
        let address = self.address.clone();
        let exchange = async {
            self.write_frame(&frame).await?;
            self.read_frame().await
        };
        let mut body = with_timeout(R::KEY, address, timeout, exchange).await?;
        let header_version = R::Response::header_version(version);
        let header =
            ResponseHeader::decode(&mut body, header_version).map_err(|e| self.decode_error(R::KEY, version, e))?;
        if header.correlation_id != correlation_id {
            return Err(ClientError::CorrelationMismatch {
                address: self.address.clone(),
                expected: correlation_id,
                actual: header.correlation_id,
            });
        }
        R::Response::decode(&mut body, version).map_err(|e| self.decode_error(R::KEY, version, e))
    }

    fn encode_frame<R: Request>(&mut self, request: &R, version: i16) -> Result<BytesMut> {
        let correlation_id = self.correlation_id_next;
        self.correlation_id_next = self.correlation_id_next.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let encode_error = |error: anyhow::Error| ClientError::Encode {
            api: versions::api_name(R::KEY),
            version,
            detail: format!("{error:#}"),
        };
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; FRAME_SIZE_BYTES]);
        header.encode(&mut frame, R::header_version(version)).map_err(encode_error)?;
        request.encode(&mut frame, version).map_err(encode_error)?;
        let size = i32::try_from(frame.len() - FRAME_SIZE_BYTES)
            .map_err(|_| encode_error(anyhow::anyhow!("request of {} bytes exceeds int32", frame.len())))?;
        frame[..FRAME_SIZE_BYTES].copy_from_slice(&size.to_be_bytes());
        Ok(frame)
    }

    async fn write_frame(&mut self, frame: &[u8]) -> Result<()> {
        let io_error = |source| ClientError::Io { address: self.address.clone(), source };
        self.writer.write_all(frame).await.map_err(io_error)?;
        // DESIGN.md, "The seams": always flush after a frame.
        self.writer.flush().await.map_err(io_error)
    }

    async fn read_frame(&mut self) -> Result<Bytes> {
        let address = &self.address;
        let io_error = |source| ClientError::Io { address: address.clone(), source };
        let size = self.reader.read_i32().await.map_err(io_error)?;
        if size < 4 || size as u32 > RESPONSE_FRAME_BYTES_MAX {
            return Err(ClientError::FrameSize {
                address: address.clone(),
                size_bytes: i64::from(size),
                limit_bytes: RESPONSE_FRAME_BYTES_MAX,
            });
        }
        let mut body = vec![0; size as usize];
        self.reader.read_exact(&mut body).await.map_err(io_error)?;
        Ok(Bytes::from(body))
    }

    fn decode_error(&self, api_key: i16, version: i16, error: anyhow::Error) -> ClientError {
        ClientError::Decode {
            api: versions::api_name(api_key),
            version,
            address: self.address.clone(),
            detail: format!("{error:#}"),
        }
    }

    /// ApiVersions handshake with the KIP-511 fallback (see [`API_VERSIONS_VERSION_FIRST`]).
    async fn negotiate_versions(&mut self) -> Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(versions::CLIENT_SOFTWARE_NAME))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = API_VERSIONS_VERSION_FIRST;
        // Bounded: at most one retry, at a strictly lower version.
        for _ in 0..2 {
            let response = self.call(&request, version, Duration::ZERO).await;
            let response = match response {
                Ok(response) => response,
                // A KIP-511 broker answers an unsupported version in v0 format, which may not
                // decode as the version we sent; its error code comes first in every version.
                Err(ClientError::Decode { .. }) if version > 0 => {
                    version = 0;
                    continue;
                }
                Err(error) => return Err(error),
            };
            if response.error_code == ERROR_UNSUPPORTED_VERSION && version > 0 {
                let broker_max = response
                    .api_keys
                    .iter()
                    .find(|key| key.api_key == ApiKey::ApiVersions as i16)
                    .map_or(0, |key| key.max_version);
                version = broker_max.clamp(0, version - 1);
                continue;
            }
            if let Some(error) = KafkaError::from_code(response.error_code, None) {
                let context = format!("ApiVersions to {}", self.address);
                return Err(ClientError::Kafka { context, error });
            }
            self.broker_versions =
                response.api_keys.iter().map(|key| (key.api_key, (key.min_version, key.max_version))).collect();
            return Ok(());
        }
        let context = format!("ApiVersions to {}", self.address);
        let error = KafkaError { code: ERROR_UNSUPPORTED_VERSION, message: None };
        Err(ClientError::Kafka { context, error })
    }
}

/// Runs one exchange under a timeout, naming the API and broker in the error.
async fn with_timeout<T>(
    api_key: i16,
    address: String,
    timeout: Duration,
    exchange: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(ClientError::Timeout {
            api: versions::api_name(api_key),
            address,
            timeout_ms: timeout.as_millis() as u64,
        }),
    }
}
