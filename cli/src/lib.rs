//! The `tpslab` command line, shared by its two binaries: `tpslab` (system allocator) and
//! `tpslab-jemalloc` (jemalloc with heap profiles). The allocator is the only difference; each
//! binary's `main` sets it and calls [`main`].
// unsafe only in alloc.rs: the counting global allocator (GlobalAlloc is an unsafe trait).
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tpslab_api::client::{addr_from_home, connect};
use tpslab_api::config::Config;
use tpslab_api::genesis::Genesis;
use tpslab_api::home::{self, Home, InitOptions};
use tpslab_api::proto::{
    BroadcastTxRequest, GetAccountRequest, StatusRequest, SubscribeCommitsRequest,
};
use tpslab_node::run::{self, Overrides};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::tx::{encode_transfer, tx_hash, Transfer};
use tpslab_types::Address;

mod advise_cmd;
pub mod alloc;
mod cpus;
mod experiment_cmd;
mod genesis_args;
mod link_args;
mod load_cmd;
mod opts_cmd;
mod probe_cmd;
mod probe_serve;
mod profile_cmd;
mod rollout_cmd;
mod testnet_cmd;
mod variant;

/// tpslab: a Cosmos/Tendermint-style blockchain node simulator with a tuning harness.
///
/// Start with `tpslab init --home DIR` and `tpslab node --home DIR`, then talk to the node with
/// `tpslab status`, `tpslab account` and `tpslab send`.
#[derive(Parser)]
#[command(name = "tpslab", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a single-validator home: key, genesis with funded accounts, config.toml.
    Init(InitArgs),
    /// Run a validator from its home directory until SIGINT/SIGTERM.
    Node(NodeArgs),
    /// Show a running node's height, hashes and mempool size.
    Status(TargetArgs),
    /// Show an account's balance and nonce.
    Account(AccountArgs),
    /// Sign and submit a transfer between two genesis test accounts.
    Send(SendArgs),
    /// Load-test nodes: pre-made txs at a constant rate (open loop, latency from each tx's
    /// intended send time) or at fixed concurrency (closed loop); committed TPS, latency
    /// percentiles, and CPU/RSS of the validators.
    Load(load_cmd::LoadArgs),
    /// List the tuning toggles: naive path, tuned path, what each models, what should move.
    Opts,
    /// The tuning experiment: a fresh testnet per step, the same load, baseline then each
    /// toggle added in turn (and --ablation); table, results.json and report.html.
    Experiment(experiment_cmd::ExperimentArgs),
    /// The toggle to try next, the evidence and the expected direction (or what limits the
    /// chain), from an experiment's results.json or a running testnet watched for a window.
    Advise(advise_cmd::AdviseArgs),
    /// CPU profiles (pprof protobuf + flame graph) from running nodes; `profile diff A B`
    /// compares two.
    Profile(profile_cmd::ProfileArgs),
    /// eBPF probes (run-queue latency, off-CPU, syscalls, function latency, net) on running
    /// processes; needs root.
    Probe(probe_cmd::ProbeArgs),
    /// Benchmarks built on the load generator.
    #[command(subcommand)]
    Bench(load_cmd::BenchCmd),
    /// A local multi-validator network of separate node processes.
    #[command(subcommand)]
    Testnet(testnet_cmd::TestnetCmd),
}

#[derive(Args)]
struct InitArgs {
    /// Home directory to create.
    #[arg(long)]
    home: PathBuf,
    /// Chain id.
    #[arg(long, default_value = "tpslab-local")]
    chain_id: String,
    #[command(flatten)]
    genesis: genesis_args::GenesisArgs,
    /// gRPC address to write into config.toml (port 0 = pick a free port at start).
    #[arg(long, default_value = "127.0.0.1:26657")]
    grpc_addr: String,
    /// Metrics (HTTP) address to write into config.toml (port 0 = pick a free port at start).
    #[arg(long, default_value = "127.0.0.1:26660")]
    metrics_addr: String,
    /// Overwrite an existing home, deleting its data.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct NodeArgs {
    /// Home directory made by `tpslab init`.
    #[arg(long)]
    home: PathBuf,
    /// Override `api.grpc_addr` of config.toml.
    #[arg(long)]
    grpc_addr: Option<String>,
    /// Test only: honour a `[byzantine]` section of config.toml (the validator then lies as
    /// it says); without this flag such a config is refused.
    #[arg(long)]
    allow_byzantine: bool,
    /// Test only: serve `POST /fault/isolate?ms=N` on the metrics address (drop and refuse
    /// every peer link for N ms), for `load --perturb disconnect:...`.
    #[arg(long)]
    allow_fault_injection: bool,
    /// Run only on these CPUs, e.g. `0` or `0-1` (sched_setaffinity; `testnet up --cpus`
    /// passes it).
    #[arg(long)]
    cpus: Option<String>,
    #[command(flatten)]
    tuning: opts_cmd::TuningArgs,
}

#[derive(Args)]
struct TargetArgs {
    /// Node gRPC address (host:port).
    #[arg(long, conflicts_with = "home")]
    target: Option<String>,
    /// Or: the home of a running node (its address is read from grpc.addr).
    #[arg(long)]
    home: Option<PathBuf>,
}

impl TargetArgs {
    fn addr(&self) -> Result<String> {
        match (&self.target, &self.home) {
            (Some(t), _) => Ok(t.clone()),
            (None, Some(h)) => addr_from_home(h),
            (None, None) => bail!("give --target ADDR or --home DIR"),
        }
    }
}

#[derive(Args)]
struct AccountArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Index of a genesis test account (derived from --seed).
    #[arg(long, conflicts_with = "address")]
    index: Option<u64>,
    /// Or: a 20-byte address in hex.
    #[arg(long)]
    address: Option<String>,
    /// Seed of the test accounts.
    #[arg(long, default_value = "tpslab")]
    seed: String,
}

#[derive(Args)]
struct SendArgs {
    /// Home of the running node (for its address and genesis: chain id, account seed).
    #[arg(long)]
    home: PathBuf,
    /// Sender's test account index.
    #[arg(long)]
    from: u64,
    /// Recipient's test account index.
    #[arg(long)]
    to: u64,
    /// Amount to move.
    #[arg(long)]
    amount: u64,
    /// Fee (burned).
    #[arg(long, default_value_t = 1)]
    fee: u64,
    /// Wait until the tx is committed.
    #[arg(long)]
    wait: bool,
}

/// Runs the command line; `allocator` is the binary's global allocator.
pub fn main(allocator: tpslab_node::heap::Allocator) -> Result<()> {
    tpslab_node::heap::set_allocator(allocator);
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Init(a) => init(a),
        Cmd::Node(a) => {
            // Before any thread exists, so every thread of the node inherits it.
            if let Some(list) = &a.cpus {
                cpus::pin(list)?;
            }
            let home = Home(a.home);
            let mut cfg = run::load_config(
                &home,
                &Overrides {
                    grpc_addr: a.grpc_addr,
                    allow_byzantine: a.allow_byzantine,
                },
            )?;
            if let Some(t) = a.tuning.resolve()? {
                cfg.tuning = t;
            }
            let _log_guard = tpslab_node::logging::init(&cfg);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run::run(home, cfg, a.allow_fault_injection))
        }
        Cmd::Status(a) => runtime()?.block_on(status(a)),
        Cmd::Account(a) => runtime()?.block_on(account(a)),
        Cmd::Send(a) => runtime()?.block_on(send(a)),
        Cmd::Testnet(t) => testnet_cmd::testnet_cmd(t),
        Cmd::Load(a) => {
            if let Some(list) = &a.cpus {
                cpus::pin(list)?;
            }
            runtime_mt()?.block_on(load_cmd::load(a))
        }
        Cmd::Opts => {
            opts_cmd::print_opts();
            Ok(())
        }
        Cmd::Experiment(a) => {
            // Before the runtime exists, so every thread it starts inherits the mask.
            if let Some(list) = &a.generator_cpus {
                cpus::pin(list)?;
            }
            runtime_mt()?.block_on(experiment_cmd::experiment(a))
        }
        Cmd::Advise(a) => runtime_mt()?.block_on(advise_cmd::advise(a)),
        Cmd::Profile(a) => runtime_mt()?.block_on(profile_cmd::profile(a)),
        Cmd::Probe(a) => probe_cmd::probe(a),
        Cmd::Bench(b) => runtime_mt()?.block_on(load_cmd::bench(b)),
    }
}

pub(crate) fn runtime_mt() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The node's logging. quiet-log on: the configured level through a non-blocking writer (a
/// background thread does the writes). Off (the naive path): tpslab's crates at debug, which
/// logs every tx accepted and executed, each line written to stderr synchronously.
fn init(a: InitArgs) -> Result<()> {
    let mut config = Config::default();
    config.api.grpc_addr = a.grpc_addr;
    config.api.metrics_addr = a.metrics_addr;
    config.moniker = "node0".into();
    config.app = a.genesis.app;
    let home = Home(a.home);
    home::init(
        &home,
        &InitOptions {
            chain_id: a.chain_id,
            accounts: a.genesis.accounts,
            seed: a.genesis.seed,
            balance: a.genesis.balance,
            config,
            force: a.force,
        },
    )?;
    println!("initialised {}", home.0.display());
    println!("  config:  {}", home.config().display());
    println!("  genesis: {}", home.genesis().display());
    println!("  key:     {}", home.key().display());
    println!("run it with: tpslab node --home {}", home.0.display());
    Ok(())
}

async fn status(a: TargetArgs) -> Result<()> {
    let mut c = connect(&a.addr()?).await?;
    let s = c.status(StatusRequest {}).await?.into_inner();
    println!("chain_id:        {}", s.chain_id);
    println!("height:          {}", s.height);
    println!("last_block_hash: {}", hex::encode(&s.last_block_hash));
    println!("app_hash:        {}", hex::encode(&s.app_hash));
    println!(
        "mempool:         {} txs, {} bytes",
        s.mempool_txs, s.mempool_bytes
    );
    println!("validator:       {}", hex::encode(&s.validator));
    println!("version:         {}", s.version);
    Ok(())
}

async fn account(a: AccountArgs) -> Result<()> {
    let addr = match (a.index, &a.address) {
        (Some(i), _) => address_of(&account_key(&a.seed, i)),
        (None, Some(h)) => {
            let b = hex::decode(h).context("--address must be hex")?;
            Address::from_slice("address", &b)?
        }
        (None, None) => bail!("give --index N or --address HEX"),
    };
    let mut c = connect(&a.target.addr()?).await?;
    let acc = c
        .get_account(GetAccountRequest {
            address: addr.0.to_vec(),
        })
        .await?
        .into_inner();
    println!("address: {addr}");
    println!("balance: {}", acc.balance);
    println!("nonce:   {}", acc.nonce);
    println!("height:  {}", acc.height);
    Ok(())
}

async fn send(a: SendArgs) -> Result<()> {
    let genesis = Genesis::load(&Home(a.home.clone()).genesis())?;
    let mut c = connect(&addr_from_home(&a.home)?).await?;
    let key = account_key(&genesis.accounts.seed, a.from);
    let nonce = c
        .get_account(GetAccountRequest {
            address: address_of(&key).0.to_vec(),
        })
        .await?
        .into_inner()
        .nonce;
    let raw = encode_transfer(
        &key,
        Transfer {
            chain_id: genesis.chain_id.clone(),
            to: address_of(&account_key(&genesis.accounts.seed, a.to)),
            amount: a.amount,
            nonce,
            fee: a.fee,
            payload: vec![],
        },
    );
    let hash = tx_hash(&raw);
    let mut commits = if a.wait {
        Some(
            c.subscribe_commits(SubscribeCommitsRequest {})
                .await?
                .into_inner(),
        )
    } else {
        None
    };
    c.broadcast_tx(BroadcastTxRequest {
        tx: raw.clone(),
        id: 0,
    })
    .await
    .context("tx rejected")?;
    println!("accepted tx {hash} ({} bytes, nonce {nonce})", raw.len());
    if let Some(stream) = commits.as_mut() {
        while let Some(ev) = stream.message().await? {
            if ev.tx_hashes.iter().any(|h| h.as_slice() == hash.as_bytes()) {
                println!("committed at height {}", ev.height);
                return Ok(());
            }
        }
        bail!("commit stream ended before the tx was committed");
    }
    Ok(())
}
