//! A three-replica group on a perfect network elects one leader and commits proposals on every
//! replica (Raft §5.2, §5.3). The smallest end-to-end check of the core; the adversarial
//! schedules live in proptests/tests/raft_model.rs.

use sluice_raft::{Config, Effect, Envelope, HardState, Input, Raft, RaftLog, Role};
use sluice_types::{NodeId, Offset};
use std::collections::{BTreeSet, VecDeque};

const TIMEOUT_TICKS: u32 = 10;
const STEPS_MAX: usize = 10_000;

struct Cluster {
    replicas: Vec<Raft>,
    network: VecDeque<Envelope>,
}

impl Cluster {
    fn new(size: i32) -> Cluster {
        let voters: BTreeSet<NodeId> = (1..=size).map(NodeId).collect();
        let replicas = voters
            .iter()
            .map(|id| {
                Raft::new(Config::new(*id), voters.clone(), BTreeSet::new(), HardState::default(), RaftLog::default())
            })
            .collect();
        Cluster { replicas, network: VecDeque::new() }
    }

    fn apply(&mut self, index: usize, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send(envelope) | Effect::Replicate(envelope) => self.network.push_back(envelope),
                // Perfect disk: everything appended is durable at once.
                Effect::Append { entries } => {
                    let last = entries.last().expect("non-empty").index;
                    let persisted = self.replicas[index].step(Input::Persisted { index: last });
                    self.apply(index, persisted);
                }
                _ => {}
            }
        }
    }

    fn deliver_all(&mut self) {
        for _ in 0..STEPS_MAX {
            let Some(envelope) = self.network.pop_front() else { return };
            let index = (envelope.to.0 - 1) as usize;
            let effects = self.replicas[index].step(Input::Receive(envelope));
            self.apply(index, effects);
        }
        panic!("the network did not quiesce");
    }

    fn tick(&mut self, index: usize) {
        let timeout = TIMEOUT_TICKS + index as u32; // Distinct timeouts: one node times out first.
        let effects = self.replicas[index].step(Input::Tick { randomized_election_timeout_ticks: timeout });
        self.apply(index, effects);
    }

    fn leaders(&self) -> Vec<usize> {
        (0..self.replicas.len()).filter(|i| self.replicas[*i].role() == Role::Leader).collect()
    }
}

#[test]
fn three_replicas_elect_one_leader_and_commit_everywhere() {
    let mut cluster = Cluster::new(3);
    for _ in 0..3 * TIMEOUT_TICKS {
        for index in 0..3 {
            cluster.tick(index);
        }
        cluster.deliver_all();
        if !cluster.leaders().is_empty() {
            break;
        }
    }
    let leaders = cluster.leaders();
    assert_eq!(leaders.len(), 1, "exactly one leader (Raft §5.2 Election Safety)");
    let leader = leaders[0];
    let (entry, effects) = cluster.replicas[leader].propose(5, 1024).expect("the leader accepts proposals");
    cluster.apply(leader, effects);
    cluster.deliver_all();
    for _ in 0..3 {
        for index in 0..3 {
            cluster.tick(index);
        }
        cluster.deliver_all();
    }
    for replica in &cluster.replicas {
        assert_eq!(replica.committed(), entry.index, "replica {} committed the proposal", replica.id());
        assert_eq!(replica.log().last().index, entry.index);
    }
    // The new leader's no-op took offset 0, so the 5-offset batch ends at offset 5.
    assert_eq!(entry.index, Offset(5));
}
