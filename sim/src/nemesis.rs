//! The nemesis: during the faulty phase, applies the seed's enabled faults at random times and
//! undoes each after a random while.
//!
//! Faults: kill and restart (process crash), power loss (kill plus `SimDisk::crash`), the whole
//! cluster losing power, pause and resume, symmetric partitions (isolate one broker, or split the
//! brokers in two), one-way link clogs, swizzle-clog (clog links one by one, unclog in random
//! order, FoundationDB), clock jumps. Packet loss, latency and Raft message faults are rates set
//! for the whole phase (`run.rs`); disk faults are the faulty brokers' `SimDisk` rates.
//!
//! Bound: at most `DOWN_MAX` brokers are killed or paused at once (a minority, so the cluster
//! can still make progress), except the whole-cluster power loss, which restarts everyone.

use crate::cluster::Cluster;
use crate::swarm::FaultMix;
use madsim::net::NetSim;
use rand::Rng;
use rand::seq::SliceRandom;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// Longest a fault stays before it is undone.
pub const FAULT_MS_MAX: u64 = 8_000;
/// Actions in one faulty phase at most.
pub const ACTIONS_MAX: u32 = 10_000;

/// A fault to undo at a time.
#[derive(Clone, Debug)]
enum Undo {
    Restart(u32),
    RestartAll,
    Resume(u32),
    Unclog(Vec<(u32, u32)>),
}

/// One event of the nemesis, for the log.
fn log(action: &str) {
    tracing::info!(target: "sluice_sim::nemesis", "{action}");
}

pub struct Nemesis<'a> {
    mix: &'a FaultMix,
    cluster: &'a mut Cluster,
    pending: Vec<(Instant, Undo)>,
    clogged: BTreeSet<(u32, u32)>,
    pub actions: u32,
}

impl<'a> Nemesis<'a> {
    pub fn new(mix: &'a FaultMix, cluster: &'a mut Cluster) -> Nemesis<'a> {
        Nemesis { mix, cluster, pending: Vec::new(), clogged: BTreeSet::new(), actions: 0 }
    }

    fn down_max(&self) -> usize {
        (self.mix.brokers as usize - 1) / 2
    }

    fn down(&self) -> usize {
        self.cluster.brokers.iter().filter(|b| !b.up || b.paused).count()
    }

    /// Runs until `until`, then undoes nothing: `heal` does that.
    pub async fn run(&mut self, until: Instant) {
        let kinds = self.mix.nemesis_actions();
        while Instant::now() < until && self.actions < ACTIONS_MAX {
            let (wait_ms, kind) = {
                let mut rng = madsim::rand::thread_rng();
                let wait = rng.gen_range(1..=self.mix.nemesis_interval_ms * 2);
                (wait, kinds.choose(&mut rng).copied())
            };
            let next = (Instant::now() + Duration::from_millis(wait_ms)).min(until);
            self.undo_due(next).await;
            tokio::time::sleep_until(next).await;
            if let Some(kind) = kind
                && Instant::now() < until
            {
                self.act(kind);
                self.actions += 1;
            }
        }
    }

    /// Undoes every fault due before `next`, at its time.
    async fn undo_due(&mut self, next: Instant) {
        self.pending.sort_by_key(|(at, _)| *at);
        while let Some((at, _)) = self.pending.first() {
            if *at > next {
                break;
            }
            let (at, undo) = self.pending.remove(0);
            tokio::time::sleep_until(at).await;
            self.undo(undo);
        }
    }

    fn undo(&mut self, undo: Undo) {
        log(&format!("undo {undo:?}"));
        match undo {
            Undo::Restart(id) => {
                if !self.cluster.broker(id).up {
                    self.cluster.restart(id);
                }
            }
            Undo::RestartAll => {
                for id in 1..=self.mix.brokers {
                    if !self.cluster.broker(id).up {
                        self.cluster.restart(id);
                    }
                }
            }
            Undo::Resume(id) => self.cluster.resume(id),
            Undo::Unclog(links) => {
                let net = NetSim::current();
                for (from, to) in links {
                    if self.clogged.remove(&(from, to)) {
                        net.unclog_link(self.cluster.broker(from).node, self.cluster.broker(to).node);
                    }
                }
            }
        }
    }

    fn later(&self, rng: &mut impl Rng) -> Instant {
        Instant::now() + Duration::from_millis(rng.gen_range(200..=FAULT_MS_MAX))
    }

    fn act(&mut self, kind: &str) {
        let mut rng = madsim::rand::thread_rng();
        let brokers: Vec<u32> = (1..=self.mix.brokers).collect();
        let healthy: Vec<u32> = brokers
            .iter()
            .copied()
            .filter(|id| self.cluster.brokers[(id - 1) as usize].up && !self.cluster.brokers[(id - 1) as usize].paused)
            .collect();
        let can_take_one = self.down() < self.down_max() && !healthy.is_empty();
        match kind {
            "kill" | "power-loss" if can_take_one => {
                let id = *healthy.choose(&mut rng).expect("non-empty");
                let power_loss = kind == "power-loss";
                log(&format!("{kind} broker {id}"));
                self.cluster.kill(id, power_loss);
                let at = self.later(&mut rng);
                self.pending.push((at, Undo::Restart(id)));
            }
            "power-loss-all" => {
                log("power loss of every broker");
                for id in brokers.iter().copied() {
                    if self.cluster.broker(id).up {
                        self.cluster.kill(id, true);
                    } else {
                        self.cluster.broker(id).disk.crash();
                    }
                }
                let at = Instant::now() + Duration::from_millis(rng.gen_range(100..=3_000));
                self.pending.push((at, Undo::RestartAll));
            }
            "pause" if can_take_one => {
                let id = *healthy.choose(&mut rng).expect("non-empty");
                log(&format!("pause broker {id}"));
                self.cluster.pause(id);
                let at = self.later(&mut rng);
                self.pending.push((at, Undo::Resume(id)));
            }
            "partition" => {
                let mut shuffled = brokers.clone();
                shuffled.shuffle(&mut rng);
                let cut = if rng.gen_bool(0.5) { 1 } else { rng.gen_range(1..brokers.len()) };
                let (left, right) = shuffled.split_at(cut);
                log(&format!("partition {left:?} | {right:?}"));
                let mut links = Vec::new();
                for a in left {
                    for b in right {
                        links.push((*a, *b));
                        links.push((*b, *a));
                    }
                }
                self.clog(links, &mut rng);
            }
            "clog-link" => {
                let from = *brokers.choose(&mut rng).expect("brokers");
                let to =
                    *brokers.iter().filter(|b| **b != from).collect::<Vec<_>>().choose(&mut rng).expect("two brokers");
                log(&format!("clog link {from} -> {to}"));
                self.clog(vec![(from, *to)], &mut rng);
            }
            "swizzle" => {
                // Clog every link of a random subset one by one (spaced by the undo times),
                // unclogging in random order (FoundationDB's swizzle-clog).
                let mut nodes = brokers.clone();
                nodes.shuffle(&mut rng);
                nodes.truncate(rng.gen_range(1..=brokers.len()));
                log(&format!("swizzle-clog {nodes:?}"));
                for node in nodes {
                    let links: Vec<(u32, u32)> =
                        brokers.iter().filter(|b| **b != node).flat_map(|b| [(node, *b), (*b, node)]).collect();
                    self.clog(links, &mut rng);
                }
            }
            "clock-jump" => {
                let id = *brokers.choose(&mut rng).expect("brokers");
                let bound = self.mix.clock_skew_ms_max.max(1_000);
                let skew = rng.gen_range(-bound..=bound);
                log(&format!("clock of broker {id} jumps to skew {skew} ms"));
                self.cluster.broker(id).clock.set_skew_ms(skew);
            }
            _ => {}
        }
    }

    fn clog(&mut self, links: Vec<(u32, u32)>, rng: &mut impl Rng) {
        let net = NetSim::current();
        let mut added = Vec::new();
        for (from, to) in links {
            if self.clogged.insert((from, to)) {
                net.clog_link(self.cluster.broker(from).node, self.cluster.broker(to).node);
                added.push((from, to));
            }
        }
        let at = self.later(rng);
        self.pending.push((at, Undo::Unclog(added)));
    }

    /// Undoes every fault at once (the heal phase).
    pub fn heal(&mut self) {
        let net = NetSim::current();
        for (from, to) in std::mem::take(&mut self.clogged) {
            net.unclog_link(self.cluster.broker(from).node, self.cluster.broker(to).node);
        }
        self.pending.clear();
        self.cluster.heal();
    }
}
