//! The nemesis schedule: which fault starts and stops when, on which hosts, drawn from the seed
//! before the run begins.
//!
//! Why up front: the schedule is the part of a run a seed can replay (the brokers' and clients'
//! timing cannot be, on real processes). It is written to `schedule.json` and its start and
//! stop times shade the latency plot. Each enabled fault kind alternates on and off on its own
//! timeline, so with several kinds enabled faults overlap, as in Jepsen's combined nemesis
//! (`jepsen.nemesis.combined`: each package's generator runs start/stop flip-flops, mixed).

use crate::config::{
    CLOCK_BUMP_EXPONENT_MAX, CLOCK_STROBE_PERIOD_MS, FAULT_DURATION_MAX_MS, FAULT_DURATION_MIN_MS, LOSS_PERCENT_MAX,
    LOSS_PERCENT_MIN, NEMESIS_INTERVAL_MS,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Faults one schedule may hold (bounds the schedule loop).
const FAULTS_MAX: usize = 10_000;
/// No fault starts in the first moments of a run: the workload's first ops see a healthy cluster.
const QUIET_START_MS: u64 = 5_000;

/// Which hosts a fault hits (Jepsen node specs). `Primaries` is resolved when the fault starts,
/// from the partitions' current leaders; the others are drawn here.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Targets {
    Nodes(Vec<u32>),
    Primaries,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "f", rename_all = "kebab-case")]
pub enum FaultSpec {
    /// A network partition of a Jepsen shape; the grudge is drawn with `seed` when it starts.
    Partition { shape: String, seed: u64 },
    /// kill -9, restart at stop.
    Kill { targets: Targets },
    /// SIGSTOP, SIGCONT at stop.
    Pause { targets: Targets },
    /// The wall clock of the targets jumps by `delta_ms` (reset at stop).
    ClockBump { targets: Vec<u32>, delta_ms: i64 },
    /// The wall clock of the targets flips between now and now + `delta_ms` every `period_ms`.
    ClockStrobe { targets: Vec<u32>, delta_ms: i64, period_ms: u64 },
    /// Packets from other brokers to the targets are dropped with probability `percent`.
    Loss { targets: Vec<u32>, percent: u32 },
    /// The targets' disks fill up (a ballast file takes every free byte).
    Disk { targets: Vec<u32> },
}

impl FaultSpec {
    /// The nemesis name (`--nemesis` list and history lines).
    pub fn kind(&self) -> &'static str {
        match self {
            FaultSpec::Partition { .. } => "partition",
            FaultSpec::Kill { .. } => "kill",
            FaultSpec::Pause { .. } => "pause",
            FaultSpec::ClockBump { .. } | FaultSpec::ClockStrobe { .. } => "clock",
            FaultSpec::Loss { .. } => "loss",
            FaultSpec::Disk { .. } => "disk",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub start_ms: u64,
    /// The fault is undone here, or in the final heal if this is past the time limit.
    pub stop_ms: u64,
    pub spec: FaultSpec,
}

/// Draws a node spec's hosts: one, minority, majority or all (Jepsen `nemesis.combined`).
fn draw_nodes(rng: &mut ChaCha8Rng, nodes: u32, allow_majority: bool) -> Vec<u32> {
    let mut all: Vec<u32> = (1..=nodes).collect();
    all.shuffle(rng);
    let minority = ((nodes - 1) / 2).max(1) as usize;
    let majority = (nodes / 2 + 1) as usize;
    let count = match rng.gen_range(0..if allow_majority { 4 } else { 2 }) {
        0 => 1,
        1 => minority,
        2 => majority,
        _ => nodes as usize,
    };
    let mut picked: Vec<u32> = all.into_iter().take(count).collect();
    picked.sort_unstable();
    picked
}

fn draw_process_targets(rng: &mut ChaCha8Rng, nodes: u32) -> Targets {
    if rng.gen_ratio(1, 5) { Targets::Primaries } else { Targets::Nodes(draw_nodes(rng, nodes, true)) }
}

fn draw_spec(rng: &mut ChaCha8Rng, kind: &str, nodes: u32, shapes: &[String]) -> FaultSpec {
    match kind {
        "partition" => {
            let shape = shapes.choose(rng).expect("at least one partition shape").clone();
            FaultSpec::Partition { shape, seed: rng.r#gen() }
        }
        "kill" => FaultSpec::Kill { targets: draw_process_targets(rng, nodes) },
        "pause" => FaultSpec::Pause { targets: draw_process_targets(rng, nodes) },
        "clock" => {
            let targets = draw_nodes(rng, nodes, true);
            let magnitude = 1i64 << rng.gen_range(1..=CLOCK_BUMP_EXPONENT_MAX);
            let delta_ms = if rng.r#gen() { magnitude } else { -magnitude };
            if rng.gen_ratio(1, 3) {
                FaultSpec::ClockStrobe { targets, delta_ms, period_ms: CLOCK_STROBE_PERIOD_MS }
            } else {
                FaultSpec::ClockBump { targets, delta_ms }
            }
        }
        "loss" => FaultSpec::Loss {
            targets: draw_nodes(rng, nodes, true),
            percent: rng.gen_range(LOSS_PERCENT_MIN..=LOSS_PERCENT_MAX),
        },
        // A full disk on a majority only stalls the cluster; one or a minority tests more.
        "disk" => FaultSpec::Disk { targets: draw_nodes(rng, nodes, false) },
        other => panic!("unknown nemesis {other}"),
    }
}

/// The whole run's faults, sorted by start time. Each kind in `kinds` alternates: off for a
/// gap, on for a duration; gaps scale with the number of kinds so that, summed over kinds, a
/// fault starts about every `NEMESIS_INTERVAL_MS` (Jepsen's interval).
pub fn schedule(seed: u64, kinds: &[String], nodes: u32, shapes: &[String], time_limit_ms: u64) -> Vec<Fault> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut faults = Vec::new();
    let kinds_count = kinds.len() as u64;
    for kind in kinds {
        let mut at_ms = QUIET_START_MS + rng.gen_range(0..NEMESIS_INTERVAL_MS * kinds_count);
        while at_ms < time_limit_ms {
            assert!(faults.len() < FAULTS_MAX, "schedule over FAULTS_MAX");
            let duration_ms = rng.gen_range(FAULT_DURATION_MIN_MS..=FAULT_DURATION_MAX_MS);
            let spec = draw_spec(&mut rng, kind, nodes, shapes);
            faults.push(Fault { start_ms: at_ms, stop_ms: at_ms + duration_ms, spec });
            let gap_ms = rng.gen_range(NEMESIS_INTERVAL_MS * kinds_count / 2..=NEMESIS_INTERVAL_MS * kinds_count);
            at_ms += duration_ms + gap_ms;
        }
    }
    faults.sort_by_key(|f| (f.start_ms, f.stop_ms));
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> Vec<String> {
        crate::config::NEMESES.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_seed_gives_one_schedule() {
        let shapes = vec!["one".to_string(), "majority".to_string()];
        let a = schedule(7, &kinds(), 3, &shapes, 300_000);
        let b = schedule(7, &kinds(), 3, &shapes, 300_000);
        let c = schedule(8, &kinds(), 3, &shapes, 300_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn every_kind_appears_within_its_bounds() {
        let shapes = vec!["one".to_string()];
        let faults = schedule(1, &kinds(), 5, &shapes, 600_000);
        for kind in crate::config::NEMESES {
            assert!(faults.iter().any(|f| f.spec.kind() == kind), "{kind} scheduled");
        }
        for fault in &faults {
            assert!(fault.start_ms >= QUIET_START_MS && fault.start_ms < 600_000);
            let duration = fault.stop_ms - fault.start_ms;
            assert!((FAULT_DURATION_MIN_MS..=FAULT_DURATION_MAX_MS).contains(&duration));
            if let FaultSpec::Disk { targets } = &fault.spec {
                assert!(targets.len() <= 2, "a disk fault hits one node or a minority");
            }
        }
        // A kind is never on twice at once.
        for kind in crate::config::NEMESES {
            let mine: Vec<&Fault> = faults.iter().filter(|f| f.spec.kind() == kind).collect();
            for pair in mine.windows(2) {
                assert!(pair[0].stop_ms < pair[1].start_ms, "{kind} faults do not overlap");
            }
        }
    }

    #[test]
    fn no_kinds_no_faults() {
        assert!(schedule(3, &[], 3, &[], 100_000).is_empty());
    }
}
