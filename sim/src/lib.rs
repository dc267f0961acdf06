//! `sluice-sim`: deterministic simulation of whole Sluice clusters (issue 5).
//!
//! Real brokers (`sluice_broker::run`, the same code as production) run on madsim nodes with
//! tokio swapped for madsim-tokio under `--cfg madsim`. Each broker has a fault-injecting
//! `SimDisk` and a skewable `SimClock`; peer Raft traffic passes `sluice_io::sim_net`'s
//! message faults; simulated clients speak the Kafka protocol through `sluice_client`. A seed
//! decides everything (`swarm.rs`), so a failing seed replays bit for bit.
//!
//! Map: `swarm.rs` (the seed's fault mix), `cluster.rs` (broker nodes, kill, power loss,
//! pause), `clock.rs` (per-node skew), `nemesis.rs` (faults over time), `workload.rs`
//! (producers, consumers, the history), `group_workload.rs` (consumer group members and their
//! commits, issue 6), `consumer_group_workload.rs` (the same with KIP-848 members), `final_read.rs` (every replica's log from its disk),
//! `run.rs` (the phases of one seed), `check.rs` (the checkers and the trace hash),
//! `runner.rs` (one seed on its thread, replay lines, artifacts), `sweep.rs` (a fresh child
//! process per seed), `scenarios.rs` (pinned seeds), `log.rs` (the per-seed event log).
//!
//! Only `swarm.rs`, `sweep.rs` and `scenarios.rs` build without `--cfg madsim`: everything else needs the
//! simulator.

pub mod scenarios;
pub mod swarm;
pub mod sweep;

#[cfg(madsim)]
pub mod check;
#[cfg(madsim)]
pub mod clock;
#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod consumer_group_workload;
#[cfg(madsim)]
pub mod final_read;
#[cfg(madsim)]
pub mod group_workload;
#[cfg(madsim)]
pub mod log;
#[cfg(madsim)]
pub mod nemesis;
#[cfg(madsim)]
pub mod run;
#[cfg(madsim)]
pub mod runner;
#[cfg(madsim)]
pub mod workload;
