//! `sluice cluster info`: the cluster id, the controller, the brokers and how many topics and
//! partitions there are, from Metadata (and DescribeCluster where the broker has it, KIP-700).
//!
//! `sluice cluster health`: whether every broker answers, the controller is known, and every
//! partition has a leader and a full ISR. Only a partition's leader knows its ISR, so each
//! broker is asked for Metadata and each partition is judged by its leader's own answer (rpk's
//! `cluster health` reports the same three lists).

use clap::Subcommand;
use serde_json::json;
use sluice_client::{Client, ClientError};

use super::{OutputFormat, print_json, print_table, table};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Brokers, controller, cluster id, and topic and partition counts.
    Info,
    /// Unreachable brokers, the controller, leaderless and under-replicated partitions.
    Health,
    /// Move every replica off a broker, then report it drained (through a broker's admin port).
    Decommission {
        /// The broker to drain.
        node_id: i32,
        /// Any broker's admin endpoint, host:port.
        #[arg(long, default_value = "127.0.0.1:9644")]
        admin_addr: String,
        /// Start the decommission and return without waiting for it to finish.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for the replicas to move.
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
    },
}

/// How often `decommission` asks for progress while it waits.
const DECOMMISSION_POLL: std::time::Duration = std::time::Duration::from_millis(500);

pub async fn run(client: &mut Client, command: ClusterCommand, format: OutputFormat) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Info => info(client, format).await,
        ClusterCommand::Health => health(client, format).await,
        ClusterCommand::Decommission { node_id, admin_addr, no_wait, timeout_s } => {
            decommission(node_id, &admin_addr, no_wait, timeout_s, format).await
        }
    }
}

/// `PUT /v1/brokers/{id}/decommission`, then polls its status until no replica is left.
async fn decommission(
    node_id: i32,
    admin_addr: &str,
    no_wait: bool,
    timeout_s: u64,
    format: OutputFormat,
) -> anyhow::Result<()> {
    use super::admin_http::call;
    let path = format!("/v1/brokers/{node_id}/decommission");
    let (status, body) = call(admin_addr, hyper::Method::PUT, &path).await?;
    anyhow::ensure!(status == 200, "decommission of broker {node_id} refused ({status}): {body}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout_s);
    let mut last = body;
    while !no_wait && last["done"] != serde_json::Value::Bool(true) {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "broker {node_id} still holds replicas: {last}");
        tokio::time::sleep(DECOMMISSION_POLL).await;
        let (status, body) = call(admin_addr, hyper::Method::GET, &path).await?;
        anyhow::ensure!(status == 200, "decommission status of broker {node_id} ({status}): {body}");
        last = body;
    }
    match format {
        OutputFormat::Json => print_json(&last),
        OutputFormat::Text => {
            let remaining = last["replicas_remaining"].as_u64().unwrap_or_default();
            let state = if last["done"] == serde_json::Value::Bool(true) { "drained" } else { "draining" };
            println!("broker {node_id} {state}: {remaining} partition replicas remaining");
        }
    }
    Ok(())
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

async fn health(client: &mut Client, format: OutputFormat) -> anyhow::Result<()> {
    let metadata = client.metadata(None).await?;
    let mut down = Vec::new();
    // (topic, partition) -> the leader's own view of the partition.
    let mut from_leader = std::collections::BTreeMap::new();
    for broker in &metadata.brokers {
        let address = format!("{}:{}", broker.host, broker.port);
        let answer = match Client::connect(&address).await {
            Ok(mut broker_client) => broker_client.metadata(None).await.map_err(anyhow::Error::from),
            Err(error) => Err(error.into()),
        };
        let Ok(answer) = answer else {
            down.push(broker.node_id.0);
            continue;
        };
        for topic in answer.topics {
            for partition in topic.partitions {
                if partition.leader == Some(broker.node_id) {
                    from_leader.insert((topic.name.clone(), partition.partition.0), partition);
                }
            }
        }
    }
    let (mut leaderless, mut under_replicated) = (Vec::new(), Vec::new());
    for topic in &metadata.topics {
        for partition in &topic.partitions {
            let name = format!("{}-{}", topic.name, partition.partition.0);
            match from_leader.get(&(topic.name.clone(), partition.partition.0)) {
                None => leaderless.push(name),
                Some(led) if led.isr.len() < led.replicas.len() => under_replicated.push(name),
                Some(_) => {}
            }
        }
    }
    let controller = metadata.controller_id.map(|id| id.0).filter(|id| *id >= 0);
    let healthy = down.is_empty() && controller.is_some() && leaderless.is_empty() && under_replicated.is_empty();
    match format {
        OutputFormat::Text => {
            println!("HEALTHY                       {healthy}");
            println!("CONTROLLER                    {}", controller.map_or("-".to_owned(), |id| id.to_string()));
            println!(
                "ALL BROKERS                   {:?}",
                metadata.brokers.iter().map(|b| b.node_id.0).collect::<Vec<_>>()
            );
            println!("UNREACHABLE BROKERS           {down:?}");
            println!("LEADERLESS PARTITIONS         {leaderless:?}");
            println!("UNDER-REPLICATED PARTITIONS   {under_replicated:?}");
        }
        OutputFormat::Json => print_json(&json!({
            "healthy": healthy,
            "controller_id": controller,
            "brokers": metadata.brokers.iter().map(|b| b.node_id.0).collect::<Vec<_>>(),
            "unreachable_brokers": down,
            "leaderless_partitions": leaderless,
            "under_replicated_partitions": under_replicated,
        })),
    }
    Ok(())
}
