//! The advisor's evidence from a running testnet: every validator watched for a window (CPU,
//! allocations, lock waits, stage latencies from /metrics and /proc, node0's CPU profile, and
//! signature verifications per tx), the way the experiment measures a step. The chain needs
//! load during the window (`tpslab load` alongside); its toggles are read from node0's config.

use super::evidence::{CpuShares, Evidence};
use crate::monitor::{http_get, metric, watch_testnet, Monitor};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Duration;

/// Txs committed so far (node0's view) and each node's tx signature verifications.
async fn counts(metrics_addrs: &[String]) -> Result<(f64, Vec<f64>)> {
    let mut committed = None;
    let mut verifications = Vec::new();
    for addr in metrics_addrs {
        let page = http_get(addr, "/metrics")
            .await
            .with_context(|| format!("cannot read {addr}/metrics"))?;
        if committed.is_none() {
            committed = metric(&page, "consensus_total_txs");
        }
        verifications.push(tx_verifications(&page));
    }
    let committed = committed.context("node0's /metrics has no consensus_total_txs")?;
    Ok((committed, verifications))
}

/// The sum of `tpslab_signature_verifications_total` over the tx paths of a metrics page.
fn tx_verifications(page: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with("tpslab_signature_verifications_total{path=\"tx_"))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum()
}

/// Watches the testnet in `dir` for `secs` seconds (node0 profiled when `profile`).
pub async fn measure(dir: &Path, secs: u64, profile: bool) -> Result<Evidence> {
    if secs == 0 {
        bail!("the window must be at least 1 s");
    }
    let file = tpslab_testnet::load(dir)?;
    let node0 = file
        .nodes
        .first()
        .context("the testnet has no validators")?;
    let config = tpslab_api::config::Config::load(&node0.home.join("config.toml"))
        .with_context(|| format!("reading {}'s config", node0.name))?;
    let genesis = tpslab_api::genesis::Genesis::load(&node0.home.join("genesis.json"))?;
    let mut watched = watch_testnet(&file);
    if profile {
        watched[0].profile_secs = Some(secs);
    }
    let addrs: Vec<String> = file.nodes.iter().map(|n| n.metrics_addr.clone()).collect();
    let (before, v_before) = counts(&addrs).await?;
    let monitor = Monitor::start(watched, Duration::from_millis(500));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let resources = monitor.finish().await;
    let (after, v_after) = counts(&addrs).await?;
    let committed = after - before;
    if committed < 1.0 {
        bail!(
            "no tx committed in the {secs} s window: the advisor reads a chain under load \
             (run `tpslab load --testnet {}` alongside)",
            dir.display()
        );
    }
    let per_tx = |v: f64| v / committed;
    let sum = |f: &dyn Fn(&crate::monitor::NodeResources) -> Option<f64>| {
        let vals: Vec<f64> = resources.iter().filter_map(f).collect();
        (!vals.is_empty()).then(|| vals.iter().sum::<f64>())
    };
    let verified: f64 = v_after.iter().zip(&v_before).map(|(a, b)| a - b).sum();
    let windows: Vec<_> = resources.iter().map(|r| r.stage_window.clone()).collect();
    let functions = match resources.first().and_then(|r| r.profile_pb.as_deref()) {
        Some(pb) => crate::profile::functions(pb).unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Evidence {
        source: format!("testnet {} ({secs} s)", dir.display()),
        engine: genesis.consensus.to_string(),
        enabled: config
            .tuning
            .enabled()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        tps: committed / secs as f64,
        offered_rate: None,
        p99_ms: None,
        cpu: CpuShares::of(&functions),
        validators_cpu_pct: sum(&|r| r.cpu_pct),
        machine_cpus: std::thread::available_parallelism().ok().map(|n| n.get()),
        allocs_per_tx: sum(&|r| r.allocations.map(|a| a as f64)).map(per_tx),
        lock_wait_us_per_tx: sum(&|r| r.lock_wait_ms).map(|ms| per_tx(ms * 1000.0)),
        verifications_per_tx: (verified > 0.0)
            .then(|| verified / (committed * file.nodes.len() as f64)),
        stages: if windows.iter().any(|w| !w.is_empty()) {
            tpslab_types::stages::summarize(&windows)
        } else {
            Vec::new()
        },
        block_interval_ms: Some(config.consensus.block_interval_ms as f64),
        probes: None,
        wire_copies_per_tx: super::evidence::wire_copies(&resources),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tx_verifications_sum_the_tx_paths_only() {
        let page = "# HELP x\n\
            tpslab_signature_verifications_total{path=\"tx_single\"} 10\n\
            tpslab_signature_verifications_total{path=\"tx_batch\"} 5\n\
            tpslab_signature_verifications_total{path=\"vote\"} 100\n";
        assert_eq!(super::tx_verifications(page), 15.0);
    }
}
