//! Kafka request framing: a 4-byte big-endian size, then the request header and body.
//!
//! Decoding is sans-IO: [`decode_request`] takes one whole frame (without the size prefix) and
//! returns the header and the typed request, or a [`FrameError`] that says whether the broker
//! can still answer (it knows the correlation id) or must close the connection.
//!
//! Kafka protocol: "Requests and Responses" (size, header v0/v1/v2, body); KIP-511 for the
//! ApiVersions fallback.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

/// `socket.request.max.bytes` default: the largest request frame a broker accepts (Kafka).
pub const REQUEST_FRAME_BYTES_MAX: u32 = 100 * 1024 * 1024;
/// The largest response frame a client accepts.
pub const RESPONSE_FRAME_BYTES_MAX: u32 = 512 * 1024 * 1024;

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
    /// Bytes after the decoded body (tolerated, as Kafka does).
    pub trailing_bytes: u32,
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame too short for a request header ({0} bytes)")]
    TooShort(usize),
    #[error("unknown api key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("unsupported version {version} of {api_key:?} (correlation id {correlation_id})")]
    UnsupportedVersion { api_key: ApiKey, version: i16, correlation_id: i32 },
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed { api_key: ApiKey, version: i16, reason: String },
}

/// Decodes one request frame. `supported` says which versions the broker implements.
pub fn decode_request(mut frame: Bytes, supported: impl Fn(ApiKey, i16) -> bool) -> Result<Request, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(api_key_raw) else {
        return Err(FrameError::UnknownApiKey { api_key: api_key_raw, correlation_id });
    };
    if !supported(api_key, version) {
        return Err(FrameError::UnsupportedVersion { api_key, version, correlation_id });
    }
    let malformed = |reason: String| FrameError::Malformed { api_key, version, reason };
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|e| malformed(format!("header: {e:#}")))?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(|e| malformed(format!("body: {e:#}")))?;
    // Kafka reads the request struct and ignores what follows it, and clients rely on that:
    // librdkafka 2.16's all-topics Metadata v12 carries 3 bytes after the body. So trailing
    // bytes are not an error here either.
    let trailing_bytes = frame.remaining() as u32;
    Ok(Request { header, api_key, body, trailing_bytes })
}

/// Encodes a response frame, size prefix included. The ApiVersions response header is always
/// v0, even for flexible versions (KIP-511).
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> anyhow::Result<Bytes> {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let mut buf = BytesMut::with_capacity(64);
    buf.put_u32(0);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    let size = u32::try_from(buf.len() - 4)?;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Encodes a request frame (size prefix included), for the client.
pub fn encode_request(header: &RequestHeader, body: &RequestKind) -> anyhow::Result<Bytes> {
    let api_key = ApiKey::try_from(header.request_api_key)
        .map_err(|_| anyhow::anyhow!("unknown api key {}", header.request_api_key))?;
    let version = header.request_api_version;
    let mut buf = BytesMut::with_capacity(64);
    buf.put_u32(0);
    header.encode(&mut buf, api_key.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let size = u32::try_from(buf.len() - 4)?;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response frame (without size prefix) for the client.
pub fn decode_response(
    mut frame: Bytes,
    api_key: ApiKey,
    version: i16,
) -> anyhow::Result<(ResponseHeader, ResponseKind)> {
    let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))?;
    let body = ResponseKind::decode(api_key, &mut frame, version)?;
    Ok((header, body))
}
