//! nftables rulesets for the switch namespace: partitions (a grudge) and random packet loss.
//!
//! Why nftables on the bridge: every packet between hosts crosses the bridge in the switch
//! namespace, so one bridge-family table with a forward hook can drop any host pair's traffic
//! without touching the hosts (jepsen_tla.md §2.4). `numgen random mod 100 < p drop` gives random
//! loss without `tc netem`, which this kernel lacks (§2.5). Each fault owns one table; a
//! ruleset replaces its table atomically (`table; delete table; table {...}` in one `nft -f`).
//! Clients (at `.CLIENT_HOST`) are never matched: faults are between brokers, as in Jepsen's
//! Redpanda test. Verified on this kernel: the replace idiom, bridge grudges, bridge numgen.

use super::grudge::Grudge;
use crate::config::{RunConfig, SWITCH_NS};
use crate::shell;

pub const PARTITION_TABLE: &str = "sj_part";
pub const LOSS_TABLE: &str = "sj_loss";

fn addresses(nodes: impl IntoIterator<Item = u32>) -> String {
    let list: Vec<String> = nodes.into_iter().map(RunConfig::host).collect();
    format!("{{ {} }}", list.join(", "))
}

fn table(name: &str, chain: &str, rules: &[String]) -> String {
    let mut text = format!("table bridge {name}\ndelete table bridge {name}\ntable bridge {name} {{\n");
    text.push_str(&format!("  chain {chain} {{\n    type filter hook forward priority 0; policy accept;\n"));
    for rule in rules {
        text.push_str(&format!("    {rule}\n"));
    }
    text.push_str("  }\n}\n");
    text
}

/// Every node drops what comes from the nodes it holds a grudge against.
pub fn partition_ruleset(grudge: &Grudge) -> String {
    let rules: Vec<String> = grudge
        .0
        .iter()
        .filter(|(_, from)| !from.is_empty())
        .map(|(node, from)| {
            format!("ip saddr {} ip daddr {} drop", addresses(from.iter().copied()), RunConfig::host(*node))
        })
        .collect();
    table(PARTITION_TABLE, "grudge", &rules)
}

/// Packets from other brokers to each target are dropped with probability `percent`.
pub fn loss_ruleset(targets: &[u32], nodes: u32, percent: u32) -> String {
    assert!(percent <= 100, "a loss is a percentage");
    let rules: Vec<String> = targets
        .iter()
        .map(|&target| {
            let others = (1..=nodes).filter(|&n| n != target);
            format!(
                "ip saddr {} ip daddr {} numgen random mod 100 < {percent} drop",
                addresses(others),
                RunConfig::host(target)
            )
        })
        .collect();
    table(LOSS_TABLE, "loss", &rules)
}

pub fn apply(ruleset: &str) -> anyhow::Result<()> {
    shell::run_ok(&["ip", "netns", "exec", SWITCH_NS, "nft", "-f", "-"], Some(ruleset))?;
    Ok(())
}

/// Deletes a table if it exists.
pub fn heal(table_name: &str) {
    let flush = format!("table bridge {table_name}\ndelete table bridge {table_name}\n");
    if let Err(error) = shell::run_ok(&["ip", "netns", "exec", SWITCH_NS, "nft", "-f", "-"], Some(&flush)) {
        eprintln!("jepsen: healing nft table {table_name}: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_rules_spare_the_clients() {
        let text = loss_ruleset(&[2], 3, 20);
        assert!(text.contains("ip saddr { 10.77.0.1, 10.77.0.3 } ip daddr 10.77.0.2 numgen random mod 100 < 20 drop"));
        assert!(!text.contains(".100"));
        assert!(text.starts_with("table bridge sj_loss\ndelete table bridge sj_loss\n"));
    }
}
