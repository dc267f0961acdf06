//! One seed, start to finish: the four phases and the checks.
//!
//! 1. Faulty phase: brokers start, topics are created, producers and consumers run while the
//!    nemesis applies the seed's faults (`swarm.rs`).
//! 2. Heal: every fault is undone, paused brokers resume, dead ones restart, disks stop faulting.
//! 3. Liveness: within `LIVENESS_MS` of simulated time every partition must accept an acks=all
//!    write; `SETTLE_MS` later every leader reports its high watermark.
//! 4. Final reads: the brokers stop and every replica's log is read from its disk. Each healthy
//!    replica must hold its leader's high watermark (else Liveness: it did not catch up);
//!    committed prefixes must be byte-identical (LogMatching), and the history, final reads and
//!    Raft trace go to the checkers.

use crate::check::{FATAL_ON_HEALTHY_DISK, LIVENESS};
use crate::cluster::{Cluster, kafka_addr};
use crate::consumer_group_workload::consumer_group_member;
use crate::final_read::read_replicas;
use crate::group_workload::{GROUP_PROCESS_BASE, group_consumer, read_final_commits};
use crate::nemesis::Nemesis;
use crate::swarm::FaultMix;
use crate::workload::{self, Recorder, Target};
use sluice_checker::{History, Op, PartitionKey, SendOutcome, Violation};
use sluice_client::{Client, NewTopic, OffsetSpec, ProduceOptions, ProduceRecord};
use sluice_io::sim_disk::SimDiskConfig;
use sluice_io::sim_net::{self, NetFaults};
use sluice_types::PartitionId;
use sluice_types::defect::Defect;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Simulated milliseconds of the faulty phase unless `--faulty-s` says otherwise.
pub const FAULTY_MS_DEFAULT: u64 = 30_000;
/// Simulated time for the cluster to form and the topics to exist.
pub const SETUP_MS: u64 = 30_000;
/// Simulated time after healing within which the cluster must serve again.
pub const LIVENESS_MS: u64 = 60_000;
/// Simulated time the replicas get to converge after liveness, before the final reads. A
/// replica still behind its leader's high watermark then is a Liveness failure. Why this long:
/// madsim's TCP retries a message held by a clogged link with a backoff that grows to 10 s, so
/// a connection that lived through a partition may deliver up to 10 s after the heal (real TCP's
/// retransmission backoff behaves alike).
pub const SETTLE_MS: u64 = 20_000;

/// What one seed asks for.
#[derive(Clone, Debug)]
pub struct SeedOptions {
    pub seed: u64,
    pub defect: Option<Defect>,
    /// Simulated milliseconds of the faulty phase.
    pub faulty_ms: u64,
}

/// What one seed did.
#[derive(Debug, Default)]
pub struct SeedOutcome {
    pub violations: Vec<Violation>,
    pub simulated_ms: u64,
    pub sends: u64,
    pub acked: u64,
    pub polls: u64,
    pub nemesis_actions: u32,
    /// A hash of everything observable: history, final reads and trace.
    pub trace_hash: u64,
    pub history: History,
}

fn violation(checker: &'static str, message: String) -> Violation {
    Violation { checker, message }
}

fn disk_config(mix: &FaultMix, id: u32) -> SimDiskConfig {
    let base = if mix.faulty_disk_nodes.contains(&id) { mix.disk } else { SimDiskConfig::default() };
    // Slow fsync is a buggify knob, not a fault: every broker has it.
    SimDiskConfig { fsync_delay_ms_max: mix.fsync_delay_ms_max, ..base }
}

/// Runs one seed inside the current madsim runtime.
pub async fn run_seed(options: SeedOptions, mix: FaultMix) -> SeedOutcome {
    let started = Instant::now();
    sluice_broker::replication::sim_trace::start();
    let mut outcome = SeedOutcome::default();
    let mut cluster = Cluster::start(mix.brokers, options.seed, |id| disk_config(&mix, id));
    for broker in &cluster.brokers {
        let skew = if mix.clock_skew_ms_max > 0 {
            use rand::Rng;
            madsim::rand::thread_rng().gen_range(-mix.clock_skew_ms_max..=mix.clock_skew_ms_max)
        } else {
            0
        };
        broker.clock.set_skew_ms(skew);
    }
    let bootstrap: String = (1..=mix.brokers).map(|id| kafka_addr(id).to_string()).collect::<Vec<_>>().join(",");
    let handle = madsim::runtime::Handle::current();
    let clients = handle.create_node().name("clients").ip("10.0.1.1".parse().expect("ip")).build();

    // Setup: the topics exist before any fault.
    let plan = mix.topics.clone();
    let setup_bootstrap = bootstrap.clone();
    let created = clients.spawn(async move { create_topics(&setup_bootstrap, &plan).await }).await.expect("setup task");
    if let Err(message) = created {
        outcome.violations.push(violation(LIVENESS, message));
        return finish(outcome, started, cluster, &mix);
    }

    // Phase 1: workload under faults.
    let targets: Vec<Target> =
        mix.topics.iter().map(|t| Target { topic: t.name.clone(), partitions: t.partitions }).collect();
    let all_partitions: Vec<PartitionKey> =
        mix.topics.iter().flat_map(|t| (0..t.partitions).map(|p| PartitionKey::new(t.name.clone(), p))).collect();
    let recorder = Recorder::new();
    let stop_producers = Arc::new(AtomicBool::new(false));
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for process in 0..u64::from(mix.producers) {
        let (bootstrap, targets, recorder, stop) =
            (bootstrap.clone(), targets.clone(), recorder.clone(), stop_producers.clone());
        if process < u64::from(mix.idempotent_producers) {
            tasks.push(clients.spawn(workload::idempotent_producer(process, bootstrap, targets, recorder, stop)));
        } else {
            tasks.push(clients.spawn(workload::producer(process, bootstrap, targets, recorder, stop)));
        }
    }
    for process in 0..u64::from(mix.consumers) {
        let mine: Vec<PartitionKey> = all_partitions
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u64 % u64::from(mix.consumers) == process)
            .map(|(_, p)| p.clone())
            .collect();
        let task =
            workload::consumer(1000 + process, bootstrap.clone(), mine, recorder.clone(), stop_consumers.clone());
        tasks.push(clients.spawn(task));
    }
    for member in 0..u64::from(mix.group_consumers) {
        let process = GROUP_PROCESS_BASE + member;
        let (bootstrap, targets, recorder, stop) =
            (bootstrap.clone(), targets.clone(), recorder.clone(), stop_consumers.clone());
        if mix.consumer_protocol {
            tasks.push(clients.spawn(consumer_group_member(process, bootstrap, targets, recorder, stop)));
        } else {
            tasks.push(clients.spawn(group_consumer(process, bootstrap, targets, recorder, stop)));
        }
    }
    for broker in &cluster.brokers {
        broker.disk.set_faults_enabled(true);
    }
    set_network_faults(&mix, options.seed, true);
    let until = Instant::now() + Duration::from_millis(options.faulty_ms);
    let mut nemesis = Nemesis::new(&mix, &mut cluster);
    nemesis.run(until).await;
    outcome.nemesis_actions = nemesis.actions;

    // Phase 2: heal.
    tracing::info!(target: "sluice_sim", "heal");
    nemesis.heal();
    set_network_faults(&mix, options.seed, false);
    stop_producers.store(true, Ordering::Relaxed);

    // Phase 3: liveness.
    let live_bootstrap = bootstrap.clone();
    let partitions = all_partitions.clone();
    let live_recorder = recorder.clone();
    let live = clients
        .spawn(async move {
            let writes = write_everywhere(&live_bootstrap, &partitions, &live_recorder);
            tokio::time::timeout(Duration::from_millis(LIVENESS_MS), writes).await
        })
        .await
        .expect("liveness task");
    match live {
        Ok(Ok(())) => {}
        Ok(Err(message)) => outcome.violations.push(violation(LIVENESS, message)),
        Err(_) => outcome.violations.push(violation(
            LIVENESS,
            format!("not every partition accepted an acks=all write within {LIVENESS_MS} ms of healing"),
        )),
    }
    tokio::time::sleep(Duration::from_millis(SETTLE_MS)).await;
    stop_consumers.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    if mix.group_consumers > 0 {
        // Every partition's committed offset, read after the members left (GroupOffsetsDurable).
        let (group_bootstrap, partitions, group_recorder) =
            (bootstrap.clone(), all_partitions.clone(), recorder.clone());
        let read = clients
            .spawn(async move { read_final_commits(&group_bootstrap, &partitions, &group_recorder).await })
            .await
            .expect("final commit read task");
        if let Err(message) = read {
            outcome.violations.push(violation(LIVENESS, message));
        }
    }

    // Phase 4: final reads from every replica's disk (the replica sets from Metadata first).
    let meta_bootstrap = bootstrap.clone();
    let topic_names: Vec<String> = mix.topics.iter().map(|t| t.name.clone()).collect();
    let hw_bootstrap = bootstrap.clone();
    let hw_partitions = all_partitions.clone();
    let high_watermarks = clients
        .spawn(async move { high_watermarks(&hw_bootstrap, &hw_partitions).await })
        .await
        .expect("high watermark task");
    for key in all_partitions.iter().filter(|key| !high_watermarks.contains_key(*key)) {
        let message = format!("{key}: no high watermark from its leader (ListOffsets latest) after healing");
        outcome.violations.push(violation(LIVENESS, message));
    }
    let replicas = match clients
        .spawn(async move { replica_sets(&meta_bootstrap, &topic_names).await })
        .await
        .expect("metadata task")
    {
        Ok(replicas) => replicas,
        Err(message) => {
            let attempts = REPLICA_SET_ATTEMPTS_MAX;
            let message = format!("no replica sets from Metadata after healing ({attempts} attempts): {message}");
            outcome.violations.push(violation(LIVENESS, message));
            BTreeMap::new()
        }
    };
    cluster.stop_all();
    let (final_reads, mut read_violations) = read_replicas(&cluster, &mix, &replicas, &high_watermarks).await;
    outcome.violations.append(&mut read_violations);
    outcome.history = History { ops: recorder.take(), final_reads, ..History::default() };
    finish(outcome, started, cluster, &mix)
}

fn set_network_faults(mix: &FaultMix, seed: u64, on: bool) {
    let net = madsim::net::NetSim::current();
    if on {
        net.update_config(|c| {
            c.packet_loss_rate = mix.packet_loss;
            if mix.latency_ms_max > 0 {
                c.send_latency = Duration::from_millis(1)..Duration::from_millis(mix.latency_ms_max);
            }
        });
        let faults = NetFaults {
            drop: mix.raft_drop,
            duplicate: mix.raft_duplicate,
            delay: mix.raft_delay,
            delay_ms_max: if mix.raft_delay > 0.0 { 1_000 } else { 0 },
        };
        sim_net::set(faults, seed);
    } else {
        net.update_config(|c| {
            c.packet_loss_rate = 0.0;
            c.send_latency = Duration::from_millis(1)..Duration::from_millis(10);
        });
        sim_net::set_enabled(false);
    }
}

fn finish(mut outcome: SeedOutcome, started: Instant, cluster: Cluster, mix: &FaultMix) -> SeedOutcome {
    outcome.simulated_ms = started.elapsed().as_millis() as u64;
    for (node, message) in crate::log::take_fatal() {
        let broker = cluster.brokers.iter().find(|b| b.node == node).map(|b| b.id);
        let healthy = broker.is_some_and(|id| !mix.faulty_disk_nodes.contains(&id));
        if healthy {
            let id = broker.expect("checked");
            let message = format!("broker {id}, whose disk injects no faults, stopped: {message}");
            outcome.violations.push(violation(FATAL_ON_HEALTHY_DISK, message));
        }
    }
    sim_net::clear();
    outcome
}

async fn create_topics(bootstrap: &str, plan: &[crate::swarm::TopicPlan]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_millis(SETUP_MS);
    let topics: Vec<NewTopic> = plan
        .iter()
        .map(|t| NewTopic {
            name: t.name.clone(),
            partition_count: t.partitions,
            replication_factor: t.replication_factor,
            configs: t.segment_bytes.map(|b| vec![("segment.bytes".to_owned(), b.to_string())]).unwrap_or_default(),
        })
        .collect();
    let mut last_error = String::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(mut client) = connect(bootstrap).await else { continue };
        match tokio::time::timeout(Duration::from_secs(10), client.create_topics(&topics)).await {
            Ok(Ok(outcomes)) => {
                let failed: Vec<String> = outcomes
                    .iter()
                    .filter(|(_, r)| r.as_ref().is_err_and(|e| e.name() != "TOPIC_ALREADY_EXISTS"))
                    .map(|(name, r)| format!("{name}: {r:?}"))
                    .collect();
                if failed.is_empty() {
                    return Ok(());
                }
                last_error = failed.join("; ");
            }
            Ok(Err(error)) => last_error = error.to_string(),
            Err(_) => last_error = "create_topics timed out".into(),
        }
    }
    Err(format!("topics not created within {SETUP_MS} ms: {last_error}"))
}

/// Time allowed to connect to the cluster (the bootstrap brokers in turn).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client connected within `CONNECT_TIMEOUT`, or why not.
async fn connect(bootstrap: &str) -> Result<Client, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(bootstrap)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(error)) => Err(format!("connect: {error}")),
        Err(_) => Err("connect timed out".into()),
    }
}

/// Each partition's replicas, from Metadata; the last error when no broker answered in time.
async fn replica_sets(bootstrap: &str, topics: &[String]) -> Result<BTreeMap<PartitionKey, Vec<u32>>, String> {
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mut last_error = String::new();
    for _ in 0..REPLICA_SET_ATTEMPTS_MAX {
        match connect(bootstrap).await {
            Err(error) => last_error = error,
            Ok(mut client) => match tokio::time::timeout(Duration::from_secs(5), client.metadata(Some(&names))).await {
                Ok(Ok(metadata)) => {
                    return Ok(metadata
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions.iter().map(|p| {
                                let replicas = p.replicas.iter().map(|n| n.0 as u32).collect();
                                (PartitionKey::new(t.name.clone(), p.partition.0), replicas)
                            })
                        })
                        .collect());
                }
                Ok(Err(error)) => last_error = format!("metadata: {error}"),
                Err(_) => last_error = "metadata timed out".into(),
            },
        }
        tracing::info!(target: "sluice_sim", error = %last_error, "replica sets: retrying Metadata");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last_error)
}

/// Each partition's high watermark from its leader (ListOffsets latest, read_uncommitted);
/// partitions whose leader did not answer within `HIGH_WATERMARK_ATTEMPTS_MAX` are missing.
async fn high_watermarks(bootstrap: &str, partitions: &[PartitionKey]) -> BTreeMap<PartitionKey, i64> {
    let mut found = BTreeMap::new();
    for _ in 0..HIGH_WATERMARK_ATTEMPTS_MAX {
        let missing: Vec<&PartitionKey> = partitions.iter().filter(|key| !found.contains_key(*key)).collect();
        let Some(first) = missing.first() else { break };
        let topic = first.topic.clone();
        let ids: Vec<PartitionId> =
            missing.iter().filter(|key| key.topic == topic).map(|key| PartitionId(key.partition)).collect();
        if let Ok(mut client) = connect(bootstrap).await
            && let Ok(Ok(listed)) =
                tokio::time::timeout(Duration::from_secs(5), client.list_offsets(&topic, &ids, OffsetSpec::Latest))
                    .await
        {
            for answer in listed {
                if let (None, Some(offset)) = (&answer.error, answer.offset) {
                    found.insert(PartitionKey::new(topic.clone(), answer.partition.0), offset.0);
                }
            }
            if ids.iter().all(|id| found.contains_key(&PartitionKey::new(topic.clone(), id.0))) {
                continue;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    found
}

/// ListOffsets rounds for the high watermarks (each round asks one topic's missing partitions).
const HIGH_WATERMARK_ATTEMPTS_MAX: u32 = 100;

/// Metadata attempts for the replica sets.
const REPLICA_SET_ATTEMPTS_MAX: u32 = 50;

/// The process id of the liveness writer in the history.
pub const LIVENESS_PROCESS: u64 = 9_999;

/// Liveness: one acks=all write to every partition succeeds. Every attempt is in the history.
async fn write_everywhere(bootstrap: &str, partitions: &[PartitionKey], recorder: &Recorder) -> Result<(), String> {
    let mut sequence = 0u64;
    for partition in partitions {
        loop {
            let Ok(mut client) = connect(bootstrap).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let value = format!("live-{sequence}");
            sequence += 1;
            let record = ProduceRecord { value: Some(value.clone().into()), ..Default::default() };
            let options = ProduceOptions { partition: Some(PartitionId(partition.partition)), ..Default::default() };
            let invoke_ms = recorder.now_ms();
            let sent =
                tokio::time::timeout(Duration::from_secs(5), client.produce(&partition.topic, vec![record], &options))
                    .await;
            let offset = match &sent {
                Ok(Ok(results)) => results.first().filter(|r| r.error.is_none()).and_then(|r| r.base_offset),
                _ => None,
            };
            if offset.is_none() {
                let error = match &sent {
                    Ok(Ok(results)) => format!("{:?}", results.first().and_then(|r| r.error.as_ref())),
                    Ok(Err(error)) => error.to_string(),
                    Err(_) => "timed out".to_owned(),
                };
                tracing::info!(target: "sluice_sim", %partition, %error, "liveness write failed");
            }
            let outcome = match offset {
                Some(offset) => SendOutcome::Ok { offset: offset.0 },
                None => SendOutcome::Indeterminate,
            };
            recorder.record(Op::Send {
                process: LIVENESS_PROCESS,
                partition: partition.clone(),
                value,
                invoke_ms,
                complete_ms: recorder.now_ms(),
                outcome,
                idempotent: false,
                op_id: None,
            });
            if offset.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
