//! Three replica shells over real partition logs (StdDisk in temporary directories) and an
//! in-memory network: elect, replicate producer batches, commit them, and end with
//! byte-identical logs; a follower with a divergent suffix is truncated to the leader's log
//! (Raft §5.3); a restarted replica rebuilds its Raft view from its log.

use super::replica::{Outgoing, Replica};
use bytes::{Bytes, BytesMut};
use sluice_io::{File, StdDisk};
use sluice_protocol::records::{BatchOptions, Record, encode_batch};
use sluice_raft::{Config, Input, Membership, Message, Role};
use sluice_storage::{LogConfig, PartitionLog};
use sluice_types::{Compression, NodeId, Offset};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use tempfile::TempDir;

const NOW_MS: i64 = 1_700_000_000_000;
/// Rounds of deliver-and-flush before a test gives up (a livelock).
const ROUNDS_MAX: usize = 1_000;

struct Node {
    replica: Replica,
    log: PartitionLog<StdDisk>,
    _dir: TempDir,
    dir_path: std::path::PathBuf,
    high_watermark: Offset,
}

struct Group {
    nodes: BTreeMap<NodeId, Node>,
    network: VecDeque<Outgoing>,
    /// Links that drop everything (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
}

fn config(id: NodeId) -> Config {
    let mut config = Config::new(id);
    config.election_timeout_ticks_min = 10;
    config
}

fn membership() -> Membership {
    Membership { voters: [1, 2, 3].into_iter().map(NodeId).collect(), learners: BTreeSet::new() }
}

fn producer_batch(values: &[&str]) -> BytesMut {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(at, value)| Record {
            offset_delta: at as i32,
            timestamp_delta: 0,
            key: None,
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Vec::new(),
        })
        .collect();
    let options = BatchOptions { base_timestamp: NOW_MS, ..BatchOptions::default() };
    BytesMut::from(&encode_batch(&records, Compression::None, &options).unwrap()[..])
}

impl Group {
    async fn new() -> Group {
        let mut nodes = BTreeMap::new();
        for id in [1, 2, 3].map(NodeId) {
            let dir = tempfile::tempdir().unwrap();
            let dir_path = dir.path().to_path_buf();
            let log = PartitionLog::open(StdDisk, &dir_path, LogConfig::default(), NOW_MS).await.unwrap();
            let replica = Replica::open(config(id), &StdDisk, &dir_path, &log, membership()).await.unwrap();
            nodes.insert(id, Node { replica, log, _dir: dir, dir_path, high_watermark: Offset(0) });
        }
        Group { nodes, network: VecDeque::new(), cut: BTreeSet::new() }
    }

    async fn input(&mut self, id: NodeId, input: Input, received: BTreeMap<Offset, Bytes>) {
        let node = self.nodes.get_mut(&id).unwrap();
        let mut out = Vec::new();
        let executed = node.replica.step(input, &StdDisk, &mut node.log, &received, NOW_MS, &mut out).await.unwrap();
        if let Some(index) = executed.committed {
            node.high_watermark = index.next();
        }
        self.network.extend(out);
    }

    async fn flush(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let Some(plan) = node.log.flush_plan() else { return };
        let term = node.log.latest_epoch().unwrap_or(sluice_types::Term(-1));
        for file in &plan.files {
            file.sync_data().await.unwrap();
        }
        assert!(node.log.complete_flush_plan(&plan, NOW_MS).await.unwrap(), "no truncation raced this flush");
        let mut out = Vec::new();
        let executed =
            node.replica.flushed(plan.end_offset, term, &StdDisk, &mut node.log, NOW_MS, &mut out).await.unwrap();
        if let Some(index) = executed.committed {
            node.high_watermark = index.next();
        }
        self.network.extend(out);
    }

    /// Delivers and flushes until nothing is in flight and nothing is unflushed.
    async fn settle(&mut self) {
        for _ in 0..ROUNDS_MAX {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.flush(id).await;
            }
            let Some(outgoing) = self.network.pop_front() else {
                let quiet = self.nodes.values().all(|n| n.log.flush_plan().is_none() && n.replica.held_len() == 0);
                if quiet {
                    return;
                }
                continue;
            };
            let Outgoing { envelope, batches } = outgoing;
            if self.cut.contains(&(envelope.from, envelope.to)) || !self.nodes.contains_key(&envelope.to) {
                continue;
            }
            let mut received = BTreeMap::new();
            if let Message::AppendEntries { entries, .. } = &envelope.message {
                assert_eq!(entries.len(), batches.len(), "every entry travels with its batch");
                for (entry, batch) in entries.iter().zip(batches) {
                    received.insert(entry.index, batch);
                }
            }
            self.input(envelope.to, Input::Receive(envelope), received).await;
        }
        panic!("the group did not settle in {ROUNDS_MAX} rounds");
    }

    async fn elect(&mut self, id: NodeId) {
        self.input(id, Input::Campaign, BTreeMap::new()).await;
        self.settle().await;
        assert_eq!(self.nodes[&id].replica.raft().role(), Role::Leader);
    }

    async fn produce(&mut self, leader: NodeId, values: &[&str]) -> (Offset, Offset) {
        let node = self.nodes.get_mut(&leader).unwrap();
        let mut out = Vec::new();
        let batch = producer_batch(values);
        let proposed = node
            .replica
            .propose(batch, values.len() as u32, &StdDisk, &mut node.log, NOW_MS, &mut out)
            .await
            .unwrap()
            .expect("the leader accepts");
        self.network.extend(out);
        (proposed.0, proposed.1)
    }

    async fn log_bytes(&self, id: NodeId) -> Bytes {
        let log = &self.nodes[&id].log;
        let mut all = BytesMut::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let read = log.read(offset, 1 << 20, log.log_end_offset()).await.unwrap();
            for batch in sluice_types::batch::batches(&read.records) {
                let (header, range) = batch.unwrap();
                all.extend_from_slice(&read.records[range]);
                offset = header.next_offset();
            }
        }
        all.freeze()
    }
}

#[tokio::test]
async fn three_replicas_commit_producer_batches_and_hold_identical_logs() {
    let mut group = Group::new().await;
    group.elect(NodeId(1)).await;
    let first = group.produce(NodeId(1), &["a", "b", "c"]).await;
    let second = group.produce(NodeId(1), &["d"]).await;
    assert_eq!(first, (Offset(1), Offset(3)), "offset 0 is the leader's no-op control batch");
    assert_eq!(second, (Offset(4), Offset(4)));
    group.settle().await;
    for node in group.nodes.values() {
        assert_eq!(node.high_watermark, Offset(5), "everything committed everywhere");
        assert_eq!(node.log.log_end_offset(), Offset(5));
    }
    let leader_log = group.log_bytes(NodeId(1)).await;
    let leader_entries: Vec<_> = group.nodes[&NodeId(1)].replica.raft().log().entries().copied().collect();
    for id in [2, 3].map(NodeId) {
        assert_eq!(group.log_bytes(id).await, leader_log, "follower {id:?} holds the leader's bytes");
        let entries: Vec<_> = group.nodes[&id].replica.raft().log().entries().copied().collect();
        assert_eq!(entries, leader_entries, "follower {id:?} records the leader's entry metadata");
    }
}

#[tokio::test]
async fn a_follower_loses_its_uncommitted_suffix_to_the_new_leader() {
    let mut group = Group::new().await;
    group.elect(NodeId(1)).await;
    group.produce(NodeId(1), &["committed"]).await;
    group.settle().await;
    // Node 1 appends a batch nobody else receives, then node 2 takes over and writes its own.
    for to in [2, 3] {
        group.cut.insert((NodeId(1), NodeId(to)));
    }
    group.produce(NodeId(1), &["lost-1", "lost-2"]).await;
    group.settle().await;
    assert_eq!(group.nodes[&NodeId(1)].log.log_end_offset(), Offset(4));
    // Nodes 2 and 3 stop hearing node 1: 3's leader lease runs out (thesis §4.2.3) without its
    // own timeout firing, and 2 times out and campaigns.
    for _ in 0..10 {
        group.input(NodeId(3), Input::Tick { randomized_election_timeout_ticks: 19 }, BTreeMap::new()).await;
        group.input(NodeId(2), Input::Tick { randomized_election_timeout_ticks: 10 }, BTreeMap::new()).await;
    }
    group.settle().await;
    assert_eq!(group.nodes[&NodeId(2)].replica.raft().role(), Role::Leader);
    group.produce(NodeId(2), &["kept"]).await;
    group.settle().await;
    group.cut.clear();
    // The new leader's heartbeat reaches node 1, which truncates and catches up.
    group.input(NodeId(2), Input::Tick { randomized_election_timeout_ticks: 10 }, BTreeMap::new()).await;
    group.settle().await;
    let leader_log = group.log_bytes(NodeId(2)).await;
    for id in [1, 3].map(NodeId) {
        assert_eq!(group.log_bytes(id).await, leader_log, "replica {id:?} converged on the leader's log");
        assert_eq!(group.nodes[&id].high_watermark, group.nodes[&NodeId(2)].high_watermark);
    }
}

#[tokio::test]
async fn a_restarted_replica_rebuilds_its_raft_view_from_the_log() {
    let mut group = Group::new().await;
    group.elect(NodeId(1)).await;
    group.produce(NodeId(1), &["x", "y"]).await;
    group.settle().await;
    let node = group.nodes.remove(&NodeId(3)).unwrap();
    let Node { mut log, _dir, dir_path, .. } = node;
    log.close(NOW_MS).await.unwrap();
    drop(log);
    let log = PartitionLog::open(StdDisk, &dir_path, LogConfig::default(), NOW_MS).await.unwrap();
    let replica = Replica::open(config(NodeId(3)), &StdDisk, &dir_path, &log, membership()).await.unwrap();
    let raft = replica.raft();
    assert_eq!(raft.log().last().index, Offset(2));
    assert_eq!(raft.term(), group.nodes[&NodeId(1)].replica.raft().term(), "the hard state survived");
    assert_eq!(raft.log().entries().count(), 2, "the no-op and one producer batch");
    group.nodes.insert(NodeId(3), Node { replica, log, _dir, dir_path, high_watermark: Offset(0) });
    group.produce(NodeId(1), &["z"]).await;
    group.settle().await;
    assert_eq!(group.nodes[&NodeId(3)].high_watermark, Offset(4));
}
