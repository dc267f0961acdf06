//! One client connection: read frames, dispatch in arrival order, answer in arrival order.
//!
//! A reader task reads size-prefixed frames (bounded by `socket.request.max.bytes`) and hands
//! them over a bounded channel. The processing loop decodes and dispatches each request to the
//! end of its synchronous part (for Produce: the append), so requests take effect in the order
//! they were sent, as Kafka's one-request-at-a-time processing guarantees. What a request then
//! waits for (an fsync for acks=all, new data for a Fetch long-poll) is a future kept in an
//! ordered queue, so several waits overlap while responses still leave in request order
//! (Kafka protocol: "the server guarantees that on a single TCP connection, requests will be
//! processed in the order they are sent and responses will return in that order").
//!
//! Bad input closes only this connection: a frame over the size limit, a truncated frame, an
//! unknown API key, an unsupported version (except ApiVersions: KIP-511) or an undecodable body.
//!
//! Memory is bounded: at most `IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX` requests per connection,
//! and request bytes broker-wide within `REQUEST_BYTES_BUFFERED_MAX` (the reader waits for
//! budget before reading a frame's body).

use crate::dispatch::{Reply, dispatch};
use crate::limits::{IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX, SHUTDOWN_DRAIN_MS_MAX};
use crate::state::BrokerState;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseKind};
use sluice_io::{Clock, Disk};
use sluice_protocol::api_versions::is_supported;
use sluice_protocol::frame::{FrameError, decode_request, encode_response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// Bytes of an undecodable frame shown in the warning (enough for the header and a bit more).
const FRAME_LOG_PREFIX_BYTES: usize = 96;

/// A response ready to encode, or `None` when the request gets no response (acks=0).
type Pending = BoxFuture<'static, Option<Encoded>>;

struct Encoded {
    api_key: ApiKey,
    frame: Bytes,
    started: tokio::time::Instant,
}

pub async fn serve_connection<D: Disk, C: Clock>(
    state: Arc<BrokerState<D, C>>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "set_nodelay failed");
    }
    let (reader, mut writer) = sluice_io::split_tcp(stream);
    let (frames_tx, mut frames) = mpsc::channel::<Frame>(IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX);
    let frame_bytes_max = state.config.socket_request_max_bytes;
    let budget = state.request_bytes.clone();
    let reader_task = tokio::spawn(read_frames(reader, frames_tx, frame_bytes_max, budget, peer));
    let mut in_flight: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut reading = true;
    loop {
        tokio::select! {
            frame = frames.recv(), if reading && in_flight.len() < IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX => {
                let Some((frame, permit)) = frame else { reading = false; continue };
                match handle_frame(&state, frame, peer).await {
                    // The request's memory budget is returned once its response is ready.
                    Some(pending) => in_flight.push_back(Box::pin(async move {
                        let encoded = pending.await;
                        drop(permit);
                        encoded
                    })),
                    None => reading = false,
                }
            }
            Some(done) = in_flight.next() => {
                if let Some(encoded) = done
                    && !write_response(&mut writer, encoded, peer).await
                {
                    break;
                }
            }
            _ = shutdown.changed(), if reading => reading = false,
            else => break,
        }
        if !reading && in_flight.is_empty() {
            break;
        }
        if !reading && *shutdown.borrow() {
            drain(&mut writer, &mut in_flight, peer).await;
            break;
        }
    }
    reader_task.abort();
    let _ = writer.shutdown().await;
}

/// On shutdown: finish what is in flight, within a bound.
async fn drain(writer: &mut sluice_io::TcpWriteHalf, in_flight: &mut FuturesOrdered<Pending>, peer: SocketAddr) {
    let deadline = tokio::time::sleep(Duration::from_millis(SHUTDOWN_DRAIN_MS_MAX));
    tokio::pin!(deadline);
    while !in_flight.is_empty() {
        tokio::select! {
            Some(done) = in_flight.next() => {
                if let Some(encoded) = done
                    && !write_response(writer, encoded, peer).await
                {
                    return;
                }
            }
            _ = &mut deadline => return,
        }
    }
}

async fn write_response(writer: &mut sluice_io::TcpWriteHalf, encoded: Encoded, peer: SocketAddr) -> bool {
    let api = api_name(encoded.api_key);
    metrics::histogram!("sluice_request_duration_seconds", "api" => api)
        .record(encoded.started.elapsed().as_secs_f64());
    metrics::counter!("sluice_bytes_sent_total").increment(encoded.frame.len() as u64);
    if let Err(error) = writer.write_all(&encoded.frame).await {
        tracing::debug!(%peer, %error, "write failed; closing");
        return false;
    }
    if let Err(error) = writer.flush().await {
        tracing::debug!(%peer, %error, "flush failed; closing");
        return false;
    }
    true
}

/// A request frame and the share of the broker's request-byte budget it holds.
type Frame = (Bytes, OwnedSemaphorePermit);

/// Reads size-prefixed frames until EOF, an error, or a frame over the limit. Before reading a
/// frame's body it takes the frame's size from the broker-wide budget, waiting if needed.
async fn read_frames(
    mut reader: sluice_io::TcpReadHalf,
    frames: mpsc::Sender<Frame>,
    frame_bytes_max: u32,
    budget: Arc<Semaphore>,
    peer: SocketAddr,
) {
    loop {
        let size = match reader.read_u32().await {
            Ok(size) => size,
            Err(_) => return, // EOF between frames is a normal close.
        };
        if size > frame_bytes_max || size > i32::MAX as u32 {
            tracing::warn!(%peer, size, limit = frame_bytes_max, "request frame over socket.request.max.bytes; closing");
            return;
        }
        let Ok(permit) = budget.clone().acquire_many_owned(size.max(1)).await else { return };
        let mut frame = BytesMut::zeroed(size as usize);
        if let Err(error) = reader.read_exact(&mut frame).await {
            tracing::warn!(%peer, size, %error, "truncated request frame; closing");
            return;
        }
        metrics::counter!("sluice_bytes_received_total").increment(u64::from(size) + 4);
        if frames.send((frame.freeze(), permit)).await.is_err() {
            return;
        }
    }
}

/// Decodes and dispatches one frame. `None` means close the connection.
async fn handle_frame<D: Disk, C: Clock>(
    state: &Arc<BrokerState<D, C>>,
    frame: Bytes,
    peer: SocketAddr,
) -> Option<Pending> {
    let started = tokio::time::Instant::now();
    let request = match decode_request(frame.clone(), is_supported) {
        Ok(request) => request,
        Err(FrameError::UnsupportedVersion { api_key: ApiKey::ApiVersions, version, correlation_id }) => {
            tracing::debug!(%peer, version, "ApiVersions version unsupported; KIP-511 fallback");
            return Some(ready(ApiKey::ApiVersions, 0, correlation_id, kip511_fallback(), started));
        }
        Err(error) => {
            metrics::counter!("sluice_request_errors_total", "reason" => "decode").increment(1);
            let prefix: String = frame.iter().take(FRAME_LOG_PREFIX_BYTES).map(|b| format!("{b:02x}")).collect();
            tracing::warn!(%peer, %error, frame_bytes = frame.len(), frame_prefix = %prefix, "bad request; closing connection");
            return None;
        }
    };
    if request.trailing_bytes > 0 {
        tracing::debug!(%peer, api = ?request.api_key, trailing_bytes = request.trailing_bytes, "request has trailing bytes (ignored, as Kafka does)");
    }
    let api_key = request.api_key;
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    metrics::counter!("sluice_requests_total", "api" => api_name(api_key)).increment(1);
    match dispatch(state, request, peer).await {
        Reply::Ready(body) => Some(ready(api_key, version, correlation_id, *body, started)),
        Reply::Deferred(future) => Some(Box::pin(async move {
            let body = future.await;
            encode(api_key, version, correlation_id, &body, started)
        })),
        Reply::NoResponse => Some(Box::pin(async { None })),
        Reply::Close => {
            tracing::debug!(%peer, "acks=0 produce failed; closing the connection as Kafka does");
            None
        }
    }
}

fn ready(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: ResponseKind,
    started: tokio::time::Instant,
) -> Pending {
    let encoded = encode(api_key, version, correlation_id, &body, started);
    Box::pin(async move { encoded })
}

fn encode(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    started: tokio::time::Instant,
) -> Option<Encoded> {
    match encode_response(api_key, version, correlation_id, body) {
        Ok(frame) => Some(Encoded { api_key, frame, started }),
        Err(error) => {
            // Our own response failed to encode: a bug, but not worth taking the broker down.
            tracing::error!(?api_key, version, %error, "response encoding failed");
            None
        }
    }
}

/// KIP-511: a v0-format ApiVersions answer with UNSUPPORTED_VERSION and our ranges.
fn kip511_fallback() -> ResponseKind {
    let mut response: ApiVersionsResponse = crate::handlers::api_versions::response();
    response.error_code = sluice_protocol::error_code::UNSUPPORTED_VERSION;
    ResponseKind::ApiVersions(response)
}

pub fn api_name(api_key: ApiKey) -> &'static str {
    match api_key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::AlterConfigs => "AlterConfigs",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::DescribeCluster => "DescribeCluster",
        _ => "Other",
    }
}
