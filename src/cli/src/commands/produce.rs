//! `sluice produce TOPIC`: one record per line of standard input, like
//! kafka-console-producer and `kcat -P`.
//!
//! Lines are read on a plain thread (stdin is blocking) and handed over a bounded channel; the
//! producer sends a batch when [`LINES_PER_SEND_MAX`] lines or [`LINE_BYTES_PER_SEND_MAX`]
//! bytes are waiting, or when no line has arrived for [`LINGER`], so piped files go out in large
//! batches and typed lines go out at once.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use serde_json::json;
use sluice_client::{Acks, Client, Compression, KafkaError, PartitionId, ProduceOptions, ProduceRecord};
use tokio::sync::mpsc;

use super::{OutputFormat, error_json, fail_on_errors, print_json, print_table, status, table};

/// Most lines sent in one produce call.
const LINES_PER_SEND_MAX: usize = 10_000;
/// Most line bytes sent in one produce call.
const LINE_BYTES_PER_SEND_MAX: usize = 4 * 1024 * 1024;
/// How long to wait for more lines before sending what has been read.
const LINGER: Duration = Duration::from_millis(100);
/// Lines buffered between the reading thread and the producer.
const LINE_CHANNEL_CAPACITY: usize = 1024;
/// The longest accepted line; a longer one is an error rather than an unbounded allocation.
const LINE_BYTES_MAX: usize = 64 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    topic: String,
    /// Split each line into key and value at the first SEP (a line without SEP has no key).
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Acknowledgement: 0 (none), 1 (leader), -1 or all (all in-sync replicas).
    #[arg(long, default_value = "all", value_parser = parse_acks, allow_hyphen_values = true)]
    acks: Acks,
    /// Batch compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    /// Send every record to this partition (default: by key hash, round-robin without key).
    #[arg(long)]
    partition: Option<i32>,
}

fn parse_acks(text: &str) -> Result<Acks, String> {
    match text {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "-1" | "all" => Ok(Acks::All),
        _ => Err(format!("acks must be 0, 1, -1 or all, not {text:?}")),
    }
}

fn parse_compression(text: &str) -> Result<Compression, String> {
    Compression::from_name(text)
        .ok_or_else(|| format!("compression must be none, gzip, snappy, lz4 or zstd, not {text:?}"))
}

/// Totals for one partition across every produce call.
#[derive(Default)]
struct PartitionTotal {
    record_count: u64,
    base_offset: Option<i64>,
    error: Option<KafkaError>,
}

pub async fn run(client: &mut Client, args: ProduceArgs, format: OutputFormat) -> anyhow::Result<()> {
    let options =
        ProduceOptions { acks: args.acks, compression: args.compression, partition: args.partition.map(PartitionId) };
    let (sender, mut receiver) = mpsc::channel::<std::io::Result<String>>(LINE_CHANNEL_CAPACITY);
    std::thread::spawn(move || read_lines(sender));
    let mut totals: BTreeMap<PartitionId, PartitionTotal> = BTreeMap::new();
    // Bounded by the input: each iteration consumes at least one line or ends.
    loop {
        let (lines, finished) = next_chunk(&mut receiver).await?;
        if !lines.is_empty() {
            let records = lines.into_iter().map(|line| to_record(line, args.key_separator.as_deref()));
            let results = client.produce(&args.topic, records.collect(), &options).await?;
            for result in results {
                let total = totals.entry(result.partition).or_default();
                total.record_count += result.record_count;
                if total.base_offset.is_none() {
                    total.base_offset = result.base_offset.map(|offset| offset.0);
                }
                if total.error.is_none() {
                    total.error = result.error;
                }
            }
        }
        if finished {
            break;
        }
    }
    report(&args.topic, &totals, format);
    let outcomes = totals.iter().map(|(partition, total)| (partition, total.error.as_ref()));
    let named: Vec<(String, Option<&KafkaError>)> =
        outcomes.map(|(partition, error)| (format!("{}-{partition}", args.topic), error)).collect();
    fail_on_errors("produce", named.iter().map(|(name, error)| (name.as_str(), *error)))
}

/// Reads standard input line by line into `sender` until end of input or a closed channel.
fn read_lines(sender: mpsc::Sender<std::io::Result<String>>) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    // Bounded by the input.
    loop {
        let mut line = String::new();
        let read = (&mut input).take(LINE_BYTES_MAX as u64 + 1).read_line(&mut line);
        let item = match read {
            Ok(0) => return,
            Ok(_) if line.len() > LINE_BYTES_MAX && !line.ends_with('\n') => {
                let message = format!("a line is longer than {LINE_BYTES_MAX} bytes");
                Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message))
            }
            Ok(_) => Ok(line),
            Err(error) => Err(error),
        };
        let failed = item.is_err();
        if sender.blocking_send(item).is_err() || failed {
            return;
        }
    }
}

/// Waits for the next lines to send: returns when a send limit is reached, when [`LINGER`]
/// passes without a new line, or at end of input (`finished`).
async fn next_chunk(receiver: &mut mpsc::Receiver<std::io::Result<String>>) -> anyhow::Result<(Vec<String>, bool)> {
    let mut lines = Vec::new();
    let mut bytes = 0;
    while lines.len() < LINES_PER_SEND_MAX && bytes < LINE_BYTES_PER_SEND_MAX {
        let next = if lines.is_empty() {
            receiver.recv().await
        } else {
            match tokio::time::timeout(LINGER, receiver.recv()).await {
                Ok(next) => next,
                Err(_) => return Ok((lines, false)),
            }
        };
        let Some(line) = next else { return Ok((lines, true)) };
        let mut line = line.map_err(|error| anyhow::anyhow!("reading standard input: {error}"))?;
        if line.ends_with('\n') {
            line.pop();
            if line.ends_with('\r') {
                line.pop();
            }
        }
        bytes += line.len();
        lines.push(line);
    }
    Ok((lines, false))
}

fn to_record(line: String, key_separator: Option<&str>) -> ProduceRecord {
    let split = key_separator
        .and_then(|separator| line.split_once(separator).map(|(key, value)| (key.to_owned(), value.to_owned())));
    let (key, value) = match split {
        Some((key, value)) => (Some(Bytes::from(key)), Bytes::from(value)),
        None => (None, Bytes::from(line)),
    };
    ProduceRecord { key, value: Some(value), ..ProduceRecord::default() }
}

fn report(topic: &str, totals: &BTreeMap<PartitionId, PartitionTotal>, format: OutputFormat) {
    let record_count: u64 = totals.values().map(|total| total.record_count).sum();
    match format {
        OutputFormat::Text => {
            let mut rows = table(&["PARTITION", "RECORDS", "FIRST-OFFSET", "STATUS"]);
            for (partition, total) in totals {
                rows.add_row(vec![
                    partition.to_string(),
                    total.record_count.to_string(),
                    total.base_offset.map_or_else(|| "-".to_owned(), |offset| offset.to_string()),
                    status(total.error.as_ref()),
                ]);
            }
            print_table(&rows);
            let partition_count = totals.len();
            let noun = if partition_count == 1 { "partition" } else { "partitions" };
            println!("Produced {record_count} records to {topic} ({partition_count} {noun}).");
        }
        OutputFormat::Json => {
            let partitions: Vec<_> = totals
                .iter()
                .map(|(partition, total)| {
                    json!({
                        "partition": partition.0,
                        "records": total.record_count,
                        "base_offset": total.base_offset,
                        "error": error_json(total.error.as_ref()),
                    })
                })
                .collect();
            print_json(&json!({"topic": topic, "records": record_count, "partitions": partitions}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        let record = to_record("alice:paid 200:to bob".to_owned(), Some(":"));
        assert_eq!(record.key.as_deref(), Some(&b"alice"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"paid 200:to bob"[..]));
        let record = to_record("no separator".to_owned(), Some(":"));
        assert_eq!(record.key, None);
        assert_eq!(record.value.as_deref(), Some(&b"no separator"[..]));
        let record = to_record("a::b".to_owned(), None);
        assert_eq!(record.key, None);
    }

    #[test]
    fn acks_and_codecs_parse_like_kafka() {
        assert_eq!(parse_acks("all"), Ok(Acks::All));
        assert_eq!(parse_acks("-1"), Ok(Acks::All));
        assert_eq!(parse_acks("0"), Ok(Acks::None));
        assert!(parse_acks("2").is_err());
        assert_eq!(parse_compression("zstd"), Ok(Compression::Zstd));
        assert!(parse_compression("brotli").is_err());
    }
}
