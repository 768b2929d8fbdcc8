//! `tpslab testnet rollout`: the article's canary. One validator at a time: out of the load
//! targets, two commits to let what it admitted reach the others, restart with the new
//! toggles, back at the tip, then a soak (under load, back in the targets) comparing its
//! health with its peers' (and, when the testnet runs a Prometheus, the alerts active on it
//! alone); a regression beyond [`Thresholds`] restores its old config and stops the rollout.
//! Mixed toggle sets are safe to run side by side: every toggle keeps the
//! verdicts (CONVENTIONS.md, "one verdict"), which the final audit checks again.

mod alerts;
mod health;

pub use alerts::AlertCheck;
pub use health::{judge, Health, Thresholds};

use crate::monitor::{watch_testnet, Monitor, NodeResources};
use crate::{LoadConfig, LoadReport, Mode};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tpslab_api::client::connect;
use tpslab_api::config::Config;
use tpslab_api::genesis::Genesis;
use tpslab_api::proto::{GetBlockRequest, StatusRequest};
use tpslab_testnet::{self as testnet, TestnetFile, TestnetNode};

/// Load on the others while a canary restarts: long enough to cover the two commits, the
/// restart and the catch-up of a release build (a few seconds), short enough to keep the
/// rollout brisk; a catch-up that takes longer is waited for without load.
const RESTART_LOAD: Duration = Duration::from_secs(8);

/// What to roll out, and how.
#[derive(Clone, Debug)]
pub struct RolloutConfig {
    /// The testnet directory.
    pub dir: PathBuf,
    /// The binary to restart validators with.
    pub exe: PathBuf,
    /// Toggles to turn on.
    pub opts: Vec<String>,
    /// Offered rate during the rollout, tx/s (None: no load).
    pub under_load: Option<u64>,
    /// Health comparison window per canary.
    pub soak: Duration,
    /// When a canary is worse than its peers.
    pub thresholds: Thresholds,
}

/// One canary's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Canary {
    /// The validator.
    pub node: String,
    /// Toggles on before and after.
    pub before: Vec<String>,
    /// See `before`.
    pub after: Vec<String>,
    /// Stop to back at the tip, seconds.
    pub restart_secs: f64,
    /// The soak's comparison.
    pub health: Health,
    /// Kept (false: rolled back).
    pub kept: bool,
}

/// The whole rollout.
#[derive(Clone, Debug, Serialize)]
pub struct RolloutReport {
    /// The toggles rolled out.
    pub opts: Vec<String>,
    /// Each validator's canary, in order (the rollout stops at a rollback).
    pub canaries: Vec<Canary>,
    /// Why the rollout stopped, if a canary was rolled back.
    pub rolled_back: Option<String>,
    /// Every load run during the rollout (restart phases and soaks).
    pub loads: Vec<LoadReport>,
    /// Heights the rollout spanned.
    pub from_height: u64,
    /// See `from_height`.
    pub to_height: u64,
    /// Longest gap between consecutive block times in that span, ms.
    pub max_commit_gap_ms: f64,
    /// The chain's timeout_propose, ms (the gap's bound is twice it).
    pub timeout_propose_ms: u64,
    /// `testnet check` passed up to this height.
    pub audited_height: u64,
}

impl RolloutReport {
    /// Accepted txs of every load that did not commit.
    pub fn lost_txs(&self) -> u64 {
        self.loads.iter().map(|l| l.uncommitted).sum()
    }
}

async fn height(addr: &str) -> Option<u64> {
    let mut c = connect(addr).await.ok()?;
    Some(c.status(StatusRequest {}).await.ok()?.into_inner().height)
}

async fn max_height(nodes: &[&TestnetNode]) -> u64 {
    let mut h = 0;
    for n in nodes {
        h = h.max(height(&n.grpc_addr).await.unwrap_or(0));
    }
    h
}

/// Waits until `node` is within one block of the others' highest height.
async fn wait_at_tip(node: &TestnetNode, others: &[&TestnetNode], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let tip = max_height(others).await;
        if let Some(h) = height(&node.grpc_addr).await {
            if h + 1 >= tip {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{} did not reach the tip ({tip}) in {timeout:?}", node.name);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the chain at `addr` is `n` blocks past where it is now.
async fn wait_blocks(addr: &str, n: u64, timeout: Duration) -> Result<()> {
    let start = height(addr).await.context("a peer stopped answering")?;
    let deadline = Instant::now() + timeout;
    while height(addr).await.unwrap_or(0) < start + n {
        if Instant::now() > deadline {
            bail!("the chain made no {n} blocks in {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Turns `opts` on in `home`'s config.toml; returns the old text (for a rollback) and the
/// toggles on before and after.
fn set_tuning(home: &Path, opts: &[String]) -> Result<(String, Vec<String>, Vec<String>)> {
    let path = home.join("config.toml");
    let old =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut cfg = Config::parse(&old, &path.display().to_string())?;
    let before: Vec<String> = cfg.tuning.enabled().iter().map(|s| s.to_string()).collect();
    for o in opts {
        cfg.tuning.set(o, true)?;
    }
    let after: Vec<String> = cfg.tuning.enabled().iter().map(|s| s.to_string()).collect();
    tpslab_api::home::write_atomic(&path, &cfg.to_toml())?;
    Ok((old, before, after))
}

/// The chain a rollout drives: its validators, genesis and app.
struct Chain {
    file: TestnetFile,
    genesis: Genesis,
    app: tpslab_types::AppKind,
}

fn load_to(targets: &[&TestnetNode], chain: &Chain, rate: u64, secs: Duration) -> LoadConfig {
    LoadConfig {
        targets: targets.iter().map(|n| n.grpc_addr.clone()).collect(),
        genesis: chain.genesis.clone(),
        workload: chain.app,
        mode: Mode::Open { rate },
        duration: secs,
        warmup: Duration::ZERO,
        tx_size: 250,
        drain: Duration::from_secs(20),
        watch: Vec::new(),
        progress: false,
        perturb: None,
        hot_accounts: None,
    }
}

/// Restarts `node` with its config as it is now and waits until it is back at the tip.
async fn restart(cfg: &RolloutConfig, node: &TestnetNode, others: &[&TestnetNode]) -> Result<()> {
    testnet::stop_node(node)?;
    testnet::start_node(node, &cfg.exe)?;
    wait_at_tip(node, others, Duration::from_secs(60)).await
}

/// Fails unless `node`'s /metrics says each of `opts` is on (`tpslab_tuning_enabled`): the
/// process restarted runs the new paths, not just a config file that says so.
async fn check_running(node: &TestnetNode, opts: &[String]) -> Result<()> {
    let page = crate::http::http_get(&node.metrics_addr, "/metrics")
        .await
        .with_context(|| format!("reading {}'s /metrics", node.name))?;
    for o in opts {
        let sample = format!("tpslab_tuning_enabled{{toggle=\"{o}\"}} 1");
        if !page.lines().any(|l| l.trim() == sample) {
            bail!("its /metrics does not report {o} on (tpslab_tuning_enabled)");
        }
    }
    Ok(())
}

/// The alerts active now, if the testnet runs a Prometheus; with `fresh` (the canary and
/// the Unix time its soak began), once Prometheus has scraped it since. One that stopped
/// answering is an error: the operator asked for alerts to be watched.
async fn alerts_now(
    cfg: &RolloutConfig,
    chain: &Chain,
    fresh: Option<(&TestnetNode, f64)>,
) -> Result<Option<alerts::ByNode>> {
    let Some(prom) = alerts::prometheus(&cfg.dir) else {
        return Ok(None);
    };
    if let Some((node, since)) = fresh {
        let ok =
            alerts::wait_scraped(&prom, &node.metrics_addr, since, Duration::from_secs(15)).await;
        if !ok {
            bail!(
                "Prometheus on {prom} has not scraped {} since its restart",
                node.name
            );
        }
    }
    Ok(Some(alerts::active(&prom, &chain.file).await?))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One canary: out of the load, restarted with the toggles, soaked, judged, kept or rolled
/// back. Loads run go into `loads`.
async fn canary(
    cfg: &RolloutConfig,
    chain: &Chain,
    node: &TestnetNode,
    loads: &mut Vec<LoadReport>,
) -> Result<Canary> {
    let honest: Vec<&TestnetNode> = chain.file.honest().collect();
    let others: Vec<&TestnetNode> = honest
        .iter()
        .copied()
        .filter(|n| n.name != node.name)
        .collect();
    let first = others
        .first()
        .context("a rollout needs at least two validators")?;
    let restart_load = cfg.under_load.map(|rate| {
        let l = load_to(&others, chain, rate, RESTART_LOAD);
        tokio::spawn(async move { crate::run(&l).await })
    });
    // What the canary admitted from clients reaches the others by gossip within milliseconds
    // and a proposal within a block or two: two commits without it as a target drain it.
    wait_blocks(&first.grpc_addr, 2, Duration::from_secs(30)).await?;
    let alerts_before = alerts_now(cfg, chain, None).await?;
    let (old, before, after) = set_tuning(&node.home, &cfg.opts)?;
    let t = Instant::now();
    let back = match restart(cfg, node, &others).await {
        Ok(()) => check_running(node, &cfg.opts).await,
        Err(e) => Err(e),
    };
    let restart_secs = t.elapsed().as_secs_f64();
    if let Some(task) = restart_load {
        loads.push(task.await.context("the restart load panicked")??);
    }
    let health = match back {
        Ok(()) => {
            let targets: Vec<String> = honest.iter().map(|n| n.grpc_addr.clone()).collect();
            crate::saturate::settle_mempools(&targets, Duration::from_secs(30)).await;
            let soak_start = unix_now();
            let resources = soak(cfg, chain, &honest, loads).await?;
            let tip = max_height(&others).await;
            let lag = tip.saturating_sub(height(&node.grpc_addr).await.unwrap_or(0));
            let after = alerts_now(cfg, chain, Some((node, soak_start))).await?;
            let alerts = match (&alerts_before, after) {
                (Some(b), Some(a)) => Some(AlertCheck::of(&node.name, b, &a)),
                _ => None,
            };
            judge(&resources, &node.name, lag, alerts, &cfg.thresholds)
        }
        // Not back with the new toggles (it exited, never caught up, or runs without them):
        // a regression too.
        Err(e) => Health {
            regression: Some(format!("not back with the new toggles: {e:#}")),
            ..Health::default()
        },
    };
    let kept = health.regression.is_none();
    if !kept {
        tpslab_api::home::write_atomic(&node.home.join("config.toml"), &old)?;
        restart(cfg, node, &others).await?;
    }
    Ok(Canary {
        node: node.name.clone(),
        before,
        after,
        restart_secs,
        health,
        kept,
    })
}

/// Every validator watched for the soak; under load, all of them targets again.
async fn soak(
    cfg: &RolloutConfig,
    chain: &Chain,
    honest: &[&TestnetNode],
    loads: &mut Vec<LoadReport>,
) -> Result<Vec<NodeResources>> {
    let watch = watch_testnet(&chain.file);
    match cfg.under_load {
        Some(rate) => {
            let mut l = load_to(honest, chain, rate, cfg.soak);
            l.watch = watch;
            let report = crate::run(&l).await?;
            let resources = report.resources.clone();
            loads.push(report);
            Ok(resources)
        }
        None => {
            let m = Monitor::start(watch, Duration::from_secs(1));
            tokio::time::sleep(cfg.soak).await;
            Ok(m.finish().await)
        }
    }
}

/// The longest gap between consecutive block times at `addr` over `from..=to`, ms.
async fn max_gap_ms(addr: &str, from: u64, to: u64) -> Result<f64> {
    let mut c = connect(addr).await?;
    let mut prev: Option<u64> = None;
    let mut gap = 0u64;
    for h in from.max(1)..=to {
        let b = c
            .get_block(GetBlockRequest { height: h })
            .await?
            .into_inner();
        let t = b
            .block
            .and_then(|b| b.header)
            .map(|h| h.time_unix_nanos)
            .context("a block without a header")?;
        if let Some(p) = prev {
            gap = gap.max(t.saturating_sub(p));
        }
        prev = Some(t);
    }
    Ok(gap as f64 / 1e6)
}

/// Rolls `cfg.opts` out over the testnet's honest validators, one at a time.
pub async fn rollout(cfg: &RolloutConfig) -> Result<RolloutReport> {
    let file = testnet::load(&cfg.dir)?;
    let node0 = file
        .nodes
        .first()
        .context("the testnet has no validators")?
        .clone();
    let genesis = Genesis::load(&node0.home.join("genesis.json"))?;
    let node_cfg = Config::load(&node0.home.join("config.toml"))?;
    if cfg.opts.is_empty() {
        bail!("nothing to roll out: name toggles with --opt");
    }
    for o in &cfg.opts {
        tpslab_types::tuning::Tuning::baseline().set(o, true)?;
    }
    let chain = Chain {
        file,
        genesis,
        app: node_cfg.app,
    };
    let honest: Vec<&TestnetNode> = chain.file.honest().collect();
    let from_height = max_height(&honest).await;
    let mut report = RolloutReport {
        opts: cfg.opts.clone(),
        canaries: Vec::new(),
        rolled_back: None,
        loads: Vec::new(),
        from_height,
        to_height: from_height,
        max_commit_gap_ms: 0.0,
        timeout_propose_ms: node_cfg.consensus.timeout_propose_ms,
        audited_height: 0,
    };
    for node in &honest {
        eprintln!("rollout: {} ...", node.name);
        let c = canary(cfg, &chain, node, &mut report.loads).await?;
        eprintln!("rollout: {} {}", c.node, c.health.summary());
        let kept = c.kept;
        let reason = c.health.regression.clone();
        report.canaries.push(c);
        if !kept {
            report.rolled_back = reason.map(|r| format!("{}: {r}", node.name));
            break;
        }
    }
    testnet::settle(&cfg.dir, Duration::from_secs(60)).await?;
    report.to_height = max_height(&honest).await;
    report.max_commit_gap_ms = max_gap_ms(&node0.grpc_addr, from_height, report.to_height).await?;
    report.audited_height = testnet::check(
        &cfg.dir,
        &testnet::CheckScope {
            honest_only: true,
            skip: Vec::new(),
        },
    )
    .await?;
    Ok(report)
}
