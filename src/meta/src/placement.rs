//! Replica placement for new partitions: which brokers hold each one, and which of them is the
//! preferred leader (the first replica). The proposer calls this before it proposes a
//! CreateTopic or CreatePartitions, so the log carries the result and applying stays a pure
//! function.
//!
//! Guarantees, over the new partitions, for any eligible broker set of `n >= rf` brokers:
//! - every partition has `rf` distinct brokers (each a registered, non-decommissioning one);
//! - every broker holds `floor(p * rf / n)` or `ceil(p * rf / n)` of the new replicas, so any
//!   two differ by at most one;
//! - every broker is the preferred leader of `floor(p / n)` or `ceil(p / n)` new partitions;
//! - the placement is a function of its arguments (and so the same on every replica).
//!
//! Across topics: brokers are taken least-loaded first (existing replicas, then existing
//! preferred leaders, then the caller's rotation seed `start`), so if the eligible brokers'
//! replica counts were within one of each other before, they still are after.
//!
//! How. The eligible brokers are ordered into a ring, least-loaded first. Partitions go in
//! rounds of `n`:
//! - a full round follows Kafka's rack-unaware assignment (`AdminUtils.assignReplicasToBrokers`
//!   / `assignReplicasToBrokersRackUnaware`): partition `i` of the round is led by ring broker
//!   `i`, and its follower `j` is `i + 1 + (shift + j) mod (n - 1)`, the shift growing by one
//!   per round so a broker's followers differ from round to round. Each round gives every
//!   broker exactly one leadership and `rf` replicas;
//! - the last, partial round of `r < n` partitions cannot be exact, and Kafka's rule is not
//!   within one there (5 brokers, 2 partitions, rf 3 gives one broker 0 replicas and another
//!   2). Here partition `i` takes the `rf` ring brokers from position `i * rf` on (wrapping),
//!   so the replicas form one run around the ring from the least-loaded broker: counts within
//!   one. Its leader is the window's member at offset `floor(i * g / n)`, `g = gcd(rf, n)`,
//!   which makes the `r` leaders distinct (see `partial_round`).

use crate::error::MetaError;
use crate::limits::{PARTITIONS_PER_TOPIC_MAX, REPLICATION_FACTOR_MAX};
use crate::state::MetaState;
use sluice_types::NodeId;

/// Places `partitions` new partitions of `replication_factor` replicas on `brokers` (the live
/// brokers, sorted by id, no duplicates). Brokers that `existing` does not know or marks as
/// decommissioning are skipped. `start` rotates the ring among equally loaded brokers (the
/// caller varies it, e.g. by topic, so equal topics do not all start on one broker).
pub fn place_replicas(
    partitions: i32,
    replication_factor: i16,
    brokers: &[NodeId],
    existing: &MetaState,
    start: u32,
) -> Result<Vec<Vec<NodeId>>, MetaError> {
    assert!(brokers.windows(2).all(|pair| pair[0] < pair[1]), "brokers must be sorted and distinct");
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
        return Err(MetaError::InvalidPartitions(format!(
            "{partitions} partitions is not in 1..={PARTITIONS_PER_TOPIC_MAX}"
        )));
    }
    if !(1..=REPLICATION_FACTOR_MAX).contains(&replication_factor) {
        return Err(MetaError::InvalidReplicationFactor(format!(
            "{replication_factor} is not in 1..={REPLICATION_FACTOR_MAX}"
        )));
    }
    let ring = ring(brokers, existing, start);
    let rf = replication_factor as usize;
    if rf > ring.len() {
        return Err(MetaError::InvalidReplicationFactor(format!(
            "replication factor {rf} is larger than the {} available brokers",
            ring.len()
        )));
    }
    let partitions = partitions as usize;
    let (rounds, remainder) = (partitions / ring.len(), partitions % ring.len());
    let mut placement = Vec::with_capacity(partitions);
    for round in 0..rounds {
        placement.extend(full_round(&ring, rf, u64::from(start) + round as u64));
    }
    placement.extend(partial_round(&ring, rf, remainder));
    assert_eq!(placement.len(), partitions);
    assert!(placement.iter().all(|replicas| replicas.len() == rf));
    Ok(placement)
}

/// The eligible brokers, least-loaded first; ties go by rotation from `start`.
fn ring(brokers: &[NodeId], existing: &MetaState, start: u32) -> Vec<NodeId> {
    let loads = existing.broker_loads();
    let eligible: Vec<NodeId> = brokers
        .iter()
        .copied()
        .filter(|id| existing.broker(*id).is_some_and(|broker| !broker.decommissioning))
        .collect();
    if eligible.is_empty() {
        return eligible;
    }
    let n = eligible.len();
    let first = start as usize % n;
    let mut keyed: Vec<_> =
        eligible.iter().enumerate().map(|(at, id)| (loads[id], (at + n - first) % n, *id)).collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, _, id)| id).collect()
}

/// `n` partitions: partition `i` led by `ring[i]`, follower `j` at `i + 1 + (shift + j) mod
/// (n - 1)` (Kafka `AdminUtils.replicaIndex`). For each `j` that offset is the same for every
/// `i`, so each follower slot is a permutation of the ring: every broker gets one leadership
/// and `rf` replicas. The offsets are distinct and nonzero for `j < rf - 1 <= n - 1`.
fn full_round(ring: &[NodeId], rf: usize, shift: u64) -> Vec<Vec<NodeId>> {
    let n = ring.len();
    (0..n)
        .map(|i| {
            // `n - 1 >= 1` whenever there is a follower (`rf >= 2` needs `n >= 2`).
            let offset = |j: usize| ((shift + j as u64) % (n as u64 - 1)) as usize;
            let followers = (0..rf - 1).map(|j| ring[(i + 1 + offset(j)) % n]);
            std::iter::once(ring[i]).chain(followers).collect()
        })
        .collect()
}

/// `r < n` partitions: partition `i` gets ring positions `i * rf .. i * rf + rf` (mod `n`), led
/// by the one at offset `floor(i * g / n)` with `g = gcd(rf, n)`.
///
/// Why the leaders are distinct: write `m = n / g` and `i = a + m * c` (`a < m`, `c < g`). The
/// offset is `c`, and `i * rf mod n = g * (a * (rf / g) mod m)`; `rf / g` is coprime to `m`, so
/// `a -> a * (rf / g) mod m` is a bijection, and the leader position `g * (..) + c` takes each
/// value of `0..n` once as `i` runs over `0..n`. Since `c < g <= rf`, the leader is inside the
/// window.
fn partial_round(ring: &[NodeId], rf: usize, r: usize) -> Vec<Vec<NodeId>> {
    let n = ring.len();
    assert!(r < n && rf <= n);
    let g = gcd(rf, n);
    (0..r)
        .map(|i| {
            let mut window: Vec<NodeId> = (0..rf).map(|j| ring[(i * rf + j) % n]).collect();
            window.rotate_left(i * g / n);
            window
        })
        .collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::MetaCommand;
    use sluice_types::Offset;
    use std::collections::BTreeMap;

    fn cluster(ids: &[i32]) -> MetaState {
        let mut state = MetaState::new();
        for (at, id) in ids.iter().enumerate() {
            let command = MetaCommand::RegisterBroker {
                node_id: NodeId(*id),
                kafka_host: "h".to_string(),
                kafka_port: 9092,
                rpc_addr: "h:1".to_string(),
                rack: None,
            };
            state.apply(Offset(at as i64), &command).expect("valid");
        }
        state
    }

    fn counts(placement: &[Vec<NodeId>]) -> (BTreeMap<NodeId, usize>, BTreeMap<NodeId, usize>) {
        let (mut replicas, mut leaders) = (BTreeMap::new(), BTreeMap::new());
        for partition in placement {
            *leaders.entry(partition[0]).or_default() += 1;
            for id in partition {
                *replicas.entry(*id).or_default() += 1;
            }
        }
        (replicas, leaders)
    }

    #[test]
    fn a_full_round_is_kafkas_rack_unaware_layout() {
        let state = cluster(&[0, 1, 2, 3, 4]);
        let ids: Vec<NodeId> = (0..5).map(NodeId).collect();
        let placement = place_replicas(5, 3, &ids, &state, 0).expect("fits");
        let expected = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 0], [4, 0, 1]];
        let expected: Vec<Vec<NodeId>> = expected.iter().map(|p| p.iter().copied().map(NodeId).collect()).collect();
        assert_eq!(placement, expected);
    }

    /// Kafka's rule gives 5 brokers, 2 partitions, rf 3 the counts 1,2,2,1,0; here 2,1,1,1,1.
    #[test]
    fn a_partial_round_stays_within_one() {
        let state = cluster(&[0, 1, 2, 3, 4]);
        let ids: Vec<NodeId> = (0..5).map(NodeId).collect();
        let placement = place_replicas(2, 3, &ids, &state, 0).expect("fits");
        let (replicas, leaders) = counts(&placement);
        assert_eq!(replicas.values().copied().collect::<Vec<_>>(), vec![2, 1, 1, 1, 1]);
        assert_eq!(leaders.len(), 2);
    }

    #[test]
    fn partial_round_leaders_are_distinct_when_rf_and_n_share_a_factor() {
        for (n, rf) in [(4, 2), (6, 3), (6, 4), (8, 6), (9, 3), (6, 6)] {
            let ring: Vec<NodeId> = (0..n as i32).map(NodeId).collect();
            let placement = partial_round(&ring, rf, n - 1);
            let (_, leaders) = counts(&placement);
            assert_eq!(leaders.len(), n - 1, "n {n} rf {rf}: {placement:?}");
        }
    }

    #[test]
    fn the_least_loaded_brokers_come_first() {
        let mut state = cluster(&[1, 2, 3]);
        let create = MetaCommand::CreateTopic {
            name: "a".to_string(),
            topic_id: crate::TopicId([5; 16]),
            assignment: vec![vec![NodeId(1), NodeId(2)]],
            configs: BTreeMap::new(),
        };
        state.apply(Offset(10), &create).expect("valid");
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        assert_eq!(place_replicas(1, 1, &ids, &state, 0), Ok(vec![vec![NodeId(3)]]));
        // Among equally loaded brokers 1 and 2, the one leading less comes first.
        assert_eq!(place_replicas(1, 3, &ids, &state, 0), Ok(vec![vec![NodeId(3), NodeId(2), NodeId(1)]]));
    }

    #[test]
    fn refusals_use_kafkas_codes() {
        let state = cluster(&[1, 2]);
        let ids = [NodeId(1), NodeId(2)];
        let code = |result: Result<Vec<Vec<NodeId>>, MetaError>| result.expect_err("refused").kafka_error_code();
        assert_eq!(code(place_replicas(1, 3, &ids, &state, 0)), crate::error::code::INVALID_REPLICATION_FACTOR);
        assert_eq!(code(place_replicas(1, 0, &ids, &state, 0)), crate::error::code::INVALID_REPLICATION_FACTOR);
        assert_eq!(code(place_replicas(0, 1, &ids, &state, 0)), crate::error::code::INVALID_PARTITIONS);
        assert_eq!(code(place_replicas(1, 1, &[], &state, 0)), crate::error::code::INVALID_REPLICATION_FACTOR);
        // Unregistered brokers are not eligible.
        assert_eq!(code(place_replicas(1, 1, &[NodeId(7)], &state, 0)), crate::error::code::INVALID_REPLICATION_FACTOR);
    }

    #[test]
    fn decommissioning_brokers_get_nothing() {
        let mut state = cluster(&[1, 2, 3]);
        state.apply(Offset(10), &MetaCommand::DecommissionBroker { node_id: NodeId(2) }).expect("valid");
        let placement = place_replicas(10, 2, &[NodeId(1), NodeId(2), NodeId(3)], &state, 7).expect("fits");
        assert!(placement.iter().flatten().all(|id| *id != NodeId(2)));
    }
}
