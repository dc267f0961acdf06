//! The seams: every effect the broker has on the world goes through one of these traits.
//!
//! - [`Disk`] / [`File`]: positional file I/O plus the namespace operations, with explicit
//!   durability (`sync_data`, `sync_dir`). Production: [`StdDisk`]. Simulation: `SimDisk`
//!   (feature `sim`), which separates what reads see from what is durable and injects faults.
//! - [`Clock`]: monotonic time for timeouts, wall time only to stamp records.
//! - [`Transport`]: message-level broker-to-broker traffic, so the simulator can drop, duplicate
//!   and reorder Raft messages, which madsim's TCP never does (reference/dst.md §1.5).
//!
//! Why: the same broker code runs in production and inside the deterministic simulator
//! (DESIGN.md, "The seams and determinism"). Nothing in the request path may reach past these.

mod atomic_file;
mod clock;
mod disk;
mod net;
mod std_disk;
mod transport;

#[cfg(feature = "sim")]
pub mod sim_disk;
#[cfg(all(madsim, feature = "sim"))]
pub mod sim_net;
pub mod tcp_transport;

pub use atomic_file::{ATOMIC_FILE_BYTES_MAX, read_file, write_file_atomic};
pub use clock::{Clock, SystemClock, timeout_at};
pub use disk::{Disk, File, OpenOptions};
pub use net::{TcpReadHalf, TcpWriteHalf, split_tcp};
pub use std_disk::{StdDisk, StdFile};
pub use tcp_transport::TcpTransport;
pub use transport::{Transport, TransportError};
