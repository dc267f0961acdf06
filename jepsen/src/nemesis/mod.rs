//! The nemesis: runs the seeded schedule of faults against the cluster, records each start and
//! stop in the history, and heals everything for the final phase.
//!
//! Faults (jepsen_tla.md §1.9, §2.4–2.8): partitions of every Jepsen shape and random packet
//! loss (nftables on the bridge), kill -9 and restart, SIGSTOP and SIGCONT, clock bumps and
//! strobes (libfaketime's offset file), and a full disk (a ballast file on the host's tmpfs).
//! Lost unsynced writes (a lazy filesystem) are not built: see the README's Jepsen section.

pub mod grudge;
pub mod nft;
pub mod schedule;

use crate::cluster::{Cluster, Health, partition_views};
use crate::config::RunConfig;
use crate::recorder::Recorder;
use crate::shell;
use grudge::Shape;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use schedule::{Fault, FaultSpec, Targets};
use sluice_checker::{Line, NemesisEvent, NemesisPhase};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the nemesis thread checks for due events and reaps exited brokers.
const TICK_MS: u64 = 100;

/// What a started fault did, so that stopping it undoes exactly that.
enum Undo {
    Partition,
    Restart(Vec<u32>),
    Resume(Vec<u32>),
    ResetClock { targets: Vec<u32>, strobe: Option<Arc<AtomicBool>> },
    Loss,
    Disk(Vec<u32>),
    Nothing,
}

pub struct Nemesis {
    config: RunConfig,
    cluster: Arc<Mutex<Cluster>>,
    recorder: Arc<Recorder>,
    strobes: Vec<std::thread::JoinHandle<()>>,
}

impl Nemesis {
    pub fn new(config: &RunConfig, cluster: Arc<Mutex<Cluster>>, recorder: Arc<Recorder>) -> Nemesis {
        Nemesis { config: config.clone(), cluster, recorder, strobes: Vec::new() }
    }

    /// Runs `faults` until `end_ms` (the time limit) or `stop` is set; faults still on then are
    /// left for `heal_all`. Returns the faults' realized windows: (fault, started, stopped ms).
    pub fn run(&mut self, faults: &[Fault], end_ms: u64, stop: &AtomicBool) -> Vec<(String, u64, u64)> {
        let mut pending: Vec<(u64, usize, bool)> = Vec::new();
        for (i, fault) in faults.iter().enumerate() {
            pending.push((fault.start_ms, i, true));
            pending.push((fault.stop_ms, i, false));
        }
        pending.sort();
        let mut undo: Vec<Option<(Undo, u64)>> = (0..faults.len()).map(|_| None).collect();
        let mut windows = Vec::new();
        let mut next = 0;
        loop {
            let now = self.recorder.now_ms();
            self.cluster.lock().expect("cluster lock").reap(now);
            if now >= end_ms || stop.load(Ordering::Acquire) {
                break;
            }
            while next < pending.len() && pending[next].0 <= now {
                let (_, i, is_start) = pending[next];
                next += 1;
                if is_start {
                    let started = self.recorder.now_ms();
                    undo[i] = Some((self.start(&faults[i].spec), started));
                } else if let Some((action, started)) = undo[i].take() {
                    self.stop(faults[i].spec.kind(), action);
                    windows.push((faults[i].spec.kind().to_string(), started, self.recorder.now_ms()));
                }
            }
            std::thread::sleep(Duration::from_millis(TICK_MS));
        }
        for (i, slot) in undo.iter_mut().enumerate() {
            if let Some((action, started)) = slot.take() {
                self.stop(faults[i].spec.kind(), action);
                windows.push((faults[i].spec.kind().to_string(), started, self.recorder.now_ms()));
            }
        }
        windows
    }

    fn event(&self, f: &str, phase: NemesisPhase, value: serde_json::Value) {
        let at_ms = self.recorder.now_ms();
        eprintln!("jepsen: {at_ms:>7} ms nemesis {f} {phase:?} {value}");
        self.recorder.record(&Line::Nemesis(NemesisEvent { at_ms, f: f.to_string(), phase, value }));
    }

    fn resolve(&self, targets: &Targets) -> Vec<u32> {
        match targets {
            Targets::Nodes(nodes) => nodes.clone(),
            Targets::Primaries => leaders(&self.config).into_iter().collect(),
        }
    }

    fn start(&mut self, spec: &FaultSpec) -> Undo {
        let kind = spec.kind();
        match spec {
            FaultSpec::Partition { shape, seed } => {
                let shape: Shape = shape.parse().expect("shapes are checked when the run starts");
                let mut rng = ChaCha8Rng::seed_from_u64(*seed);
                let primaries = if shape == Shape::Primaries { leaders(&self.config) } else { BTreeSet::new() };
                let Some(grudge) = grudge::grudge(shape, self.config.nodes, &mut rng, &primaries) else {
                    self.event(kind, NemesisPhase::Start, serde_json::json!({"shape": shape.name(), "skipped": true}));
                    return Undo::Nothing;
                };
                let description = grudge.describe();
                if let Err(error) = nft::apply(&nft::partition_ruleset(&grudge)) {
                    eprintln!("jepsen: partition failed: {error}");
                }
                self.event(
                    kind,
                    NemesisPhase::Start,
                    serde_json::json!({"shape": shape.name(), "grudge": description}),
                );
                Undo::Partition
            }
            FaultSpec::Kill { targets } => {
                let nodes = self.resolve(targets);
                let mut cluster = self.cluster.lock().expect("cluster lock");
                for &node in &nodes {
                    cluster.kill(node);
                }
                drop(cluster);
                self.event(kind, NemesisPhase::Start, serde_json::json!({"nodes": nodes}));
                Undo::Restart(nodes)
            }
            FaultSpec::Pause { targets } => {
                let nodes = self.resolve(targets);
                let mut cluster = self.cluster.lock().expect("cluster lock");
                for &node in &nodes {
                    cluster.pause(node);
                }
                drop(cluster);
                self.event(kind, NemesisPhase::Start, serde_json::json!({"nodes": nodes}));
                Undo::Resume(nodes)
            }
            FaultSpec::ClockBump { targets, delta_ms } => {
                for &node in targets {
                    set_clock(&self.config.faketime_file(node), *delta_ms);
                }
                self.event(kind, NemesisPhase::Start, serde_json::json!({"nodes": targets, "bump_ms": delta_ms}));
                Undo::ResetClock { targets: targets.clone(), strobe: None }
            }
            FaultSpec::ClockStrobe { targets, delta_ms, period_ms } => {
                let stop = Arc::new(AtomicBool::new(false));
                let files: Vec<PathBuf> = targets.iter().map(|&n| self.config.faketime_file(n)).collect();
                let (flag, delta, period) = (stop.clone(), *delta_ms, *period_ms);
                self.strobes.push(std::thread::spawn(move || strobe(&files, delta, period, &flag)));
                let value = serde_json::json!({"nodes": targets, "strobe_ms": delta_ms, "period_ms": period_ms});
                self.event(kind, NemesisPhase::Start, value);
                Undo::ResetClock { targets: targets.clone(), strobe: Some(stop) }
            }
            FaultSpec::Loss { targets, percent } => {
                if let Err(error) = nft::apply(&nft::loss_ruleset(targets, self.config.nodes, *percent)) {
                    eprintln!("jepsen: loss failed: {error}");
                }
                self.event(kind, NemesisPhase::Start, serde_json::json!({"nodes": targets, "percent": percent}));
                Undo::Loss
            }
            FaultSpec::Disk { targets } => {
                for &node in targets {
                    fill_disk(&self.config, node);
                }
                self.event(kind, NemesisPhase::Start, serde_json::json!({"nodes": targets}));
                Undo::Disk(targets.clone())
            }
        }
    }

    fn stop(&mut self, kind: &str, undo: Undo) {
        let value = match undo {
            Undo::Nothing => return,
            Undo::Partition => {
                nft::heal(nft::PARTITION_TABLE);
                serde_json::json!({})
            }
            Undo::Loss => {
                nft::heal(nft::LOSS_TABLE);
                serde_json::json!({})
            }
            Undo::Restart(nodes) => {
                self.restart(&nodes);
                serde_json::json!({"nodes": nodes})
            }
            Undo::Resume(nodes) => {
                let mut cluster = self.cluster.lock().expect("cluster lock");
                for &node in &nodes {
                    cluster.resume(node);
                }
                serde_json::json!({"nodes": nodes})
            }
            Undo::ResetClock { targets, strobe } => {
                if let Some(flag) = strobe {
                    flag.store(true, Ordering::Release);
                    for handle in self.strobes.drain(..) {
                        let _ = handle.join();
                    }
                }
                for &node in &targets {
                    set_clock(&self.config.faketime_file(node), 0);
                }
                serde_json::json!({"nodes": targets})
            }
            Undo::Disk(nodes) => {
                for &node in &nodes {
                    let _ = std::fs::remove_file(ballast(&self.config, node));
                }
                // A broker may stop on a failed write or fsync (by design: DESIGN.md, crash on
                // an I/O error rather than guess); restart it now that there is room.
                self.restart_dead(&nodes);
                serde_json::json!({"nodes": nodes})
            }
        };
        self.event(kind, NemesisPhase::Stop, value);
    }

    fn restart(&self, nodes: &[u32]) {
        let mut cluster = self.cluster.lock().expect("cluster lock");
        for &node in nodes {
            if cluster.health(node) == Health::Dead
                && let Err(error) = cluster.start(node)
            {
                eprintln!("jepsen: restarting node {node}: {error}");
            }
        }
    }

    fn restart_dead(&self, nodes: &[u32]) {
        self.cluster.lock().expect("cluster lock").reap(self.recorder.now_ms());
        self.restart(nodes);
    }

    /// Undoes every fault there is, whether or not the schedule knows it is on: no nft tables,
    /// true clocks, no ballast, every broker running (Jepsen's final generator).
    pub fn heal_all(&mut self) {
        nft::heal(nft::PARTITION_TABLE);
        nft::heal(nft::LOSS_TABLE);
        for handle in self.strobes.drain(..) {
            let _ = handle.join();
        }
        let all: Vec<u32> = (1..=self.config.nodes).collect();
        for &node in &all {
            set_clock(&self.config.faketime_file(node), 0);
            let _ = std::fs::remove_file(ballast(&self.config, node));
        }
        {
            let mut cluster = self.cluster.lock().expect("cluster lock");
            for &node in &all {
                if cluster.health(node) == Health::Paused {
                    cluster.resume(node);
                }
            }
        }
        self.restart_dead(&all);
        self.event("heal", NemesisPhase::Stop, serde_json::json!({"nodes": all}));
    }
}

/// The nodes leading some partition now, as the leaders themselves report it.
pub fn leaders(config: &RunConfig) -> BTreeSet<u32> {
    partition_views(config).values().map(|view| view.leader).collect()
}

/// Writes a libfaketime offset ("+37s"-style, in ms) atomically: write aside, rename.
fn set_clock(file: &std::path::Path, delta_ms: i64) {
    let aside = file.with_extension("tmp");
    let text = format!("{}{:.3}\n", if delta_ms < 0 { "-" } else { "+" }, delta_ms.unsigned_abs() as f64 / 1000.0);
    if std::fs::write(&aside, text).is_ok() {
        let _ = std::fs::rename(&aside, file);
    }
}

/// Flips the clocks between true time and `delta_ms` every `period_ms` until `stop`, bounded by
/// the longest fault's length.
fn strobe(files: &[PathBuf], delta_ms: i64, period_ms: u64, stop: &AtomicBool) {
    let flips_max = crate::config::FAULT_DURATION_MAX_MS / period_ms.max(1) + 1;
    for flip in 0..flips_max {
        if stop.load(Ordering::Acquire) {
            break;
        }
        for file in files {
            set_clock(file, if flip % 2 == 0 { delta_ms } else { 0 });
        }
        std::thread::sleep(Duration::from_millis(period_ms));
    }
}

fn ballast(config: &RunConfig, node: u32) -> PathBuf {
    config.disk_dir(node).join("ballast")
}

/// Takes every free byte of the node's tmpfs with one preallocated file.
fn fill_disk(config: &RunConfig, node: u32) {
    let disk = config.disk_dir(node);
    let free = shell::run(&["df", "--output=avail", "-B1", &disk.to_string_lossy()]).unwrap_or_default();
    let Some(bytes) = free.lines().nth(1).and_then(|l| l.trim().parse::<u64>().ok()) else { return };
    if bytes > 0 {
        shell::run_quiet(&["fallocate", "-l", &bytes.to_string(), &ballast(config, node).to_string_lossy()]);
    }
}
