//! Swarm testing: every knob of a run is drawn from the seed, and printed.
//!
//! Why: a fixed fault mix explores one corner; drawing *which* faults are on and at what rates
//! per seed finds bugs that need a rare combination (Groce et al., "Swarm Testing", 2012;
//! TigerBeetle's VOPR `options_swarm`). The draw uses its own ChaCha stream seeded by the seed,
//! so the printed mix is known before the simulation starts and is the same in every build.
//!
//! Budget (issue 5: "for any record, at most a minority of its replicas are faulty"): disk
//! faults are on for at most one broker, so a partition of RF 3 has at most one faulty replica,
//! and a seed with a faulty disk has no RF 1 topics (their only replica could be on it).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_io::sim_disk::SimDiskConfig;
use std::fmt;

/// Brokers per cluster: 3 or 5.
pub const BROKERS_CHOICES: [u32; 2] = [3, 5];
/// Topics per run.
pub const TOPICS_MAX: u32 = 3;
/// Partitions per topic (issue 5: 1 to 12).
pub const PARTITIONS_MAX: i32 = 12;
/// Producer processes per run.
pub const PRODUCERS_MAX: u32 = 4;
/// Consumer processes per run.
pub const CONSUMERS_MAX: u32 = 3;
/// Members of the consumer group per run (issue 6), when the seed has a group at all.
pub const GROUP_CONSUMERS_MAX: u32 = 3;

/// One topic of the workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPlan {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// `segment.bytes`: tiny segments roll often (buggify).
    pub segment_bytes: Option<u32>,
}

/// Everything a seed decides.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultMix {
    pub brokers: u32,
    pub topics: Vec<TopicPlan>,
    pub producers: u32,
    /// How many of the producers are idempotent (KIP-98); the first ones by process id.
    pub idempotent_producers: u32,
    pub consumers: u32,
    /// Members of the one consumer group (`group_workload.rs`); 0 is no group.
    pub group_consumers: u32,
    /// The group's members speak KIP-848's consumer protocol (`consumer_group_workload.rs`)
    /// rather than the classic one.
    pub consumer_protocol: bool,
    /// Mean milliseconds between nemesis actions in the faulty phase.
    pub nemesis_interval_ms: u64,
    /// Process crash (kill -9, page cache survives) and restart.
    pub kill: bool,
    /// Power loss: kill, and the disk loses unsynced writes (torn at sector boundaries).
    pub power_loss: bool,
    /// Every broker loses power at once (the whole rack).
    pub power_loss_all: bool,
    pub pause: bool,
    /// Symmetric partitions (isolate a node, or split the cluster in two).
    pub partition: bool,
    /// One-way link clogs (asymmetric partitions).
    pub clog_link: bool,
    /// Clog links one by one, then unclog in random order (FoundationDB).
    pub swizzle: bool,
    pub packet_loss: f64,
    pub latency_ms_max: u64,
    /// Raft message faults through the transport (drop, duplicate, delay/reorder).
    pub raft_drop: f64,
    pub raft_duplicate: f64,
    pub raft_delay: f64,
    /// Per-node wall-clock skew bound and whether clocks jump during the run.
    pub clock_skew_ms_max: i64,
    pub clock_jumps: bool,
    /// Brokers whose disks inject faults (a minority), and their disks' config (the default,
    /// faultless one when no disk is faulty).
    pub faulty_disk_nodes: Vec<u32>,
    pub disk: SimDiskConfig,
    /// Buggify: the probability per Raft tick that a partition leader hands leadership to a
    /// random voter (`sluice_types::buggify`); 0 is off.
    pub step_down_per_tick: f64,
    /// Buggify: every broker's fsyncs take up to this long to complete (`SimDiskConfig`).
    pub fsync_delay_ms_max: u64,
}

impl FaultMix {
    /// The mix for `seed`.
    pub fn draw(seed: u64) -> FaultMix {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5157_4152_4d00_0000);
        let brokers = BROKERS_CHOICES[rng.gen_range(0..BROKERS_CHOICES.len())];
        let disk_faults = rng.gen_bool(0.3);
        let faulty_disk_nodes: Vec<u32> = if disk_faults { vec![rng.gen_range(1..=brokers)] } else { Vec::new() };
        let topic_count = rng.gen_range(1..=TOPICS_MAX);
        let tiny_segments = rng.gen_bool(0.3);
        let topics = (0..topic_count)
            .map(|i| {
                // RF 1 topics only when no disk is faulty: their one replica must be healthy.
                let rf = if faulty_disk_nodes.is_empty() && rng.gen_bool(0.25) { 1 } else { 3 };
                TopicPlan {
                    name: format!("t{i}"),
                    partitions: rng.gen_range(1..=PARTITIONS_MAX),
                    replication_factor: rf,
                    segment_bytes: tiny_segments.then(|| rng.gen_range(4096..=65_536)),
                }
            })
            .collect();
        let chance =
            |rng: &mut ChaCha8Rng, p: f64, max: f64| if rng.gen_bool(p) { rng.gen_range(0.0..max) } else { 0.0 };
        let disk = if disk_faults {
            SimDiskConfig {
                read_eio: chance(&mut rng, 0.5, 0.01),
                write_eio: chance(&mut rng, 0.5, 0.01),
                fsync_eio: chance(&mut rng, 0.5, 0.005),
                read_bit_flip: chance(&mut rng, 0.5, 0.01),
                latent_sector_error: chance(&mut rng, 0.5, 0.005),
                misdirected_write: chance(&mut rng, 0.5, 0.002),
                capacity_bytes: rng.gen_bool(0.2).then(|| rng.gen_range(2..=16) << 20),
                ..SimDiskConfig::default()
            }
        } else {
            SimDiskConfig::default()
        };
        let producers = rng.gen_range(1..=PRODUCERS_MAX);
        let mut mix = FaultMix {
            brokers,
            topics,
            producers,
            idempotent_producers: 0,
            consumers: rng.gen_range(1..=CONSUMERS_MAX),
            group_consumers: 0,
            consumer_protocol: false,
            nemesis_interval_ms: rng.gen_range(500..=5_000),
            kill: rng.gen_bool(0.5),
            power_loss: rng.gen_bool(0.4),
            power_loss_all: rng.gen_bool(0.2),
            pause: rng.gen_bool(0.3),
            partition: rng.gen_bool(0.5),
            clog_link: rng.gen_bool(0.3),
            swizzle: rng.gen_bool(0.2),
            packet_loss: chance(&mut rng, 0.3, 0.2),
            latency_ms_max: if rng.gen_bool(0.3) { rng.gen_range(10..=200) } else { 0 },
            raft_drop: chance(&mut rng, 0.4, 0.3),
            raft_duplicate: chance(&mut rng, 0.4, 0.3),
            raft_delay: chance(&mut rng, 0.4, 0.3),
            clock_skew_ms_max: if rng.gen_bool(0.3) { rng.gen_range(1..=60_000) } else { 0 },
            clock_jumps: rng.gen_bool(0.2),
            faulty_disk_nodes,
            disk,
            // One step-down per leader every 1 to 15 s at the default 100 ms tick.
            step_down_per_tick: if rng.gen_bool(0.4) { 1.0 / f64::from(rng.gen_range(10..=150)) } else { 0.0 },
            fsync_delay_ms_max: if rng.gen_bool(0.3) { rng.gen_range(1..=50) } else { 0 },
        };
        // Drawn last, so that every earlier knob of a seed is what it was before this one.
        mix.idempotent_producers = rng.gen_range(0..=producers);
        mix.group_consumers = if rng.gen_bool(0.6) { rng.gen_range(1..=GROUP_CONSUMERS_MAX) } else { 0 };
        mix.consumer_protocol = mix.group_consumers > 0 && rng.gen_bool(0.5);
        mix
    }

    /// The nemesis actions this seed turned on, by their names in `nemesis.rs`.
    pub fn nemesis_actions(&self) -> Vec<&'static str> {
        let all = [
            (self.kill, "kill"),
            (self.power_loss, "power-loss"),
            (self.power_loss_all, "power-loss-all"),
            (self.pause, "pause"),
            (self.partition, "partition"),
            (self.clog_link, "clog-link"),
            (self.swizzle, "swizzle"),
            (self.clock_jumps, "clock-jump"),
        ];
        all.into_iter().filter(|(on, _)| *on).map(|(_, name)| name).collect()
    }

    /// The names of the faults that are on, for the progress line.
    pub fn short(&self) -> String {
        let mut on = self.nemesis_actions();
        let flags = [
            (self.packet_loss > 0.0, "loss"),
            (self.latency_ms_max > 0, "latency"),
            (self.raft_drop > 0.0, "raft-drop"),
            (self.raft_duplicate > 0.0, "raft-dup"),
            (self.raft_delay > 0.0, "raft-delay"),
            (self.clock_skew_ms_max > 0, "skew"),
            (!self.faulty_disk_nodes.is_empty(), "disk"),
            (self.step_down_per_tick > 0.0, "step-down"),
            (self.fsync_delay_ms_max > 0, "slow-fsync"),
            (self.idempotent_producers > 0, "idempotent"),
            (self.group_consumers > 0 && !self.consumer_protocol, "group"),
            (self.consumer_protocol, "group-kip848"),
            (self.topics.iter().any(|t| t.segment_bytes.is_some()), "tiny-segments"),
        ];
        for (enabled, name) in flags {
            if enabled {
                on.push(name);
            }
        }
        let topics: Vec<String> =
            self.topics.iter().map(|t| format!("{}:p{}r{}", t.name, t.partitions, t.replication_factor)).collect();
        format!("{} brokers, {} [{}]", self.brokers, topics.join(","), on.join(" "))
    }
}

impl fmt::Display for FaultMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.short())?;
        writeln!(
            f,
            "  producers {} ({} idempotent) consumers {} group members {} nemesis every ~{} ms",
            self.producers, self.idempotent_producers, self.consumers, self.group_consumers, self.nemesis_interval_ms
        )?;
        writeln!(
            f,
            "  network: loss {:.3} latency<= {} ms; raft drop {:.3} dup {:.3} delay {:.3}",
            self.packet_loss, self.latency_ms_max, self.raft_drop, self.raft_duplicate, self.raft_delay
        )?;
        writeln!(f, "  clocks: skew<= {} ms jumps {}", self.clock_skew_ms_max, self.clock_jumps)?;
        writeln!(f, "  buggify: step-down per tick {:.4}", self.step_down_per_tick)?;
        write!(
            f,
            "  disk: faulty nodes {:?} {:?}; fsync delay<= {} ms",
            self.faulty_disk_nodes, self.disk, self.fsync_delay_ms_max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_a_function_of_the_seed() {
        assert_eq!(FaultMix::draw(7), FaultMix::draw(7));
        assert_ne!(FaultMix::draw(7), FaultMix::draw(8));
    }

    #[test]
    fn disk_faults_stay_on_a_minority_and_rf1_topics_avoid_them() {
        for seed in 0..2_000 {
            let mix = FaultMix::draw(seed);
            // At most one faulty replica of any RF 3 partition: a minority.
            assert!(mix.faulty_disk_nodes.len() <= 1, "seed {seed}");
            if !mix.faulty_disk_nodes.is_empty() {
                assert!(mix.topics.iter().all(|t| t.replication_factor == 3), "seed {seed}");
            }
            assert!(mix.topics.iter().all(|t| (1..=PARTITIONS_MAX).contains(&t.partitions)));
            assert!(mix.idempotent_producers <= mix.producers, "seed {seed}");
            assert!(mix.group_consumers <= GROUP_CONSUMERS_MAX, "seed {seed}");
        }
    }
}
