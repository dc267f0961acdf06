//! A minimal HTTP/1.1 client for the broker's admin port (the few admin operations that have no
//! Kafka API, such as decommission; Redpanda's `rpk` uses its admin API the same way).

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// The longest one admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest admin response read.
const RESPONSE_BYTES_MAX: usize = 1 << 20;

/// Sends `method path` to the admin endpoint at `addr`; returns the status and the JSON body.
pub async fn call(addr: &str, method: hyper::Method, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    tokio::time::timeout(REQUEST_TIMEOUT, call_inner(addr, method, path))
        .await
        .map_err(|_| anyhow::anyhow!("admin endpoint {addr} did not answer within {REQUEST_TIMEOUT:?}"))?
}

async fn call_inner(addr: &str, method: hyper::Method, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "admin connection closed");
        }
    });
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr)
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = http_body_util::Limited::new(response.into_body(), RESPONSE_BYTES_MAX)
        .collect()
        .await
        .map_err(|error| anyhow::anyhow!("reading the admin response: {error}"))?
        .to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or_else(|_| serde_json::Value::String(format!("{body:?}")));
    Ok((status, json))
}
