//! A directed graph with typed edges, its strongly connected components, and shortest closed
//! walks through edges of required types: the search machinery under cycles.rs.
//!
//! Why these algorithms: Elle finds dependency cycles by computing strongly connected components
//! first (a cycle never leaves one) and then searching each for a short cycle with breadth-first
//! search under a restricted edge set (jepsen_tla.md §1.6). Tarjan's algorithm (Tarjan 1972) is
//! written iteratively, with an explicit stack, so a long dependency chain cannot overflow the
//! thread's stack. Every walk is bounded by a [`Budget`] the caller sizes.
//!
//! Invariants: the graph has no self-loops; edges are deduplicated and stored sorted by (source,
//! target, kind) in compressed sparse rows, so every iteration, and therefore every result, is
//! deterministic. An edge kind is a bit index below 8, and a set of kinds is a `u8` mask.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

/// A node id. Node counts are bounded by the history's lines, far below `u32::MAX`.
pub(crate) type Node = u32;

/// One edge: source, target, kind (a bit index).
pub(crate) type Edge = (Node, Node, u8);

/// Not enough budget left: the search stopped early.
#[derive(Debug)]
pub(crate) struct Exhausted;

/// How many more edge visits a search may make.
pub(crate) struct Budget {
    steps_left: u64,
}

impl Budget {
    pub(crate) fn new(steps_max: u64) -> Budget {
        Budget { steps_left: steps_max }
    }

    pub(crate) fn spend(&mut self) -> Result<(), Exhausted> {
        self.steps_left = self.steps_left.checked_sub(1).ok_or(Exhausted)?;
        Ok(())
    }
}

/// Compressed sparse rows: the out-edges of node n are `targets[starts[n]..starts[n + 1]]`.
pub(crate) struct Graph {
    starts: Vec<usize>,
    targets: Vec<Node>,
    kinds: Vec<u8>,
}

impl Graph {
    pub(crate) fn from_edges(node_count: usize, mut edges: Vec<Edge>) -> Graph {
        assert!(Node::try_from(node_count).is_ok(), "node ids fit a u32");
        edges.sort_unstable();
        edges.dedup();
        let mut starts = vec![0; node_count + 1];
        for &(from, to, kind) in &edges {
            assert!(from != to && (to as usize) < node_count && kind < 8, "a valid edge {from} -> {to} ({kind})");
            starts[from as usize + 1] += 1;
        }
        for n in 0..node_count {
            starts[n + 1] += starts[n];
        }
        let targets = edges.iter().map(|&(_, to, _)| to).collect();
        let kinds = edges.iter().map(|&(_, _, kind)| kind).collect();
        Graph { starts, targets, kinds }
    }

    pub(crate) fn node_count(&self) -> usize {
        self.starts.len() - 1
    }

    /// (target, kind) of every out-edge of `node`, in (target, kind) order.
    pub(crate) fn out(&self, node: Node) -> impl Iterator<Item = (Node, u8)> + '_ {
        let range = self.starts[node as usize]..self.starts[node as usize + 1];
        self.targets[range.clone()].iter().copied().zip(self.kinds[range].iter().copied())
    }
}

/// Tarjan's strongly connected components, with scratch space reused across runs so that many
/// runs over small parts of a large graph cost only what they visit.
pub(crate) struct Tarjan {
    /// Visit order per node; `UNVISITED` outside the current run.
    index: Vec<u32>,
    low: Vec<u32>,
    on_stack: Vec<bool>,
    /// Nodes visited in the current run, reset when it ends.
    touched: Vec<Node>,
}

const UNVISITED: u32 = u32::MAX;

impl Tarjan {
    pub(crate) fn new(node_count: usize) -> Tarjan {
        Tarjan {
            index: vec![UNVISITED; node_count],
            low: vec![UNVISITED; node_count],
            on_stack: vec![false; node_count],
            touched: Vec::new(),
        }
    }

    /// The components with two or more nodes of the subgraph induced by the nodes `admit`
    /// accepts and the edges whose kind is in `allowed`, found from `roots` (admitted nodes).
    pub(crate) fn components(
        &mut self,
        graph: &Graph,
        roots: &[Node],
        admit: &dyn Fn(Node) -> bool,
        allowed: u8,
        budget: &mut Budget,
    ) -> Result<Vec<Vec<Node>>, Exhausted> {
        assert_eq!(graph.node_count(), self.index.len(), "scratch space sized for this graph");
        let mut found = Vec::new();
        let mut result = Ok(());
        for &root in roots {
            assert!(admit(root), "roots are admitted nodes");
            if self.index[root as usize] == UNVISITED {
                result = self.visit(graph, root, admit, allowed, budget, &mut found);
                if result.is_err() {
                    break;
                }
            }
        }
        for node in self.touched.drain(..) {
            let n = node as usize;
            (self.index[n], self.low[n], self.on_stack[n]) = (UNVISITED, UNVISITED, false);
        }
        result.map(|()| found)
    }

    fn visit(
        &mut self,
        graph: &Graph,
        root: Node,
        admit: &dyn Fn(Node) -> bool,
        allowed: u8,
        budget: &mut Budget,
        found: &mut Vec<Vec<Node>>,
    ) -> Result<(), Exhausted> {
        let mut stack: Vec<Node> = Vec::new();
        // (node, the position of its next out-edge to look at)
        let mut calls: Vec<(Node, usize)> = Vec::new();
        self.enter(graph, root, &mut stack, &mut calls);
        while let Some(&(node, position)) = calls.last() {
            let n = node as usize;
            if position < graph.starts[n + 1] {
                budget.spend()?;
                calls.last_mut().expect("non-empty").1 += 1;
                let (next, kind) = (graph.targets[position], graph.kinds[position]);
                if allowed & (1 << kind) == 0 || !admit(next) {
                    continue;
                }
                let m = next as usize;
                if self.index[m] == UNVISITED {
                    self.enter(graph, next, &mut stack, &mut calls);
                } else if self.on_stack[m] {
                    self.low[n] = self.low[n].min(self.index[m]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                let p = parent as usize;
                self.low[p] = self.low[p].min(self.low[n]);
            }
            if self.low[n] == self.index[n] {
                let mut component = Vec::new();
                loop {
                    let member = stack.pop().expect("the root of a component is on the stack");
                    self.on_stack[member as usize] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.reverse();
                    found.push(component);
                }
            }
        }
        assert!(stack.is_empty(), "every visited node ends in a component");
        Ok(())
    }

    fn enter(&mut self, graph: &Graph, node: Node, stack: &mut Vec<Node>, calls: &mut Vec<(Node, usize)>) {
        let n = node as usize;
        let order = u32::try_from(self.touched.len()).expect("node ids fit a u32");
        (self.index[n], self.low[n], self.on_stack[n]) = (order, order, true);
        self.touched.push(node);
        stack.push(node);
        calls.push((node, graph.starts[n]));
    }
}

/// A shortest walk that starts with `first` (u -> w), uses only admitted nodes and edges whose
/// kind is in `allowed`, returns to u, and takes at least one edge of every kind in `required`.
/// Breadth-first search over (node, required kinds seen so far). None if there is none. The walk
/// is a simple cycle when `required` holds at most the kind of `first`; with a second required
/// kind it may pass a node twice (it still is a closed walk of dependencies).
pub(crate) fn shortest_walk(
    graph: &Graph,
    first: Edge,
    admit: &dyn Fn(Node) -> bool,
    allowed: u8,
    required: u8,
    budget: &mut Budget,
) -> Result<Option<Vec<Edge>>, Exhausted> {
    let (origin, after, kind) = first;
    assert!(allowed & (1 << kind) != 0 && admit(origin) && admit(after), "the first edge is allowed");
    /// A node and the required kinds taken on the way to it.
    type State = (Node, u8);
    let start: State = (after, (1 << kind) & required);
    let goal: State = (origin, required);
    // state -> (previous state, kind of the edge taken); the start state has none.
    let mut parents: BTreeMap<State, Option<(State, u8)>> = BTreeMap::new();
    parents.insert(start, None);
    let mut queue = vec![start];
    let mut head = 0;
    while head < queue.len() && !parents.contains_key(&goal) {
        let (node, seen) = queue[head];
        head += 1;
        for (next, kind) in graph.out(node) {
            budget.spend()?;
            if allowed & (1 << kind) == 0 || !admit(next) {
                continue;
            }
            let state = (next, seen | ((1 << kind) & required));
            if let Entry::Vacant(entry) = parents.entry(state) {
                entry.insert(Some(((node, seen), kind)));
                queue.push(state);
            }
        }
    }
    if !parents.contains_key(&goal) {
        return Ok(None);
    }
    let mut walk = Vec::new();
    let mut state = goal;
    while let Some(((previous, seen), kind)) = parents[&state] {
        walk.push((previous, state.0, kind));
        state = (previous, seen);
    }
    assert_eq!(state, start, "the parent chain leads back to the start");
    walk.push(first);
    walk.reverse();
    Ok(Some(walk))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS_MAX: u64 = 1_000;

    fn all(_: Node) -> bool {
        true
    }

    #[test]
    fn components_of_two_cycles_joined_one_way() {
        // 0 <-> 1 -> 2 <-> 3, plus a dangling 4.
        let graph = Graph::from_edges(5, vec![(0, 1, 0), (1, 0, 0), (1, 2, 0), (2, 3, 1), (3, 2, 0), (3, 4, 0)]);
        let mut tarjan = Tarjan::new(5);
        let mut budget = Budget::new(STEPS_MAX);
        let mut found = tarjan.components(&graph, &[0, 1, 2, 3, 4], &all, 0b11, &mut budget).unwrap();
        found.sort();
        assert_eq!(found, [vec![0, 1], vec![2, 3]]);
        // Without kind 1 the second cycle is gone; the scratch space was reset between runs.
        let found = tarjan.components(&graph, &[0, 1, 2, 3, 4], &all, 0b01, &mut budget).unwrap();
        assert_eq!(found, [vec![0, 1]]);
    }

    #[test]
    fn a_long_chain_needs_no_recursion() {
        const CHAIN_NODES: u32 = 200_000;
        let mut edges: Vec<Edge> = (0..CHAIN_NODES - 1).map(|n| (n, n + 1, 0)).collect();
        edges.push((CHAIN_NODES - 1, 0, 0));
        let graph = Graph::from_edges(CHAIN_NODES as usize, edges);
        let mut tarjan = Tarjan::new(graph.node_count());
        let found = tarjan.components(&graph, &[0], &all, 1, &mut Budget::new(u64::MAX)).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].len(), CHAIN_NODES as usize);
    }

    #[test]
    fn shortest_walk_takes_the_required_kind() {
        // 0 -> 1 -> 0 directly (kind 0), or 1 -> 2 -> 0 through kind 1.
        let graph = Graph::from_edges(3, vec![(0, 1, 0), (1, 0, 0), (1, 2, 1), (2, 0, 0)]);
        let mut budget = Budget::new(STEPS_MAX);
        let plain = shortest_walk(&graph, (0, 1, 0), &all, 0b11, 0, &mut budget).unwrap().unwrap();
        assert_eq!(plain, [(0, 1, 0), (1, 0, 0)]);
        let through = shortest_walk(&graph, (0, 1, 0), &all, 0b11, 0b10, &mut budget).unwrap().unwrap();
        assert_eq!(through, [(0, 1, 0), (1, 2, 1), (2, 0, 0)]);
        assert!(matches!(shortest_walk(&graph, (0, 1, 0), &all, 0b01, 0b10, &mut budget), Ok(None)));
    }

    #[test]
    fn an_exhausted_budget_is_reported() {
        let graph = Graph::from_edges(2, vec![(0, 1, 0), (1, 0, 0)]);
        let mut tarjan = Tarjan::new(2);
        let mut budget = Budget::new(1);
        assert!(tarjan.components(&graph, &[0, 1], &all, 1, &mut budget).is_err());
        // The scratch space was reset: a second run with budget finds the cycle.
        let found = tarjan.components(&graph, &[0, 1], &all, 1, &mut Budget::new(STEPS_MAX)).unwrap();
        assert_eq!(found, [vec![0, 1]]);
    }
}
