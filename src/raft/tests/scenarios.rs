//! Data-driven interaction scenarios for the Raft core, after etcd raft's `testdata/*.txt`
//! interaction tests (reference/style.md §A.2): each `testdata/*.txt` file is a script of
//! commands, each followed by the exact output it must produce. Every script starts with a
//! comment naming the paper section it checks.
//!
//! Run: `cargo test -p sluice-raft --test scenarios`. One file: `SCENARIO=figure8 cargo test ...`.
//! Rewrite the expected outputs: `SCENARIO_REWRITE=1 cargo test -p sluice-raft --test scenarios`,
//! then read the diff: only keep changes you understand and want (etcd: "Only commit the changes
//! if you understand what caused them and if they are desired").
//!
//! Commands (ids are node ids; `A->B` links take `*` for any node):
//!
//! | command | what it does |
//! | --- | --- |
//! | `add-nodes N voters=(1,2,3) [learners=(..)] [prevote=B] [checkquorum=B] [election=T] [heartbeat=T] [max-append-bytes=N] [max-inflight=N]` | N replicas with the next ids and empty logs, knowing that membership |
//! | `timeout ID ticks=T` | the election timeout ID draws from now on (default `min + id - 1`) |
//! | `tick ID.. [n=N]` | tick those replicas N times; deliver nothing |
//! | `tick-all [n=N]` | N rounds of: tick every live replica, then `stabilize` |
//! | `campaign ID` | `Input::Campaign` |
//! | `propose ID [offsets=N] [bytes=B]` | a producer batch at the leader |
//! | `propose-membership ID add-learner=X\|promote=X\|remove=X` | one membership change |
//! | `transfer ID to=X` | `Input::TransferLeadership` |
//! | `deliver` | every message in flight and those they cause, until none is left |
//! | `deliver A->B ..` | the matching messages in flight now, once |
//! | `drop [A->B ..]` | lose the matching messages in flight (all without arguments) |
//! | `partition (1) (2,3)` / `heal` | only replicas in one group talk; unlisted ones are isolated |
//! | `persist [ID..]` | make pending writes durable and feed `Input::Persisted` |
//! | `stabilize` | `persist` every live replica and `deliver`, until quiet |
//! | `crash ID` / `restart ID` | lose pending writes / start from the durable state |
//! | `log-start ID offset=N` | `Input::LogStartMoved` (after making pending writes durable) |
//! | `status [ID..]`, `log [ID..]`, `network` | replica state, logs, messages in flight |
//!
//! `quiet` after any command hides messages and keeps replica events. Output notation is in
//! `scenario/format.rs`; the shell's contract and the safety checks it makes after every
//! effect are in `scenario/cluster.rs`.

mod scenario;

use scenario::cluster::Cluster;
use scenario::script::{Script, diff};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Runs one script; returns a report of what failed, or `None`.
fn run_file(path: &Path, rewrite: bool) -> Option<String> {
    let name = path.file_name().expect("a file").to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).expect("readable script");
    let script = match Script::parse(&text) {
        Ok(script) => script,
        Err(error) => return Some(format!("{name}: {error}")),
    };
    let mut cluster = Cluster::default();
    let mut actual: Vec<Option<Vec<String>>> = Vec::new();
    let mut failures = Vec::new();
    for directive in script.directives() {
        let location = format!("{name}:{}: `{}`", directive.line, directive.command);
        let result = panic::catch_unwind(AssertUnwindSafe(|| cluster.run(&directive.command)));
        let output = match result {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => {
                failures.push(format!("{location}: {error}"));
                break;
            }
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{location}: panicked: {message}"));
                break;
            }
        };
        if output != directive.expected && !rewrite {
            failures.push(format!(
                "{location}: output differs (- expected, + actual):\n{}",
                diff(&directive.expected, &output)
            ));
        }
        actual.push(Some(output));
    }
    if rewrite {
        let new = script.rewritten(&actual);
        if new != text {
            std::fs::write(path, new).expect("writable script");
            eprintln!("rewrote {name}");
        }
    }
    if failures.is_empty() { None } else { Some(failures.join("\n")) }
}

#[test]
fn scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata");
    let rewrite = std::env::var_os("SCENARIO_REWRITE").is_some_and(|v| v != "0");
    let only = std::env::var("SCENARIO").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/testdata exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .filter(|path| only.as_ref().is_none_or(|o| path.file_stem().is_some_and(|s| s.to_string_lossy() == *o)))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in {}", dir.display());
    let mut failed = Vec::new();
    for path in &files {
        match run_file(path, rewrite) {
            None => eprintln!("ok   {}", path.display()),
            Some(report) => {
                eprintln!("FAIL {}\n{report}", path.display());
                failed.push(report);
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} scenarios failed (SCENARIO_REWRITE=1 regenerates the expected output):\n\n{}",
        failed.len(),
        files.len(),
        failed.join("\n\n")
    );
}
