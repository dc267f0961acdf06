//! Splitting a TCP stream into a reader and a writer, in both builds.
//!
//! Why: tokio's `TcpStream::into_split` gives lock-free owned halves, but madsim's simulated
//! `TcpStream` has no `into_split`. Under `--cfg madsim` the halves come from
//! `tokio::io::split`, which works on any stream; production keeps the lock-free halves.

use tokio::net::TcpStream;

/// The read half of a split `TcpStream`.
#[cfg(not(madsim))]
pub type TcpReadHalf = tokio::net::tcp::OwnedReadHalf;
/// The write half of a split `TcpStream`.
#[cfg(not(madsim))]
pub type TcpWriteHalf = tokio::net::tcp::OwnedWriteHalf;

/// The read half of a split `TcpStream`.
#[cfg(madsim)]
pub type TcpReadHalf = tokio::io::ReadHalf<TcpStream>;
/// The write half of a split `TcpStream`.
#[cfg(madsim)]
pub type TcpWriteHalf = tokio::io::WriteHalf<TcpStream>;

/// Splits `stream` into halves that can move to different tasks.
pub fn split_tcp(stream: TcpStream) -> (TcpReadHalf, TcpWriteHalf) {
    #[cfg(not(madsim))]
    {
        stream.into_split()
    }
    #[cfg(madsim)]
    {
        tokio::io::split(stream)
    }
}
