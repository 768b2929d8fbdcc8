//! `tpslab load` and `tpslab bench`: argument parsing and target resolution around the
//! tpslab-bench library.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use tpslab_api::client::connect;
use tpslab_api::genesis::{Genesis, GenesisAccounts};
use tpslab_api::proto::StatusRequest;
use tpslab_bench::monitor::watch_testnet;
use tpslab_bench::perturb::{Perturb, Schedule};
use tpslab_bench::saturate::{saturate, SaturateConfig};
use tpslab_bench::sink::{self, SinkOptions};
use tpslab_bench::{LoadConfig, Mode};
use tpslab_testnet as testnet;
use tpslab_types::AppKind;

pub use tpslab_bench::parse_duration;

/// Where the load goes and what it is.
#[derive(Args, Clone)]
pub struct LoadTarget {
    /// Node gRPC addresses, comma-separated; load is spread over them.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "testnet",
        required_unless_present = "testnet"
    )]
    target: Vec<String>,
    /// Genesis of the chain (chain id, test account seed); required with --target for the
    /// transfer workload.
    #[arg(long, conflicts_with = "testnet")]
    genesis: Option<PathBuf>,
    /// Or: every validator of a testnet made by `tpslab testnet init` (CPU, RSS and /metrics
    /// of each are sampled during the window).
    #[arg(long)]
    testnet: Option<PathBuf>,
    /// transfer (signed transfers) or kvstore (unsigned key=value); default: the node's app.
    #[arg(long)]
    workload: Option<AppKind>,
    /// Approximate size of each tx in bytes (CometBFT QA uses 1024).
    #[arg(long, default_value_t = 250)]
    tx_size: usize,
    /// Contend on purpose: every tx pays one of N accounts (kvstore: writes one of N keys), so
    /// a block's txs fall into at most N conflict groups for parallel-exec. Default: no two
    /// senders share state.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    hot_accounts: Option<u64>,
    /// Measured window, e.g. 30s, 500ms, 2m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Sent before the window and not measured.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    warmup: Duration,
    /// After the last send, wait this long for outstanding commits.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    drain: Duration,
    /// No live progress line (it is never drawn when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args)]
pub struct LoadArgs {
    #[command(flatten)]
    to: LoadTarget,
    /// Run the generator only on these CPUs, e.g. `1` (sched_setaffinity), to keep it off
    /// the validators' (see `testnet up --cpus`); the report records the placement.
    #[arg(long)]
    pub(crate) cpus: Option<String>,
    /// Open loop: offered rate, tx/s (each tx has an intended send time).
    #[arg(long, default_value_t = 1000, conflicts_with = "concurrency")]
    rate: u64,
    /// Closed loop instead: keep this many txs in flight.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Closed loop: txs made before the run.
    #[arg(long, default_value_t = 200_000)]
    max_txs: u64,
    /// Write the full report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Faults during the window, from its start, e.g.
    /// `kill:node2@5s,restart:node2@12s,pause:node1@15s-20s,disconnect:node3@25s-30s`
    /// (pause = SIGSTOP..SIGCONT; disconnect = the node drops and refuses its peer links,
    /// needs a testnet made with `testnet init --fault-injection`).
    /// Load goes only to the nodes it leaves alone; afterwards the nodes settle and are
    /// audited. Needs --testnet.
    #[arg(long, requires = "testnet")]
    perturb: Option<Schedule>,
}

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Step the offered rate up until committed TPS stops following it or P99 passes a
    /// bound; report the saturation point, and the machine it was measured on (CPU model,
    /// cores, and how fast this CPU verifies a transfer's signature: capacities measured on
    /// different CPUs compare only with that line beside them).
    Saturate(SaturateArgs),
    /// The generator's own maximum send rate, against an in-process node that accepts every
    /// tx and commits it within 10 ms (real gRPC over loopback).
    Generator(GeneratorArgs),
}

#[derive(Args)]
pub struct SaturateArgs {
    #[command(flatten)]
    to: LoadTarget,
    /// First offered rate, tx/s.
    #[arg(long, default_value_t = 500)]
    start_rate: u64,
    /// Multiply the rate by this each step.
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    /// Stop above this rate.
    #[arg(long, default_value_t = 200_000)]
    max_rate: u64,
    /// When the first rate does not keep up, step down (dividing by --factor) to this rate
    /// before giving up.
    #[arg(long, default_value_t = 50)]
    min_rate: u64,
    /// A step keeps up when at least this fraction of the txs offered in its window commit.
    #[arg(long, default_value_t = 0.95)]
    keep_up: f64,
    /// ... and its P99 is at most this, ms.
    #[arg(long, default_value_t = 1000.0)]
    max_p99_ms: f64,
    /// Then at most this many runs bisecting between the last rate kept up and the first not
    /// (stops within 2%); 0 keeps the capacity as coarse as --factor.
    #[arg(long, default_value_t = 4)]
    bisect: u32,
    /// Run a rate that did not keep up again, up to this many times, before counting it as
    /// saturated: one transient P99 spike otherwise ends a search early (every try is listed).
    #[arg(long, default_value_t = 1)]
    confirm: u32,
    /// Before each step, wait at most this long for the nodes' mempools to empty (what a
    /// saturated step left behind would load the next one).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    settle: Duration,
    /// Write all steps as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
pub struct GeneratorArgs {
    /// transfer or kvstore.
    #[arg(long, default_value = "kvstore")]
    workload: AppKind,
    /// Offered rate, tx/s: set it above what the generator can do.
    #[arg(long, default_value_t = 200_000)]
    rate: u64,
    /// Measured window.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    duration: Duration,
    /// Approximate size of each tx in bytes.
    #[arg(long, default_value_t = 250)]
    tx_size: usize,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

async fn resolve(t: &LoadTarget) -> Result<LoadConfig> {
    let (targets, genesis, watch) = match &t.testnet {
        Some(dir) => {
            let file = testnet::load(dir)?;
            let g = Genesis::load(&file.nodes[0].home.join("genesis.json"))?;
            let watch = watch_testnet(&file);
            // A byzantine node may drop or censor what it is sent: load goes to honest ones.
            (
                file.honest().map(|n| n.grpc_addr.clone()).collect(),
                Some(g),
                watch,
            )
        }
        None => {
            let g = t.genesis.as_ref().map(|g| Genesis::load(g)).transpose()?;
            (t.target.clone(), g, Vec::new())
        }
    };
    let first: &String = targets.first().context("no target")?;
    let workload = match t.workload {
        Some(w) => w,
        None => {
            let app = connect(first)
                .await?
                .status(StatusRequest {})
                .await
                .with_context(|| format!("asking {first} for its app"))?
                .into_inner()
                .app;
            app.parse().unwrap_or_default()
        }
    };
    let genesis = match (genesis, workload) {
        (Some(g), _) => g,
        (None, AppKind::KvStore) => accounts_only_genesis("", "", 0),
        (None, AppKind::Transfer) => {
            anyhow::bail!("--genesis is required with --target for the transfer workload")
        }
    };
    Ok(LoadConfig {
        targets,
        genesis,
        workload,
        mode: Mode::Open { rate: 1 },
        duration: t.duration,
        warmup: t.warmup,
        tx_size: t.tx_size,
        drain: t.drain,
        watch,
        progress: !t.no_progress,
        perturb: None,
        hot_accounts: t.hot_accounts,
    })
}

/// A genesis carrying only what the generator reads (chain id, test account seed and count),
/// for targets without a genesis file: kvstore chains and the sink.
fn accounts_only_genesis(chain_id: &str, seed: &str, count: u64) -> Genesis {
    Genesis {
        chain_id: chain_id.into(),
        genesis_time_unix_nanos: 0,
        consensus: Default::default(),
        validators: Vec::new(),
        accounts: GenesisAccounts {
            seed: seed.into(),
            count,
            balance: 0,
        },
    }
}

fn write_json(path: &Option<PathBuf>, v: &impl serde::Serialize) -> Result<()> {
    if let Some(p) = path {
        std::fs::write(p, serde_json::to_string_pretty(v)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// `tpslab load`.
pub async fn load(a: LoadArgs) -> Result<()> {
    let mut cfg = resolve(&a.to).await?;
    cfg.mode = match a.concurrency {
        Some(concurrency) => Mode::Closed {
            concurrency,
            max_txs: a.max_txs,
        },
        None => Mode::Open { rate: a.rate },
    };
    let dir = a.to.testnet.clone();
    let file = dir.as_deref().map(testnet::load).transpose()?;
    let byzantine = file
        .as_ref()
        .is_some_and(|f| f.nodes.iter().any(|n| n.byzantine.is_some()));
    let placement = placement(a.cpus.as_deref(), file.as_ref());
    if let (Some(schedule), Some(file)) = (a.perturb, file) {
        let p = Perturb {
            schedule,
            nodes: file.nodes,
            exe: std::env::current_exe().context("cannot find the tpslab binary")?,
        };
        p.check()?;
        cfg.targets = p
            .untouched()
            .iter()
            .filter(|n| n.byzantine.is_none())
            .map(|n| n.grpc_addr.clone())
            .collect();
        if cfg.targets.is_empty() {
            anyhow::bail!("--perturb leaves no honest node to send load to");
        }
        cfg.perturb = Some(p);
    }
    let mut report = tpslab_bench::run(&cfg).await?;
    report.placement = placement;
    print!("{}", report.table());
    write_json(&a.json, &report)?;
    match &dir {
        Some(dir) if cfg.perturb.is_some() || byzantine => settle_and_audit(dir).await,
        _ => Ok(()),
    }
}

/// Where the generator and each validator ran, when any was pinned.
fn placement(generator: Option<&str>, file: Option<&testnet::TestnetFile>) -> Option<String> {
    let mut parts = vec![format!("generator cpus {}", generator.unwrap_or("any"))];
    let nodes = file.map(|f| f.nodes.as_slice()).unwrap_or_default();
    parts.extend(
        nodes
            .iter()
            .map(|n| format!("{} cpus {}", n.name, n.cpus.as_deref().unwrap_or("any"))),
    );
    let pinned = generator.is_some() || nodes.iter().any(|n| n.cpus.is_some());
    pinned.then(|| parts.join(", "))
}

/// After a perturbed run or one with byzantine nodes: waits (up to 60 s) until every honest
/// node has reached the height the furthest one had when the run ended (a restarted node
/// catches up by block sync), then checks the honest nodes hold the same chain.
async fn settle_and_audit(dir: &std::path::Path) -> Result<()> {
    let byzantine: Vec<String> = testnet::load(dir)?
        .nodes
        .iter()
        .filter(|n| n.byzantine.is_some())
        .map(|n| n.name.clone())
        .collect();
    if !testnet::settle(dir, Duration::from_secs(60)).await? {
        eprintln!(
            "warning: not every honest node caught up within 60 s; auditing the common heights"
        );
    }
    let scope = testnet::CheckScope {
        honest_only: true,
        skip: Vec::new(),
    };
    let h = testnet::check(dir, &scope).await?;
    if byzantine.is_empty() {
        println!("audit: every node holds the same chain up to height {h}");
    } else {
        println!(
            "audit: every honest node holds the same chain up to height {h} (byzantine, not audited: {})",
            byzantine.join(", ")
        );
    }
    Ok(())
}

/// `tpslab bench ...`.
pub async fn bench(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Saturate(a) => {
            let load = resolve(&a.to).await?;
            let report = saturate(&SaturateConfig {
                load,
                start_rate: a.start_rate,
                factor: a.factor,
                max_rate: a.max_rate,
                keep_up: a.keep_up,
                max_p99_ms: a.max_p99_ms,
                bisect: a.bisect,
                confirm: a.confirm,
                min_rate: a.min_rate,
                settle: a.settle,
            })
            .await?;
            print!("{}", report.table());
            write_json(&a.json, &report)
        }
        BenchCmd::Generator(a) => {
            let addr = sink::serve(SinkOptions {
                commit_every: Duration::from_millis(10),
                max_rate: None,
                app: a.workload,
            })
            .await?;
            let genesis = accounts_only_genesis("sink", "tpslab", 10_000);
            let report = tpslab_bench::run(&LoadConfig {
                targets: vec![addr.to_string()],
                genesis,
                workload: a.workload,
                mode: Mode::Open { rate: a.rate },
                duration: a.duration,
                warmup: Duration::from_millis(500),
                tx_size: a.tx_size,
                drain: Duration::from_secs(10),
                watch: Vec::new(),
                progress: false,
                perturb: None,
                hot_accounts: None,
            })
            .await?;
            print!("{}", report.table());
            println!(
                "generator maximum send rate: {:.0} tx/s{}",
                report.send_rate,
                if report.sent_late == 0 {
                    " (kept the offered rate: raise --rate to find the limit)"
                } else {
                    ""
                }
            );
            write_json(&a.json, &report)
        }
    }
}
