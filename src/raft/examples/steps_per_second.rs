//! Benchmark: how many `step`s per second an in-memory three-replica group sustains while it
//! commits 1 KiB proposals, on a perfect network with instant persistence (so the figure is
//! the core's own cost). Run: `cargo run --release -p sluice-raft --example steps_per_second`.
//!
//! Bounded: `PROPOSALS` proposals, each fully delivered and committed before the next batch.

use sluice_raft::{Config, Effect, Envelope, HardState, Input, LogPosition, Raft, RaftLog, Role};
use sluice_types::NodeId;
use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

const REPLICAS: i32 = 3;
const PROPOSALS: u32 = 200_000;
/// Proposals in flight before the network is drained (pipelining depth).
const PIPELINE_DEPTH: u32 = 16;
const PROPOSAL_BYTES: u32 = 1024;
const TIMEOUT_TICKS: u32 = 10;

struct Group {
    replicas: Vec<Raft>,
    network: VecDeque<Envelope>,
    steps: u64,
}

impl Group {
    fn step(&mut self, index: usize, input: Input) {
        self.steps += 1;
        let effects = self.replicas[index].step(input);
        self.apply(index, effects);
    }

    fn apply(&mut self, index: usize, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send(envelope) | Effect::Replicate(envelope) => self.network.push_back(envelope),
                Effect::Append { entries } => {
                    let last = entries.last().expect("non-empty");
                    let last = LogPosition { term: last.term, index: last.index };
                    self.step(index, Input::Persisted { last });
                }
                _ => {}
            }
        }
    }

    fn drain(&mut self) {
        while let Some(envelope) = self.network.pop_front() {
            let index = (envelope.to.0 - 1) as usize;
            self.step(index, Input::Receive(envelope));
        }
    }
}

fn main() {
    let voters: BTreeSet<NodeId> = (1..=REPLICAS).map(NodeId).collect();
    let replicas = voters
        .iter()
        .map(|id| {
            Raft::new(Config::new(*id), voters.clone(), BTreeSet::new(), HardState::default(), RaftLog::default())
        })
        .collect();
    let mut group = Group { replicas, network: VecDeque::new(), steps: 0 };
    group.step(0, Input::Tick { randomized_election_timeout_ticks: TIMEOUT_TICKS });
    group.step(0, Input::Campaign);
    group.drain();
    assert_eq!(group.replicas[0].role(), Role::Leader, "replica 1 leads");
    group.steps = 0;
    let started = Instant::now();
    let mut proposed = 0u32;
    while proposed < PROPOSALS {
        for _ in 0..PIPELINE_DEPTH {
            let (_, effects) = group.replicas[0].propose(1, PROPOSAL_BYTES).expect("the leader accepts");
            group.apply(0, effects);
            proposed += 1;
        }
        group.drain();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let committed = group.replicas.iter().map(|r| r.committed().0).min().expect("replicas");
    assert!(committed >= i64::from(PROPOSALS), "every proposal committed everywhere");
    println!(
        "{REPLICAS} replicas, {PROPOSALS} proposals of {PROPOSAL_BYTES} B, pipeline {PIPELINE_DEPTH}: {:.2} s, {:.0} steps/s, {:.0} proposals committed/s ({} steps, {:.1} per proposal)",
        elapsed,
        group.steps as f64 / elapsed,
        f64::from(PROPOSALS) / elapsed,
        group.steps,
        group.steps as f64 / f64::from(PROPOSALS)
    );
}
