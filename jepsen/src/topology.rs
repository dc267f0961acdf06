//! The run's network: one namespace per host, a client namespace, and a bridge in a namespace of
//! its own that joins them (jepsen_tla.md §2.3); plus each host's tmpfs disk. And its teardown.
//!
//! Why teardown needs no state file: everything this module makes is named `sj-*` (namespaces)
//! or mounted from a source named `sj-n*` (tmpfs), so teardown finds it from `ip netns list`
//! and /proc/mounts. It can therefore run after any failure, after a killed supervisor, or at
//! the start of the next run, and it is idempotent.

use crate::config::{CLIENT_HOST, CLIENT_NS, DISK_MB, NODE_NS_PREFIX, RunConfig, SUBNET, SWITCH_NS};
use crate::shell;

/// Namespaces teardown removes, bounded (the harness makes at most NODES_MAX + 2).
const NAMESPACES_MAX: usize = 64;

/// Makes the switch, the hosts and the client namespace, each host's tmpfs disk, and the
/// faketime file each broker reads.
pub fn up(config: &RunConfig) -> anyhow::Result<()> {
    shell::run(&["ip", "netns", "add", SWITCH_NS])?;
    shell::run(&["ip", "-n", SWITCH_NS, "link", "add", "br0", "type", "bridge"])?;
    shell::run(&["ip", "-n", SWITCH_NS, "link", "set", "br0", "up"])?;
    shell::run(&["ip", "-n", SWITCH_NS, "link", "set", "lo", "up"])?;
    for node in 1..=config.nodes {
        attach(&RunConfig::node_ns(node), &format!("v{node}"), &RunConfig::host(node))?;
        let disk = config.disk_dir(node);
        std::fs::create_dir_all(&disk)?;
        let size = format!("size={DISK_MB}m,mode=0700");
        let source = RunConfig::node_ns(node);
        shell::run(&["mount", "-t", "tmpfs", "-o", &size, &source, &disk.to_string_lossy()])?;
        std::fs::write(config.faketime_file(node), "+0s\n")?;
    }
    attach(CLIENT_NS, "vc", &format!("{SUBNET}.{CLIENT_HOST}"))?;
    Ok(())
}

/// One host namespace with a veth pair: `eth0` inside at `address`/24, `port` on the bridge.
fn attach(ns: &str, port: &str, address: &str) -> anyhow::Result<()> {
    shell::run(&["ip", "netns", "add", ns])?;
    shell::run(&["ip", "link", "add", port, "netns", SWITCH_NS, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
    shell::run(&["ip", "-n", SWITCH_NS, "link", "set", port, "master", "br0"])?;
    shell::run(&["ip", "-n", SWITCH_NS, "link", "set", port, "up"])?;
    shell::run(&["ip", "-n", ns, "addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
    shell::run(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
    shell::run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// The `sj-*` namespaces that exist now.
pub fn namespaces() -> Vec<String> {
    let listed = shell::run(&["ip", "netns", "list"]).unwrap_or_default();
    let mut found: Vec<String> = listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with("sj-"))
        .map(str::to_string)
        .collect();
    found.truncate(NAMESPACES_MAX);
    found
}

/// Removes everything a run made: kills every process in the `sj-*` namespaces (continuing
/// stopped ones first), unmounts the hosts' disks, deletes the namespaces (the switch last).
pub fn teardown() {
    let namespaces = namespaces();
    for ns in &namespaces {
        let pids = shell::run(&["ip", "netns", "pids", ns]).unwrap_or_default();
        for pid in pids.split_whitespace() {
            shell::run_quiet(&["kill", "-CONT", pid]);
            shell::run_quiet(&["kill", "-KILL", pid]);
        }
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(source), Some(target)) = (fields.next(), fields.next()) else { continue };
        if source.starts_with(NODE_NS_PREFIX) {
            shell::run_quiet(&["umount", "-l", target]);
        }
    }
    for ns in namespaces.iter().filter(|ns| ns.as_str() != SWITCH_NS) {
        shell::run_quiet(&["ip", "netns", "del", ns]);
    }
    shell::run_quiet(&["ip", "netns", "del", SWITCH_NS]);
}
