//! `sluice topic create|list|describe|delete|alter-config|add-partitions`: topic administration
//! over CreateTopics, Metadata, DescribeConfigs, DeleteTopics, IncrementalAlterConfigs and
//! CreatePartitions, shaped like rpk's `topic` commands.

use clap::{Args, Subcommand};
use serde_json::json;
use sluice_client::{
    Client, ClientError, ConfigChange, ConfigEntry, NewTopic, OffsetSpec, PartitionId, TopicMetadata, TopicOutcome,
};

use super::{OutputFormat, error_json, fail_on_errors, parse_key_value, print_json, print_table, status, table};

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create topics.
    Create(CreateArgs),
    /// List topics.
    List,
    /// Show a topic's partitions (leader, replicas, ISR, offsets) and configs (with source).
    Describe { name: String },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Set or delete topic configs (IncrementalAlterConfigs).
    AlterConfig(AlterConfigArgs),
    /// Raise a topic's partition count to a new total (like kafka-topics --alter --partitions).
    AddPartitions {
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        num: i32,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(required = true)]
    names: Vec<String>,
    /// Partitions per topic (-1: the broker's default).
    #[arg(short = 'p', long, default_value_t = -1, allow_negative_numbers = true)]
    partitions: i32,
    /// Replicas per partition (-1: the broker's default).
    #[arg(short = 'r', long, default_value_t = -1, allow_negative_numbers = true)]
    replication_factor: i16,
    /// A topic config, repeatable: -c retention.ms=3600000.
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    configs: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct AlterConfigArgs {
    name: String,
    /// Set a config, repeatable: --set retention.ms=3600000.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    sets: Vec<(String, String)>,
    /// Remove a config override (back to the default), repeatable.
    #[arg(long = "delete", value_name = "KEY")]
    deletes: Vec<String>,
}

pub async fn run(client: &mut Client, command: TopicCommand, format: OutputFormat) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create(args) => create(client, args, format).await,
        TopicCommand::List => list(client, format).await,
        TopicCommand::Describe { name } => describe(client, &name, format).await,
        TopicCommand::Delete { names } => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let outcomes = client.delete_topics(&names).await?;
            report_outcomes("delete topics", &outcomes, format)
        }
        TopicCommand::AlterConfig(args) => alter_config(client, args, format).await,
        TopicCommand::AddPartitions { name, num } => {
            let outcomes = client.create_partitions(&[(&name, num)]).await?;
            report_outcomes("add partitions", &outcomes, format)
        }
    }
}

async fn create(client: &mut Client, args: CreateArgs, format: OutputFormat) -> anyhow::Result<()> {
    let topics: Vec<NewTopic> = args
        .names
        .iter()
        .map(|name| NewTopic {
            name: name.clone(),
            partition_count: args.partitions,
            replication_factor: args.replication_factor,
            configs: args.configs.clone(),
        })
        .collect();
    let outcomes = client.create_topics(&topics).await?;
    report_outcomes("create topics", &outcomes, format)
}

/// Prints a TOPIC / STATUS table (or JSON) and fails if any topic failed.
fn report_outcomes(action: &str, outcomes: &[TopicOutcome], format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Text => {
            let mut rows = table(&["TOPIC", "STATUS"]);
            for (name, result) in outcomes {
                rows.add_row(vec![name.clone(), status(result.as_ref().err())]);
            }
            print_table(&rows);
        }
        OutputFormat::Json => {
            let items: Vec<_> = outcomes
                .iter()
                .map(|(name, result)| json!({"topic": name, "error": error_json(result.as_ref().err())}))
                .collect();
            print_json(&json!(items));
        }
    }
    fail_on_errors(action, outcomes.iter().map(|(name, result)| (name.as_str(), result.as_ref().err())))
}

fn replication_factor(topic: &TopicMetadata) -> usize {
    topic.partitions.iter().map(|partition| partition.replicas.len()).max().unwrap_or(0)
}

async fn list(client: &mut Client, format: OutputFormat) -> anyhow::Result<()> {
    let metadata = client.metadata(None).await?;
    match format {
        OutputFormat::Text => {
            let mut rows = table(&["NAME", "PARTITIONS", "REPLICAS", "INTERNAL"]);
            for topic in &metadata.topics {
                rows.add_row(vec![
                    topic.name.clone(),
                    topic.partitions.len().to_string(),
                    replication_factor(topic).to_string(),
                    topic.is_internal.to_string(),
                ]);
            }
            print_table(&rows);
        }
        OutputFormat::Json => {
            let items: Vec<_> = metadata
                .topics
                .iter()
                .map(|topic| {
                    json!({
                        "name": topic.name,
                        "topic_id": topic.topic_id,
                        "partitions": topic.partitions.len(),
                        "replication_factor": replication_factor(topic),
                        "internal": topic.is_internal,
                        "error": error_json(topic.error.as_ref()),
                    })
                })
                .collect();
            print_json(&json!(items));
        }
    }
    Ok(())
}

/// Per-partition log start and end offsets, or `None` where the broker did not say.
struct PartitionOffsets {
    log_start: Vec<Option<i64>>,
    high_watermark: Vec<Option<i64>>,
}

async fn partition_offsets(client: &mut Client, topic: &TopicMetadata) -> PartitionOffsets {
    let log_start = offsets_for(client, topic, OffsetSpec::Earliest).await;
    let high_watermark = offsets_for(client, topic, OffsetSpec::Latest).await;
    PartitionOffsets { log_start, high_watermark }
}

/// One ListOffsets answer per partition of `topic`, in partition order; `None` where the
/// broker failed (the describe output shows `-` rather than failing as a whole).
async fn offsets_for(client: &mut Client, topic: &TopicMetadata, spec: OffsetSpec) -> Vec<Option<i64>> {
    let partitions: Vec<PartitionId> = topic.partitions.iter().map(|p| p.partition).collect();
    let listed = client.list_offsets(&topic.name, &partitions, spec).await.unwrap_or_default();
    partitions
        .iter()
        .map(|partition| {
            let answer = listed.iter().find(|answer| answer.partition == *partition);
            answer.and_then(|answer| answer.offset).map(|offset| offset.0)
        })
        .collect()
}

async fn describe(client: &mut Client, name: &str, format: OutputFormat) -> anyhow::Result<()> {
    let metadata = client.metadata(Some(&[name])).await?;
    let topic = metadata.topics.into_iter().find(|topic| topic.name == name);
    let Some(topic) = topic else { anyhow::bail!("topic {name}: not in the Metadata answer") };
    if let Some(error) = &topic.error {
        anyhow::bail!("topic {name}: {error}");
    }
    let offsets = partition_offsets(client, &topic).await;
    let described = client.describe_topic_configs(&[name]).await?;
    let configs = match described.into_iter().next() {
        Some((_, Ok(entries))) => entries,
        Some((_, Err(error))) => anyhow::bail!("configs of topic {name}: {error}"),
        None => Vec::new(),
    };
    match format {
        OutputFormat::Text => print_description(&topic, &offsets, &configs),
        OutputFormat::Json => print_json(&describe_json(&topic, &offsets, &configs)),
    }
    Ok(())
}

fn node_list(nodes: &[sluice_client::NodeId]) -> String {
    let ids: Vec<String> = nodes.iter().map(ToString::to_string).collect();
    format!("[{}]", ids.join(","))
}

fn optional(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

fn print_description(topic: &TopicMetadata, offsets: &PartitionOffsets, configs: &[ConfigEntry]) {
    println!("NAME         {}", topic.name);
    println!("TOPIC-ID     {}", topic.topic_id);
    println!("INTERNAL     {}", topic.is_internal);
    println!("PARTITIONS   {}", topic.partitions.len());
    println!("REPLICAS     {}", replication_factor(topic));
    println!();
    let header = ["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START-OFFSET", "HIGH-WATERMARK", "STATUS"];
    let mut rows = table(&header);
    for (index, partition) in topic.partitions.iter().enumerate() {
        rows.add_row(vec![
            partition.partition.to_string(),
            partition.leader.map_or_else(|| "-".to_owned(), |leader| leader.to_string()),
            partition.leader_epoch.to_string(),
            node_list(&partition.replicas),
            node_list(&partition.isr),
            optional(offsets.log_start[index]),
            optional(offsets.high_watermark[index]),
            status(partition.error.as_ref()),
        ]);
    }
    print_table(&rows);
    println!();
    let mut rows = table(&["CONFIG", "VALUE", "SOURCE"]);
    for entry in configs {
        let value = if entry.is_sensitive { "(sensitive)".to_owned() } else { entry.value.clone().unwrap_or_default() };
        rows.add_row(vec![entry.name.clone(), value, entry.source.name().to_owned()]);
    }
    print_table(&rows);
}

fn describe_json(topic: &TopicMetadata, offsets: &PartitionOffsets, configs: &[ConfigEntry]) -> serde_json::Value {
    let partitions: Vec<_> = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, partition)| {
            json!({
                "partition": partition.partition.0,
                "leader": partition.leader.map(|leader| leader.0),
                "leader_epoch": partition.leader_epoch,
                "replicas": partition.replicas.iter().map(|node| node.0).collect::<Vec<_>>(),
                "isr": partition.isr.iter().map(|node| node.0).collect::<Vec<_>>(),
                "offline_replicas": partition.offline_replicas.iter().map(|node| node.0).collect::<Vec<_>>(),
                "log_start_offset": offsets.log_start[index],
                "high_watermark": offsets.high_watermark[index],
                "error": error_json(partition.error.as_ref()),
            })
        })
        .collect();
    let configs: Vec<_> = configs
        .iter()
        .map(|entry| {
            json!({
                "name": entry.name,
                "value": if entry.is_sensitive { None } else { entry.value.clone() },
                "source": entry.source.name(),
                "read_only": entry.read_only,
                "sensitive": entry.is_sensitive,
            })
        })
        .collect();
    json!({
        "name": topic.name,
        "topic_id": topic.topic_id,
        "internal": topic.is_internal,
        "partitions": partitions,
        "configs": configs,
    })
}

async fn alter_config(client: &mut Client, args: AlterConfigArgs, format: OutputFormat) -> anyhow::Result<()> {
    if args.sets.is_empty() && args.deletes.is_empty() {
        anyhow::bail!("nothing to change: give --set KEY=VALUE and/or --delete KEY");
    }
    let mut changes: Vec<ConfigChange> =
        args.sets.iter().map(|(name, value)| ConfigChange::Set { name: name.clone(), value: value.clone() }).collect();
    changes.extend(args.deletes.iter().map(|name| ConfigChange::Delete { name: name.clone() }));
    let outcome = match client.alter_topic_configs(&args.name, &changes).await {
        Ok(()) => (args.name, Ok(())),
        Err(ClientError::Kafka { error, .. }) => (args.name, Err(error)),
        Err(other) => return Err(other.into()),
    };
    report_outcomes("alter configs", &[outcome], format)
}
