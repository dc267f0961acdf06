//! The client-side subcommands of `sluice`: topic and consumer group administration, produce,
//! consume and cluster info, all spoken over the Kafka protocol with `sluice-client`, so they
//! work against any Kafka-compatible broker, not only Sluice.
//!
//! Conventions (style.md §B.3, after rpk and kafka-topics): noun-verb subcommands; aligned
//! tables by default and `--format json` for scripts (one JSON document, or one object per line
//! for `consume`); one row per item with its status; a non-zero exit (an `Err` from [`run`])
//! when any item fails, naming the Kafka error (`TOPIC_ALREADY_EXISTS`).

mod admin_http;
mod cluster;
mod consume;
mod group;
mod produce;
mod topic;

use clap::Subcommand;
use comfy_table::{ContentArrangement, Table, presets};
use sluice_client::{Client, KafkaError};

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned tables and readable lines.
    #[default]
    Text,
    /// JSON (one document per command; one object per line for `consume`).
    Json,
}

/// The subcommands that talk to a running cluster.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe, delete and configure topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// List, describe, seek (reset offsets) and delete consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Produce lines from standard input, one record per line.
    Produce(produce::ProduceArgs),
    /// Print records of a topic.
    Consume(consume::ConsumeArgs),
    /// Inspect the cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

/// Runs `command` against the cluster reachable at `brokers` (`host:port[,host:port...]`).
pub async fn run(command: Command, brokers: &str, format: OutputFormat) -> anyhow::Result<()> {
    let mut client = Client::connect(brokers)
        .await
        .map_err(|error| anyhow::anyhow!("cannot reach the cluster at {brokers}: {error}"))?;
    match command {
        Command::Topic(command) => topic::run(&mut client, command, format).await,
        Command::Group(command) => group::run(&mut client, command, format).await,
        Command::Produce(args) => produce::run(&mut client, args, format).await,
        Command::Consume(args) => consume::run(&mut client, args, format).await,
        Command::Cluster(command) => cluster::run(&mut client, command, format).await,
    }
}

/// A borderless, unwrapped table in the style of rpk's output.
fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    table
}

/// Prints a table without the padding comfy-table puts before the first column.
fn print_table(table: &Table) {
    for line in table.to_string().lines() {
        println!("{}", line.strip_prefix(' ').unwrap_or(line).trim_end());
    }
}

/// `OK`, or the Kafka error's name and message, for a STATUS column.
fn status(error: Option<&KafkaError>) -> String {
    match error {
        None => "OK".to_owned(),
        Some(error) => match &error.message {
            Some(message) if !message.is_empty() => format!("{}: {message}", error.name()),
            _ => error.name(),
        },
    }
}

/// The JSON shape of an optional Kafka error: `null` or `{code, name, message}`.
fn error_json(error: Option<&KafkaError>) -> serde_json::Value {
    match error {
        None => serde_json::Value::Null,
        Some(error) => serde_json::json!({
            "code": error.code,
            "name": error.name(),
            "message": error.message,
        }),
    }
}

fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON values serialize"));
}

/// Fails with one line naming every failed item and its Kafka error, if any failed.
fn fail_on_errors<'a>(
    action: &str,
    outcomes: impl IntoIterator<Item = (&'a str, Option<&'a KafkaError>)>,
) -> anyhow::Result<()> {
    let mut total = 0;
    let mut failures = Vec::new();
    for (name, error) in outcomes {
        total += 1;
        if let Some(error) = error {
            failures.push(format!("{name}: {error}"));
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    anyhow::bail!("{action} failed for {} of {total}: {}", failures.len(), failures.join("; "))
}

/// Parses `key=value` (the value may contain further `=`).
fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected key=value, got {text:?}")),
    }
}

/// Formats ms since the Unix epoch as RFC 3339 UTC (`2026-11-21T06:36:00.123Z`).
fn format_timestamp(timestamp_ms: i64) -> String {
    const MS_PER_DAY: i64 = 86_400_000;
    let days = timestamp_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = timestamp_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (hours, minutes) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (seconds, millis) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_timestamp(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".to_owned(), "b=c".to_owned())));
        assert_eq!(parse_key_value("a="), Ok(("a".to_owned(), String::new())));
        assert!(parse_key_value("=b").is_err());
        assert!(parse_key_value("ab").is_err());
    }

    #[test]
    fn failures_name_each_item_and_its_kafka_error() {
        let exists = KafkaError { code: 36, message: None };
        let outcomes = [("a", None), ("b", Some(&exists))];
        let error = fail_on_errors("create topics", outcomes).unwrap_err();
        assert_eq!(error.to_string(), "create topics failed for 1 of 2: b: TOPIC_ALREADY_EXISTS (error code 36)");
    }
}
