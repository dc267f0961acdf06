//! `SimClock`: the broker's `Clock` with per-node wall-clock skew and jumps.
//!
//! Why: madsim has one global virtual clock (reference/dst.md §1.5), so without this every node
//! agrees on the time to the nanosecond, which no real cluster does. Skew applies to wall time
//! only (record timestamps, retention); monotonic time drives timeouts and stays shared, as
//! `clock.rs` in sluice-io requires (wall time never orders events or decides a timeout).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// How far a node's wall clock may be off, either way.
pub const SKEW_MS_MAX: i64 = 3_600_000;

#[derive(Clone, Debug, Default)]
pub struct SimClock {
    skew_ms: Arc<AtomicI64>,
}

impl SimClock {
    /// Sets this node's wall-clock offset (a jump when it changes).
    pub fn set_skew_ms(&self, skew_ms: i64) {
        assert!(skew_ms.abs() <= SKEW_MS_MAX, "skew {skew_ms} ms beyond SKEW_MS_MAX");
        self.skew_ms.store(skew_ms, Ordering::Relaxed);
    }

    pub fn skew_ms(&self) -> i64 {
        self.skew_ms.load(Ordering::Relaxed)
    }
}

impl sluice_io::Clock for SimClock {
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    fn wall_ms(&self) -> i64 {
        sluice_io::SystemClock.wall_ms() + self.skew_ms()
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}
