//! The in-memory shell the scenarios drive: replicas of the sans-IO core, each with a model of
//! its disk (durable state plus a queue of writes not yet durable), and one network.
//!
//! The shell keeps the effect contract of `src/raft/src/effect.rs`:
//! - effects run in order; `PersistHardState`, `Truncate`, `Append` and `ResetLog` join the
//!   replica's queue of pending writes;
//! - a `Send` first makes every pending write durable (etcd raft's synchronous storage: a vote
//!   or an acknowledgement never leaves before the state it vouches for is on disk); when that
//!   happened during a step, the core is then told with `Input::Persisted`;
//! - a `Replicate` goes to the network at once; a leader's own appends become durable only with
//!   `persist`, `stabilize` or `tick-all` (a leader counts itself toward a majority only for
//!   what it has persisted);
//! - a crash loses the pending writes; a restart rebuilds the replica from its durable hard
//!   state and log (`RaftLog::recovered`), with the commit index at the log start (Raft Figure 2:
//!   the commit index is volatile).
//!
//! The network is one FIFO queue of messages in flight. A message is dropped when it is
//! delivered to a replica that is down or that a partition separates from the sender.
//!
//! After every effect the shell checks Raft's safety properties and panics when one breaks:
//! Election Safety (one leader per term, §5.2), Log Matching for committed entries and State
//! Machine Safety (every replica commits the same entry at an index, §5.3, §5.4.3), Leader
//! Completeness (a new leader holds every committed entry, §5.4), committed entries durable on
//! a majority, and that replaying the effects reproduces the core's log and hard state.

use super::format;
use sluice_raft::{
    Config, Effect, EntryKind, EntryMeta, Envelope, HardState, Input, LogPosition, Membership, MembershipChange,
    ProposeError, Raft, RaftLog, Role,
};
use sluice_types::{NodeId, Offset, Term};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// `deliver` and `stabilize` give up (a livelock) after this many messages.
const DELIVERIES_MAX: usize = 10_000;
/// Default size of a proposed batch.
const PROPOSE_BYTES_DEFAULT: u32 = 100;

/// A write the core asked for that is not durable yet.
#[derive(Clone, Debug)]
enum Write {
    Hard(HardState),
    Truncate(LogPosition),
    Append(Vec<EntryMeta>),
    Reset { before_start: LogPosition, membership: Membership },
}

/// What survives a crash.
#[derive(Clone, Debug)]
struct Durable {
    hard: HardState,
    before_start: LogPosition,
    entries: Vec<EntryMeta>,
    /// The membership as of the log start (what `Raft::new` takes).
    start_membership: Membership,
}

impl Durable {
    fn last(&self) -> LogPosition {
        self.entries.last().map_or(self.before_start, |e| LogPosition { term: e.term, index: e.index })
    }

    fn write(&mut self, write: Write) {
        match write {
            Write::Hard(hard) => self.hard = hard,
            Write::Truncate(after) => self.entries.retain(|e| e.index <= after.index),
            Write::Append(entries) => {
                for entry in entries.into_iter().filter(|e| e.index > self.before_start.index) {
                    assert!(entry.index > self.last().index, "append {entry:?} not after the durable log's end");
                    self.entries.push(entry);
                }
            }
            Write::Reset { before_start, membership } => {
                self.entries.clear();
                self.before_start = before_start;
                self.start_membership = membership;
            }
        }
    }

    /// Whether the durable log holds `position` (a position at or before the log start counts:
    /// only committed entries leave the log).
    fn holds(&self, position: LogPosition) -> bool {
        position.index <= self.before_start.index
            || self.entries.iter().any(|e| e.index == position.index && e.term == position.term)
    }
}

struct Node {
    config: Config,
    /// The "random" election timeout the shell hands the core with every tick.
    timeout_draw: u32,
    raft: Option<Raft>,
    durable: Durable,
    pending: Vec<Write>,
}

/// Command output. `quiet` hides messages (sent, delivered, dropped) and keeps replica events.
#[derive(Default)]
struct Out {
    lines: Vec<String>,
    quiet: bool,
    indent: usize,
}

impl Out {
    fn event(&mut self, text: String) {
        self.lines.push(format!("{:indent$}{text}", "", indent = self.indent));
    }

    fn message(&mut self, text: String) {
        if !self.quiet {
            self.event(text);
        }
    }
}

#[derive(Default)]
pub struct Cluster {
    nodes: BTreeMap<NodeId, Node>,
    network: VecDeque<Envelope>,
    /// Groups that can talk among themselves; `None`: everyone can.
    partition: Option<Vec<BTreeSet<NodeId>>>,
    out: Out,
    /// Election Safety: the leader of each term ever elected.
    leaders: BTreeMap<Term, NodeId>,
    /// Every entry any replica has reported committed, by index.
    committed: BTreeMap<Offset, EntryMeta>,
}

/// A command's arguments: positional words and `key=value` pairs.
struct Args {
    positional: Vec<String>,
    keyed: BTreeMap<String, String>,
    flags: BTreeSet<String>,
}

impl Args {
    fn parse(words: &[&str]) -> Args {
        let mut args = Args { positional: Vec::new(), keyed: BTreeMap::new(), flags: BTreeSet::new() };
        for word in words {
            match word.split_once('=') {
                Some((key, value)) => {
                    args.keyed.insert(key.to_string(), value.to_string());
                }
                None if *word == "quiet" => {
                    args.flags.insert(word.to_string());
                }
                None => args.positional.push(word.to_string()),
            }
        }
        args
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.keyed.remove(key)
    }

    fn take_parsed<T: std::str::FromStr>(&mut self, key: &str) -> Result<Option<T>, String> {
        self.take(key).map(|v| v.parse::<T>().map_err(|_| format!("bad value `{v}` for {key}"))).transpose()
    }

    fn quiet(&mut self) -> bool {
        self.flags.remove("quiet")
    }

    fn finish(self) -> Result<(), String> {
        if let Some(key) = self.keyed.keys().next() {
            return Err(format!("unknown argument `{key}=`"));
        }
        if let Some(flag) = self.flags.iter().next() {
            return Err(format!("unexpected flag `{flag}`"));
        }
        Ok(())
    }
}

fn node_id(word: &str) -> Result<NodeId, String> {
    word.parse::<i32>().map(NodeId).map_err(|_| format!("bad node id `{word}`"))
}

/// `(1,2,3)` or `()`.
fn id_set(word: &str) -> Result<BTreeSet<NodeId>, String> {
    let inner = word.strip_prefix('(').and_then(|w| w.strip_suffix(')')).ok_or(format!("bad set `{word}`"))?;
    inner.split(',').filter(|w| !w.is_empty()).map(node_id).collect()
}

/// `1->2`; either side may be `*`.
fn link(word: &str) -> Result<(Option<NodeId>, Option<NodeId>), String> {
    let (from, to) = word.split_once("->").ok_or(format!("bad link `{word}` (want FROM->TO)"))?;
    let side = |w: &str| if w == "*" { Ok(None) } else { node_id(w).map(Some) };
    Ok((side(from)?, side(to)?))
}

fn link_matches(links: &[(Option<NodeId>, Option<NodeId>)], envelope: &Envelope) -> bool {
    links.iter().any(|(from, to)| from.is_none_or(|f| f == envelope.from) && to.is_none_or(|t| t == envelope.to))
}

fn bool_arg(value: &str) -> Result<bool, String> {
    value.parse::<bool>().map_err(|_| format!("bad boolean `{value}`"))
}

impl Cluster {
    /// Runs one command line; returns its output lines (`ok` when it printed nothing).
    pub fn run(&mut self, command: &str) -> Result<Vec<String>, String> {
        let words: Vec<&str> = command.split_whitespace().collect();
        let (verb, rest) = words.split_first().ok_or("empty command")?;
        let mut args = Args::parse(rest);
        self.out = Out { quiet: args.quiet(), ..Out::default() };
        match *verb {
            "add-nodes" => self.add_nodes(&mut args)?,
            "timeout" => self.set_timeout(&mut args)?,
            "tick" => self.tick(&mut args)?,
            "tick-all" => self.tick_all(&mut args)?,
            "campaign" => {
                let id = self.one_node(&args)?;
                self.step(id, Input::Campaign)?;
            }
            "propose" => self.propose(&mut args)?,
            "propose-membership" => self.propose_membership(&mut args)?,
            "transfer" => {
                let id = self.one_node(&args)?;
                let to = node_id(&args.take("to").ok_or("transfer needs to=ID")?)?;
                self.step(id, Input::TransferLeadership { to })?;
            }
            "deliver" => self.deliver(&mut args)?,
            "drop" => self.drop_messages(&mut args)?,
            "partition" => {
                let groups = args.positional.drain(..).map(|w| id_set(&w)).collect::<Result<Vec<_>, _>>()?;
                self.partition = Some(groups);
            }
            "heal" => self.partition = None,
            "persist" => {
                let ids = self.ids_or_live(&args)?;
                args.positional.clear();
                for id in ids {
                    self.persist(id, true)?;
                }
            }
            "stabilize" => self.stabilize()?,
            "crash" => self.crash(&args)?,
            "restart" => self.restart(&args)?,
            "log-start" => self.log_start(&mut args)?,
            "status" => {
                for id in self.ids_or_all(&args)? {
                    let line = self.status_line(id);
                    self.out.event(line);
                }
            }
            "log" => {
                for id in self.ids_or_all(&args)? {
                    let line = self.log_line(id);
                    self.out.event(line);
                }
            }
            "network" => {
                let lines: Vec<String> = self.network.iter().map(format::envelope).collect();
                if lines.is_empty() {
                    self.out.event("no messages in flight".to_string());
                }
                for line in lines {
                    self.out.event(line);
                }
            }
            _ => return Err(format!("unknown command `{verb}`")),
        }
        let positional_max = match *verb {
            // Any number of ids, links or groups, read above.
            "partition" | "persist" | "status" | "log" | "deliver" | "drop" | "tick" => usize::MAX,
            "heal" | "stabilize" | "tick-all" | "network" => 0,
            _ => 1,
        };
        if args.positional.len() > positional_max {
            return Err(format!("unexpected arguments {:?}", &args.positional[positional_max..]));
        }
        args.positional.clear();
        args.finish()?;
        let mut lines = std::mem::take(&mut self.out.lines);
        if lines.is_empty() {
            lines.push("ok".to_string());
        }
        Ok(lines)
    }

    fn one_node(&self, args: &Args) -> Result<NodeId, String> {
        let word = args.positional.first().ok_or("missing node id")?;
        let id = node_id(word)?;
        if !self.nodes.contains_key(&id) {
            return Err(format!("no node {id}"));
        }
        Ok(id)
    }

    fn ids_or_all(&self, args: &Args) -> Result<Vec<NodeId>, String> {
        if args.positional.is_empty() {
            return Ok(self.nodes.keys().copied().collect());
        }
        let ids = args.positional.iter().map(|w| node_id(w)).collect::<Result<Vec<_>, _>>()?;
        match ids.iter().find(|id| !self.nodes.contains_key(id)) {
            Some(id) => Err(format!("no node {id}")),
            None => Ok(ids),
        }
    }

    fn ids_or_live(&self, args: &Args) -> Result<Vec<NodeId>, String> {
        if args.positional.is_empty() {
            return Ok(self.live_ids());
        }
        self.ids_or_all(args)
    }

    fn live_ids(&self) -> Vec<NodeId> {
        self.nodes.iter().filter(|(_, n)| n.raft.is_some()).map(|(id, _)| *id).collect()
    }

    fn raft(&mut self, id: NodeId) -> Result<&mut Raft, String> {
        let node = self.nodes.get_mut(&id).ok_or(format!("no node {id}"))?;
        node.raft.as_mut().ok_or(format!("node {id} is down"))
    }

    fn node(&mut self, id: NodeId) -> &mut Node {
        self.nodes.get_mut(&id).expect("node exists")
    }

    // ---- Commands ----

    /// `add-nodes N voters=(1,2,3) [learners=()] [prevote=B] [checkquorum=B] [election=T]
    /// [heartbeat=T] [max-append-bytes=N] [max-inflight=N]`: N new replicas with the next ids,
    /// empty logs, knowing the given membership.
    fn add_nodes(&mut self, args: &mut Args) -> Result<(), String> {
        let count: i32 = args.positional.first().ok_or("add-nodes needs a count")?.parse().map_err(|_| "bad count")?;
        let voters = id_set(&args.take("voters").ok_or("add-nodes needs voters=(..)")?)?;
        let learners = args.take("learners").map(|w| id_set(&w)).transpose()?.unwrap_or_default();
        let pre_vote = args.take("prevote").map(|v| bool_arg(&v)).transpose()?;
        let check_quorum = args.take("checkquorum").map(|v| bool_arg(&v)).transpose()?;
        let election = args.take_parsed::<u32>("election")?;
        let heartbeat = args.take_parsed::<u32>("heartbeat")?;
        let append_bytes = args.take_parsed::<u64>("max-append-bytes")?;
        let inflight = args.take_parsed::<u32>("max-inflight")?;
        let first = self.nodes.keys().last().map_or(1, |id| id.0 + 1);
        for raw in first..first + count {
            let id = NodeId(raw);
            let mut config = Config::new(id);
            config.pre_vote = pre_vote.unwrap_or(config.pre_vote);
            config.check_quorum = check_quorum.unwrap_or(config.check_quorum);
            config.election_timeout_ticks_min = election.unwrap_or(config.election_timeout_ticks_min);
            config.heartbeat_interval_ticks = heartbeat.unwrap_or(config.heartbeat_interval_ticks);
            config.append_bytes_max = append_bytes.unwrap_or(config.append_bytes_max);
            config.inflight_messages_max = inflight.unwrap_or(config.inflight_messages_max);
            let min = config.election_timeout_ticks_min;
            // Distinct timeouts by default, so one replica times out first: min + id - 1.
            let timeout_draw = min + (raw as u32 - 1) % min;
            let durable = Durable {
                hard: HardState::default(),
                before_start: LogPosition::EMPTY,
                entries: Vec::new(),
                start_membership: Membership { voters: voters.clone(), learners: learners.clone() },
            };
            let raft =
                Raft::new(config.clone(), voters.clone(), learners.clone(), HardState::default(), RaftLog::default());
            let node = Node { config, timeout_draw, raft: Some(raft), durable, pending: Vec::new() };
            self.nodes.insert(id, node);
            let line = self.status_line(id);
            self.out.event(line);
        }
        Ok(())
    }

    /// `timeout ID ticks=T`: the election timeout ID draws from now on (in `[min, 2 * min)`).
    fn set_timeout(&mut self, args: &mut Args) -> Result<(), String> {
        let id = self.one_node(args)?;
        let ticks = args.take_parsed::<u32>("ticks")?.ok_or("timeout needs ticks=T")?;
        let node = self.node(id);
        let min = node.config.election_timeout_ticks_min;
        if ticks < min || ticks >= 2 * min {
            return Err(format!("timeout {ticks} outside [{min}, {})", 2 * min));
        }
        node.timeout_draw = ticks;
        Ok(())
    }

    fn tick_node(&mut self, id: NodeId) -> Result<(), String> {
        let draw = self.node(id).timeout_draw;
        self.step(id, Input::Tick { randomized_election_timeout_ticks: draw })
    }

    /// Runs `round` `rounds` times; when there are several, heads each round's output with
    /// `[tick K]` (rounds that print nothing print nothing).
    fn rounds(&mut self, rounds: u32, mut round: impl FnMut(&mut Cluster) -> Result<(), String>) -> Result<(), String> {
        for k in 1..=rounds {
            let before = self.out.lines.len();
            round(self)?;
            if rounds > 1 && self.out.lines.len() > before {
                self.out.lines.insert(before, format!("[tick {k}]"));
            }
        }
        Ok(())
    }

    /// `tick ID.. [n=N]`: ticks the replicas N times each (round robin), delivering nothing.
    fn tick(&mut self, args: &mut Args) -> Result<(), String> {
        let n = args.take_parsed::<u32>("n")?.unwrap_or(1);
        let ids = args.positional.iter().map(|w| node_id(w)).collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Err("tick needs node ids".to_string());
        }
        self.rounds(n, |cluster| ids.iter().try_for_each(|id| cluster.tick_node(*id)))
    }

    /// `tick-all [n=N]`: N rounds of: tick every live replica once, then `stabilize`.
    fn tick_all(&mut self, args: &mut Args) -> Result<(), String> {
        let n = args.take_parsed::<u32>("n")?.unwrap_or(1);
        self.rounds(n, |cluster| {
            for id in cluster.live_ids() {
                cluster.tick_node(id)?;
            }
            cluster.stabilize()
        })
    }

    /// `propose ID [offsets=N] [bytes=B]`.
    fn propose(&mut self, args: &mut Args) -> Result<(), String> {
        let id = self.one_node(args)?;
        let offsets = args.take_parsed::<u32>("offsets")?.unwrap_or(1);
        let bytes = args.take_parsed::<u32>("bytes")?.unwrap_or(PROPOSE_BYTES_DEFAULT);
        let result = self.raft(id)?.propose(offsets, bytes);
        self.proposed(id, result);
        Ok(())
    }

    /// `propose-membership ID add-learner=X|promote=X|remove=X`.
    fn propose_membership(&mut self, args: &mut Args) -> Result<(), String> {
        let id = self.one_node(args)?;
        let change = if let Some(w) = args.take("add-learner") {
            MembershipChange::AddLearner(node_id(&w)?)
        } else if let Some(w) = args.take("promote") {
            MembershipChange::PromoteLearner(node_id(&w)?)
        } else if let Some(w) = args.take("remove") {
            MembershipChange::Remove(node_id(&w)?)
        } else {
            return Err("propose-membership needs add-learner=, promote= or remove=".to_string());
        };
        let result = self.raft(id)?.propose_membership(change);
        self.proposed(id, result);
        Ok(())
    }

    fn proposed(&mut self, id: NodeId, result: Result<(EntryMeta, Vec<Effect>), ProposeError>) {
        match result {
            Ok((_, effects)) => self.apply(id, effects),
            Err(error) => {
                let why = match error {
                    ProposeError::NotLeader { leader } => format!("not leader (leader={})", format::leader(leader)),
                    ProposeError::Transferring => "leadership transfer in progress".to_string(),
                    ProposeError::Backpressure => "backpressure".to_string(),
                    ProposeError::MembershipChangeInProgress => "membership change in progress".to_string(),
                    ProposeError::InvalidMembershipChange => "invalid membership change".to_string(),
                };
                self.out.event(format!("{id}: proposal refused: {why}"));
            }
        }
    }

    /// `deliver`: every message in flight, and those they cause, until none is left.
    /// `deliver A->B ..`: only the messages from A to B in flight now (`*` matches any), once.
    fn deliver(&mut self, args: &mut Args) -> Result<(), String> {
        if args.positional.is_empty() {
            return self.deliver_all();
        }
        let links = args.positional.drain(..).map(|w| link(&w)).collect::<Result<Vec<_>, _>>()?;
        let (chosen, kept): (VecDeque<Envelope>, VecDeque<Envelope>) =
            self.network.drain(..).partition(|e| link_matches(&links, e));
        self.network = kept;
        for envelope in chosen {
            self.deliver_one(envelope);
        }
        Ok(())
    }

    fn deliver_all(&mut self) -> Result<(), String> {
        for _ in 0..DELIVERIES_MAX {
            let Some(envelope) = self.network.pop_front() else { return Ok(()) };
            self.deliver_one(envelope);
        }
        Err(format!("the network did not quiesce after {DELIVERIES_MAX} deliveries (a livelock?)"))
    }

    fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        self.partition.as_ref().is_none_or(|groups| groups.iter().any(|g| g.contains(&a) && g.contains(&b)))
    }

    fn deliver_one(&mut self, envelope: Envelope) {
        let line = format::envelope(&envelope);
        let down = self.nodes.get(&envelope.to).is_none_or(|n| n.raft.is_none());
        if down {
            self.out.message(format!("{line} (dropped: {} is down)", envelope.to));
            return;
        }
        if !self.reachable(envelope.from, envelope.to) {
            self.out.message(format!("{line} (dropped: partitioned)"));
            return;
        }
        self.out.message(line);
        let indent = if self.out.quiet { 0 } else { 2 };
        self.out.indent += indent;
        let to = envelope.to;
        self.step(to, Input::Receive(envelope)).expect("the receiver is up");
        self.out.indent -= indent;
    }

    /// `drop [A->B ..]`: loses the matching messages in flight (all without arguments).
    fn drop_messages(&mut self, args: &mut Args) -> Result<(), String> {
        let links = args.positional.drain(..).map(|w| link(&w)).collect::<Result<Vec<_>, _>>()?;
        let (dropped, kept): (VecDeque<Envelope>, VecDeque<Envelope>) =
            self.network.drain(..).partition(|e| links.is_empty() || link_matches(&links, e));
        self.network = kept;
        for envelope in dropped {
            self.out.message(format!("{} (dropped)", format::envelope(&envelope)));
        }
        Ok(())
    }

    /// `stabilize`: make every live replica's pending writes durable and deliver every message,
    /// until nothing is pending or in flight (etcd raft's `stabilize`).
    pub fn stabilize(&mut self) -> Result<(), String> {
        for _ in 0..DELIVERIES_MAX {
            let mut busy = false;
            for id in self.live_ids() {
                if !self.node(id).pending.is_empty() {
                    busy = true;
                    self.persist(id, !self.out.quiet)?;
                }
            }
            if !self.network.is_empty() {
                busy = true;
                self.deliver_all()?;
            }
            if !busy {
                return Ok(());
            }
        }
        Err(format!("stabilize did not finish after {DELIVERIES_MAX} rounds (a livelock?)"))
    }

    /// Makes `id`'s pending writes durable and tells the core (`Input::Persisted`). `print`:
    /// report it even when the core has nothing to say about it.
    fn persist(&mut self, id: NodeId, print: bool) -> Result<(), String> {
        self.raft(id)?;
        if self.node(id).pending.is_empty() {
            if print {
                self.out.event(format!("{id}: nothing to persist"));
            }
            return Ok(());
        }
        self.flush(id);
        self.report_persisted(id, print);
        Ok(())
    }

    fn flush(&mut self, id: NodeId) {
        let node = self.node(id);
        for write in std::mem::take(&mut node.pending) {
            node.durable.write(write);
        }
    }

    /// Feeds `Input::Persisted` with the durable log's end.
    fn report_persisted(&mut self, id: NodeId, print: bool) {
        let last = self.node(id).durable.last();
        let index = last.index;
        let effects = self.raft(id).expect("live").step(Input::Persisted { last });
        if print || !effects.is_empty() {
            self.out.event(format!("{id}: persisted up to {index}"));
        }
        self.apply(id, effects);
    }

    /// `crash ID`: the replica stops; its pending writes are lost.
    fn crash(&mut self, args: &Args) -> Result<(), String> {
        let id = self.one_node(args)?;
        self.raft(id)?;
        let node = self.node(id);
        node.raft = None;
        let lost: Vec<String> = std::mem::take(&mut node.pending)
            .into_iter()
            .map(|w| match w {
                Write::Hard(hard) => format!("hard state {}", format::hard_state(hard)),
                Write::Truncate(after) => format!("truncate after={}", format::position(after)),
                Write::Append(entries) => format!("append {}", format::entries(&entries)),
                Write::Reset { before_start, .. } => format!("reset-log start={}", before_start.index.next()),
            })
            .collect();
        if lost.is_empty() {
            self.out.event(format!("{id}: crashed (every write was durable)"));
        } else {
            self.out.event(format!("{id}: crashed, lost unpersisted: {}", lost.join(", ")));
        }
        Ok(())
    }

    /// `restart ID`: a crashed replica starts again from its durable state.
    fn restart(&mut self, args: &Args) -> Result<(), String> {
        let id = self.one_node(args)?;
        let node = self.node(id);
        if node.raft.is_some() {
            return Err(format!("node {id} is up"));
        }
        let durable = node.durable.clone();
        let log = RaftLog::recovered(durable.before_start, durable.entries, Offset(-1));
        let membership = durable.start_membership;
        node.raft = Some(Raft::new(node.config.clone(), membership.voters, membership.learners, durable.hard, log));
        let line = self.status_line(id);
        self.out.event(line);
        Ok(())
    }

    /// `log-start ID offset=N`: retention moved the replica's log start (`Input::LogStartMoved`).
    /// Retention deletes durable segments, so pending writes are made durable first.
    fn log_start(&mut self, args: &mut Args) -> Result<(), String> {
        let id = self.one_node(args)?;
        let log_start = Offset(args.take_parsed::<i64>("offset")?.ok_or("log-start needs offset=N")?);
        self.persist(id, false)?;
        let effects = self.raft(id)?.step(Input::LogStartMoved { log_start });
        let before_start = self.raft(id)?.log().before_start();
        let durable = &mut self.node(id).durable;
        let mut membership = durable.start_membership.clone();
        for entry in durable.entries.iter().filter(|e| e.index <= before_start.index) {
            if let EntryKind::Membership(change) = entry.kind {
                membership = membership.apply(change).expect("a logged change applies");
            }
        }
        durable.entries.retain(|e| e.index > before_start.index);
        durable.before_start = before_start;
        durable.start_membership = membership;
        self.apply(id, effects);
        let line = self.status_line(id);
        self.out.event(line);
        Ok(())
    }

    // ---- The effect loop ----

    fn step(&mut self, id: NodeId, input: Input) -> Result<(), String> {
        let effects = self.raft(id)?.step(input);
        self.apply(id, effects);
        Ok(())
    }

    /// Executes `id`'s effects in order (see the module comment for the contract).
    fn apply(&mut self, id: NodeId, effects: Vec<Effect>) {
        let mut synced = false;
        for effect in effects {
            if let Some(line) = format::local_effect(id, &effect) {
                self.out.event(line);
            }
            match effect {
                Effect::PersistHardState(hard) => self.node(id).pending.push(Write::Hard(hard)),
                Effect::Truncate { after } => self.node(id).pending.push(Write::Truncate(after)),
                Effect::Append { entries } => self.node(id).pending.push(Write::Append(entries)),
                Effect::ResetLog { before_start, membership } => {
                    let raft = self.raft(id).expect("live");
                    assert_eq!(raft.log().before_start(), before_start, "ResetLog names the core's new log start");
                    assert_eq!(raft.membership(), membership, "ResetLog names the core's membership");
                    self.node(id).pending.push(Write::Reset { before_start, membership });
                }
                Effect::Send(envelope) => {
                    if !self.node(id).pending.is_empty() {
                        self.flush(id);
                        synced = true;
                    }
                    self.out.message(format::envelope(&envelope));
                    self.network.push_back(envelope);
                }
                Effect::Replicate(envelope) => {
                    self.out.message(format::envelope(&envelope));
                    self.network.push_back(envelope);
                }
                Effect::Committed { index } => self.check_committed(id, index),
                Effect::LeaderChanged { leader, term, role } => {
                    if role == Role::Leader {
                        assert_eq!(leader, Some(id));
                        self.check_new_leader(id, term);
                    }
                }
            }
        }
        if synced {
            self.report_persisted(id, false);
        }
        if self.node(id).pending.is_empty() {
            self.check_mirror(id);
        }
    }

    // ---- Safety checks ----

    /// ShellMirrorsCore: with nothing pending, the durable state is the core's state.
    fn check_mirror(&mut self, id: NodeId) {
        let node = self.node(id);
        let Some(raft) = &node.raft else { return };
        let core: Vec<EntryMeta> = raft.log().entries().copied().collect();
        assert_eq!(node.durable.hard, raft.hard_state(), "node {id}: the effects' hard state is not the core's");
        assert_eq!(node.durable.before_start, raft.log().before_start(), "node {id}: log start differs");
        assert_eq!(node.durable.entries, core, "node {id}: replaying the effects does not give the core's log");
    }

    /// Election Safety and Leader Completeness.
    fn check_new_leader(&mut self, id: NodeId, term: Term) {
        if let Some(other) = self.leaders.insert(term, id) {
            assert_eq!(other, id, "Election Safety broken: {other} and {id} both led term {term}");
        }
        let raft = self.nodes[&id].raft.as_ref().expect("live");
        let before_start = raft.log().before_start().index;
        for entry in self.committed.values().filter(|e| e.index > before_start) {
            let held = raft.log().entries().any(|e| e == entry);
            assert!(held, "Leader Completeness broken: leader {id} of term {term} lacks committed {entry:?}");
        }
    }

    /// State Machine Safety (every replica commits the same entries) and durability on a
    /// majority of the committing replica's voters.
    fn check_committed(&mut self, id: NodeId, index: Offset) {
        let raft = self.nodes[&id].raft.as_ref().expect("live");
        let entries: Vec<EntryMeta> = raft.log().entries().filter(|e| e.index <= index).copied().collect();
        let before_start = raft.log().before_start().index;
        let voters = raft.voters().clone();
        // A commit index at the log start (after a reset) names no entry this log holds.
        let held = self.committed.range(Offset(before_start.0 + 1)..).take_while(|(at, _)| **at <= index);
        for (at, entry) in held {
            assert!(
                entries.contains(entry),
                "State Machine Safety broken: node {id} commits up to {index} without committed entry {entry:?} at {at}"
            );
        }
        for entry in entries {
            let known = *self.committed.entry(entry.index).or_insert(entry);
            assert_eq!(known, entry, "State Machine Safety broken: node {id} committed {entry:?}, another {known:?}");
        }
        let last =
            self.committed.range(..=index).next_back().map(|(_, e)| LogPosition { term: e.term, index: e.index });
        if let Some(position) = last.filter(|p| p.index == index) {
            let holders =
                voters.iter().filter(|v| self.nodes.get(v).is_some_and(|n| n.durable.holds(position))).count();
            assert!(
                holders > voters.len() / 2,
                "node {id} commits {} held durably by {holders} of {} voters",
                format::position(position),
                voters.len()
            );
        }
    }

    // ---- Views ----

    fn status_line(&self, id: NodeId) -> String {
        let node = &self.nodes[&id];
        let Some(raft) = &node.raft else {
            return format!(
                "{id}: down; durable {} last={} start={}",
                format::hard_state(node.durable.hard),
                format::position(node.durable.last()),
                node.durable.before_start.index.next()
            );
        };
        let membership = raft.membership();
        let hard = raft.hard_state();
        format!(
            "{id}: {} term={} vote={} leader={} last={} persisted={} commit={} start={} voters={} learners={}",
            format::role(raft.role()),
            hard.term,
            format::leader(hard.voted_for),
            format::leader(raft.leader()),
            format::position(raft.log().last()),
            raft.log().persisted(),
            raft.committed(),
            raft.log().log_start(),
            format::ids(&membership.voters),
            format::ids(&membership.learners)
        )
    }

    fn log_line(&self, id: NodeId) -> String {
        let node = &self.nodes[&id];
        match &node.raft {
            Some(raft) => format!(
                "{id}: start={} entries={} persisted={} commit={}",
                raft.log().log_start(),
                format::entries(raft.log().entries()),
                raft.log().persisted(),
                raft.committed()
            ),
            None => format!(
                "{id}: down; durable start={} entries={}",
                node.durable.before_start.index.next(),
                format::entries(&node.durable.entries)
            ),
        }
    }
}
