//! The run's history: `history.jsonl`, one `sluice_checker::Line` per completed operation,
//! nemesis event, final poll and final read, appended as they happen.
//!
//! Why append-and-flush: a run that dies midway still leaves a readable prefix (the checker reads
//! any prefix), and the history is the checker's input format itself, shared with `sim/`, so the
//! verdict is reached by the same code (DESIGN.md: one checker crate serves sim/ and jepsen/).
//! Times are milliseconds since the run's start, from the monotonic clock of the harness (which
//! the clock nemesis never touches: it fakes only the brokers' wall clocks).

use sluice_checker::Line;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

pub struct Recorder {
    started: Instant,
    out: Mutex<BufWriter<File>>,
}

impl Recorder {
    pub fn create(path: &Path) -> anyhow::Result<Recorder> {
        let file = File::create(path)?;
        Ok(Recorder { started: Instant::now(), out: Mutex::new(BufWriter::new(file)) })
    }

    /// Milliseconds since the run started.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).expect("a run lasts less than 2^64 ms")
    }

    pub fn record(&self, line: &Line) {
        let json = serde_json::to_string(line).expect("history line serializes");
        assert!(!json.contains('\n'), "one line per record");
        let mut out = self.out.lock().expect("recorder lock");
        // A history that cannot be written makes the run meaningless: stop here.
        writeln!(out, "{json}").expect("history.jsonl is writable");
        out.flush().expect("history.jsonl flushes");
    }
}
