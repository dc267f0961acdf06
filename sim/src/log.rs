//! The per-seed event log: every `tracing` line of a seed's brokers, clients and nemesis, kept
//! in memory on the seed's thread and printed (its tail) when the seed fails.
//!
//! Why thread-local: madsim runs each seed on its own OS thread, and seeds may run in parallel;
//! each seed's log must hold only its own lines. Timestamps are madsim's virtual time.
//! `SLUICE_SIM_LOG_STDERR=1` also echoes every line to stderr as it is written (debugging a
//! seed that hangs).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;

/// Lines one seed keeps (the oldest go first).
pub const LOG_LINES_MAX: usize = 200_000;

thread_local! {
    static LINES: RefCell<VecDeque<String>> = const { RefCell::new(VecDeque::new()) };
    /// Fatal-by-design panics of this seed: (madsim node, message).
    static FATAL: RefCell<Vec<(madsim::task::NodeId, String)>> = const { RefCell::new(Vec::new()) };
}

/// Records a fatal-by-design panic of the current node (called by the panic hook).
pub fn record_fatal(message: &str) {
    let node = madsim::plugin::node();
    FATAL.with(|fatal| fatal.borrow_mut().push((node, message.to_owned())));
}

/// The fatal-by-design panics so far, oldest first; clears them.
pub fn take_fatal() -> Vec<(madsim::task::NodeId, String)> {
    FATAL.with(|fatal| std::mem::take(&mut *fatal.borrow_mut()))
}

/// Drops this thread's lines (a new seed).
pub fn reset() {
    LINES.with(|lines| lines.borrow_mut().clear());
    FATAL.with(|fatal| fatal.borrow_mut().clear());
}

/// This thread's lines, oldest first.
pub fn take() -> Vec<String> {
    LINES.with(|lines| lines.borrow_mut().drain(..).collect())
}

/// A `tracing_subscriber` writer into this thread's lines.
#[derive(Clone, Copy, Default)]
pub struct SeedLog;

pub struct LineWriter(Vec<u8>);

impl io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        LINES.with(|lines| {
            let mut lines = lines.borrow_mut();
            let echo = std::env::var_os("SLUICE_SIM_LOG_STDERR").is_some();
            for line in text.lines() {
                if echo {
                    eprintln!("{line}");
                }
                if lines.len() >= LOG_LINES_MAX {
                    lines.pop_front();
                }
                lines.push_back(line.to_owned());
            }
        });
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SeedLog {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter(Vec::new())
    }
}
