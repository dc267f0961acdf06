//! `sluice consume TOPIC`: print a topic's records, like kafka-console-consumer and `kcat -C`.
//!
//! Positions are per partition, without a consumer group: `--from-beginning` starts at each
//! partition's log start, `--offset N` at N, otherwise at the end (ListOffsets). Without `-n`
//! it stops once every partition has been read up to its high watermark (like `kcat -e`); with
//! `-n` it stops after that many records, waiting for new ones as long as it takes.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use serde_json::json;
use sluice_client::{Client, ConsumerRecord, FetchOptions, Offset, OffsetSpec, PartitionId, TimestampType};

use super::{OutputFormat, format_timestamp};

/// How long one fetch may wait on the broker for new records while waiting for `-n`.
const FETCH_WAIT_FOLLOWING: Duration = Duration::from_millis(500);
/// How long one fetch may wait when reading to the end (the data is already there).
const FETCH_WAIT_TO_END: Duration = Duration::from_millis(100);
/// Consecutive fetches that may fail on a stale layout (leader moved) before giving up.
const FETCH_STALE_RETRIES_MAX: u32 = 10;

#[derive(Debug, Args)]
#[command(after_help = "Without -n/--num, exits after reaching the end (high watermark) of every \
selected partition, like kcat -e. With -n, waits for new records until COUNT are printed.\n\
Output: one line per record (partition, offset, timestamp, key, value); with the global \
--format json, one JSON object per line.")]
pub struct ConsumeArgs {
    topic: String,
    /// Start at each partition's first offset (default: the end).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Start at this offset in every selected partition.
    #[arg(long)]
    offset: Option<i64>,
    /// Stop after COUNT records (default: stop at the end of every partition).
    #[arg(short = 'n', long = "num", value_name = "COUNT")]
    count: Option<u64>,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<i32>,
}

/// Where reading starts in each selected partition.
async fn start_positions(client: &mut Client, args: &ConsumeArgs) -> anyhow::Result<BTreeMap<PartitionId, Offset>> {
    let layout = client.metadata(Some(&[&args.topic])).await?;
    let topic = layout.topics.into_iter().find(|topic| topic.name == args.topic);
    let topic = topic.with_context(|| format!("topic {} not in the Metadata answer", args.topic))?;
    if let Some(error) = topic.error {
        anyhow::bail!("topic {}: {error}", args.topic);
    }
    let mut partitions: Vec<PartitionId> = topic.partitions.iter().map(|p| p.partition).collect();
    if let Some(partition) = args.partition {
        anyhow::ensure!(
            partitions.contains(&PartitionId(partition)),
            "topic {} has no partition {partition}",
            args.topic
        );
        partitions = vec![PartitionId(partition)];
    }
    if let Some(offset) = args.offset {
        return Ok(partitions.into_iter().map(|partition| (partition, Offset(offset))).collect());
    }
    let spec = if args.from_beginning { OffsetSpec::Earliest } else { OffsetSpec::Latest };
    let listed = client.list_offsets(&args.topic, &partitions, spec).await?;
    let mut positions = BTreeMap::new();
    for answer in listed {
        if let Some(error) = answer.error {
            anyhow::bail!("ListOffsets of {}-{}: {error}", args.topic, answer.partition);
        }
        let offset = answer.offset.context("ListOffsets gave no offset")?;
        positions.insert(answer.partition, offset);
    }
    Ok(positions)
}

pub async fn run(client: &mut Client, args: ConsumeArgs, format: OutputFormat) -> anyhow::Result<()> {
    let mut positions = start_positions(client, &args).await?;
    let following = args.count.is_some();
    let options = FetchOptions {
        max_wait: if following { FETCH_WAIT_FOLLOWING } else { FETCH_WAIT_TO_END },
        ..FetchOptions::default()
    };
    let mut printed = 0u64;
    let mut stale_retries = 0;
    // Bounded: without -n, by the partitions' high watermarks; with -n, by COUNT (the user
    // asked to wait for that many records).
    while !positions.is_empty() && args.count.is_none_or(|count| printed < count) {
        let requested: Vec<(PartitionId, Offset)> = positions.iter().map(|(p, o)| (*p, *o)).collect();
        let fetched = client.fetch(&args.topic, &requested, &options).await?;
        let mut stale = false;
        for part in fetched {
            if let Some(error) = &part.error {
                if sluice_client::KafkaError::is_retriable(error) && stale_retries < FETCH_STALE_RETRIES_MAX {
                    stale = true;
                    continue;
                }
                anyhow::bail!(
                    "Fetch of {}-{} at offset {}: {error}",
                    args.topic,
                    part.partition,
                    positions[&part.partition]
                );
            }
            for record in &part.records {
                if args.count.is_some_and(|count| printed >= count) {
                    break;
                }
                print_record(&args.topic, record, format);
                printed += 1;
            }
            positions.insert(part.partition, part.next_offset);
            if !following && part.next_offset >= part.high_watermark {
                positions.remove(&part.partition);
            }
        }
        stale_retries = if stale { stale_retries + 1 } else { 0 };
        if stale {
            tokio::time::sleep(FETCH_WAIT_TO_END).await;
        }
    }
    if format == OutputFormat::Text {
        eprintln!("Consumed {printed} records from {}.", args.topic);
    }
    Ok(())
}

fn text(bytes: &Option<Bytes>) -> String {
    match bytes {
        None => "(null)".to_owned(),
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn json_text(bytes: &Option<Bytes>) -> serde_json::Value {
    match bytes {
        None => serde_json::Value::Null,
        Some(bytes) => json!(String::from_utf8_lossy(bytes)),
    }
}

fn print_record(topic: &str, record: &ConsumerRecord, format: OutputFormat) {
    match format {
        OutputFormat::Text => {
            let headers: Vec<String> =
                record.headers.iter().map(|(key, value)| format!("{key}={}", text(value))).collect();
            let headers = if headers.is_empty() { String::new() } else { format!(" headers={}", headers.join(",")) };
            println!(
                "partition={} offset={} timestamp={} key={}{headers} value={}",
                record.partition,
                record.offset,
                format_timestamp(record.timestamp_ms),
                text(&record.key),
                text(&record.value),
            );
        }
        OutputFormat::Json => {
            let headers: Vec<_> =
                record.headers.iter().map(|(key, value)| json!({"key": key, "value": json_text(value)})).collect();
            let timestamp_type = match record.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            };
            let object = json!({
                "topic": topic,
                "partition": record.partition.0,
                "offset": record.offset.0,
                "timestamp": record.timestamp_ms,
                "timestamp_type": timestamp_type,
                "key": json_text(&record.key),
                "value": json_text(&record.value),
                "headers": headers,
            });
            println!("{object}");
        }
    }
}
