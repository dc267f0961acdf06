//! The offset reset of `kafka-consumer-groups --reset-offsets` (KIP-122), which `sluice group
//! seek` runs: which partitions of a group move, and to which offset.
//!
//! A plan is computed from the group's committed offsets (OffsetFetch) and each partition's
//! log bounds (ListOffsets) and commits nothing; committing it ([`Client::commit_offsets`], a
//! standalone commit) executes it, and the coordinator takes it only while the group has no
//! members. The decisions are pure functions ([`seek_offset`], [`seek_partitions`]), tested
//! here; Kafka's rules they follow: an explicit offset outside the log moves to its nearer end
//! (`checkOffsetsRange`), a timestamp newer than every record means the log end.

use std::collections::BTreeMap;

use sluice_types::{Offset, PartitionId};

use crate::client::Client;
use crate::error::{ClientError, KafkaError, Result};
use crate::fetch::OffsetSpec;
use crate::groups::by_topic;

/// Where `kafka-consumer-groups --reset-offsets` moves a group (KIP-122).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekTarget {
    /// The log start offset (`--to-earliest`).
    Start,
    /// The log end offset (`--to-latest`).
    End,
    /// The first offset with a timestamp at or after this one, in ms (`--to-datetime`).
    Timestamp(i64),
    /// This offset, moved into the log's range (`--to-offset`).
    Offset(Offset),
}

/// What a seek needs to know of one partition's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeekBounds {
    pub log_start: Offset,
    pub log_end: Offset,
    /// ListOffsets by the target's timestamp; `None` when no record is that new.
    pub at_timestamp: Option<Offset>,
}

/// One line of a reset plan: the group's offset now and the one it would commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedSeek {
    pub topic: String,
    pub partition: PartitionId,
    pub current: Option<Offset>,
    pub new: Offset,
}

/// The offset a seek commits for one partition (Kafka's `ResetOffsetsCommand`): an explicit
/// offset outside the log is moved to its nearer end (`checkOffsetsRange`), and a timestamp
/// newer than every record falls back to the log end. Precondition: `log_start <= log_end`.
pub fn seek_offset(target: SeekTarget, bounds: SeekBounds) -> Offset {
    assert!(bounds.log_start <= bounds.log_end, "log start {} after log end {}", bounds.log_start, bounds.log_end);
    match target {
        SeekTarget::Start => bounds.log_start,
        SeekTarget::End => bounds.log_end,
        SeekTarget::Timestamp(_) => bounds.at_timestamp.unwrap_or(bounds.log_end),
        SeekTarget::Offset(offset) => offset.clamp(bounds.log_start, bounds.log_end),
    }
}

/// The partitions a seek moves (Kafka's `--all-topics` and `--topic`): every partition of
/// `topic` when one is named, else every partition the group has committed. Sorted, unique.
pub fn seek_partitions(
    committed: &[(String, PartitionId)],
    topic: Option<(&str, &[PartitionId])>,
) -> Vec<(String, PartitionId)> {
    let mut partitions: Vec<(String, PartitionId)> = match topic {
        Some((name, all)) => all.iter().map(|partition| (name.to_owned(), *partition)).collect(),
        None => committed.to_vec(),
    };
    partitions.sort();
    partitions.dedup();
    partitions
}

impl Client {
    /// The reset plan of `kafka-consumer-groups --reset-offsets` (KIP-122) for `group`: which
    /// partitions move ([`seek_partitions`]) and to where ([`seek_offset`]). Nothing is
    /// committed; [`Client::commit_offsets`] of the plan executes it.
    pub async fn plan_seek(
        &mut self,
        group: &str,
        target: SeekTarget,
        topic: Option<&str>,
    ) -> Result<Vec<PlannedSeek>> {
        let committed = self.fetch_committed_offsets(group, None).await?;
        let mut current: BTreeMap<(String, PartitionId), Offset> = BTreeMap::new();
        for entry in &committed {
            if let Some(error) = &entry.error {
                let context = format!("committed offset of {}-{}", entry.topic, entry.partition);
                return Err(ClientError::Kafka { context, error: error.clone() });
            }
            if let Some(offset) = entry.offset {
                current.insert((entry.topic.clone(), entry.partition), offset);
            }
        }
        let committed_keys: Vec<(String, PartitionId)> = current.keys().cloned().collect();
        let partitions = match topic {
            Some(name) => {
                let layout = self.topic_layout(name).await?;
                let all: Vec<PartitionId> = layout.partitions.iter().map(|p| p.partition).collect();
                seek_partitions(&committed_keys, Some((name, &all)))
            }
            None => seek_partitions(&committed_keys, None),
        };
        let mut plan = Vec::with_capacity(partitions.len());
        for (name, topic_partitions) in by_topic(&partitions) {
            let topic_partitions: Vec<PartitionId> = topic_partitions.into_iter().map(PartitionId).collect();
            let bounds = self.seek_bounds(name, &topic_partitions, target).await?;
            for (partition, bounds) in topic_partitions.iter().zip(bounds) {
                plan.push(PlannedSeek {
                    topic: name.to_owned(),
                    partition: *partition,
                    current: current.get(&(name.to_owned(), *partition)).copied(),
                    new: seek_offset(target, bounds),
                });
            }
        }
        Ok(plan)
    }

    /// The log bounds of `partitions` of `topic` (in that order), with the offset at the
    /// target's timestamp when it has one.
    async fn seek_bounds(
        &mut self,
        topic: &str,
        partitions: &[PartitionId],
        target: SeekTarget,
    ) -> Result<Vec<SeekBounds>> {
        let start = self.listed_offsets(topic, partitions, OffsetSpec::Earliest).await?;
        let end = self.listed_offsets(topic, partitions, OffsetSpec::Latest).await?;
        let at_timestamp = match target {
            SeekTarget::Timestamp(timestamp_ms) => {
                self.listed_offsets(topic, partitions, OffsetSpec::Timestamp(timestamp_ms)).await?
            }
            _ => vec![None; partitions.len()],
        };
        let mut bounds = Vec::with_capacity(partitions.len());
        for (index, partition) in partitions.iter().enumerate() {
            let (Some(log_start), Some(log_end)) = (start[index], end[index]) else {
                let error = KafkaError { code: sluice_protocol::error_code::LEADER_NOT_AVAILABLE, message: None };
                return Err(ClientError::Kafka { context: format!("log offsets of {topic}-{partition}"), error });
            };
            if log_start > log_end {
                let message = Some(format!("log start {log_start} after log end {log_end}"));
                let error = KafkaError { code: sluice_protocol::error_code::UNKNOWN_SERVER_ERROR, message };
                return Err(ClientError::Kafka { context: format!("ListOffsets {topic}-{partition}"), error });
            }
            bounds.push(SeekBounds { log_start, log_end, at_timestamp: at_timestamp[index] });
        }
        Ok(bounds)
    }

    /// ListOffsets of `partitions`, in that order; a partition's error fails the call.
    async fn listed_offsets(
        &mut self,
        topic: &str,
        partitions: &[PartitionId],
        spec: OffsetSpec,
    ) -> Result<Vec<Option<Offset>>> {
        let listed = self.list_offsets(topic, partitions, spec).await?;
        partitions
            .iter()
            .map(|partition| {
                let answer = listed.iter().find(|answer| answer.partition == *partition);
                match answer {
                    Some(answer) => match &answer.error {
                        Some(error) => {
                            let context = format!("ListOffsets {topic}-{partition}");
                            Err(ClientError::Kafka { context, error: error.clone() })
                        }
                        None => Ok(answer.offset),
                    },
                    None => Ok(None),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: SeekBounds =
        SeekBounds { log_start: Offset(10), log_end: Offset(50), at_timestamp: Some(Offset(30)) };

    #[test]
    fn seeks_go_to_the_log_ends_or_the_timestamp() {
        assert_eq!(seek_offset(SeekTarget::Start, BOUNDS), Offset(10));
        assert_eq!(seek_offset(SeekTarget::End, BOUNDS), Offset(50));
        assert_eq!(seek_offset(SeekTarget::Timestamp(1_700_000_000_000), BOUNDS), Offset(30));
    }

    #[test]
    fn a_timestamp_newer_than_every_record_seeks_to_the_log_end() {
        let bounds = SeekBounds { at_timestamp: None, ..BOUNDS };
        assert_eq!(seek_offset(SeekTarget::Timestamp(i64::MAX), bounds), Offset(50));
    }

    #[test]
    fn an_explicit_offset_is_moved_into_the_log() {
        assert_eq!(seek_offset(SeekTarget::Offset(Offset(20)), BOUNDS), Offset(20));
        assert_eq!(seek_offset(SeekTarget::Offset(Offset(3)), BOUNDS), Offset(10));
        assert_eq!(seek_offset(SeekTarget::Offset(Offset(99)), BOUNDS), Offset(50));
        assert_eq!(seek_offset(SeekTarget::Offset(Offset(50)), BOUNDS), Offset(50));
    }

    #[test]
    fn a_seek_moves_the_committed_partitions_or_every_partition_of_the_named_topic() {
        let committed = vec![("b".to_owned(), PartitionId(1)), ("a".to_owned(), PartitionId(0))];
        assert_eq!(
            seek_partitions(&committed, None),
            vec![("a".to_owned(), PartitionId(0)), ("b".to_owned(), PartitionId(1))]
        );
        let all = [PartitionId(1), PartitionId(0), PartitionId(2)];
        assert_eq!(
            seek_partitions(&committed, Some(("b", &all))),
            vec![("b".to_owned(), PartitionId(0)), ("b".to_owned(), PartitionId(1)), ("b".to_owned(), PartitionId(2))]
        );
        assert!(seek_partitions(&[], None).is_empty());
    }
}
