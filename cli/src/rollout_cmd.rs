//! `tpslab testnet rollout`: turn toggles on across a running testnet one validator at a time
//! (the canary), with automatic rollback on a regression.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use tpslab_bench::parse_duration;
use tpslab_bench::rollout::{self, RolloutConfig, Thresholds};

#[derive(Args)]
pub struct RolloutArgs {
    /// The testnet directory (running: `testnet up`).
    dir: PathBuf,
    /// Toggles to turn on (repeatable or comma-separated; see `tpslab opts`).
    #[arg(long = "opt", value_delimiter = ',', required = true)]
    opts: Vec<String>,
    /// Keep this offered rate (tx/s) on the chain throughout: the canary is out of the targets
    /// while it restarts and back in them for its soak.
    #[arg(long)]
    under_load: Option<u64>,
    /// How long each canary is compared with its peers after its restart.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    soak: Duration,
    /// Roll back when the canary trails the others' tip by more blocks than this.
    #[arg(long, default_value_t = Thresholds::default().max_lag_blocks)]
    max_lag_blocks: u64,
    /// Roll back when its CPU exceeds the peers' median times this...
    #[arg(long, default_value_t = Thresholds::default().cpu_ratio)]
    max_cpu_ratio: f64,
    /// ...plus this many percentage points of one core.
    #[arg(long, default_value_t = Thresholds::default().cpu_slack_pct)]
    cpu_slack: f64,
    /// Roll back when its peak RSS exceeds the peers' median times this.
    #[arg(long, default_value_t = Thresholds::default().rss_ratio)]
    max_rss_ratio: f64,
    /// Roll back when its P99 of a stage it times itself (check_tx, consensus) exceeds the
    /// peers' median times this...
    #[arg(long, default_value_t = Thresholds::default().stage_ratio)]
    max_stage_ratio: f64,
    /// ...plus this many ms.
    #[arg(long, default_value_t = Thresholds::default().stage_slack_ms)]
    stage_slack_ms: f64,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub async fn rollout(a: RolloutArgs) -> Result<()> {
    let cfg = RolloutConfig {
        dir: a.dir,
        exe: std::env::current_exe().context("cannot find the tpslab binary")?,
        opts: a.opts,
        under_load: a.under_load,
        soak: a.soak,
        thresholds: Thresholds {
            max_lag_blocks: a.max_lag_blocks,
            cpu_ratio: a.max_cpu_ratio,
            cpu_slack_pct: a.cpu_slack,
            rss_ratio: a.max_rss_ratio,
            stage_ratio: a.max_stage_ratio,
            stage_slack_ms: a.stage_slack_ms,
        },
    };
    let r = rollout::rollout(&cfg).await?;
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("| node | before -> after | restart s | health | kept |");
    println!("|---|---|---|---|---|");
    for c in &r.canaries {
        println!(
            "| {} | {} -> {} toggles | {:.1} | {} | {} |",
            c.node,
            c.before.len(),
            c.after.len(),
            c.restart_secs,
            c.health.summary(),
            if c.kept { "yes" } else { "rolled back" }
        );
    }
    let sent: u64 = r.loads.iter().map(|l| l.sent).sum();
    let committed: u64 = r.loads.iter().map(|l| l.committed_including_warmup).sum();
    println!(
        "heights {}..={}: longest commit gap {:.0} ms (timeout_propose {} ms); loads sent {sent}, \
         committed {committed}, accepted but not committed {}; audit ok to height {}",
        r.from_height,
        r.to_height,
        r.max_commit_gap_ms,
        r.timeout_propose_ms,
        r.lost_txs(),
        r.audited_height
    );
    if let Some(why) = &r.rolled_back {
        bail!("rolled back, rollout stopped: {why}");
    }
    println!(
        "rolled out {} to {} validators",
        r.opts.join(","),
        r.canaries.len()
    );
    Ok(())
}
