//! The topic registry of a single broker: which topics exist, their partitions and configs,
//! kept durable in `{data_dir}/topics.json`.
//!
//! This is the one-node stand-in for the controller's metadata state machine (issue 4 moves it
//! into `src/meta`, replicated by the controller Raft group). Ordering rules that keep it
//! consistent across crashes:
//! - create: write topics.json first, then open (create) the partition logs; a log directory
//!   that is missing at startup is created empty, never a problem;
//! - delete: write topics.json without the topic first, then delete the log directories;
//!   at startup a partition directory of an unknown topic is deleted, so a topic re-created
//!   with the same name never sees old data.
//!
//! Invariant: a `Topic` value is immutable; changes replace the `Arc<Topic>` under the admin
//! lock, so readers see either the old or the new topic, never a mix.

use crate::limits::{PARTITIONS_PER_TOPIC_MAX, TOPICS_MAX};
use crate::partition::Partition;
use crate::topic_config::TopicConfig;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sluice_io::{Clock, Disk, read_file, write_file_atomic};
use sluice_storage::PartitionLog;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use uuid::Uuid;

const TOPICS_FILE: &str = "topics.json";
/// Cluster mode: the topic id a partition directory belongs to (Kafka's `partition.metadata`).
const PARTITION_METADATA_FILE: &str = "partition.metadata";

pub struct Topic<D: Disk> {
    pub name: String,
    pub topic_id: Uuid,
    pub config: TopicConfig,
    /// Invariant: `partitions[i].index == i`.
    pub partitions: Vec<Arc<Partition<D>>>,
}

#[derive(Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    topic_id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Default)]
struct TopicsFile {
    version: u32,
    topics: Vec<TopicRecord>,
}

/// Why a topic operation failed; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic already exists")]
    AlreadyExists,
    #[error("unknown topic")]
    Unknown,
    #[error("invalid topic name: {0}")]
    InvalidName(String),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("storage: {0}")]
    Storage(String),
}

/// Kafka's topic name rule (1..=249 bytes of `[a-zA-Z0-9._-]`, not "." or ".."), as the
/// metadata state machine enforces it.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    sluice_meta::validate_topic_name(name)
        .map_err(|_| TopicError::InvalidName(format!("'{name}' must be 1-249 characters of [a-zA-Z0-9._-]")))
}

pub struct TopicRegistry<D: Disk> {
    disk: D,
    data_dir: PathBuf,
    topics: RwLock<BTreeMap<String, Arc<Topic<D>>>>,
    /// Serializes every change and its write to topics.json.
    admin: tokio::sync::Mutex<()>,
}

fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

fn storage_error(error: impl std::fmt::Display) -> TopicError {
    TopicError::Storage(error.to_string())
}

impl<D: Disk> TopicRegistry<D> {
    /// Cluster mode: an empty registry that the controller log fills (`cluster/metadata.rs`
    /// installs and removes topics). topics.json is not read, and no directory is treated as
    /// an orphan here: which topics exist is known only once the committed log is applied.
    pub async fn open_cluster(disk: D, data_dir: &Path) -> Result<TopicRegistry<D>, TopicError> {
        disk.create_dir_all(data_dir).await.map_err(storage_error)?;
        if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            disk.sync_dir(parent).await.map_err(storage_error)?;
        }
        Ok(TopicRegistry {
            disk,
            data_dir: data_dir.to_path_buf(),
            topics: RwLock::new(BTreeMap::new()),
            admin: tokio::sync::Mutex::new(()),
        })
    }

    /// Cluster mode: opens (recovers or creates) one partition's log for topic id `topic_id`.
    ///
    /// The directory names only the topic name, so a broker that was down while a topic was
    /// deleted and created again would find the old incarnation's log under the new topic's
    /// name, with terms that may collide with the new group's (breaking Raft's Log Matching
    /// property). Each directory therefore records its topic id in `partition.metadata` (as
    /// Kafka does, KIP-516); a directory of another id is wiped before it is opened.
    pub async fn open_log(
        &self,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        config: &TopicConfig,
        now_ms: i64,
    ) -> Result<PartitionLog<D>, TopicError> {
        let dir = partition_dir(&self.data_dir, topic, index);
        let marker = dir.join(PARTITION_METADATA_FILE);
        let recorded = read_file(&self.disk, &marker).await.map_err(storage_error)?;
        let expected = format!("{{\"version\":1,\"topic_id\":\"{topic_id}\"}}");
        if let Some(recorded) = recorded
            && recorded != expected.as_bytes()
        {
            tracing::warn!(dir = %dir.display(), "partition directory of another topic incarnation; deleting it");
            self.empty_dir(&dir).await?;
        }
        let log =
            PartitionLog::open(self.disk.clone(), &dir, config.log.clone(), now_ms).await.map_err(storage_error)?;
        write_file_atomic(&self.disk, &marker, Bytes::from(expected)).await.map_err(storage_error)?;
        Ok(log)
    }

    /// Cluster mode: this broker no longer hosts a replica of `partition` (a reassignment moved
    /// it away): deletes the log, the Raft state and the start record, and opens an empty log in
    /// their place. Holds the log lock throughout, so no append or read sees a half-deleted log.
    pub async fn wipe_partition(
        &self,
        partition: &Partition<D>,
        topic_id: Uuid,
        config: &TopicConfig,
        now_ms: i64,
    ) -> Result<(), TopicError> {
        let dir = partition_dir(&self.data_dir, &partition.topic, partition.index);
        let mut log = partition.lock().await;
        self.empty_dir(&dir).await?;
        *log = PartitionLog::open(self.disk.clone(), &dir, config.log.clone(), now_ms).await.map_err(storage_error)?;
        let marker = format!("{{\"version\":1,\"topic_id\":\"{topic_id}\"}}");
        write_file_atomic(&self.disk, &dir.join(PARTITION_METADATA_FILE), Bytes::from(marker))
            .await
            .map_err(storage_error)?;
        partition.reset_after_wipe(&log);
        Ok(())
    }

    /// Whether a partition directory holds anything but its `partition.metadata`.
    pub async fn has_data(&self, topic: &str, index: i32) -> Result<bool, TopicError> {
        let dir = partition_dir(&self.data_dir, topic, index);
        let paths = match self.disk.list_dir(&dir).await {
            Ok(paths) => paths,
            Err(_) => return Ok(false), // No directory yet.
        };
        Ok(paths.iter().any(|path| path.file_name() != Some(std::ffi::OsStr::new(PARTITION_METADATA_FILE))))
    }

    async fn empty_dir(&self, dir: &std::path::Path) -> Result<(), TopicError> {
        for path in self.disk.list_dir(dir).await.map_err(storage_error)? {
            self.disk.remove_file(&path).await.map_err(storage_error)?;
        }
        self.disk.sync_dir(dir).await.map_err(storage_error)
    }

    /// Cluster mode: adds or replaces a topic (readers see the old or the new value).
    pub fn install(&self, topic: Arc<Topic<D>>) {
        self.topics.write().expect("lock").insert(topic.name.clone(), topic);
    }

    /// Cluster mode: unregisters a topic and deletes its partition directories.
    pub async fn remove_topic(&self, name: &str) -> Result<(), TopicError> {
        let topic = self.topics.write().expect("lock").remove(name).ok_or(TopicError::Unknown)?;
        self.delete_partition_dirs(&topic).await
    }

    async fn delete_partition_dirs(&self, topic: &Topic<D>) -> Result<(), TopicError> {
        for partition in &topic.partitions {
            let dir = partition_dir(&self.data_dir, &topic.name, partition.index);
            // Hold the log lock while deleting so no in-flight append races the deletion.
            let _log = partition.lock().await;
            for path in self.disk.list_dir(&dir).await.map_err(storage_error)? {
                self.disk.remove_file(&path).await.map_err(storage_error)?;
            }
            self.disk.remove_dir(&dir).await.map_err(storage_error)?;
        }
        self.disk.sync_dir(&self.data_dir).await.map_err(storage_error)?;
        Ok(())
    }

    /// Loads topics.json, opens (recovers) every partition log, and deletes orphan partitions.
    pub async fn open<C: Clock>(disk: D, data_dir: &Path, clock: &C) -> Result<TopicRegistry<D>, TopicError> {
        disk.create_dir_all(data_dir).await.map_err(storage_error)?;
        // A new directory's name is durable only once its parent is synced.
        if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            disk.sync_dir(parent).await.map_err(storage_error)?;
        }
        let file: TopicsFile = match read_file(&disk, &data_dir.join(TOPICS_FILE)).await.map_err(storage_error)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .unwrap_or_else(|error| panic!("{TOPICS_FILE} is corrupt ({error}); refusing to start")),
            None => TopicsFile::default(),
        };
        let registry = TopicRegistry {
            disk,
            data_dir: data_dir.to_path_buf(),
            topics: RwLock::new(BTreeMap::new()),
            admin: tokio::sync::Mutex::new(()),
        };
        let mut topics = BTreeMap::new();
        for record in file.topics {
            let config = TopicConfig::from_overrides(record.configs)
                .unwrap_or_else(|error| panic!("{TOPICS_FILE}: topic {}: {error}", record.name));
            let mut partitions = Vec::new();
            for index in 0..record.partitions {
                partitions.push(registry.open_partition(&record.name, index, &config, clock).await?);
            }
            let topic = Topic { name: record.name.clone(), topic_id: record.topic_id, config, partitions };
            topics.insert(record.name, Arc::new(topic));
        }
        *registry.topics.write().expect("lock") = topics;
        registry.delete_orphans().await?;
        Ok(registry)
    }

    async fn open_partition<C: Clock>(
        &self,
        topic: &str,
        index: i32,
        config: &TopicConfig,
        clock: &C,
    ) -> Result<Arc<Partition<D>>, TopicError> {
        let dir = partition_dir(&self.data_dir, topic, index);
        let log = PartitionLog::open(self.disk.clone(), &dir, config.log.clone(), clock.wall_ms())
            .await
            .map_err(storage_error)?;
        Ok(Arc::new(Partition::new(topic.to_string(), index, log)))
    }

    /// Deletes partition directories whose topic (or partition index) is not registered.
    async fn delete_orphans(&self) -> Result<(), TopicError> {
        let known = self.topics.read().expect("lock").clone();
        for path in self.disk.list_dir(&self.data_dir).await.map_err(storage_error)? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let Some((topic, index)) = name.rsplit_once('-') else { continue };
            let Ok(index) = index.parse::<i32>() else { continue };
            let registered = known.get(topic).is_some_and(|t| index >= 0 && (index as usize) < t.partitions.len());
            let is_log = self.disk.exists(&path.join(sluice_storage::CHECKPOINT_FILE)).await.map_err(storage_error)?;
            if !registered && is_log {
                tracing::warn!(dir = %path.display(), "deleting partition of a deleted topic");
                let log =
                    PartitionLog::open(self.disk.clone(), &path, Default::default(), 0).await.map_err(storage_error)?;
                log.delete().await.map_err(storage_error)?;
            }
        }
        Ok(())
    }

    async fn persist(&self, topics: &BTreeMap<String, Arc<Topic<D>>>) -> Result<(), TopicError> {
        self.persist_with_counts(topics, "", 0).await
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic<D>>> {
        self.topics.read().expect("lock").get(name).cloned()
    }

    pub fn get_by_id(&self, topic_id: Uuid) -> Option<Arc<Topic<D>>> {
        self.topics.read().expect("lock").values().find(|t| t.topic_id == topic_id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Topic<D>>> {
        self.topics.read().expect("lock").values().cloned().collect()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition<D>>> {
        let topic = self.get(topic)?;
        usize::try_from(index).ok().and_then(|i| topic.partitions.get(i).cloned())
    }

    pub fn partition_count(&self) -> usize {
        self.topics.read().expect("lock").values().map(|t| t.partitions.len()).sum()
    }

    /// Creates a topic (durably) and its partition logs. `validate_only` checks and stops.
    pub async fn create<C: Clock>(
        &self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
        validate_only: bool,
        clock: &C,
    ) -> Result<Arc<Topic<D>>, TopicError> {
        validate_topic_name(name)?;
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err(TopicError::InvalidPartitions(format!(
                "{partitions} is not in 1..={PARTITIONS_PER_TOPIC_MAX}"
            )));
        }
        let _admin = self.admin.lock().await;
        let mut topics = self.topics.read().expect("lock").clone();
        if topics.contains_key(name) {
            return Err(TopicError::AlreadyExists);
        }
        if topics.len() >= TOPICS_MAX {
            return Err(TopicError::InvalidPartitions(format!("the broker holds {TOPICS_MAX} topics")));
        }
        if validate_only {
            return Ok(Arc::new(Topic {
                name: name.to_string(),
                topic_id: Uuid::nil(),
                config,
                partitions: Vec::new(),
            }));
        }
        let topic_id = derive_topic_id(name, clock.wall_ms(), topics.len());
        let unopened = Topic { name: name.to_string(), topic_id, config: config.clone(), partitions: Vec::new() };
        topics.insert(name.to_string(), Arc::new(unopened));
        self.persist_with_counts(&topics, name, partitions).await?;
        let mut opened = Vec::new();
        for index in 0..partitions {
            opened.push(self.open_partition(name, index, &config, clock).await?);
        }
        let topic = Arc::new(Topic { name: name.to_string(), topic_id, config, partitions: opened });
        topics.insert(name.to_string(), topic.clone());
        *self.topics.write().expect("lock") = topics;
        Ok(topic)
    }

    /// Persists `topics`, reporting `count` partitions for `name` (whose logs are not open yet).
    async fn persist_with_counts(
        &self,
        topics: &BTreeMap<String, Arc<Topic<D>>>,
        name: &str,
        count: i32,
    ) -> Result<(), TopicError> {
        let file = TopicsFile {
            version: 1,
            topics: topics
                .values()
                .map(|t| TopicRecord {
                    name: t.name.clone(),
                    topic_id: t.topic_id,
                    partitions: if t.name == name { count } else { t.partitions.len() as i32 },
                    configs: t.config.overrides.clone(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("topics serialize");
        write_file_atomic(&self.disk, &self.data_dir.join(TOPICS_FILE), Bytes::from(bytes)).await.map_err(storage_error)
    }

    /// Deletes a topic: durably unregisters it, then deletes its logs.
    pub async fn delete(&self, name: &str) -> Result<(), TopicError> {
        let _admin = self.admin.lock().await;
        let mut topics = self.topics.read().expect("lock").clone();
        let topic = topics.remove(name).ok_or(TopicError::Unknown)?;
        self.persist(&topics).await?;
        *self.topics.write().expect("lock") = topics;
        self.delete_partition_dirs(&topic).await
    }

    /// Raises a topic's partition count (CreatePartitions).
    pub async fn add_partitions<C: Clock>(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
        clock: &C,
    ) -> Result<(), TopicError> {
        let _admin = self.admin.lock().await;
        let topic = self.get(name).ok_or(TopicError::Unknown)?;
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic has {current} partitions; the count can only grow"
            )));
        }
        if count > PARTITIONS_PER_TOPIC_MAX {
            return Err(TopicError::InvalidPartitions(format!("{count} exceeds {PARTITIONS_PER_TOPIC_MAX}")));
        }
        if validate_only {
            return Ok(());
        }
        let mut topics = self.topics.read().expect("lock").clone();
        self.persist_with_counts(&topics, name, count).await?;
        let mut partitions = topic.partitions.clone();
        for index in current..count {
            partitions.push(self.open_partition(name, index, &topic.config, clock).await?);
        }
        let updated = Arc::new(Topic { partitions, ..clone_topic(&topic) });
        topics.insert(name.to_string(), updated);
        *self.topics.write().expect("lock") = topics;
        Ok(())
    }

    /// Replaces a topic's config overrides and applies them to every partition log.
    pub async fn set_config(&self, name: &str, config: TopicConfig, validate_only: bool) -> Result<(), TopicError> {
        let _admin = self.admin.lock().await;
        let topic = self.get(name).ok_or(TopicError::Unknown)?;
        if validate_only {
            return Ok(());
        }
        let mut topics = self.topics.read().expect("lock").clone();
        let updated = Arc::new(Topic { config: config.clone(), ..clone_topic(&topic) });
        topics.insert(name.to_string(), updated);
        self.persist(&topics).await?;
        *self.topics.write().expect("lock") = topics;
        for partition in &topic.partitions {
            let mut log = partition.lock().await;
            log.set_config(config.log.clone());
            partition.publish(&log);
        }
        Ok(())
    }
}

fn clone_topic<D: Disk>(topic: &Topic<D>) -> Topic<D> {
    Topic {
        name: topic.name.clone(),
        topic_id: topic.topic_id,
        config: topic.config.clone(),
        partitions: topic.partitions.clone(),
    }
}

/// A topic id that is unique per (name, creation time, registry size) without a random source:
/// randomness on broker paths must be seeded (DESIGN.md, determinism), and ids only need to
/// differ between incarnations of a name.
fn derive_topic_id(name: &str, wall_ms: i64, ordinal: usize) -> Uuid {
    let mut high = crc32fast::hash(name.as_bytes()) as u64;
    high = (high << 32) | (ordinal as u64 & 0xffff_ffff);
    let low = wall_ms as u64 ^ (crc32fast::hash(&wall_ms.to_le_bytes()) as u64) << 32;
    let id = Uuid::from_u64_pair(high, low);
    if id.is_nil() { Uuid::from_u64_pair(1, 1) } else { id }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use sluice_io::StdDisk;
    use sluice_protocol::records::{BatchOptions, Record, encode_batch};
    use sluice_types::{Compression, Term};

    fn one_record() -> BytesMut {
        let record = Record {
            offset_delta: 0,
            timestamp_delta: 0,
            key: None,
            value: Some(Bytes::from_static(b"old incarnation")),
            headers: Vec::new(),
        };
        let batch = encode_batch(&[record], Compression::None, &BatchOptions::default()).expect("encodes");
        BytesMut::from(&batch[..])
    }

    #[tokio::test]
    async fn a_partition_dir_of_another_topic_id_is_wiped_before_it_opens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let registry = TopicRegistry::open_cluster(StdDisk, dir.path()).await.expect("registry");
        let config = TopicConfig::default();
        let (old_id, new_id) = (Uuid::from_u64_pair(1, 1), Uuid::from_u64_pair(2, 2));
        let mut log = registry.open_log("t", old_id, 0, &config, 0).await.expect("open");
        log.append(one_record(), Term(1), 0).await.expect("append");
        log.close(0).await.expect("close");
        drop(log);
        let same = registry.open_log("t", old_id, 0, &config, 0).await.expect("reopen");
        assert_eq!(same.log_end_offset(), sluice_types::Offset(1), "the same incarnation keeps its log");
        drop(same);
        let fresh = registry.open_log("t", new_id, 0, &config, 0).await.expect("open new incarnation");
        assert_eq!(fresh.log_end_offset(), sluice_types::Offset(0), "another incarnation's log is gone");
        assert_eq!(fresh.log_start_offset(), sluice_types::Offset(0));
    }
}
