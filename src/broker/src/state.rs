//! The state every request handler shares: config, seams, topics, the flusher queue, the
//! cluster identity and the producer id allocator.
//!
//! `cluster.json` holds the cluster id and the next unreserved producer id block. Producer ids
//! are handed out from a reserved block and a new block is made durable before its first id is
//! used, so an id is never handed out twice across restarts (Kafka: ProducerIdsRecord).

use crate::cluster::ClusterHandle;
use crate::config::BrokerConfig;
use crate::consumer_groups::GroupCoordinators;
use crate::flusher::FlushQueue;
use crate::limits::{PRODUCER_ID_BLOCK_SIZE, REQUEST_BYTES_BUFFERED_MAX};
use crate::topics::TopicRegistry;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_io::{Clock, Disk, read_file, write_file_atomic};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::Semaphore;

const CLUSTER_FILE: &str = "cluster.json";
/// Cluster mode: producer ids of node N start at `N << PRODUCER_ID_NODE_SHIFT` (2^40 ids each).
const PRODUCER_ID_NODE_SHIFT: u32 = 40;

#[derive(Serialize, Deserialize, Clone)]
struct ClusterFile {
    cluster_id: String,
    node_id: i32,
    next_producer_id_block: i64,
}

pub struct BrokerState<D: Disk, C: Clock> {
    pub config: BrokerConfig,
    pub disk: D,
    pub clock: C,
    pub topics: TopicRegistry<D>,
    pub flush: FlushQueue<D>,
    pub cluster_id: String,
    producer_ids: tokio::sync::Mutex<ProducerIds>,
    /// True once start-up recovery finished and the listeners are up.
    pub ready: AtomicBool,
    /// Permits for request bytes held in memory, `queued_max_request_bytes` in all.
    pub request_bytes: Arc<Semaphore>,
    /// The multi-raft driver's handle in cluster mode.
    pub cluster: Option<ClusterHandle<D>>,
    /// The consumer group coordinators of the `__consumer_offsets` partitions this broker leads.
    pub groups: GroupCoordinators<D>,
}

struct ProducerIds {
    next: i64,
    block_end: i64,
    file: ClusterFile,
    path: PathBuf,
}

impl<D: Disk, C: Clock> BrokerState<D, C> {
    pub async fn open(
        config: BrokerConfig,
        disk: D,
        clock: C,
        flush: FlushQueue<D>,
        cluster: Option<ClusterHandle<D>>,
    ) -> anyhow::Result<BrokerState<D, C>> {
        let topics = match cluster {
            Some(_) => TopicRegistry::open_cluster(disk.clone(), &config.data_dir).await?,
            None => TopicRegistry::open(disk.clone(), &config.data_dir, &clock).await?,
        };
        let path = config.data_dir.join(CLUSTER_FILE);
        let file = match read_file(&disk, &path).await? {
            Some(bytes) => serde_json::from_slice::<ClusterFile>(&bytes)
                .map_err(|e| anyhow::anyhow!("{CLUSTER_FILE} is corrupt: {e}"))?,
            None => {
                let file = ClusterFile {
                    cluster_id: derive_cluster_id(clock.wall_ms(), config.node_id),
                    node_id: config.node_id,
                    next_producer_id_block: 0,
                };
                write_file_atomic(&disk, &path, Bytes::from(serde_json::to_vec(&file)?)).await?;
                file
            }
        };
        anyhow::ensure!(
            file.node_id == config.node_id,
            "data dir belongs to node {} but this is node {}",
            file.node_id,
            config.node_id
        );
        // In a cluster every broker hands out producer ids from its own range (the node id in
        // the high bits), so two brokers never give out the same id. Kafka allocates blocks
        // through the controller instead (KIP-730); this keeps ids unique without a round trip.
        let range_base = if cluster.is_some() { i64::from(config.node_id) << PRODUCER_ID_NODE_SHIFT } else { 0 };
        let next = file.next_producer_id_block.max(range_base);
        let queued_max_request_bytes = config.queued_max_request_bytes.min(REQUEST_BYTES_BUFFERED_MAX);
        anyhow::ensure!(
            queued_max_request_bytes >= config.socket_request_max_bytes,
            "queued.max.request.bytes must hold one frame of socket.request.max.bytes"
        );
        let groups =
            GroupCoordinators::new(config.group.clone(), config.offsets_topic_num_partitions, config.node_id, &clock);
        Ok(BrokerState {
            config,
            disk,
            clock,
            topics,
            flush,
            // Every broker of a cluster must report one cluster id: derive it from the peers.
            cluster_id: match &cluster {
                Some(handle) => {
                    let peers = format!("{:?}", handle.config.peers);
                    derive_cluster_id(i64::from(crc32fast::hash(peers.as_bytes())), 0)
                }
                None => file.cluster_id.clone(),
            },
            producer_ids: tokio::sync::Mutex::new(ProducerIds { next, block_end: next, file, path }),
            ready: AtomicBool::new(false),
            request_bytes: Arc::new(Semaphore::new(queued_max_request_bytes as usize)),
            groups,
            cluster,
        })
    }

    /// A producer id never handed out before (InitProducerId, KIP-98).
    pub async fn allocate_producer_id(&self) -> anyhow::Result<i64> {
        let mut ids = self.producer_ids.lock().await;
        if ids.next == ids.block_end {
            let mut file = ids.file.clone();
            file.next_producer_id_block = ids.block_end + PRODUCER_ID_BLOCK_SIZE;
            write_file_atomic(&self.disk, &ids.path, Bytes::from(serde_json::to_vec(&file)?)).await?;
            ids.block_end = file.next_producer_id_block;
            ids.file = file;
        }
        let id = ids.next;
        ids.next += 1;
        assert!(ids.next <= ids.block_end, "producer id beyond its durable block");
        Ok(id)
    }
}

/// A 22-character cluster id in Kafka's style (base64url of 16 bytes), derived from the first
/// start's wall time and node id rather than an unseeded random source.
fn derive_cluster_id(wall_ms: i64, node_id: i32) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state = (wall_ms as u64) ^ ((node_id as u64) << 48) ^ SPLITMIX64_GAMMA;
    (0..22)
        .map(|_| {
            // Spreads the seed over every character.
            let z = splitmix64(state);
            state = state.wrapping_add(SPLITMIX64_GAMMA);
            ALPHABET[(z % 64) as usize] as char
        })
        .collect()
}

const SPLITMIX64_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// One splitmix64 output for `seed` (Steele, Lea, Flood 2014): a seeded, well-spread 64-bit
/// value, for ids derived without an unseeded random source.
pub(crate) fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(SPLITMIX64_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
