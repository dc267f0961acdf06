//! One run, inside the client namespace: start the cluster, create the topics, run the workload
//! and the nemesis until the time limit, heal, read everything back, stop the brokers, read every
//! replica from its disk, and judge the history.
//!
//! The phases follow Jepsen's kafka test (jepsen_tla.md §1.3): the faulty phase; the final
//! generator (heal everything, settle, then every thread reads every partition from the start to
//! the highest acknowledged offset, bounded by `--final-time-limit`); the checker.

use crate::cluster::{Cluster, admin_get, partition_views};
use crate::config::{
    CLUSTER_READY_TIMEOUT_MS, HEAL_SETTLE_MS, KEY_COUNT, PARTITIONS_PER_TOPIC, REPLICATION_FACTOR, RunConfig,
    all_partitions,
};
use crate::nemesis::{Nemesis, schedule};
use crate::recorder::Recorder;
use crate::workload::{Shared, Thread};
use crate::{final_read, results, shell};
use anyhow::{Context, bail};
use sluice_checker::{FinalPolls, Line, PartitionKey};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a wait on the cluster polls.
const WAIT_POLL_MS: u64 = 500;

/// Runs the whole test; returns the process exit code (0 valid, 1 anomalies, 2 unknown).
pub fn run(config: &RunConfig) -> anyhow::Result<i32> {
    shell::set_log(&config.store.join("commands.log"));
    let recorder = Arc::new(Recorder::create(&config.store.join("history.jsonl"))?);
    let cluster = Arc::new(Mutex::new(Cluster::new(config)));
    {
        let mut cluster = cluster.lock().expect("cluster lock");
        for node in 1..=config.nodes {
            cluster.start(node)?;
        }
        for node in 1..=config.nodes {
            cluster.wait_ready(node)?;
        }
    }
    wait_registered(config, &recorder, recorder.now_ms() + CLUSTER_READY_TIMEOUT_MS)?;
    create_topics(config)?;
    wait_converged(config, &recorder, recorder.now_ms() + CLUSTER_READY_TIMEOUT_MS).context("the new cluster")?;
    eprintln!("jepsen: {} ms cluster up, topics led", recorder.now_ms());

    let time_limit_ms = recorder.now_ms() + config.time_limit_s * 1000;
    let faults = schedule::schedule(
        config.seed,
        &config.nemesis,
        config.nodes,
        &config.partition_shapes,
        time_limit_ms.saturating_sub(recorder.now_ms()),
    );
    let offset_ms = recorder.now_ms();
    let faults: Vec<schedule::Fault> = faults
        .into_iter()
        .map(|f| schedule::Fault { start_ms: f.start_ms + offset_ms, stop_ms: f.stop_ms + offset_ms, ..f })
        .collect();
    std::fs::write(config.store.join("schedule.json"), serde_json::to_string_pretty(&faults)?)?;

    let shared = Arc::new(Shared::new(config, recorder.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..config.concurrency)
        .map(|t| {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut thread = Thread::new(shared, t);
                thread.run(&stop);
                thread
            })
        })
        .collect();
    let mut nemesis = Nemesis::new(config, cluster.clone(), recorder.clone());
    let windows = nemesis.run(&faults, time_limit_ms, &stop);
    stop.store(true, Ordering::Release);
    let mut threads: Vec<Thread> = threads.into_iter().map(|h| h.join().expect("workload thread")).collect();
    eprintln!("jepsen: {} ms time limit reached; healing", recorder.now_ms());

    // Final phase: heal, settle, read everything (Jepsen's final generator).
    let final_deadline_ms = recorder.now_ms() + config.final_time_limit_s * 1000;
    nemesis.heal_all();
    std::thread::sleep(Duration::from_millis(HEAL_SETTLE_MS.min(config.final_time_limit_s * 1000 / 4)));
    let mut converged = wait_converged(config, &recorder, final_deadline_ms);
    let mut ends = shared.ends();
    for (topic, partition) in all_partitions() {
        ends.entry(PartitionKey::new(topic, partition)).or_insert(0);
    }
    let reached: Vec<Vec<PartitionKey>> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            threads.iter_mut().map(|t| scope.spawn(|| t.final_reads(&ends, final_deadline_ms))).collect();
        handles.into_iter().map(|h| h.join().expect("final read thread")).collect()
    });
    for (key, end) in &ends {
        let readers = reached.iter().filter(|r| r.contains(key)).count();
        let line = FinalPolls { partition: key.clone(), end_offset: *end, reached: readers > 0 };
        recorder.record(&Line::FinalPolls(line));
    }
    if converged.is_ok() {
        converged = wait_converged(config, &recorder, final_deadline_ms.max(recorder.now_ms() + 5_000));
    }
    let leader_views = leader_views(config);
    eprintln!("jepsen: {} ms final polls done; stopping the brokers", recorder.now_ms());
    let (unclean, unexpected) = {
        let mut cluster = cluster.lock().expect("cluster lock");
        cluster.reap(recorder.now_ms());
        let unexpected: Vec<String> = cluster.brokers.iter().flat_map(|b| b.unexpected_exits.clone()).collect();
        (cluster.stop_all(), unexpected)
    };
    let read_violations = final_read::read_all(config, &leader_views, &recorder)?;
    let outcome = results::Outcome {
        converged: converged.err().map(|e| format!("{e:#}")),
        unclean_stops: unclean,
        unexpected_exits: unexpected,
        replica_findings: read_violations,
        windows,
        counts: shared.counts.lock().expect("counts lock").clone(),
    };
    results::judge(config, &outcome)
}

/// `sluice topic create` against the whole cluster: every topic with two partitions and three
/// replicas, kept forever (no retention: a record the checker looks for may not age away).
fn create_topics(config: &RunConfig) -> anyhow::Result<()> {
    let mut argv = vec![
        config.sluice.to_string_lossy().to_string(),
        "topic".to_string(),
        "create".to_string(),
        "-b".to_string(),
        config.bootstrap(),
        "-p".to_string(),
        PARTITIONS_PER_TOPIC.to_string(),
        "-r".to_string(),
        REPLICATION_FACTOR.min(config.nodes).to_string(),
        "-c".to_string(),
        "retention.ms=-1".to_string(),
        "-c".to_string(),
        "retention.bytes=-1".to_string(),
    ];
    argv.extend(config.topics());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    shell::run(&argv).context("create topics")?;
    Ok(())
}

/// Waits until some node's controller view lists every broker (clusterctl.py's sequence:
/// topics can take three replicas only once three brokers registered).
fn wait_registered(config: &RunConfig, recorder: &Recorder, deadline_ms: u64) -> anyhow::Result<()> {
    loop {
        for node in 1..=config.nodes {
            if let Ok((200, view)) = admin_get(node, "/v1/cluster")
                && view["controller_id"].as_i64().is_some_and(|c| c > 0)
                && view["brokers"].as_array().is_some_and(|b| b.len() == config.nodes as usize)
            {
                return Ok(());
            }
        }
        if recorder.now_ms() >= deadline_ms {
            bail!("no controller listing all {} brokers within {CLUSTER_READY_TIMEOUT_MS} ms", config.nodes);
        }
        std::thread::sleep(Duration::from_millis(WAIT_POLL_MS));
    }
}

/// Waits until every partition has a leader and every replica has caught up with it, or until
/// `deadline_ms` (run time).
fn wait_converged(config: &RunConfig, recorder: &Recorder, deadline_ms: u64) -> anyhow::Result<()> {
    let started_ms = recorder.now_ms();
    loop {
        let views = partition_views(config);
        if views.len() == KEY_COUNT as usize && views.values().all(|v| v.caught_up) {
            return Ok(());
        }
        if recorder.now_ms() >= deadline_ms {
            let lagging: Vec<String> = views.iter().filter(|(_, v)| !v.caught_up).map(|(k, _)| k.to_string()).collect();
            bail!(
                "not converged after {} ms: {} of {KEY_COUNT} partitions led, lagging: {lagging:?}",
                recorder.now_ms() - started_ms,
                views.len()
            );
        }
        std::thread::sleep(Duration::from_millis(WAIT_POLL_MS));
    }
}

/// Per partition, the leader's high watermark (the final reads' committed end; None when no
/// leader answered) and its replica set (None: read every host that has the partition).
fn leader_views(config: &RunConfig) -> BTreeMap<PartitionKey, (Option<i64>, Option<Vec<u32>>)> {
    partition_views(config)
        .into_iter()
        .map(|(key, view)| {
            let high_watermark = Some(view.high_watermark).filter(|&hw| hw >= 0);
            let replicas = Some(view.replicas).filter(|r| !r.is_empty());
            (key, (high_watermark, replicas))
        })
        .collect()
}
