//! A three-replica group on a perfect network elects one leader and commits proposals on every
//! replica (Raft §5.2, §5.3). The smallest end-to-end check of the core; the adversarial
//! schedules live in proptests/tests/raft_model.rs.

use sluice_raft::{
    Config, Effect, Envelope, HardState, Input, LogPosition, MembershipChange, ProposeError, Raft, RaftLog, Role,
};
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
                    let last = entries.last().expect("non-empty");
                    let last = LogPosition { term: last.term, index: last.index };
                    let persisted = self.replicas[index].step(Input::Persisted { last });
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

    /// Ticks every replica once and delivers everything, `rounds` times.
    fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for index in 0..self.replicas.len() {
                self.tick(index);
            }
            self.deliver_all();
        }
    }

    fn elect(&mut self) -> usize {
        for _ in 0..3 * TIMEOUT_TICKS {
            self.settle(1);
            if let [leader] = self.leaders()[..] {
                return leader;
            }
        }
        panic!("no leader elected");
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

/// Raft thesis §4.1-§4.2.1: a new replica joins as a learner (no vote), catches up, is
/// promoted; a voter is then removed. One change at a time: a second change while the first is
/// uncommitted is refused.
#[test]
fn a_learner_joins_catches_up_is_promoted_and_a_voter_leaves() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.elect();
    for _ in 0..5 {
        let (_, effects) = cluster.replicas[leader].propose(3, 512).expect("proposal");
        cluster.apply(leader, effects);
    }
    cluster.deliver_all();
    // Replica 4 starts empty, knowing only the initial voters: it does not campaign.
    let voters: BTreeSet<NodeId> = (1..=3).map(NodeId).collect();
    cluster.replicas.push(Raft::new(
        Config::new(NodeId(4)),
        voters,
        BTreeSet::new(),
        HardState::default(),
        RaftLog::default(),
    ));
    let (_, effects) =
        cluster.replicas[leader].propose_membership(MembershipChange::AddLearner(NodeId(4))).expect("add");
    cluster.apply(leader, effects);
    assert_eq!(
        cluster.replicas[leader].propose_membership(MembershipChange::Remove(NodeId(2))).err(),
        Some(ProposeError::MembershipChangeInProgress),
        "one membership change at a time"
    );
    cluster.deliver_all();
    cluster.settle(3);
    let leader_last = cluster.replicas[leader].log().last();
    assert_eq!(cluster.replicas[3].role(), Role::Learner);
    assert_eq!(cluster.replicas[3].log().last(), leader_last, "the learner caught up");

    let (_, effects) =
        cluster.replicas[leader].propose_membership(MembershipChange::PromoteLearner(NodeId(4))).expect("promote");
    cluster.apply(leader, effects);
    cluster.settle(3);
    for replica in &cluster.replicas {
        assert_eq!(replica.voters().len(), 4, "replica {} sees four voters", replica.id());
    }
    assert_eq!(cluster.replicas[3].role(), Role::Follower);

    let removed = if leader == 2 { NodeId(2) } else { NodeId(3) };
    let (_, effects) = cluster.replicas[leader].propose_membership(MembershipChange::Remove(removed)).expect("remove");
    cluster.apply(leader, effects);
    cluster.settle(3);
    let (entry, effects) = cluster.replicas[leader].propose(1, 64).expect("proposal after the changes");
    cluster.apply(leader, effects);
    cluster.settle(2);
    for replica in cluster.replicas.iter().filter(|r| r.id() != removed) {
        assert!(!replica.voters().contains(&removed));
        assert_eq!(replica.committed(), entry.index, "replica {} committed after the changes", replica.id());
    }
}
