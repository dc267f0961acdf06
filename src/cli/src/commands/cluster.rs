//! `sluice cluster info`: the cluster id, the controller, the brokers and how many topics and
//! partitions there are, from Metadata (and DescribeCluster where the broker has it, KIP-700).

use clap::Subcommand;
use serde_json::json;
use sluice_client::{Client, ClientError};

use super::{OutputFormat, print_json, print_table, table};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Brokers, controller, cluster id, and topic and partition counts.
    Info,
}

pub async fn run(client: &mut Client, command: ClusterCommand, format: OutputFormat) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Info => info(client, format).await,
    }
}

async fn info(client: &mut Client, format: OutputFormat) -> anyhow::Result<()> {
    let metadata = client.metadata(None).await?;
    // DescribeCluster knows fenced brokers' absence and is the source rpk uses; older brokers
    // lack it, and Metadata then says the same.
    let (cluster_id, controller_id, brokers) = match client.describe_cluster().await {
        Ok(description) => (Some(description.cluster_id), description.controller_id, description.brokers),
        Err(ClientError::UnsupportedVersion { .. }) => {
            (metadata.cluster_id.clone(), metadata.controller_id, metadata.brokers.clone())
        }
        Err(error) => return Err(error.into()),
    };
    let topic_count = metadata.topics.iter().filter(|topic| !topic.is_internal).count();
    let internal_count = metadata.topics.len() - topic_count;
    let partition_count: usize = metadata.topics.iter().map(|topic| topic.partitions.len()).sum();
    match format {
        OutputFormat::Text => {
            println!("CLUSTER-ID   {}", cluster_id.as_deref().unwrap_or("-"));
            let controller = controller_id.map_or_else(|| "-".to_owned(), |id| id.to_string());
            println!("CONTROLLER   {controller}");
            println!("TOPICS       {topic_count} (+{internal_count} internal)");
            println!("PARTITIONS   {partition_count}");
            println!();
            let mut rows = table(&["ID", "HOST", "PORT", "RACK"]);
            for broker in &brokers {
                // rpk marks the controller with a star.
                let star = if Some(broker.node_id) == controller_id { "*" } else { "" };
                rows.add_row(vec![
                    format!("{}{star}", broker.node_id),
                    broker.host.clone(),
                    broker.port.to_string(),
                    broker.rack.clone().unwrap_or_else(|| "-".to_owned()),
                ]);
            }
            print_table(&rows);
        }
        OutputFormat::Json => {
            let brokers: Vec<_> = brokers
                .iter()
                .map(|broker| {
                    json!({
                        "node_id": broker.node_id.0,
                        "host": broker.host,
                        "port": broker.port,
                        "rack": broker.rack,
                    })
                })
                .collect();
            print_json(&json!({
                "cluster_id": cluster_id,
                "controller_id": controller_id.map(|id| id.0),
                "brokers": brokers,
                "topics": topic_count,
                "internal_topics": internal_count,
                "partitions": partition_count,
            }));
        }
    }
    Ok(())
}
