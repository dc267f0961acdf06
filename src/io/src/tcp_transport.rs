//! `TcpTransport`: the production peer `Transport`, length-prefixed CRC'd frames over tokio TCP.
//!
//! Why: Raft traffic between brokers is message-level and best-effort (transport.rs); TCP gives
//! ordering per connection, the frame CRC catches what TCP's checksum misses, and the sender id
//! in every frame means no handshake is needed. It uses `tokio::net`, which madsim replaces, so
//! the same code also runs in simulation.
//!
//! Frame layout (all integers little-endian):
//!
//! ```text
//! 0         4         8         12                       12 + length
//! +---------+---------+---------+------------------------+
//! | length  | crc32   | sender  | payload                |
//! | u32     | u32     | i32     | `length` bytes         |
//! +---------+---------+---------+------------------------+
//! length: payload bytes, at most FRAME_BYTES_MAX
//! crc32:  crc32fast (IEEE) of the payload only
//! sender: the sending broker's node id
//! ```
//!
//! Connections: for each peer one outbound connection, owned by one task that drains a bounded
//! queue (`PEER_QUEUE_MESSAGES_MAX`), connects lazily when it has a message, retries with capped
//! exponential backoff, and writes each frame under `WRITE_TIMEOUT`, flushing after every frame.
//! A message whose write fails is lost (best effort). Every accepted connection gets a reader
//! task that feeds one bounded inbound queue (`INBOUND_QUEUE_MESSAGES_MAX`) which `recv` drains;
//! a full queue pushes back on the sender through TCP.
//!
//! Invariants: every queue, frame and connection count is bounded by a named constant; a frame
//! that is oversized or fails its CRC closes its connection (with a `warn!`), never reaches
//! `recv`; tasks never hold the transport itself, so dropping the last clone (or `close`) ends
//! them all.

use crate::transport::{Transport, TransportError};
use bytes::Bytes;
use sluice_types::NodeId;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// The largest payload one frame carries.
pub const FRAME_BYTES_MAX: u32 = 16 << 20;
/// Bytes before the payload: length, crc32, sender.
pub const FRAME_HEADER_BYTES: u32 = 12;
/// Messages queued for one peer before `send` returns `QueueFull`.
pub const PEER_QUEUE_MESSAGES_MAX: u32 = 1024;
/// Messages received from all peers and not yet taken by `recv`.
pub const INBOUND_QUEUE_MESSAGES_MAX: u32 = 4096;
/// Inbound connections served at once; more are closed at accept.
pub const INBOUND_CONNECTIONS_MAX: u32 = 256;
/// Time allowed to establish an outbound connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed to write and flush one frame.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to read a frame's payload once its header arrived.
pub const FRAME_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// First delay before reconnecting to a peer; doubles up to `RECONNECT_BACKOFF_MAX`.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest delay between reconnection attempts.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors) before the next one.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Socket buffer sizes for the framed reader and writer.
const SOCKET_BUFFER_BYTES: u32 = 64 << 10;

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub payload_bytes: u32,
    pub crc32: u32,
    pub sender: NodeId,
}

impl FrameHeader {
    /// The header for `payload` sent by `sender`. The caller checked the size limit.
    pub fn for_payload(sender: NodeId, payload: &[u8]) -> FrameHeader {
        assert!(payload.len() as u64 <= u64::from(FRAME_BYTES_MAX), "frame payload too large");
        let payload_bytes = u32::try_from(payload.len()).expect("FRAME_BYTES_MAX fits in u32");
        FrameHeader { payload_bytes, crc32: crc32fast::hash(payload), sender }
    }

    pub fn encode(&self) -> [u8; FRAME_HEADER_BYTES as usize] {
        let mut bytes = [0u8; FRAME_HEADER_BYTES as usize];
        bytes[0..4].copy_from_slice(&self.payload_bytes.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.crc32.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.sender.0.to_le_bytes());
        bytes
    }

    pub fn decode(bytes: &[u8; FRAME_HEADER_BYTES as usize]) -> FrameHeader {
        let word = |at: usize| [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        FrameHeader {
            payload_bytes: u32::from_le_bytes(word(0)),
            crc32: u32::from_le_bytes(word(4)),
            sender: NodeId(i32::from_le_bytes(word(8))),
        }
    }
}

/// Why an inbound connection is closed.
#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("frame of {0} bytes exceeds FRAME_BYTES_MAX")]
    TooLarge(u32),
    #[error("frame crc32 {actual:#010x} != header crc32 {expected:#010x}")]
    BadCrc { expected: u32, actual: u32 },
    #[error("timed out reading a frame payload")]
    Timeout,
    #[error("connection closed")]
    Eof,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Message-level peer transport over TCP. Clones share one listener and one set of peers.
#[derive(Clone)]
pub struct TcpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: NodeId,
    local_addr: SocketAddr,
    /// Outbound links by node id; `None` once closed.
    peers: Mutex<Option<BTreeMap<NodeId, Peer>>>,
    inbound: tokio::sync::Mutex<mpsc::Receiver<(NodeId, Bytes)>>,
    /// Flipped to `true` by `close`; dropping it (last clone gone) also stops every task.
    closed: watch::Sender<bool>,
}

/// One outbound link. Dropping it closes the queue, which ends the link's task.
struct Peer {
    addr: SocketAddr,
    queue: mpsc::Sender<Bytes>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("node_id", &self.inner.node_id)
            .field("local_addr", &self.inner.local_addr)
            .finish()
    }
}

impl TcpTransport {
    /// Listens on `listen` (port 0 picks a free port: see `local_addr`) and links to `peers`.
    /// Must run inside a tokio (or madsim) runtime: it spawns the connection tasks.
    pub async fn bind(
        node_id: NodeId,
        listen: SocketAddr,
        peers: BTreeMap<NodeId, SocketAddr>,
    ) -> io::Result<TcpTransport> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE_MESSAGES_MAX as usize);
        let (closed, closed_rx) = watch::channel(false);
        let connections = Arc::new(Semaphore::new(INBOUND_CONNECTIONS_MAX as usize));
        tokio::spawn(accept_loop(listener, inbound_tx, closed_rx, connections));
        let transport = TcpTransport {
            inner: Arc::new(Inner {
                node_id,
                local_addr,
                peers: Mutex::new(Some(BTreeMap::new())),
                inbound: tokio::sync::Mutex::new(inbound_rx),
                closed,
            }),
        };
        for (peer, addr) in peers {
            transport.set_peer(peer, addr);
        }
        tracing::debug!(node = %node_id, %local_addr, "peer transport listening");
        Ok(transport)
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    fn peers(&self) -> MutexGuard<'_, Option<BTreeMap<NodeId, Peer>>> {
        self.inner.peers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a peer, or moves it to a new address (dropping what was queued for the old one).
    /// Does nothing once closed. Must run inside a runtime.
    pub fn set_peer(&self, node: NodeId, addr: SocketAddr) {
        let mut peers = self.peers();
        let Some(peers) = peers.as_mut() else { return };
        if peers.get(&node).is_some_and(|peer| peer.addr == addr) {
            return;
        }
        let (queue, queue_rx) = mpsc::channel(PEER_QUEUE_MESSAGES_MAX as usize);
        let closed = self.inner.closed.subscribe();
        tokio::spawn(peer_link(self.inner.node_id, node, addr, queue_rx, closed));
        peers.insert(node, Peer { addr, queue });
    }

    /// Forgets a peer; what was queued for it is dropped. Returns whether it was known.
    pub fn remove_peer(&self, node: NodeId) -> bool {
        self.peers().as_mut().is_some_and(|peers| peers.remove(&node).is_some())
    }

    /// Stops listening, drops every link and queued message; `recv` then returns `None` and
    /// `send` returns `Closed`.
    pub fn close(&self) {
        self.peers().take();
        self.inner.closed.send_replace(true);
    }
}

impl Transport for TcpTransport {
    fn send(&self, target: NodeId, message: Bytes) -> Result<(), TransportError> {
        if message.len() as u64 > u64::from(FRAME_BYTES_MAX) {
            return Err(TransportError::TooLarge(message.len() as u64));
        }
        let peers = self.peers();
        let peers = peers.as_ref().ok_or(TransportError::Closed)?;
        let peer = peers.get(&target).ok_or(TransportError::UnknownPeer(target))?;
        #[cfg(all(madsim, feature = "sim"))]
        {
            // Simulation: drop, duplicate or hold back the message (sim_net.rs).
            let fate = crate::sim_net::fate(self.inner.node_id, target);
            if fate != crate::sim_net::Fate::DELIVER {
                let queue = peer.queue.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(fate.delay_ms)).await;
                    for _ in 0..fate.copies {
                        let _ = queue.try_send(message.clone());
                    }
                });
                return Ok(());
            }
        }
        peer.queue.try_send(message).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => TransportError::QueueFull(target),
            mpsc::error::TrySendError::Closed(_) => TransportError::Closed,
        })
    }

    async fn recv(&self) -> Option<(NodeId, Bytes)> {
        let mut closed = self.inner.closed.subscribe();
        if *closed.borrow() {
            return None;
        }
        let mut inbound = tokio::select! {
            inbound = self.inner.inbound.lock() => inbound,
            () = wait_closed(&mut closed) => return None,
        };
        tokio::select! {
            message = inbound.recv() => message,
            () = wait_closed(&mut closed) => None,
        }
    }
}

/// Resolves once the transport is closed (or dropped).
async fn wait_closed(closed: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the transport was dropped, which is closed too.
    let _ = closed.wait_for(|closed| *closed).await;
}

async fn sleep_or_closed(duration: Duration, closed: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        () = wait_closed(closed) => true,
    }
}

/// The next message for a peer, or `None` when the link should end.
async fn next_message(queue: &mut mpsc::Receiver<Bytes>, closed: &mut watch::Receiver<bool>) -> Option<Bytes> {
    tokio::select! {
        message = queue.recv() => message,
        () = wait_closed(closed) => None,
    }
}

/// One outbound link: connect when there is something to send, write frames until the
/// connection fails, back off, repeat. Ends when the queue or the transport closes.
async fn peer_link(
    sender: NodeId,
    target: NodeId,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<Bytes>,
    mut closed: watch::Receiver<bool>,
) {
    let mut backoff = RECONNECT_BACKOFF_MIN;
    let mut unsent: Option<Bytes> = None;
    loop {
        let message = match unsent.take() {
            Some(message) => message,
            None => match next_message(&mut queue, &mut closed).await {
                Some(message) => message,
                None => return,
            },
        };
        let connected = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(connected) => connected,
            Err(_elapsed) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        };
        let stream = match connected {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(peer = %target, %addr, %error, ?backoff, "peer connect failed");
                unsent = Some(message);
                if sleep_or_closed(backoff, &mut closed).await {
                    return;
                }
                backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                continue;
            }
        };
        backoff = RECONNECT_BACKOFF_MIN;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(peer = %target, %error, "set_nodelay failed");
        }
        tracing::debug!(peer = %target, %addr, "peer connected");
        let mut writer = BufWriter::with_capacity(SOCKET_BUFFER_BYTES as usize, stream);
        let mut next = Some(message);
        while let Some(message) = next.take() {
            if let Err(error) = write_frame(&mut writer, sender, &message).await {
                // The message is lost: delivery is best effort and Raft retries.
                tracing::debug!(peer = %target, %addr, %error, "peer write failed, reconnecting");
                break;
            }
            next = next_message(&mut queue, &mut closed).await;
            if next.is_none() {
                return;
            }
        }
    }
}

/// Writes one frame and flushes it, within `WRITE_TIMEOUT`.
async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, sender: NodeId, payload: &[u8]) -> io::Result<()> {
    let header = FrameHeader::for_payload(sender, payload);
    let write = async {
        writer.write_all(&header.encode()).await?;
        writer.write_all(payload).await?;
        writer.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(result) => result,
        Err(_elapsed) => Err(io::Error::new(io::ErrorKind::TimedOut, "frame write timed out")),
    }
}

/// Reads one frame. The header may take as long as the peer likes (idle link); the payload must
/// follow within `FRAME_READ_TIMEOUT`.
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<(NodeId, Bytes), FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES as usize];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Eof),
        Err(error) => return Err(error.into()),
    }
    let header = FrameHeader::decode(&header);
    if header.payload_bytes > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge(header.payload_bytes));
    }
    let mut payload = vec![0u8; header.payload_bytes as usize];
    match tokio::time::timeout(FRAME_READ_TIMEOUT, reader.read_exact(&mut payload)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(error.into()),
        Err(_elapsed) => return Err(FrameError::Timeout),
    }
    let actual = crc32fast::hash(&payload);
    if actual != header.crc32 {
        return Err(FrameError::BadCrc { expected: header.crc32, actual });
    }
    assert_eq!(payload.len() as u64, u64::from(header.payload_bytes));
    Ok((header.sender, Bytes::from(payload)))
}

async fn accept_loop(
    listener: TcpListener,
    inbound: mpsc::Sender<(NodeId, Bytes)>,
    mut closed: watch::Receiver<bool>,
    connections: Arc<Semaphore>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = wait_closed(&mut closed) => return,
        };
        match accepted {
            Ok((stream, remote)) => match connections.clone().try_acquire_owned() {
                Ok(permit) => {
                    let task = read_connection(stream, remote, inbound.clone(), closed.clone());
                    tokio::spawn(async move {
                        task.await;
                        drop::<OwnedSemaphorePermit>(permit);
                    });
                }
                Err(_) => {
                    tracing::warn!(%remote, "INBOUND_CONNECTIONS_MAX reached, closing connection");
                }
            },
            Err(error) => {
                tracing::warn!(%error, "peer accept failed");
                if sleep_or_closed(ACCEPT_ERROR_PAUSE, &mut closed).await {
                    return;
                }
            }
        }
    }
}

/// Feeds one inbound connection's frames to the inbound queue until it ends or misbehaves.
async fn read_connection(
    stream: TcpStream,
    remote: SocketAddr,
    inbound: mpsc::Sender<(NodeId, Bytes)>,
    mut closed: watch::Receiver<bool>,
) {
    let mut reader = BufReader::with_capacity(SOCKET_BUFFER_BYTES as usize, stream);
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader) => frame,
            () = wait_closed(&mut closed) => return,
        };
        let message = match frame {
            Ok(message) => message,
            Err(FrameError::Eof) => return,
            Err(error @ (FrameError::TooLarge(_) | FrameError::BadCrc { .. })) => {
                tracing::warn!(%remote, %error, "bad peer frame, closing connection");
                return;
            }
            Err(error) => {
                tracing::debug!(%remote, %error, "peer connection ended");
                return;
            }
        };
        let delivered = tokio::select! {
            sent = inbound.send(message) => sent.is_ok(),
            () = wait_closed(&mut closed) => false,
        };
        if !delivered {
            return;
        }
    }
}

// Real sockets and a real port reservation: these run in normal builds only.
#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    const RECV_TIMEOUT: Duration = Duration::from_secs(20);

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    async fn recv_within(transport: &TcpTransport) -> (NodeId, Bytes) {
        tokio::time::timeout(RECV_TIMEOUT, transport.recv())
            .await
            .expect("message within RECV_TIMEOUT")
            .expect("transport open")
    }

    #[test]
    fn frame_header_roundtrip() {
        let payload = b"append entries";
        let header = FrameHeader::for_payload(NodeId(-7), payload);
        let bytes = header.encode();
        assert_eq!(&bytes[0..4], &14u32.to_le_bytes());
        assert_eq!(&bytes[8..12], &(-7i32).to_le_bytes());
        assert_eq!(FrameHeader::decode(&bytes), header);
        assert_eq!(header.crc32, crc32fast::hash(payload));
    }

    #[tokio::test]
    async fn bad_crc_and_oversized_frames_are_rejected() {
        let payload = b"hello";
        let mut header = FrameHeader::for_payload(NodeId(1), payload);
        header.crc32 ^= 1;
        let mut wire = header.encode().to_vec();
        wire.extend_from_slice(payload);
        assert!(matches!(read_frame(&mut &wire[..]).await, Err(FrameError::BadCrc { .. })));

        let mut huge = FrameHeader::for_payload(NodeId(1), b"").encode();
        huge[0..4].copy_from_slice(&(FRAME_BYTES_MAX + 1).to_le_bytes());
        assert!(matches!(read_frame(&mut &huge[..]).await, Err(FrameError::TooLarge(_))));

        let good = FrameHeader::for_payload(NodeId(3), payload);
        let mut wire = good.encode().to_vec();
        wire.extend_from_slice(payload);
        let (sender, message) = read_frame(&mut &wire[..]).await.unwrap();
        assert_eq!((sender, &message[..]), (NodeId(3), &payload[..]));
    }

    #[tokio::test]
    async fn two_transports_exchange_messages_both_ways() {
        let a = TcpTransport::bind(NodeId(1), loopback(), BTreeMap::new()).await.unwrap();
        let b = TcpTransport::bind(NodeId(2), loopback(), BTreeMap::new()).await.unwrap();
        a.set_peer(NodeId(2), b.local_addr());
        b.set_peer(NodeId(1), a.local_addr());

        for i in 0..10u8 {
            a.send(NodeId(2), Bytes::from(vec![i; 100])).unwrap();
        }
        for i in 0..10u8 {
            // One connection per peer: order is preserved.
            assert_eq!(recv_within(&b).await, (NodeId(1), Bytes::from(vec![i; 100])));
        }
        b.send(NodeId(1), Bytes::from_static(b"pong")).unwrap();
        assert_eq!(recv_within(&a).await, (NodeId(2), Bytes::from_static(b"pong")));

        assert!(matches!(a.send(NodeId(9), Bytes::new()), Err(TransportError::UnknownPeer(_))));
        let too_large = Bytes::from(vec![0u8; FRAME_BYTES_MAX as usize + 1]);
        assert!(matches!(a.send(NodeId(2), too_large), Err(TransportError::TooLarge(_))));

        a.close();
        assert!(a.recv().await.is_none());
        assert!(matches!(a.send(NodeId(2), Bytes::new()), Err(TransportError::Closed)));
    }

    #[tokio::test]
    async fn a_bad_frame_closes_only_its_connection() {
        let a = TcpTransport::bind(NodeId(1), loopback(), BTreeMap::new()).await.unwrap();
        let b = TcpTransport::bind(NodeId(2), loopback(), BTreeMap::new()).await.unwrap();
        a.set_peer(NodeId(2), b.local_addr());

        let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
        let mut header = FrameHeader::for_payload(NodeId(66), b"evil");
        header.crc32 ^= 0xFFFF;
        raw.write_all(&header.encode()).await.unwrap();
        raw.write_all(b"evil").await.unwrap();
        raw.flush().await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(RECV_TIMEOUT, raw.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "b closes the connection: {read:?}");

        a.send(NodeId(2), Bytes::from_static(b"fine")).unwrap();
        assert_eq!(recv_within(&b).await, (NodeId(1), Bytes::from_static(b"fine")));
    }

    #[tokio::test]
    async fn a_peer_that_is_down_at_first_is_reached_after_it_comes_up() {
        // Reserve a free port, then free it: nothing listens there until `b` binds it.
        let reserved = std::net::TcpListener::bind(loopback()).unwrap();
        let b_addr = reserved.local_addr().unwrap();
        drop(reserved);

        let peers = BTreeMap::from([(NodeId(2), b_addr)]);
        let a = TcpTransport::bind(NodeId(1), loopback(), peers).await.unwrap();
        a.send(NodeId(2), Bytes::from_static(b"early")).unwrap();
        // Let a few connection attempts fail and the backoff grow.
        tokio::time::sleep(RECONNECT_BACKOFF_MIN * 6).await;

        let b = TcpTransport::bind(NodeId(2), b_addr, BTreeMap::new()).await.unwrap();
        assert_eq!(recv_within(&b).await, (NodeId(1), Bytes::from_static(b"early")));
        a.send(NodeId(2), Bytes::from_static(b"later")).unwrap();
        assert_eq!(recv_within(&b).await, (NodeId(1), Bytes::from_static(b"later")));
    }
}
