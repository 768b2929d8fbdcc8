//! `tpslab experiment`: argument parsing around tpslab-bench's experiment runner.

use crate::load_cmd::parse_duration;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use tpslab_bench::experiment::{
    self, CapacityConfig, CapacityPlan, ExperimentConfig, ExperimentResults,
};

#[derive(Args)]
pub struct ExperimentArgs {
    /// Compare two results.json files instead of running (flags >10% regressions from A to B).
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    compare: Option<Vec<PathBuf>>,
    /// Where step testnets, results.json and report.html go.
    #[arg(long, default_value = "experiment-out")]
    out: PathBuf,
    /// Validators per BFT step.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Consensus engines to run every step on, side by side: `bft`, `raft` or `raft,bft`
    /// (each step runs on each engine in turn, on a fresh testnet).
    #[arg(long, value_delimiter = ',', default_value = "bft")]
    consensus: Vec<tpslab_types::EngineKind>,
    /// Validators per Raft step. Default: the same fault budget as the BFT steps (f crashed
    /// of 2f + 1 against f byzantine of 3f + 1: 3 against 4); give the BFT count for equal
    /// size.
    #[arg(long)]
    raft_validators: Option<usize>,
    /// Offered rate, tx/s, the same for every step. The default saturates the baseline on a
    /// 2-core machine (~1-1.3k TPS) while the tuned configuration still follows it (it keeps
    /// up to ~10k tx/s there).
    #[arg(long, default_value_t = 8000)]
    rate: u64,
    /// Measured window per step (default 15s; 5s with --quick).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Warm-up per step (default 5s; 2s with --quick).
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Wait at most this long for outstanding commits after the window.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
    /// Funded accounts (distinct senders).
    #[arg(long, default_value_t = 10_000)]
    accounts: u64,
    /// Tx size, bytes.
    #[arg(long, default_value_t = 250)]
    tx_size: usize,
    /// Pause after each commit, ms.
    #[arg(long, default_value_t = 200)]
    block_interval_ms: u64,
    /// A first look: baseline and tuned only, short windows.
    #[arg(long)]
    quick: bool,
    /// Also run the tuned configuration minus each toggle.
    #[arg(long)]
    ablation: bool,
    /// Skip node0's per-step CPU profile (99 Hz; cheap in a release build, slow in a debug one).
    #[arg(long)]
    no_profile: bool,
    /// Attach the eBPF probes to every step's validators (needs root). Off by default: they
    /// slow the syscall-heavy naive steps much more than the tuned ones, which would inflate
    /// the headline ratios.
    #[arg(long)]
    probes: bool,
    /// Global allocators to compare on the tuned configuration, e.g. `system,jemalloc`. The
    /// allocator is fixed per binary: the other one's step runs the binary next to this one
    /// (`tpslab-jemalloc` or `tpslab`; `cargo build --release -p tpslab-cli` builds both).
    #[arg(long, value_delimiter = ',')]
    allocators: Vec<String>,
    /// Faults during every step's window, as for `load --perturb` (e.g.
    /// `kill:node3@3s,restart:node3@6s,pause:node2@9s-11s`). Kills and restarts only apply
    /// to steps with write-batch on (the naive commit is not crash-atomic); each step's row
    /// in results.json carries its per-second TPS and each fault's dip and recovery.
    #[arg(long)]
    perturb: Option<tpslab_bench::perturb::Schedule>,
    /// Continue the run in --out (interrupted, failed, or split over several sittings): the
    /// steps its results.json holds are kept, the rest run. The parameters and plan must be
    /// the ones it was made with.
    #[arg(long)]
    resume: bool,
    /// Fixed-rate runs per step, interleaved (every step once before any step twice); the
    /// table shows median (min-max) and whether a step is within noise of the one before.
    /// Default 3; 1 with --quick.
    #[arg(long)]
    repeats: Option<u32>,
    /// Which steps get a capacity search (the highest offered rate with >= 95% committed and
    /// P99 <= --slo-p99, on a fresh testnet of the step): `baseline,tuned`, `all` or `none`.
    /// Default: all (baseline,tuned with --quick).
    #[arg(long)]
    capacity: Option<tpslab_bench::experiment::CapacityPlan>,
    /// The latency bound of the capacity search.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    slo_p99: Duration,
    /// Each capacity trial's measured window (after a 2 s warm-up).
    #[arg(long, default_value = "6s", value_parser = parse_duration)]
    capacity_trial: Duration,
    /// The first searched step's first rate, tx/s; each later search starts at the capacity
    /// found before it.
    #[arg(long, default_value_t = 1000)]
    capacity_start: u64,
    /// The capacity search stops above this rate.
    #[arg(long, default_value_t = 200_000)]
    capacity_max: u64,
    #[command(flatten)]
    links: crate::link_args::LinkArgs,
    /// Pin every step's validators to CPUs, e.g. `node0=0,node1=0,node2=1,node3=1` (as
    /// `testnet up --cpus`; nodes not named, and nodes a smaller step lacks, run anywhere).
    #[arg(long)]
    cpus: Option<String>,
    /// Run this process (the load generator, the sampling and profiling) only on these
    /// CPUs, e.g. `1`, to keep it off the validators'. The report records the placement.
    #[arg(long)]
    pub(crate) generator_cpus: Option<String>,
}

/// Named validators' CPU lists.
type NodeCpus = Vec<(String, String)>;

/// The validators' placement from `--cpus` (names checked against the largest step) and its
/// description with the generator's, for the report.
fn placement(a: &ExperimentArgs) -> Result<(NodeCpus, Option<String>)> {
    let nodes = match &a.cpus {
        Some(spec) => crate::cpus::parse_placement(spec)?,
        None => Vec::new(),
    };
    let most = a.validators.max(a.raft_validators.unwrap_or(0));
    for (name, _) in &nodes {
        let known = (0..most).any(|i| *name == format!("node{i}"));
        anyhow::ensure!(
            known,
            "--cpus: {name} is not a validator of any step (node0..node{})",
            most - 1
        );
    }
    if nodes.is_empty() && a.generator_cpus.is_none() {
        return Ok((nodes, None));
    }
    let mut parts = vec![format!(
        "generator cpus {}",
        a.generator_cpus.as_deref().unwrap_or("any")
    )];
    parts.extend(nodes.iter().map(|(n, l)| format!("{n} cpus {l}")));
    if nodes.len() < most {
        parts.push("other validators any".into());
    }
    Ok((nodes.clone(), Some(parts.join(", "))))
}

pub async fn experiment(a: ExperimentArgs) -> Result<()> {
    if let Some(files) = &a.compare {
        let ra = ExperimentResults::load(&files[0])?;
        let rb = ExperimentResults::load(&files[1])?;
        print!("{}", experiment::compare(&ra, &rb)?);
        return Ok(());
    }
    let (duration, warmup) = if a.quick {
        (Duration::from_secs(5), Duration::from_secs(2))
    } else {
        (Duration::from_secs(15), Duration::from_secs(5))
    };
    // This binary is one allocator variant; the others are its siblings.
    let own = tpslab_node::heap::allocator().name();
    let mut variants = Vec::new();
    for name in a.allocators.iter().filter(|n| *n != own) {
        variants.push((name.clone(), crate::variant::find(name)?));
    }
    let (node_cpus, placement) = placement(&a)?;
    let cfg = ExperimentConfig {
        exe: std::env::current_exe().context("cannot find the tpslab binary")?,
        out: a.out.clone(),
        validators: a.validators,
        engines: engines(&a.consensus)?,
        raft_validators: raft_validators(&a)?,
        rate: a.rate,
        duration: a.duration.unwrap_or(duration),
        warmup: a.warmup.unwrap_or(warmup),
        drain: a.drain,
        accounts: a.accounts,
        tx_size: a.tx_size,
        block_interval_ms: a.block_interval_ms,
        quick: a.quick,
        ablation: a.ablation,
        profile: !a.no_profile,
        probes: a.probes,
        variants,
        perturb: a.perturb,
        resume: a.resume,
        repeats: a.repeats.unwrap_or(if a.quick { 1 } else { 3 }),
        capacity: CapacityConfig {
            plan: a.capacity.unwrap_or(if a.quick {
                CapacityPlan::BaselineTuned
            } else {
                CapacityPlan::All
            }),
            slo_p99_ms: a.slo_p99.as_secs_f64() * 1000.0,
            trial: a.capacity_trial,
            start_rate: a.capacity_start,
            max_rate: a.capacity_max,
        },
        links: a.links.resolve()?,
        node_cpus,
        placement,
        build: format!(
            "{}, {} allocator",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            own
        ),
    };
    let results = experiment::run(&cfg).await?;
    print!("{}", results.table());
    print!("{}", results.txs_table());
    print!("{}", results.stages_table());
    print!("{}", experiment::probes_table(&results));
    println!(
        "results: {}  report: {}",
        a.out.join("results.json").display(),
        a.out.join("report.html").display()
    );
    Ok(())
}

/// The engines named, each once, in the order given.
fn engines(named: &[tpslab_types::EngineKind]) -> Result<Vec<tpslab_types::EngineKind>> {
    let mut out = Vec::new();
    for e in named {
        anyhow::ensure!(!out.contains(e), "--consensus names {e} twice");
        out.push(*e);
    }
    Ok(out)
}

/// Validators per Raft step: as asked, else the BFT size's fault budget (2f + 1 for 3f + 1).
fn raft_validators(a: &ExperimentArgs) -> Result<usize> {
    anyhow::ensure!(a.validators >= 1, "--validators must be at least 1");
    let n = a
        .raft_validators
        .unwrap_or(2 * ((a.validators - 1) / 3) + 1);
    anyhow::ensure!(n >= 1, "--raft-validators must be at least 1");
    Ok(n)
}
