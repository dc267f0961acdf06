//! The brokers: one `sluice serve` per host namespace, started, watched, killed, paused,
//! restarted and stopped; and the admin HTTP views the harness waits on.
//!
//! Each broker runs as `ip netns exec sj-nI env LD_PRELOAD=libfaketime ... sluice serve ...`.
//! Both `ip netns exec` and `env` exec in place, so the child's pid is the broker's own and
//! signals reach it directly (jepsen_tla.md §2.6). libfaketime is always preloaded, reading an
//! offset from the host's faketime file, so the clock nemesis needs no restart (§2.7). Only the
//! wall clock is faked: Raft timeouts use the monotonic clock, as Jepsen's clock nemesis leaves
//! it too.

use crate::config::{
    ADMIN_PORT, ADMIN_TIMEOUT_MS, BROKER_READY_TIMEOUT_MS, BROKER_STOP_TIMEOUT_MS, FAKETIME_LIB, KAFKA_PORT, RPC_PORT,
    RunConfig, all_partitions,
};
use crate::shell;
use anyhow::{Context, bail};
use sluice_checker::PartitionKey;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often a wait polls.
const WAIT_POLL_MS: u64 = 200;
/// The largest admin response read.
const ADMIN_RESPONSE_BYTES_MAX: u64 = 1 << 20;

/// What a broker process is doing, as the nemesis left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Running,
    Paused,
    Dead,
}

pub struct Broker {
    pub node: u32,
    child: Option<Child>,
    pub health: Health,
    /// Exits the harness did not cause (not a kill, not a stop), one line each: the node, its
    /// exit status, and when (ms since the run started).
    pub unexpected_exits: Vec<String>,
}

pub struct Cluster {
    pub config: RunConfig,
    pub brokers: Vec<Broker>,
}

impl Cluster {
    pub fn new(config: &RunConfig) -> Cluster {
        let brokers = (1..=config.nodes)
            .map(|node| Broker { node, child: None, health: Health::Dead, unexpected_exits: Vec::new() })
            .collect();
        Cluster { config: config.clone(), brokers }
    }

    fn broker(&mut self, node: u32) -> &mut Broker {
        assert!(node >= 1 && node <= self.config.nodes, "node {node} out of range");
        &mut self.brokers[(node - 1) as usize]
    }

    /// Starts the broker of `node` (which must not be running).
    pub fn start(&mut self, node: u32) -> anyhow::Result<()> {
        let config = self.config.clone();
        assert_eq!(self.broker(node).health, Health::Dead, "node {node} starts only when dead");
        let host = RunConfig::host(node);
        let peers: Vec<String> = (1..=config.nodes).map(|n| format!("{n}={}:{RPC_PORT}", RunConfig::host(n))).collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.node_dir(node).join("broker.log"))
            .context("broker log")?;
        let child = Command::new("ip")
            .args(["netns", "exec", &RunConfig::node_ns(node), "env"])
            .arg(format!("LD_PRELOAD={FAKETIME_LIB}"))
            .arg(format!("FAKETIME_TIMESTAMP_FILE={}", config.faketime_file(node).display()))
            .args(["FAKETIME_NO_CACHE=1", "FAKETIME_DONT_FAKE_MONOTONIC=1", "NO_COLOR=1", "RUST_LOG=info"])
            .arg(&config.sluice)
            .args(["serve", "--node-id", &node.to_string()])
            .arg("--data-dir")
            .arg(config.data_dir(node))
            .args(["--kafka-addr", &format!("{host}:{KAFKA_PORT}")])
            .args(["--advertised-kafka-addr", &format!("{host}:{KAFKA_PORT}")])
            .args(["--admin-addr", &format!("{host}:{ADMIN_PORT}")])
            .args(["--rpc-addr", &format!("{host}:{RPC_PORT}")])
            .args(["--auto-create-topics", "false"])
            .args(["--peers", &peers.join(",")])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start broker {node}"))?;
        let broker = self.broker(node);
        broker.child = Some(child);
        broker.health = Health::Running;
        Ok(())
    }

    /// Notes brokers that exited on their own (not by the harness's hand), and marks them dead.
    pub fn reap(&mut self, now_ms: u64) {
        for broker in &mut self.brokers {
            let Some(child) = broker.child.as_mut() else { continue };
            if let Ok(Some(status)) = child.try_wait() {
                broker.unexpected_exits.push(format!("node {} exited with {status} at {now_ms} ms", broker.node));
                broker.child = None;
                broker.health = Health::Dead;
            }
        }
    }

    /// The broker's pid, while it runs.
    pub fn pid(&mut self, node: u32) -> Option<u32> {
        self.broker(node).child.as_ref().map(Child::id)
    }

    /// kill -9, and wait for the exit.
    pub fn kill(&mut self, node: u32) {
        let broker = self.broker(node);
        if let Some(mut child) = broker.child.take() {
            shell::run_quiet(&["kill", "-CONT", &child.id().to_string()]);
            let _ = child.kill();
            let _ = child.wait();
        }
        broker.health = Health::Dead;
    }

    /// SIGSTOP.
    pub fn pause(&mut self, node: u32) {
        if let Some(pid) = self.pid(node) {
            shell::run_quiet(&["kill", "-STOP", &pid.to_string()]);
            self.broker(node).health = Health::Paused;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self, node: u32) {
        if let Some(pid) = self.pid(node) {
            shell::run_quiet(&["kill", "-CONT", &pid.to_string()]);
            self.broker(node).health = Health::Running;
        }
    }

    /// SIGTERM every running broker at once, wait for each to exit (SIGKILL after
    /// `BROKER_STOP_TIMEOUT_MS`); returns the brokers that did not exit cleanly.
    pub fn stop_all(&mut self) -> Vec<String> {
        let mut unclean = Vec::new();
        for broker in &mut self.brokers {
            if let Some(child) = broker.child.as_ref() {
                let pid = child.id().to_string();
                shell::run_quiet(&["kill", "-CONT", &pid]);
                shell::run_quiet(&["kill", "-TERM", &pid]);
            }
        }
        let deadline = Instant::now() + Duration::from_millis(BROKER_STOP_TIMEOUT_MS);
        for broker in &mut self.brokers {
            let Some(mut child) = broker.child.take() else { continue };
            let status = loop {
                if let Ok(Some(status)) = child.try_wait() {
                    break Some(status);
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(WAIT_POLL_MS / 4));
            };
            match status {
                Some(status) if status.success() => {}
                Some(status) => unclean.push(format!("node {} exited with {status} on SIGTERM", broker.node)),
                None => unclean.push(format!(
                    "node {} did not exit within {BROKER_STOP_TIMEOUT_MS} ms of SIGTERM (killed)",
                    broker.node
                )),
            }
            broker.health = Health::Dead;
        }
        unclean
    }

    /// Waits until `node` answers ready on its admin port.
    pub fn wait_ready(&mut self, node: u32) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(BROKER_READY_TIMEOUT_MS);
        loop {
            if let Ok((200, _)) = admin_get(node, "/v1/status/ready") {
                return Ok(());
            }
            if let Some(child) = self.broker(node).child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("node {node} exited with {status} before it was ready (see n{node}/broker.log)");
            }
            if Instant::now() >= deadline {
                bail!("node {node} not ready within {BROKER_READY_TIMEOUT_MS} ms");
            }
            std::thread::sleep(Duration::from_millis(WAIT_POLL_MS));
        }
    }

    pub fn health(&self, node: u32) -> Health {
        self.brokers[(node - 1) as usize].health
    }
}

/// One partition as its leader reports it.
pub struct PartitionView {
    /// The node that reports itself leader.
    pub leader: u32,
    pub high_watermark: i64,
    /// Every replica has caught up with the leader.
    pub caught_up: bool,
    pub replicas: Vec<u32>,
}

/// The view of each partition from the replica that says it leads (partitions without one are
/// missing).
pub fn partition_views(config: &RunConfig) -> BTreeMap<PartitionKey, PartitionView> {
    let mut views = BTreeMap::new();
    for (topic, partition) in all_partitions() {
        for node in 1..=config.nodes {
            let Ok((200, view)) = admin_get(node, &format!("/v1/partitions/{topic}/{partition}")) else { continue };
            if view["leader"].as_i64() != Some(i64::from(node)) || view["role"] != "leader" {
                continue;
            }
            let replicas = view["replicas"].as_array().cloned().unwrap_or_default();
            let caught_up = replicas.iter().all(|r| r["lag"].as_i64() == Some(0));
            let high_watermark = view["high_watermark"].as_i64().unwrap_or(-1);
            let replicas = replicas.iter().filter_map(|r| r["node_id"].as_u64()).map(|n| n as u32).collect();
            views.insert(
                PartitionKey::new(topic.clone(), partition),
                PartitionView { leader: node, high_watermark, caught_up, replicas },
            );
            break;
        }
    }
    views
}

/// `GET path` on `node`'s admin port: (status, JSON body). HTTP/1.0, so the server closes the
/// connection after the answer and the body is everything after the headers.
pub fn admin_get(node: u32, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let timeout = Duration::from_millis(ADMIN_TIMEOUT_MS);
    let addr = RunConfig::admin_addr(node).parse().expect("admin address parses");
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", RunConfig::admin_addr(node))?;
    let mut response = String::new();
    stream.take(ADMIN_RESPONSE_BYTES_MAX).read_to_string(&mut response)?;
    let status: u16 = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status from node {node}"))?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let json = serde_json::from_str(body.trim()).unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}
