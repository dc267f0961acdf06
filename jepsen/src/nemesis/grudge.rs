//! Jepsen's network-partition shapes as pure data: a [`Grudge`] maps each node to the nodes whose packets it
//! drops, exactly like `jepsen.nemesis/complete-grudge` & co. Computing the shape here, apart from the code that
//! installs nft rules, keeps the topology logic deterministic (seeded RNG, ordered maps) and unit-testable.
//!
//! Readings of Jepsen (`jepsen.nemesis`, `jepsen.nemesis.combined/grudge`, reference §1.9):
//! - `one`: a random node alone vs. the rest.
//! - `majority`: shuffle, then bisect: the first ⌊n/2⌋ nodes vs. the remaining majority.
//! - `majorities-ring`: shuffle into a ring; each node hears the nodes within ring distance k, with
//!   k = ⌈⌊n/2⌋/2⌉, so it sees 2k+1 ≥ a majority (itself included) and no two nodes see the same set. Exactly a
//!   majority for n ∈ {4, 5, 8, 9}; n = 6, 7 see one node more (Jepsen goes stochastic above 5). None if n < 4.
//! - `minority-third`: Jepsen's `util/minority-third` = ⌊(n-1)/3⌋, the largest count strictly below n/3, split
//!   off as one component. n = 3 gives 0 nodes (Jepsen's no-op), so None; n = 5 isolates 1 node, n = 7 two.
//! - `bridge`: shuffle, bisect into A (⌊n/2⌋ nodes) and B; the first node of B is the bridge, which hears and
//!   is heard by everyone, while A and B∖{bridge} are cut from each other. Needs n ≥ 3.
//! - `primaries`: every given primary alone in its own component, the other nodes together. Jepsen first picks
//!   a random non-empty subset of the primaries; here the caller chooses the set.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;

/// Largest cluster size the shapes are defined for (nodes are numbered `1..=NODES_MAX`).
pub const NODES_MAX: u32 = 9;
/// Smallest cluster where a majorities ring exists (n = 3: every majority ring is the full mesh).
const RING_NODES_MIN: u32 = 4;
/// Smallest cluster where a bridge has two non-empty sides.
const BRIDGE_NODES_MIN: u32 = 3;

/// A Jepsen partition shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shape {
    One,
    Majority,
    MajoritiesRing,
    MinorityThird,
    Bridge,
    Primaries,
}

impl Shape {
    pub const ALL: [Shape; 6] =
        [Shape::One, Shape::Majority, Shape::MajoritiesRing, Shape::MinorityThird, Shape::Bridge, Shape::Primaries];

    /// Jepsen's name for the shape.
    pub fn name(&self) -> &'static str {
        match self {
            Shape::One => "one",
            Shape::Majority => "majority",
            Shape::MajoritiesRing => "majorities-ring",
            Shape::MinorityThird => "minority-third",
            Shape::Bridge => "bridge",
            Shape::Primaries => "primaries",
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`Shape::from_str`]: the name given is not one of Jepsen's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownShape(pub String);

impl fmt::Display for UnknownShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Shape::ALL.iter().map(Shape::name).collect();
        write!(f, "unknown partition shape {:?} (expected one of {})", self.0, names.join(", "))
    }
}

impl std::error::Error for UnknownShape {}

impl FromStr for Shape {
    type Err = UnknownShape;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Shape::ALL.into_iter().find(|shape| shape.name() == s).ok_or_else(|| UnknownShape(s.to_owned()))
    }
}

/// Node → the nodes it refuses to hear from (drops packets FROM). Nodes with nothing to drop are absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grudge(pub BTreeMap<u32, BTreeSet<u32>>);

impl Grudge {
    /// Jepsen's `complete-grudge`: every node drops packets from every node outside its own component.
    fn complete(components: &[Vec<u32>]) -> Grudge {
        let all: BTreeSet<u32> = components.iter().flatten().copied().collect();
        let mut map = BTreeMap::new();
        for component in components {
            let own: BTreeSet<u32> = component.iter().copied().collect();
            let others: BTreeSet<u32> = all.difference(&own).copied().collect();
            for &node in component {
                map.insert(node, others.clone());
            }
        }
        Grudge(map).normalized()
    }

    /// Drops self-grudges and empty sets so that equal partitions compare equal.
    fn normalized(mut self) -> Grudge {
        for (node, drops) in self.0.iter_mut() {
            drops.remove(node);
        }
        self.0.retain(|_, drops| !drops.is_empty());
        self
    }

    /// True if no node drops anything (no partition).
    pub fn is_empty(&self) -> bool {
        self.0.values().all(BTreeSet::is_empty)
    }

    /// True if `a`'s packets arrive at `b` (a node always reaches itself).
    pub fn can_reach(&self, a: u32, b: u32) -> bool {
        a == b || !self.0.get(&b).is_some_and(|drops| drops.contains(&a))
    }

    /// True if every cut is two-way.
    pub fn is_symmetric(&self) -> bool {
        self.0.iter().all(|(&b, drops)| drops.iter().all(|&a| !self.can_reach(b, a)))
    }

    /// Every node named in the grudge, as dropper or dropped.
    fn nodes(&self) -> BTreeSet<u32> {
        self.0.iter().flat_map(|(&node, drops)| std::iter::once(node).chain(drops.iter().copied())).collect()
    }

    /// Connected components over `1..=n` of the "reach each other both ways" graph, ordered by smallest node.
    /// For the clean partitions (one, majority, minority-third, primaries) these are the partition's sides.
    #[cfg(test)]
    pub fn components(&self, n: u32) -> Vec<BTreeSet<u32>> {
        self.components_of(&(1..=n).collect())
    }

    fn components_of(&self, nodes: &BTreeSet<u32>) -> Vec<BTreeSet<u32>> {
        let mut components: Vec<BTreeSet<u32>> = Vec::new();
        for &a in nodes {
            // `a` joins, and so merges, every component holding a node it is linked to both ways.
            let (linked, mut rest): (Vec<_>, Vec<_>) = std::mem::take(&mut components)
                .into_iter()
                .partition(|c| c.iter().any(|&b| self.can_reach(a, b) && self.can_reach(b, a)));
            rest.push(linked.into_iter().flatten().chain([a]).collect());
            components = rest;
        }
        components.sort(); // Disjoint sets, so this orders them by smallest node.
        components
    }

    /// "{1} | {2,3}" for a clean partition; "1 drops {3,4}; 2 drops {4,5}" for overlapping shapes (ring, bridge).
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return "no partition".to_owned();
        }
        let nodes = self.nodes();
        let components = self.components_of(&nodes);
        let clean = nodes.iter().all(|&a| {
            nodes.iter().all(|&b| self.can_reach(a, b) == components.iter().any(|c| c.contains(&a) && c.contains(&b)))
        });
        if clean {
            components.iter().map(fmt_set).collect::<Vec<_>>().join(" | ")
        } else {
            self.0
                .iter()
                .filter(|(_, drops)| !drops.is_empty())
                .map(|(node, drops)| format!("{node} drops {}", fmt_set(drops)))
                .collect::<Vec<_>>()
                .join("; ")
        }
    }
}

fn fmt_set(set: &BTreeSet<u32>) -> String {
    let items: Vec<String> = set.iter().map(u32::to_string).collect();
    format!("{{{}}}", items.join(","))
}

/// The grudge for `shape` over nodes `1..=n`, or None if the shape cannot cut this cluster (see the module docs).
/// `primaries` is only used by [`Shape::Primaries`]. All randomness comes from `rng`.
pub fn grudge(shape: Shape, n: u32, rng: &mut impl rand::Rng, primaries: &BTreeSet<u32>) -> Option<Grudge> {
    let impossible = match shape {
        Shape::MajoritiesRing => n < RING_NODES_MIN,
        Shape::Bridge => n < BRIDGE_NODES_MIN,
        Shape::Primaries => primaries.is_empty() || primaries.iter().any(|p| !(1..=n).contains(p)),
        Shape::One | Shape::Majority | Shape::MinorityThird => false,
    };
    if impossible || !(1..=NODES_MAX).contains(&n) {
        return None;
    }
    let mut nodes: Vec<u32> = (1..=n).collect();
    nodes.shuffle(rng);
    let half = (n / 2) as usize;
    let bisect = |at: usize| Grudge::complete(&[nodes[..at].to_vec(), nodes[at..].to_vec()]);
    let grudge = match shape {
        Shape::One => bisect(1),
        Shape::Majority => bisect(half),
        Shape::MinorityThird => bisect(((n - 1) / 3) as usize),
        Shape::MajoritiesRing => majorities_ring(&nodes),
        Shape::Bridge => {
            let bridge = nodes[half];
            let mut grudge = bisect(half);
            grudge.0.remove(&bridge);
            for drops in grudge.0.values_mut() {
                drops.remove(&bridge);
            }
            grudge.normalized()
        }
        Shape::Primaries => {
            let mut components: Vec<Vec<u32>> = primaries.iter().map(|&p| vec![p]).collect();
            components.push((1..=n).filter(|node| !primaries.contains(node)).collect());
            Grudge::complete(&components)
        }
    };
    assert!(grudge.nodes().iter().all(|node| (1..=n).contains(node)), "grudge names a node outside 1..={n}");
    assert!(grudge.is_symmetric(), "shape {shape} produced a one-way cut: {grudge:?}");
    (!grudge.is_empty()).then_some(grudge)
}

/// Each node of `ring` hears the nodes within ring distance k = ⌈⌊n/2⌋/2⌉ (see the module docs).
fn majorities_ring(ring: &[u32]) -> Grudge {
    let n = ring.len();
    let k = (n / 2).div_ceil(2);
    assert!(2 * k < n - 1, "ring of {n} with reach {k} would be the full mesh");
    assert!(2 * k + 1 > n / 2, "ring of {n} with reach {k} would not give every node a majority");
    let mut map = BTreeMap::new();
    for (p, &node) in ring.iter().enumerate() {
        let drops = (0..n).filter(|&q| (p + n - q) % n > k && (q + n - p) % n > k).map(|q| ring[q]).collect();
        map.insert(node, drops);
    }
    Grudge(map).normalized()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Seeds tried per shape and cluster size: `0..SEEDS`.
    const SEEDS: u64 = 16;

    fn make(shape: Shape, n: u32, seed: u64, primaries: &[u32]) -> Option<Grudge> {
        grudge(shape, n, &mut ChaCha8Rng::seed_from_u64(seed), &primaries.iter().copied().collect())
    }

    /// Runs `check` on the grudge of every seed for every n in `ns`.
    fn each(shape: Shape, ns: &[u32], check: impl Fn(u32, &Grudge)) {
        for &n in ns {
            for seed in 0..SEEDS {
                check(n, &make(shape, n, seed, &[]).unwrap_or_else(|| panic!("{shape} n={n} seed={seed}: None")));
            }
        }
    }

    /// The nodes `b` hears from, itself included.
    fn heard(g: &Grudge, n: u32, b: u32) -> BTreeSet<u32> {
        (1..=n).filter(|&a| g.can_reach(a, b)).collect()
    }

    fn sizes(components: &[BTreeSet<u32>]) -> Vec<usize> {
        let mut sizes: Vec<usize> = components.iter().map(BTreeSet::len).collect();
        sizes.sort_unstable();
        sizes
    }

    #[test]
    fn shape_names_round_trip() {
        let names: Vec<&str> = Shape::ALL.iter().map(Shape::name).collect();
        assert_eq!(names, ["one", "majority", "majorities-ring", "minority-third", "bridge", "primaries"]);
        for shape in Shape::ALL {
            assert_eq!((shape.name().parse::<Shape>(), shape.to_string()), (Ok(shape), shape.name().to_owned()));
        }
        assert!("majority-ring".parse::<Shape>().unwrap_err().to_string().contains("majorities-ring"));
    }

    #[test]
    fn one_isolates_exactly_one_node() {
        each(Shape::One, &[3, 5], |n, g| {
            assert_eq!((1..=n).filter(|&b| heard(g, n, b).len() == 1).count(), 1, "{}", g.describe());
            assert_eq!(sizes(&g.components(n)), [1, n as usize - 1]);
        });
    }

    #[test]
    fn majority_is_a_clean_bisection() {
        each(Shape::Majority, &[3, 5], |n, g| {
            let components = g.components(n);
            assert_eq!(sizes(&components), [(n / 2) as usize, (n / 2 + 1) as usize]);
            assert!(components.iter().all(|c| c.iter().all(|&b| heard(g, n, b) == *c)), "{}", g.describe());
        });
        assert_eq!(make(Shape::Majority, 1, 0, &[]), None);
    }

    #[test]
    fn majorities_ring_gives_distinct_majorities() {
        each(Shape::MajoritiesRing, &(RING_NODES_MIN..=NODES_MAX).collect::<Vec<_>>(), |n, g| {
            let sets: BTreeSet<BTreeSet<u32>> = (1..=n).map(|b| heard(g, n, b)).collect();
            assert_eq!(sets.len(), n as usize, "majorities not distinct: {}", g.describe());
            assert!(sets.iter().all(|s| s.len() > n as usize / 2 && s.len() < n as usize));
            assert!(n != 5 || sets.iter().all(|s| s.len() == 3) && g.describe().contains(" drops "));
        });
        assert!((1..RING_NODES_MIN).all(|n| make(Shape::MajoritiesRing, n, 7, &[]).is_none()));
    }

    #[test]
    fn minority_third_splits_off_less_than_a_third() {
        for (n, isolated) in [(4, 1), (5, 1), (7, 2), (9, 2)] {
            each(Shape::MinorityThird, &[n], |n, g| {
                assert_eq!(sizes(&g.components(n)), [isolated, n as usize - isolated])
            });
        }
        assert!((0..SEEDS).all(|seed| make(Shape::MinorityThird, 3, seed, &[]).is_none()));
    }

    #[test]
    fn bridge_has_one_node_hearing_both_sides() {
        each(Shape::Bridge, &[3, 5], |n, g| {
            let bridges: Vec<u32> = (1..=n).filter(|&b| heard(g, n, b).len() == n as usize).collect();
            assert_eq!(bridges.len(), 1, "{}", g.describe());
            let sides = g.components_of(&(1..=n).filter(|&a| a != bridges[0]).collect());
            assert_eq!(sizes(&sides), [(n / 2) as usize; 2]);
            assert!(sides[0].iter().all(|&a| sides[1].iter().all(|&b| !g.can_reach(a, b))));
            assert_eq!(g.components(n).len(), 1);
        });
        assert!((1..BRIDGE_NODES_MIN).all(|n| make(Shape::Bridge, n, 0, &[]).is_none()));
    }

    #[test]
    fn primaries_are_each_alone() {
        let g = make(Shape::Primaries, 5, 0, &[1, 3]).unwrap();
        assert_eq!(g.components(5), [BTreeSet::from([1]), BTreeSet::from([2, 4, 5]), BTreeSet::from([3])]);
        assert_eq!(g.describe(), "{1} | {2,4,5} | {3}");
        assert_eq!(make(Shape::Primaries, 3, 0, &[1, 2, 3]).unwrap().components(3).len(), 3);
        assert_eq!(make(Shape::Primaries, 3, 0, &[]), None);
        assert_eq!(make(Shape::Primaries, 3, 0, &[4]), None);
        assert_eq!(make(Shape::Primaries, 1, 0, &[1]), None);
    }

    #[test]
    fn same_seed_same_grudge_and_all_symmetric() {
        for shape in Shape::ALL {
            for n in 1..=NODES_MAX {
                let described: BTreeSet<String> = (0..SEEDS)
                    .filter_map(|seed| {
                        let g = make(shape, n, seed, &[2]);
                        assert_eq!(g, make(shape, n, seed, &[2]), "{shape} n={n} seed={seed}");
                        let g = g?;
                        let symmetric = (1..=n).all(|a| (1..=n).all(|b| g.can_reach(a, b) == g.can_reach(b, a)));
                        assert!(symmetric, "{shape} n={n}: {}", g.describe());
                        Some(g.describe())
                    })
                    .collect();
                assert!(n != 5 || shape == Shape::Primaries || described.len() > 1, "{shape}: seed ignored");
            }
        }
    }

    #[test]
    fn describe_and_bounds() {
        assert_eq!(Grudge::default().describe(), "no partition");
        assert!(Grudge::default().is_empty());
        let g = Grudge::complete(&[vec![1], vec![2, 3]]);
        assert_eq!(g.describe(), "{1} | {2,3}");
        assert!(!g.can_reach(1, 2) && g.can_reach(2, 3) && g.can_reach(1, 1));
        let one_way = Grudge(BTreeMap::from([(2, BTreeSet::from([1]))]));
        assert!(!one_way.is_symmetric() && one_way.can_reach(2, 1) && !one_way.can_reach(1, 2));
        assert_eq!(serde_json::to_string(&g).unwrap(), r#"{"1":[2,3],"2":[1],"3":[1]}"#);
        for shape in Shape::ALL {
            assert_eq!(make(shape, 0, 0, &[1]), None);
            assert_eq!(make(shape, NODES_MAX + 1, 0, &[1]), None);
        }
    }
}
