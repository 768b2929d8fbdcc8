//! `tpslab testnet ...`: argument parsing and output around the tpslab-testnet library.

use crate::{genesis_args, opts_cmd, runtime};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tpslab_api::config::Config;
use tpslab_testnet as testnet;

#[derive(Subcommand)]
pub enum TestnetCmd {
    /// Generate keys, a shared genesis and per-node configs. Ports are free 127.0.0.1 ports
    /// from 20000-32767 (below the ephemeral range, so no outgoing connection can take one
    /// before the node binds it; TPSLAB_PORT_RANGE=LO-HI overrides). Nodes refuse to start
    /// when the largest allowed block would not fit one p2p frame.
    Init(TestnetInitArgs),
    /// Start every validator as its own process and wait until all serve gRPC.
    Up(UpArgs),
    /// Stop every validator (SIGTERM, then SIGKILL after 20 s).
    Down(DirArg),
    /// Height, peers and mempool size of each node.
    Status(DirArg),
    /// Safety audit: same block hash and app hash on every node at every common height; on a
    /// fork it names the validators that signed both conflicting commits.
    Check(CheckArgs),
    /// Turn toggles on one validator at a time (canary): out of the load, restarted with
    /// them, back at the tip, compared with its peers over a soak, rolled back on a
    /// regression; then an audit.
    Rollout(crate::rollout_cmd::RolloutArgs),
}

#[derive(Args)]
pub struct DirArg {
    /// The testnet directory (made by `testnet init`).
    dir: PathBuf,
}

#[derive(Args)]
pub struct UpArgs {
    /// The testnet directory (made by `testnet init`).
    dir: PathBuf,
    /// Also start a Prometheus (Debian's package) scraping every validator each second, with
    /// tpslab's alert and recording rules (ops/prometheus) loaded; `testnet down` stops it.
    #[arg(long)]
    prometheus: bool,
    /// With --prometheus: also load this rule file (repeatable), e.g. your own alerts; a
    /// rollout then watches them too.
    #[arg(long = "rules", requires = "prometheus")]
    rules: Vec<PathBuf>,
    /// Pin validators to CPUs, e.g. `node0=0,node1=0,node2=1,node3=1` (kept in testnet.json,
    /// so restarts keep it; `load --cpus` places the generator). Nodes not named run
    /// anywhere.
    #[arg(long)]
    cpus: Option<String>,
}

/// The operations kit's rule files, built into the binary so `up --prometheus` works away
/// from the source tree.
const RULES: &[(&str, &str)] = &[
    (
        "alerts.yml",
        include_str!("../../ops/prometheus/alerts.yml"),
    ),
    (
        "recording.yml",
        include_str!("../../ops/prometheus/recording.yml"),
    ),
];

/// The user's rule files, named as on disk (a name the kit's files use is refused, not
/// silently replaced).
fn extra_rules(paths: &[PathBuf]) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for p in paths {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("--rules {}: not a file name", p.display()))?
            .to_string();
        if RULES.iter().any(|(n, _)| *n == name) || out.iter().any(|(n, _)| *n == name) {
            anyhow::bail!(
                "--rules {}: a rule file named {name} is already loaded",
                p.display()
            );
        }
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("--rules {}: cannot read it", p.display()))?;
        out.push((name, text));
    }
    Ok(out)
}

#[derive(Args)]
pub struct TestnetInitArgs {
    /// Number of validators (4; with --hosts, one per host entry).
    #[arg(long)]
    validators: Option<usize>,
    /// Run the validators on other hosts, one per entry (IP or name; name a host twice for
    /// two validators there): fixed ports (p2p 26656, gRPC 9090, metrics 26660, +100 for a
    /// host's next validator), an admin token each, and per-host bundles under DIR/hosts
    /// (homes, systemd units, docker-compose.yml, Dockerfile) plus DIR/k8s (StatefulSet,
    /// Secrets). DIR/README.md says how to deploy them.
    #[arg(long, value_delimiter = ',')]
    hosts: Option<Vec<String>>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Chain id.
    #[arg(long, default_value = "tpslab-testnet")]
    chain_id: String,
    #[command(flatten)]
    genesis: genesis_args::GenesisArgs,
    /// Pause after each commit, ms (CometBFT's timeout_commit).
    #[arg(long, default_value_t = 200)]
    block_interval_ms: u64,
    /// The consensus engine: bft (Tendermint rounds, tolerates f byzantine of 3f+1) or raft
    /// (raft-rs, tolerates f crashed of 2f+1).
    #[arg(long, default_value = "bft")]
    consensus: tpslab_types::EngineKind,
    /// Test only: make nodes lie, e.g. `node3=equivocate` or `node2=silent,node3=silent`
    /// (equivocate, double-propose, invalid-block, silent, garbage, withhold-txs, flood-tx-requests). They get a [byzantine]
    /// config section, are started with --allow-byzantine, get no load from `load
    /// --testnet`, and `testnet check --honest-only` leaves them out.
    #[arg(long)]
    byzantine: Option<String>,
    /// Test only: start every node with --allow-fault-injection (its metrics address then
    /// serves `POST /fault/isolate?ms=N`, which `load --perturb disconnect:...` uses).
    #[arg(long)]
    fault_injection: bool,
    #[command(flatten)]
    tuning: opts_cmd::TuningArgs,
    #[command(flatten)]
    links: crate::link_args::LinkArgs,
}

#[derive(Args)]
pub struct CheckArgs {
    /// The testnet directory (made by `testnet init`).
    dir: PathBuf,
    /// Audit only the nodes not marked byzantine in testnet.json.
    #[arg(long)]
    honest_only: bool,
    /// Leave these nodes out, e.g. `node3` or `node2,node3`.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
}

pub fn testnet_cmd(t: TestnetCmd) -> Result<()> {
    match t {
        TestnetCmd::Init(a) => init(a),
        TestnetCmd::Up(d) => {
            if let Some(spec) = &d.cpus {
                place(&d.dir, spec)?;
            }
            let exe = std::env::current_exe()?;
            let file = runtime()?.block_on(testnet::up(
                &d.dir,
                &exe,
                std::time::Duration::from_secs(60),
            ))?;
            println!("{} validators up", file.nodes.len());
            if d.prometheus {
                let extra = extra_rules(&d.rules)?;
                let mut rules = RULES.to_vec();
                rules.extend(extra.iter().map(|(n, t)| (n.as_str(), t.as_str())));
                let addr = testnet::prometheus::start(&d.dir, &file, &rules)?;
                println!("prometheus on http://{addr} (alerts: http://{addr}/api/v1/alerts)");
            }
            Ok(())
        }
        TestnetCmd::Down(d) => down(&d.dir),
        TestnetCmd::Rollout(a) => crate::runtime_mt()?.block_on(crate::rollout_cmd::rollout(a)),
        TestnetCmd::Status(d) => status(&d),
        TestnetCmd::Check(a) => {
            let scope = testnet::CheckScope {
                honest_only: a.honest_only,
                skip: a.skip,
            };
            let h = runtime()?.block_on(testnet::check(&a.dir, &scope))?;
            let which = if scope.honest_only || !scope.skip.is_empty() {
                "audited"
            } else {
                "reachable"
            };
            println!("ok: all {which} nodes agree on block and app hash at heights 1..={h}");
            Ok(())
        }
    }
}

/// Records each named validator's CPUs in testnet.json (the others run anywhere).
fn place(dir: &std::path::Path, spec: &str) -> Result<()> {
    let placement = crate::cpus::parse_placement(spec)?;
    let mut file = testnet::load(dir)?;
    for (name, _) in &placement {
        if !file.nodes.iter().any(|n| &n.name == name) {
            anyhow::bail!("--cpus: {name} is not a node of this testnet");
        }
    }
    for n in &mut file.nodes {
        n.cpus = placement
            .iter()
            .find(|(name, _)| *name == n.name)
            .map(|(_, l)| l.clone());
    }
    file.save(dir)
}

fn init(a: TestnetInitArgs) -> Result<()> {
    let mut config = Config::default();
    config.consensus.block_interval_ms = a.block_interval_ms;
    config.app = a.genesis.app;
    if let Some(t) = a.tuning.resolve()? {
        config.tuning = t;
    }
    let validators = match (&a.hosts, a.validators) {
        (Some(h), None) => h.len(),
        (_, v) => v.unwrap_or(4),
    };
    let file = testnet::init(&testnet::TestnetInit {
        validators,
        out: a.out.clone(),
        chain_id: a.chain_id,
        accounts: a.genesis.accounts,
        seed: a.genesis.seed,
        balance: a.genesis.balance,
        config,
        byzantine: a
            .byzantine
            .as_deref()
            .map(testnet::parse_byzantine)
            .transpose()?
            .unwrap_or_default(),
        fault_injection: a.fault_injection,
        consensus: a.consensus,
        links: a.links.resolve()?,
        hosts: a.hosts.clone(),
    })?;
    for n in &file.nodes {
        println!(
            "{}  grpc {}  p2p {}  {}{}",
            n.name,
            n.grpc_addr,
            n.p2p_addr,
            match &n.host {
                Some(h) => format!("host {h}  bundle {}", n.home.display()),
                None => format!("home {}", n.home.display()),
            },
            n.byzantine
                .map(|b| format!("  BYZANTINE: {b}"))
                .unwrap_or_default()
        );
    }
    if let Some(l) = &file.links {
        println!("emulated network: {l}");
    }
    if testnet::is_remote(&file) {
        println!(
            "deploy it host by host: {}",
            a.out.join("README.md").display()
        );
    } else {
        println!("start it with: tpslab testnet up {}", a.out.display());
    }
    Ok(())
}

/// `testnet down`: local validators by signal, remote ones through their admin RPC.
fn down(dir: &std::path::Path) -> Result<()> {
    if !testnet::is_remote(&testnet::load(dir)?) {
        return testnet::down(dir);
    }
    let stops = runtime()?.block_on(testnet::down_remote(dir))?;
    let mut failed = Vec::new();
    for s in &stops {
        match &s.outcome {
            testnet::StopOutcome::Stopping(h) => {
                println!("{}: stopping at height {h}", s.name)
            }
            testnet::StopOutcome::Unreachable(e) => {
                println!(
                    "{}: not reachable (down already, or its host is unreachable): {e}",
                    s.name
                )
            }
            testnet::StopOutcome::Refused(e) => {
                println!("{}: NOT stopped: {e}", s.name);
                failed.push(s.name.as_str());
            }
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("{} not stopped: {}", failed.len(), failed.join(", "));
    }
    Ok(())
}

fn status(d: &DirArg) -> Result<()> {
    println!(
        "{:<8} {:>8} {:>6} {:>6} {:>10}",
        "node", "height", "round", "peers", "mempool"
    );
    for s in runtime()?.block_on(testnet::status(&d.dir))? {
        let h = s.height.map_or("down".to_string(), |h| h.to_string());
        println!(
            "{:<8} {:>8} {:>6} {:>6} {:>10}{}",
            s.name,
            h,
            s.round,
            s.peers,
            s.mempool_txs,
            s.byzantine
                .map(|b| format!("  byzantine: {b}"))
                .or_else(|| s.raft.as_ref().map(|r| format!(
                    "  raft {} term {} leader {} commit {}",
                    r.role,
                    r.term,
                    r.leader.as_deref().unwrap_or("-"),
                    r.commit_index
                )))
                .unwrap_or_default()
        );
    }
    if let Some(l) = testnet::load(&d.dir)?.links {
        println!("emulated network: {l}");
    }
    Ok(())
}
