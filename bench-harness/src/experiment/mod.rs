//! `tpslab experiment`: the seed article's closed tuning loop on the user's machine. For each
//! step a fresh testnet (real node processes) runs the same load; steps are the baseline, then
//! toggles added one at a time (the ladder), then optionally the tuned configuration minus each
//! toggle (the ablation). Results go to a table, a JSON file and a self-contained HTML report.

mod accounting;
mod compare;
mod faults;
mod html;
mod machine;
mod probes;
mod results;
mod resume;

pub use probes::{table as probes_table, StepProbes};

pub use compare::compare;
pub use results::{ExperimentResults, FailedStep, StepResult};

use crate::load::{run as run_load, LoadConfig, Mode};
use crate::monitor::watch_testnet;
use crate::perturb::Schedule;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tpslab_api::config::Config;
use tpslab_api::genesis::Genesis;
use tpslab_testnet::{self as testnet, TestnetInit};
use tpslab_types::tuning::CATALOGUE;
use tpslab_types::{AppKind, EngineKind, Tuning};

/// Starts of one step before its failure to bind a port is final.
const START_ATTEMPTS: u32 = 3;

/// What to run.
#[derive(Clone, Debug)]
pub struct ExperimentConfig {
    /// The `tpslab` binary that runs the validators.
    pub exe: PathBuf,
    /// Where step testnets, results.json and report.html go.
    pub out: PathBuf,
    /// Validators per BFT step.
    pub validators: usize,
    /// The engines to run every step on, side by side (each step runs on each engine in
    /// turn, so machine drift hits both alike).
    pub engines: Vec<EngineKind>,
    /// Validators per Raft step.
    pub raft_validators: usize,
    /// Offered rate, tx/s (open loop, the same for every step).
    pub rate: u64,
    /// Measured window per step.
    pub duration: Duration,
    /// Warm-up per step.
    pub warmup: Duration,
    /// How long to wait for outstanding commits after the window.
    pub drain: Duration,
    /// Funded accounts (senders).
    pub accounts: u64,
    /// Tx size, bytes.
    pub tx_size: usize,
    /// Pause after each commit, ms.
    pub block_interval_ms: u64,
    /// Only baseline and tuned.
    pub quick: bool,
    /// Also run tuned minus each toggle.
    pub ablation: bool,
    /// Take node0's CPU profile in each step (99 Hz).
    pub profile: bool,
    /// Attach the eBPF probes to each step's validators (needs root; skipped with a note
    /// otherwise).
    pub probes: bool,
    /// Builds of tpslab with another global allocator (name, binary): each runs the tuned
    /// configuration once more, as a step of kind `allocator`.
    pub variants: Vec<(String, PathBuf)>,
    /// Faults applied to every step's window (`--perturb`); kills and restarts only on steps
    /// with write-batch on.
    pub perturb: Option<Schedule>,
    /// Continue the run in `out`: keep the steps its results.json holds, run the rest.
    pub resume: bool,
    /// The validators' build, for the record: profile and allocator.
    pub build: String,
}

/// One step to run: a name, the toggle it adds (or removes), and the toggles on.
#[derive(Clone, Debug)]
pub struct Step {
    /// `baseline`, `+sig-cache`, `tuned - sig-cache`, ...
    pub name: String,
    /// The toggle this step adds (ladder) or removes (ablation).
    pub toggle: Option<String>,
    /// `ladder` or `ablation`.
    pub kind: &'static str,
    /// The toggles on.
    pub tuning: Tuning,
    /// The binary the step's validators run, when not the experiment's own.
    pub exe: Option<PathBuf>,
    /// The chain's consensus engine.
    pub engine: EngineKind,
    /// Validators of the step's chain.
    pub validators: usize,
}

impl Step {
    /// A step on the experiment's own binary; [`on_engines`] sets its engine and size.
    fn new(name: String, toggle: Option<&str>, kind: &'static str, tuning: Tuning) -> Step {
        Step {
            name,
            toggle: toggle.map(str::to_string),
            kind,
            tuning,
            exe: None,
            engine: EngineKind::Bft,
            validators: 0,
        }
    }
}

/// The steps of an experiment: the ladder (or baseline + tuned when quick) and the ablation.
pub fn plan(quick: bool, ablation: bool) -> Vec<Step> {
    let mut steps = vec![Step::new(
        "baseline".into(),
        None,
        "ladder",
        Tuning::baseline(),
    )];
    if quick {
        steps.push(Step::new(
            "tuned".into(),
            Some("all"),
            "ladder",
            Tuning::tuned(),
        ));
    } else {
        let mut t = Tuning::baseline();
        for entry in CATALOGUE {
            let _ = t.set(entry.name, true);
            let name = format!("+{}", entry.name);
            steps.push(Step::new(name, Some(entry.name), "ladder", t));
        }
    }
    if ablation {
        for entry in CATALOGUE {
            let mut t = Tuning::tuned();
            let _ = t.set(entry.name, false);
            let name = format!("tuned - {}", entry.name);
            steps.push(Step::new(name, Some(entry.name), "ablation", t));
        }
    }
    steps
}

/// Every step on every engine of `cfg`, interleaved: step 1 on each engine, then step 2, ...
pub fn on_engines(steps: &[Step], cfg: &ExperimentConfig) -> Vec<Step> {
    let mut out = Vec::new();
    for step in steps {
        for &engine in &cfg.engines {
            out.push(Step {
                engine,
                validators: match engine {
                    EngineKind::Bft => cfg.validators,
                    EngineKind::Raft => cfg.raft_validators,
                },
                ..step.clone()
            });
        }
    }
    out
}

/// The plan, the allocator variants, each on every engine.
fn all_steps(cfg: &ExperimentConfig) -> Vec<Step> {
    let mut steps = plan(cfg.quick, cfg.ablation);
    // The allocator is fixed at build time: the same tuned chain, run by another build.
    for (name, exe) in &cfg.variants {
        steps.push(Step {
            exe: Some(exe.clone()),
            ..Step::new(
                format!("tuned [{name}]"),
                Some(name),
                "allocator",
                Tuning::tuned(),
            )
        });
    }
    on_engines(&steps, cfg)
}

/// Runs every step and writes `results.json` and `report.html` into `cfg.out`.
pub async fn run(cfg: &ExperimentConfig) -> Result<ExperimentResults> {
    let steps = all_steps(cfg);
    let mut results = resume::start(cfg, &steps)?;
    std::fs::create_dir_all(&cfg.out)
        .with_context(|| format!("cannot create {}", cfg.out.display()))?;
    if results.info.fsync_us.is_none() {
        results.info.fsync_us = machine::fsync_latency(&cfg.out);
    }
    let done = results.steps.len();
    for (i, step) in steps.iter().enumerate().skip(done) {
        eprintln!(
            "[{}/{}] {}: {} {} validators, {} tx/s for {:?}",
            i + 1,
            steps.len(),
            step.name,
            step.validators,
            step.engine,
            cfg.rate,
            cfg.duration
        );
        let dir = cfg.out.join(format!("step{i:02}"));
        let (report, attempts) =
            run_step_retrying(cfg, step, &dir, &mut results.info.probes_note).await;
        let (report, probes) = match report {
            Ok(r) => r,
            Err(e) => {
                let _ = testnet::down(&dir);
                let e = e.context(format!("step {}", step.name));
                // What was measured stays readable, and the report says what failed.
                results.failed = Some(FailedStep {
                    name: step.name.clone(),
                    error: format!("{e:#}"),
                    attempts,
                });
                results.save(&cfg.out)?;
                html::write(&results, &cfg.out.join("report.html"))?;
                return Err(e.context(format!(
                    "results of the {} steps before it are in {}",
                    results.steps.len(),
                    cfg.out.display()
                )));
            }
        };
        eprintln!(
            "      committed TPS {:.0}, P50 {:.0} ms, P99 {:.0} ms",
            report.committed_tps, report.latency_ms.p50, report.latency_ms.p99
        );
        if let Some(p) = &probes {
            print_probes(p);
        }
        let skipped = cfg
            .perturb
            .as_ref()
            .map(|s| faults::step_schedule(s, &step.tuning).1)
            .unwrap_or_default();
        faults::print(&report, &skipped);
        let flame = write_flame(&report, &dir, &step.name);
        // Against the step before (the ladder adds one toggle) or the all-tuned step (an
        // ablation step removes one): the toggle's own effect on the profile.
        let engine = step.engine.as_str();
        let reference = match step.kind {
            "ablation" | "allocator" => results.tuned_of(engine),
            _ => results.steps.iter().rfind(|s| s.engine == engine),
        };
        let diff = reference.and_then(|r| write_diff_flame(r, &report, &dir, &step.name));
        results.push(step, report, probes);
        if let Some(s) = results.steps.last_mut() {
            s.flame_svg = flame.map(|f| format!("step{i:02}/{f}"));
            s.flame_diff_svg = diff.map(|(f, vs)| (format!("step{i:02}/{f}"), vs));
            s.faults_skipped = skipped;
        }
        // Keep what was measured so far, in case a later step fails.
        results.save(&cfg.out)?;
    }
    html::write(&results, &cfg.out.join("report.html"))?;
    Ok(results)
}

/// Runs a step, again on fresh ports (up to [`START_ATTEMPTS`] times) when another socket
/// took one of its ports between init and start. Returns the outcome and the attempts made.
async fn run_step_retrying(
    cfg: &ExperimentConfig,
    step: &Step,
    dir: &Path,
    probes_note: &mut Option<String>,
) -> (Result<(crate::LoadReport, Option<StepProbes>)>, u32) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match run_step(cfg, step, dir, probes_note).await {
            Err(e)
                if attempts < START_ATTEMPTS && e.chain().any(|c| c.is::<testnet::PortTaken>()) =>
            {
                let _ = testnet::down(dir);
                eprintln!("      {e:#}; retrying on fresh ports");
            }
            r => return (r, attempts),
        }
    }
}

fn print_probes(p: &StepProbes) {
    eprintln!(
        "      eBPF: run queue P99 <= {} us, fsyncs/tx {}, futex us/tx {}, commit P99 {} us",
        p.runq_p99_us.map_or("-".into(), |v| v.to_string()),
        p.fsyncs_per_tx.map_or("-".into(), |v| format!("{v:.3}")),
        p.futex_us_per_tx.map_or("-".into(), |v| format!("{v:.0}")),
        p.commit_p99_us.map_or("-".into(), |v| format!("{v:.0}"))
    );
}

/// A fresh testnet for `step` in `dir`, running, every validator past its first block (so a
/// step measures a running chain, not its start-up: peers connecting, a first proposer that
/// may time out). Made with the fault endpoint when `schedule` disconnects a node.
async fn start_testnet(
    cfg: &ExperimentConfig,
    step: &Step,
    dir: &Path,
    schedule: Option<&Schedule>,
) -> Result<testnet::TestnetFile> {
    let mut config = Config::default();
    config.consensus.block_interval_ms = cfg.block_interval_ms;
    config.tuning = step.tuning;
    config.app = AppKind::Transfer;
    let file = testnet::init(&TestnetInit {
        validators: step.validators,
        out: dir.to_path_buf(),
        chain_id: "tpslab-experiment".into(),
        accounts: cfg.accounts,
        seed: "tpslab".into(),
        balance: 1_000_000_000,
        config,
        byzantine: Vec::new(),
        fault_injection: schedule.is_some_and(faults::disconnects),
        consensus: step.engine,
    })?;
    testnet::up(
        dir,
        step.exe.as_ref().unwrap_or(&cfg.exe),
        Duration::from_secs(60),
    )
    .await?;
    for n in &file.nodes {
        // A Raft chain cuts blocks only for txs: it is running once everyone knows a leader.
        wait_until_running(&n.grpc_addr, step.engine, Duration::from_secs(60))
            .await
            .with_context(|| format!("{} is not running its chain", n.name))?;
    }
    Ok(file)
}

async fn run_step(
    cfg: &ExperimentConfig,
    step: &Step,
    dir: &Path,
    probes_note: &mut Option<String>,
) -> Result<(crate::LoadReport, Option<StepProbes>)> {
    if dir.exists() {
        // An interrupted run (or a resumed one) may have left this step's nodes running.
        if dir.join("testnet.json").exists() {
            let _ = testnet::down(dir);
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let schedule = cfg
        .perturb
        .as_ref()
        .and_then(|s| faults::step_schedule(s, &step.tuning).0);
    let file = start_testnet(cfg, step, dir, schedule.as_ref()).await?;
    let genesis = Genesis::load(&file.nodes[0].home.join("genesis.json"))?;
    let mut watch = watch_testnet(&file);
    // node0's CPU profile, 99 Hz, for the report's "what moved" table.
    if let Some(w) = watch.first_mut().filter(|_| cfg.profile) {
        w.profile_secs = Some(cfg.duration.as_secs().clamp(1, 10));
    }
    let exe = step.exe.clone().unwrap_or_else(|| cfg.exe.clone());
    let (targets, perturb) = faults::bind(schedule, &file, exe)?;
    let load = LoadConfig {
        targets,
        genesis,
        workload: AppKind::Transfer,
        mode: Mode::Open { rate: cfg.rate },
        duration: cfg.duration,
        warmup: cfg.warmup,
        tx_size: cfg.tx_size,
        drain: cfg.drain,
        watch,
        progress: false,
        perturb,
    };
    // Kernel-side evidence for the whole load; a machine without root/BTF runs on without.
    let mut session = None;
    if cfg.probes && probes_note.is_none() {
        let pids: Vec<u32> = file.nodes.iter().filter_map(testnet::node_pid).collect();
        match probes::Session::start(pids).await {
            Ok(s) => session = Some(s),
            Err(e) => {
                eprintln!("      no eBPF probes: {e}");
                *probes_note = Some(e);
            }
        }
    }
    let report = run_load(&load).await;
    let probes = match session {
        Some(s) => match s.finish().await {
            Ok(r) => Some(StepProbes::from_report(&r)),
            Err(e) => {
                eprintln!("      eBPF probes failed: {e}");
                None
            }
        },
        None => None,
    };
    if cfg.perturb.is_some() {
        // A restarted or cut-off node catches up before the audit.
        let _ = testnet::settle(dir, Duration::from_secs(60)).await;
    }
    let check = testnet::check(dir, &testnet::CheckScope::default()).await;
    testnet::down(dir)?;
    let report = report?;
    check.context("validators disagree after the step")?;
    // The step's chain data is not needed afterwards; keep the logs and configs.
    for n in &file.nodes {
        let _ = std::fs::remove_dir_all(n.home.join("data"));
    }
    Ok((report, probes))
}

/// Writes node0's flame graph into the step dir; returns its file name.
fn write_flame(report: &crate::LoadReport, dir: &Path, step: &str) -> Option<String> {
    let pb = report.resources.first()?.profile_pb.as_ref()?;
    let title = format!("{step}: node0 CPU, 99 Hz");
    match crate::profile::flamegraph(pb, &title) {
        Ok(svg) => {
            let name = "flame-node0.svg";
            std::fs::write(dir.join(name), svg).ok()?;
            Some(name.into())
        }
        Err(e) => {
            eprintln!("      no flame graph: {e:#}");
            None
        }
    }
}

/// Writes node0's differential flame graph from `reference`'s profile to this step's; returns
/// its file name and the reference step's name.
fn write_diff_flame(
    reference: &StepResult,
    report: &crate::LoadReport,
    dir: &Path,
    step: &str,
) -> Option<(String, String)> {
    let before = reference.report.resources.first()?.profile_pb.as_ref()?;
    let after = report.resources.first()?.profile_pb.as_ref()?;
    let title = format!("{} -> {step}: node0 CPU, 99 Hz", reference.name);
    match crate::profile::diff_flamegraph(before, after, &title) {
        Ok(svg) => {
            let name = "flame-diff-node0.svg";
            std::fs::write(dir.join(name), svg).ok()?;
            Some((name.into(), reference.name.clone()))
        }
        Err(e) => {
            eprintln!("      no differential flame graph: {e:#}");
            None
        }
    }
}

/// Waits until the node at `addr` committed a first block (BFT) or follows a leader (Raft).
async fn wait_until_running(addr: &str, engine: EngineKind, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut client = tpslab_api::client::connect(addr).await?;
    loop {
        let st = client
            .status(tpslab_api::proto::StatusRequest {})
            .await?
            .into_inner();
        let leader = st.raft.as_ref().map_or(0, |r| r.leader);
        match engine {
            EngineKind::Bft if st.height >= 1 => return Ok(()),
            EngineKind::Raft if leader != 0 => return Ok(()),
            _ => {}
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "still at height {}, leader {leader}",
            st.height
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests;
