//! The `Clock` seam: monotonic time drives timeouts; wall time only stamps records.
//!
//! Invariant: wall time is never used to order events or to decide a timeout; a wall clock may
//! jump (and the simulator makes it jump, per node, because madsim has one global clock).

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

pub trait Clock: Clone + Send + Sync + 'static {
    /// Monotonic now.
    fn now(&self) -> Instant;
    /// Milliseconds since the Unix epoch, for CreateTime/LogAppendTime stamps and retention.ms.
    fn wall_ms(&self) -> i64;
    /// Sleeps on the monotonic clock.
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// The machine's clocks (virtual ones under madsim, which interposes them).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_ms(&self) -> i64 {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since_epoch.as_millis()).expect("wall clock beyond i64 milliseconds")
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(duration)
    }
}

/// `tokio::time::timeout_at`, which madsim-tokio lacks: fails with `Elapsed` once `deadline` passes.
pub async fn timeout_at<F: Future>(deadline: Instant, future: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    #[cfg(not(madsim))]
    {
        tokio::time::timeout_at(deadline, future).await
    }
    #[cfg(madsim)]
    {
        tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), future).await
    }
}
