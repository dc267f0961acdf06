//! `DependencyCycle`: Elle's cycle search over the ops' dependency graph, as Jepsen's kafka
//! checker runs it (jepsen_tla.md §1.6), with the anomaly classes G0, G1c and their -process and
//! -realtime variants.
//!
//! Vertices are operations: the `Send` and `Poll` lines of one `op_id` (a line without one is an
//! op of its own), among acknowledged sends, indeterminate sends proven committed by a read (a
//! poll or a final read: Jepsen's must-have-committed, §1.4), and polls. Edges, as Elle draws
//! them:
//! * ww: per partition, consecutive values of the version order (offsets holding exactly one
//!   value, from acks, polls and final reads; values seen at two offsets are left out);
//! * wr: the writer of a value to every poll op that returned it;
//! * process: from an ok op to the next op of its process, among ops with an `op_id` (a
//!   Jepsen-style recorder's, whose processes run one op at a time); lines without one may come
//!   from a pipelined client, whose order is unknown where two ops meet in one millisecond;
//! * realtime: from an ok op to every op invoked after it completed, transitively reduced with
//!   Elle's frontier of completed ops (edges ~ ops x concurrency, not ops^2).
//!
//! Soundness. Each edge says some event of its source precedes some event of its target: ww,
//! the append of one record precedes the next record's append (a Raft log's offsets follow
//! append time across terms, Raft §5.3); wr, an append precedes a read of it; process and
//! realtime, the whole source precedes the whole target. An op with one event (a single-record
//! send) therefore cannot be on a cycle in any execution, whatever the broker did concurrently.
//! An op with several events can: without transactions, a send op of records to two partitions
//! is not atomic, and two such ops may land in opposite orders on the two partitions, an op-level
//! G0 that is legal Kafka (Jepsen allows G0 and G1c for this reason, §1.7). So the graph is
//! drawn one level down: each op has a start node and an end node, and each record it sent has
//! an append node between them (start -> append -> end, the last only for acknowledged records:
//! an indeterminate one may land after the op completed). ww edges join append nodes, wr edges
//! an append to the reader's end, process and realtime edges an end to a start. A cycle in this
//! graph contradicts time itself, so every cycle found is a violation (this broker appends to
//! an acks=all Raft log: jepsen_tla.md §1.8), and for single-record ops it has Elle's cycles
//! (the -realtime classes may also use process edges, as Elle's explainer names such cycles).
//! The price: a pure G0 or G1c (no process or realtime edge) needs an atomic op with
//! several events, which this history format cannot express, so those classes stay at zero;
//! with single-record sends, ww edges alone form a chain per partition and wr edges end at polls.
//! The version order is only as good as the offsets: where OffsetsUnique or
//! ReadsBelowHighWatermark also fire, a cycle may be another face of the same fault.
//!
//! Search: iterative Tarjan over the whole graph; in every component, per class, the components
//! of the subgraph of the class's edge kinds, and in each one that holds the required kinds a
//! breadth-first shortest cycle through the first required edge (Elle: "search within SCCs").
//! Every component found is reported at least once: if the class searches run out of budget,
//! the component's shortest cycle is reported under the class its edges give it (Elle's
//! explainer). Bounds: `CYCLE_GRAPH_EDGES_MAX` edges and `CYCLE_SEARCH_STEPS_MAX` steps; hitting
//! either sets `Stats::cycle_search_truncated`, which a harness must read as "unknown".

use std::collections::{BTreeMap, BTreeSet};

use crate::anomaly;
use crate::history::SendOutcome;
use crate::index::{Index, SendView};
use crate::report::{DEPENDENCY_CYCLE, Sink};
use crate::scc::{Budget, Edge, Exhausted, Graph, Node, Tarjan, shortest_walk};

/// Edges the graph may hold (about 12 bytes each); realtime edges beyond it are dropped.
pub(crate) const CYCLE_GRAPH_EDGES_MAX: usize = 16_000_000;
/// Edge visits the per-class searches may make in all (the first pass over the whole graph and
/// the one-cycle-per-component fallback are linear and not counted).
pub(crate) const CYCLE_SEARCH_STEPS_MAX: u64 = 200_000_000;
/// Steps of a cycle named in a violation message; longer cycles are cut short.
pub(crate) const CYCLE_STEPS_LISTED_MAX: usize = 12;

/// An edge's type; the discriminant is its bit index in a kind mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Within one op: start -> append -> end, start -> end, and ww between its own records.
    Internal = 0,
    Ww = 1,
    Wr = 2,
    Process = 3,
    Realtime = 4,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::Internal, Kind::Ww, Kind::Wr, Kind::Process, Kind::Realtime];

    const fn bit(self) -> u8 {
        1 << self as u8
    }

    fn of(index: u8) -> Kind {
        Kind::ALL[usize::from(index)]
    }
}

/// One of Elle's cycle classes (elle.txn `cycle-anomaly-specs`): the edge kinds a cycle may use,
/// the kind the search starts from, and a second kind it must also use.
struct ClassSpec {
    class: &'static str,
    allowed: u8,
    pivot: Kind,
    also: Option<Kind>,
}

const DATA: u8 = Kind::Internal.bit() | Kind::Ww.bit();
const CLASS_SPECS: [ClassSpec; 6] = [
    ClassSpec { class: anomaly::G0, allowed: DATA, pivot: Kind::Ww, also: None },
    ClassSpec { class: anomaly::G1C, allowed: DATA | Kind::Wr.bit(), pivot: Kind::Wr, also: None },
    ClassSpec { class: anomaly::G0_PROCESS, allowed: DATA | Kind::Process.bit(), pivot: Kind::Process, also: None },
    ClassSpec {
        class: anomaly::G1C_PROCESS,
        allowed: DATA | Kind::Wr.bit() | Kind::Process.bit(),
        pivot: Kind::Wr,
        also: Some(Kind::Process),
    },
    ClassSpec {
        class: anomaly::G0_REALTIME,
        allowed: DATA | Kind::Process.bit() | Kind::Realtime.bit(),
        pivot: Kind::Realtime,
        also: None,
    },
    ClassSpec { class: anomaly::G1C_REALTIME, allowed: ALL_KINDS, pivot: Kind::Wr, also: Some(Kind::Realtime) },
];
const ALL_KINDS: u8 = (1 << Kind::ALL.len()) - 1;

/// Elle's cycle explainer: G1c if some wr edge, else G0; then -realtime if some realtime edge,
/// else -process if some process edge.
fn classify(kinds: impl Iterator<Item = Kind>) -> &'static str {
    let seen = kinds.fold(0, |mask, kind| mask | kind.bit());
    let has = |kind: Kind| seen & kind.bit() != 0;
    assert!(has(Kind::Ww) || has(Kind::Wr), "process and realtime edges alone follow the clock: acyclic");
    match (has(Kind::Wr), has(Kind::Realtime), has(Kind::Process)) {
        (false, false, false) => anomaly::G0,
        (false, false, true) => anomaly::G0_PROCESS,
        (false, true, _) => anomaly::G0_REALTIME,
        (true, false, false) => anomaly::G1C,
        (true, false, true) => anomaly::G1C_PROCESS,
        (true, true, _) => anomaly::G1C_REALTIME,
    }
}

/// One operation: the lines of one `op_id`, or one line without.
struct Vertex {
    /// Position in `History::ops` of its first line.
    first_line: u64,
    op_id: Option<u64>,
    process: u64,
    /// The earliest invocation and the latest completion among its lines.
    invoke_ms: u64,
    complete_ms: u64,
    /// Every line is a poll or an acknowledged send (Jepsen `:ok`): only such ops precede
    /// others in process or real-time order.
    ok: bool,
    sends: bool,
    polls: bool,
}

/// A record a vertex sent that is in the graph.
struct Append<'i, 'h> {
    vertex: usize,
    send: &'i SendView<'h>,
    /// Its offset in the version order, else the first offset it was seen at, for messages.
    offset: Option<i64>,
}

/// The graph before it is frozen: node ids are `2v` (start of vertex v), `2v + 1` (its end),
/// then `2V + j` (append j).
struct DependencyGraph<'i, 'h> {
    vertices: Vec<Vertex>,
    appends: Vec<Append<'i, 'h>>,
    edges: Vec<Edge>,
    /// `CYCLE_GRAPH_EDGES_MAX`, or less in tests.
    edges_max: usize,
    truncated: bool,
}

/// The work bounds of one search (the constants above, or less in tests).
#[derive(Clone, Copy)]
struct Bounds {
    edges_max: usize,
    steps_max: u64,
}

fn node(index: usize) -> Node {
    Node::try_from(index).expect("node ids fit a u32")
}

fn start(vertex: usize) -> Node {
    node(2 * vertex)
}

fn end(vertex: usize) -> Node {
    node(2 * vertex + 1)
}

/// Whether `send` is in the graph: the first send of its value, and committed for sure.
fn is_member(index: &Index<'_>, position: usize) -> bool {
    let send = &index.sends[position];
    if index.send_by_value.get(send.value) != Some(&position) {
        return false; // A repeated value (HarnessError): its first send stands for it.
    }
    match send.outcome {
        SendOutcome::Ok { .. } => true,
        SendOutcome::Indeterminate => index.partitions[send.partition].read_values.contains(send.value),
        SendOutcome::Failed => false,
    }
}

impl<'i, 'h> DependencyGraph<'i, 'h> {
    fn build(index: &'i Index<'h>, edges_max: usize) -> DependencyGraph<'i, 'h> {
        let (vertices, send_vertex, poll_vertex) = group_vertices(index);
        let mut graph =
            DependencyGraph { vertices, appends: Vec::new(), edges: Vec::new(), edges_max, truncated: false };
        let mut append_of_send: Vec<Option<usize>> = vec![None; index.sends.len()];
        for (position, send) in index.sends.iter().enumerate() {
            let Some(vertex) = send_vertex[position].filter(|_| is_member(index, position)) else { continue };
            let seen = index.partitions[send.partition].offsets_by_value.get(send.value);
            let offset = seen.and_then(|offsets| offsets.first().copied()).or(send.acked_offset());
            let j = graph.appends.len();
            append_of_send[position] = Some(j);
            graph.appends.push(Append { vertex, send, offset });
            graph.add(start(vertex), graph.append_node(j), Kind::Internal);
            if send.acked_offset().is_some() {
                graph.add(graph.append_node(j), end(vertex), Kind::Internal);
            }
        }
        for vertex in 0..graph.vertices.len() {
            graph.add(start(vertex), end(vertex), Kind::Internal);
        }
        graph.add_version_order(index, &append_of_send);
        graph.add_reads(index, &append_of_send, &poll_vertex);
        graph.add_process_order();
        graph.add_realtime_order();
        graph
    }

    fn append_node(&self, j: usize) -> Node {
        node(2 * self.vertices.len() + j)
    }

    fn node_count(&self) -> usize {
        2 * self.vertices.len() + self.appends.len()
    }

    fn vertex_of(&self, node: Node) -> usize {
        let n = node as usize;
        if n < 2 * self.vertices.len() { n / 2 } else { self.appends[n - 2 * self.vertices.len()].vertex }
    }

    /// Adds an edge unless the graph is full (then marks it truncated). Returns whether added.
    fn add(&mut self, from: Node, to: Node, kind: Kind) -> bool {
        if self.edges.len() >= self.edges_max {
            self.truncated = true;
            return false;
        }
        assert!(from != to, "no self-loops");
        assert!(kind == Kind::Internal || self.vertex_of(from) != self.vertex_of(to), "dependencies join two ops");
        self.edges.push((from, to, kind as u8));
        true
    }

    // Elle ww: per partition, consecutive values of the version order. An offset with two values
    // (inconsistent-offsets) or a value at two offsets (duplicate) has no place in it, and a value
    // no member sent is passed over: the offsets still order the appends on either side.
    fn add_version_order(&mut self, index: &Index<'_>, append_of_send: &[Option<usize>]) {
        for (key, partition) in &index.partitions {
            let mut previous: Option<usize> = None;
            for (offset, values) in &partition.observed {
                let mut only = values.keys();
                let (Some(value), None) = (only.next(), only.next()) else { continue };
                if partition.offsets_by_value[value].len() != 1 {
                    continue;
                }
                let Some(&position) = index.send_by_value.get(value) else { continue };
                let Some(j) = append_of_send[position].filter(|_| index.sends[position].partition == *key) else {
                    continue;
                };
                self.appends[j].offset = Some(*offset);
                if let Some(p) = previous {
                    let same_op = self.appends[p].vertex == self.appends[j].vertex;
                    let kind = if same_op { Kind::Internal } else { Kind::Ww };
                    self.add(self.append_node(p), self.append_node(j), kind);
                }
                previous = Some(j);
            }
        }
    }

    // Elle wr: the writer of a value precedes every op that read it.
    fn add_reads(&mut self, index: &Index<'_>, append_of_send: &[Option<usize>], poll_vertex: &[usize]) {
        for (position, poll) in index.polls.iter().enumerate() {
            let reader = poll_vertex[position];
            for (_, value) in poll.records {
                let Some(&send) = index.send_by_value.get(value.as_str()) else { continue };
                let Some(j) = append_of_send[send] else { continue };
                if index.sends[send].partition == poll.partition && self.appends[j].vertex != reader {
                    self.add(self.append_node(j), end(reader), Kind::Wr);
                }
            }
        }
    }

    // Elle process order. Only ops with an op_id take part: those come from a Jepsen-style
    // recorder, whose processes run one op at a time (jepsen_tla.md §1.2; wellformed.rs reports
    // a visible overlap). Lines without one may come from a pipelined client, whose order the
    // millisecond clock cannot tell where two ops meet in one millisecond.
    fn add_process_order(&mut self) {
        let mut by_process: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (v, vertex) in self.vertices.iter().enumerate().filter(|(_, vertex)| vertex.op_id.is_some()) {
            by_process.entry(vertex.process).or_default().push(v);
        }
        for mut order in by_process.into_values() {
            order.sort_by_key(|&v| (self.vertices[v].invoke_ms, self.vertices[v].first_line));
            let overlaps = |pair: &[usize]| self.vertices[pair[1]].invoke_ms < self.vertices[pair[0]].complete_ms;
            if order.windows(2).any(overlaps) {
                continue; // A HarnessError: the process's order is unknown.
            }
            let mut last_ok: Option<usize> = None;
            for v in order {
                if let Some(a) = last_ok {
                    self.add(end(a), start(v), Kind::Process);
                }
                if self.vertices[v].ok {
                    last_ok = Some(v);
                }
            }
        }
    }

    // Elle realtime order: a -> b when ok a completed before b was invoked. A frontier keeps the
    // ok ops completed so far that no later-completed op follows; an op's invocation links every
    // frontier op to it, and its completion replaces them (they reach later ops through it).
    fn add_realtime_order(&mut self) {
        const INVOKE: u8 = 0; // Before completions at the same millisecond: strict order only.
        const COMPLETE: u8 = 1;
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * self.vertices.len());
        for (v, vertex) in self.vertices.iter().enumerate() {
            events.push((vertex.invoke_ms, INVOKE, v));
            events.push((vertex.complete_ms, COMPLETE, v));
        }
        events.sort_unstable();
        let mut frontier: BTreeSet<usize> = BTreeSet::new();
        let mut predecessors: Vec<Vec<usize>> = (0..self.vertices.len()).map(|_| Vec::new()).collect();
        for (_, phase, v) in events {
            if phase == INVOKE {
                for &a in &frontier {
                    if !self.add(end(a), start(v), Kind::Realtime) {
                        return;
                    }
                }
                predecessors[v] = frontier.iter().copied().collect();
            } else if self.vertices[v].ok {
                for a in std::mem::take(&mut predecessors[v]) {
                    frontier.remove(&a);
                }
                frontier.insert(v);
            } else {
                predecessors[v].clear();
            }
        }
    }
}

/// Groups the `Send` and `Poll` lines into vertices (ordered by first line), keeping those with
/// a member send or a poll. Returns them with the vertex of every send (if any) and every poll.
fn group_vertices(index: &Index<'_>) -> (Vec<Vertex>, Vec<Option<usize>>, Vec<usize>) {
    // (op_id given, op_id or line position) -> vertex under construction.
    let mut groups: BTreeMap<(bool, u64), Vertex> = BTreeMap::new();
    let mut group = |op: u64, op_id: Option<u64>, process: u64, (invoke_ms, complete_ms): (u64, u64)| {
        // A line completing before its invocation is a HarnessError; read it as instantaneous so
        // that time still only moves forward along process and realtime edges.
        let times = (invoke_ms, complete_ms.max(invoke_ms));
        let key = (op_id.is_some(), op_id.unwrap_or(op));
        let vertex = groups.entry(key).or_insert(Vertex {
            first_line: op,
            op_id,
            process,
            invoke_ms: times.0,
            complete_ms: times.1,
            ok: true,
            sends: false,
            polls: false,
        });
        vertex.first_line = vertex.first_line.min(op);
        vertex.invoke_ms = vertex.invoke_ms.min(times.0);
        vertex.complete_ms = vertex.complete_ms.max(times.1);
        key
    };
    let send_keys: Vec<(bool, u64)> =
        index.sends.iter().map(|s| group(s.op, s.op_id, s.process, (s.invoke_ms, s.complete_ms))).collect();
    let poll_keys: Vec<(bool, u64)> =
        index.polls.iter().map(|p| group(p.op, p.op_id, p.process, (p.invoke_ms, p.complete_ms))).collect();
    for (position, key) in send_keys.iter().enumerate() {
        let vertex = groups.get_mut(key).expect("grouped above");
        vertex.ok &= index.sends[position].acked_offset().is_some();
        vertex.sends |= is_member(index, position);
    }
    for key in &poll_keys {
        groups.get_mut(key).expect("grouped above").polls = true;
    }
    let mut kept: Vec<((bool, u64), Vertex)> = groups.into_iter().filter(|(_, v)| v.sends || v.polls).collect();
    kept.sort_by_key(|(_, vertex)| vertex.first_line);
    let id_of: BTreeMap<(bool, u64), usize> = kept.iter().enumerate().map(|(id, (key, _))| (*key, id)).collect();
    let send_vertex = send_keys.iter().map(|key| id_of.get(key).copied()).collect();
    let poll_vertex = poll_keys.iter().map(|key| id_of[key]).collect();
    (kept.into_iter().map(|(_, vertex)| vertex).collect(), send_vertex, poll_vertex)
}

/// Runs the search; returns whether it was truncated (graph or search bound reached).
pub(crate) fn check(index: &Index<'_>, sink: &mut Sink) -> bool {
    let bounds = Bounds { edges_max: CYCLE_GRAPH_EDGES_MAX, steps_max: CYCLE_SEARCH_STEPS_MAX };
    check_within(index, sink, bounds)
}

fn check_within(index: &Index<'_>, sink: &mut Sink, bounds: Bounds) -> bool {
    let mut dependencies = DependencyGraph::build(index, bounds.edges_max);
    let graph = Graph::from_edges(dependencies.node_count(), std::mem::take(&mut dependencies.edges));
    let mut tarjan = Tarjan::new(graph.node_count());
    let every_node: Vec<Node> = (0..graph.node_count()).map(node).collect();
    let mut linear = Budget::new(u64::MAX);
    let components = tarjan.components(&graph, &every_node, &|_| true, ALL_KINDS, &mut linear).expect("unbounded");
    let mut component_of: Vec<usize> = vec![usize::MAX; graph.node_count()];
    for (c, component) in components.iter().enumerate() {
        for &n in component {
            component_of[n as usize] = c;
        }
    }
    let budget = Budget::new(bounds.steps_max);
    let labels = vec![0; graph.node_count()];
    let mut search = Search { graph: &graph, tarjan, budget, labels, next_label: 0 };
    let mut truncated = dependencies.truncated;
    for (c, component) in components.iter().enumerate() {
        let in_component = |n: Node| component_of[n as usize] == c;
        let mut reported = false;
        for spec in &CLASS_SPECS {
            match search.class(component, &in_component, spec) {
                Ok(walks) => {
                    for walk in walks {
                        let class = report(&dependencies, &walk, sink);
                        assert_eq!(class, spec.class, "a cycle of the {} search is of its class", spec.class);
                        reported = true;
                    }
                }
                Err(Exhausted) => truncated = true,
            }
        }
        if !reported {
            // Only after the budget ran out: every cycle is of some class (see `classify`).
            assert!(truncated, "a component holds a cycle of some class");
            let first = component[0];
            let next = graph.out(first).find(|(n, _)| in_component(*n)).expect("a component's node has an edge in it");
            let walk = shortest_walk(&graph, (first, next.0, next.1), &in_component, ALL_KINDS, 0, &mut linear)
                .expect("unbounded")
                .expect("a component is strongly connected");
            report(&dependencies, &walk, sink);
        }
    }
    truncated
}

/// The per-class search state shared across components.
struct Search<'g> {
    graph: &'g Graph,
    tarjan: Tarjan,
    budget: Budget,
    /// node -> the label of the last sub-component it was found in; every sub-component of every
    /// run gets a fresh label, so a stale one never matches.
    labels: Vec<u64>,
    next_label: u64,
}

impl Search<'_> {
    /// One shortest cycle of `spec`'s class per sub-component of `component` that has one.
    fn class(
        &mut self,
        component: &[Node],
        in_component: &dyn Fn(Node) -> bool,
        spec: &ClassSpec,
    ) -> Result<Vec<Vec<Edge>>, Exhausted> {
        let parts = self.tarjan.components(self.graph, component, in_component, spec.allowed, &mut self.budget)?;
        let mut walks = Vec::new();
        for part in parts {
            self.next_label += 1;
            let label = self.next_label;
            for &n in &part {
                self.labels[n as usize] = label;
            }
            let labels = &self.labels;
            let in_part = |n: Node| labels[n as usize] == label;
            let mut pivot: Option<Edge> = None;
            let mut also_seen = spec.also.is_none();
            for &from in &part {
                for (to, kind) in self.graph.out(from) {
                    self.budget.spend()?;
                    if !in_part(to) || spec.allowed & (1 << kind) == 0 {
                        continue;
                    }
                    if Kind::of(kind) == spec.pivot && pivot.is_none() {
                        pivot = Some((from, to, kind));
                    }
                    also_seen |= spec.also == Some(Kind::of(kind));
                }
            }
            let (Some(first), true) = (pivot, also_seen) else { continue };
            let required = spec.pivot.bit() | spec.also.map_or(0, Kind::bit);
            let walk = shortest_walk(self.graph, first, &in_part, spec.allowed, required, &mut self.budget)?;
            walks.push(walk.expect("a strongly connected part with every required kind has such a walk"));
        }
        Ok(walks)
    }
}

/// Reports one closed walk of the graph as a cycle of ops; returns its class.
fn report(dependencies: &DependencyGraph<'_, '_>, walk: &[Edge], sink: &mut Sink) -> &'static str {
    let steps: Vec<(usize, Node, Node, Kind, usize)> = walk
        .iter()
        .map(|&(from, to, kind)| (dependencies.vertex_of(from), from, to, Kind::of(kind), dependencies.vertex_of(to)))
        .filter(|(from_vertex, .., to_vertex)| from_vertex != to_vertex)
        .collect();
    assert!(steps.len() >= 2, "a cycle joins at least two ops");
    let class = classify(steps.iter().map(|step| step.3));
    let ops: BTreeSet<usize> = steps.iter().map(|step| step.0).collect();
    let mut message = format!("{class} cycle of {} ops: {}", ops.len(), dependencies.describe_vertex(steps[0].0));
    for (listed, &(_, from, to, kind, to_vertex)) in steps.iter().enumerate() {
        if listed == CYCLE_STEPS_LISTED_MAX {
            let remaining = steps.len() - listed;
            message
                .push_str(&format!(" ... ({remaining} more steps) ... {}", dependencies.describe_vertex(steps[0].0)));
            break;
        }
        let step = dependencies.describe_step(from, to, kind);
        message.push_str(&format!(" -[{step}]-> {}", dependencies.describe_vertex(to_vertex)));
    }
    sink.push_as(DEPENDENCY_CYCLE, class, message);
    class
}

impl DependencyGraph<'_, '_> {
    /// "op #4 (op_id 17, poll by process 2)".
    fn describe_vertex(&self, v: usize) -> String {
        let vertex = &self.vertices[v];
        let what = match (vertex.sends, vertex.polls) {
            (true, true) => "send+poll",
            (true, false) => "send",
            (false, _) => "poll",
        };
        let op_id = vertex.op_id.map(|id| format!("op_id {id}, ")).unwrap_or_default();
        format!("op #{} ({op_id}{what} by process {})", vertex.first_line, vertex.process)
    }

    /// "ww payments/0 "a"@0 < "b"@1", "wr payments/0 "a"@0", "process 3",
    /// "realtime 12 ms < 15 ms".
    fn describe_step(&self, from: Node, to: Node, kind: Kind) -> String {
        let record = |n: Node| {
            let append = &self.appends[n as usize - 2 * self.vertices.len()];
            let at = append.offset.map(|offset| format!("@{offset}")).unwrap_or_default();
            (append.send.partition, format!("{:?}{at}", append.send.value))
        };
        match kind {
            Kind::Ww => {
                let ((partition, earlier), (_, later)) = (record(from), record(to));
                format!("ww {partition} {earlier} < {later}")
            }
            Kind::Wr => {
                let (partition, read) = record(from);
                format!("wr {partition} {read}")
            }
            Kind::Process => format!("process {}", self.vertices[self.vertex_of(from)].process),
            Kind::Realtime => format!(
                "realtime {} ms < {} ms",
                self.vertices[self.vertex_of(from)].complete_ms,
                self.vertices[self.vertex_of(to)].invoke_ms
            ),
            Kind::Internal => unreachable!("internal edges are not steps between ops"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{History, Op, PartitionKey};

    /// "a" acknowledged at offset 1 before "b" was invoked; "b" at offset 0: a G0-realtime cycle.
    fn reordered() -> History {
        let send = |process, value: &str, offset, invoke_ms, complete_ms| Op::Send {
            process,
            partition: PartitionKey::new("payments", 0),
            value: value.to_owned(),
            invoke_ms,
            complete_ms,
            outcome: SendOutcome::Ok { offset },
            idempotent: false,
            op_id: None,
        };
        History { ops: vec![send(1, "a", 1, 0, 5), send(2, "b", 0, 6, 9)], ..History::default() }
    }

    #[test]
    fn an_exhausted_search_still_reports_every_cyclic_component() {
        let history = reordered();
        let index = Index::build(&history);
        let mut sink = Sink::default();
        let truncated = check_within(&index, &mut sink, Bounds { edges_max: usize::MAX, steps_max: 0 });
        assert!(truncated, "the class searches had no budget");
        let violations = sink.into_violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].message.starts_with("G0-realtime cycle of 2 ops"), "{violations:?}");
    }

    #[test]
    fn a_full_graph_is_reported_as_truncated() {
        const EDGES_BEFORE_REALTIME: usize = 7; // 2 ops x 3 internal edges, 1 ww edge.
        let history = reordered();
        let index = Index::build(&history);
        let mut sink = Sink::default();
        let truncated = check_within(&index, &mut sink, Bounds { edges_max: EDGES_BEFORE_REALTIME, steps_max: 1_000 });
        assert!(truncated, "the realtime edge did not fit");
        assert!(sink.into_violations().is_empty(), "so the cycle was missed, and the report says so");
    }

    #[test]
    fn classes_follow_elles_explainer() {
        use Kind::*;
        assert_eq!(classify([Ww, Ww].into_iter()), anomaly::G0);
        assert_eq!(classify([Ww, Wr].into_iter()), anomaly::G1C);
        assert_eq!(classify([Ww, Process].into_iter()), anomaly::G0_PROCESS);
        assert_eq!(classify([Wr, Process].into_iter()), anomaly::G1C_PROCESS);
        assert_eq!(classify([Ww, Process, Realtime].into_iter()), anomaly::G0_REALTIME);
        assert_eq!(classify([Wr, Ww, Realtime].into_iter()), anomaly::G1C_REALTIME);
    }

    #[test]
    fn class_specs_admit_only_their_class() {
        for spec in &CLASS_SPECS {
            let allowed = Kind::ALL.iter().copied().filter(|kind| spec.allowed & kind.bit() != 0);
            assert_eq!(classify(allowed), spec.class, "all allowed kinds together");
            assert!(spec.allowed & spec.pivot.bit() != 0 && spec.also.is_none_or(|k| spec.allowed & k.bit() != 0));
        }
    }
}
