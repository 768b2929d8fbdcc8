//! Running one unit of an experiment on real node processes: a fresh testnet of the step's
//! configuration, started and past its first block, then the fixed-rate load (or, in
//! `capacity`, the search), the audit that every validator agrees, and teardown.

use super::{faults, probes, ExperimentConfig, Step, StepProbes};
use crate::load::{run as run_load, LoadConfig, Mode};
use crate::monitor::watch_testnet;
use crate::perturb::Schedule;
use anyhow::{Context, Result};
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tpslab_api::config::Config;
use tpslab_api::genesis::Genesis;
use tpslab_testnet::{self as testnet, TestnetInit};
use tpslab_types::{AppKind, EngineKind};

/// Starts of one unit before its failure to bind a port is final.
const START_ATTEMPTS: u32 = 3;

/// What a fixed-rate run measured.
pub(super) struct Outcome {
    /// The load's report.
    pub report: crate::LoadReport,
    /// The kernel-side figures, when the probes ran.
    pub probes: Option<StepProbes>,
    /// Why the probes could not start, when asked for and they could not.
    pub probes_note: Option<String>,
}

/// Runs `unit` (which starts a testnet in `dir`), again on fresh ports (up to
/// [`START_ATTEMPTS`] times) when another socket took one of its ports between init and start.
/// Returns the outcome and the attempts made.
pub(super) async fn retrying<T, F, Fut>(dir: &Path, mut unit: F) -> (Result<T>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        match unit().await {
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

pub(super) fn print_probes(p: &StepProbes) {
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
pub(super) async fn start_testnet(
    cfg: &ExperimentConfig,
    step: &Step,
    dir: &Path,
    schedule: Option<&Schedule>,
) -> Result<testnet::TestnetFile> {
    if dir.exists() {
        // An interrupted run (or a resumed one) may have left this step's nodes running.
        if dir.join("testnet.json").exists() {
            let _ = testnet::down(dir);
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let mut config = Config::default();
    config.consensus.block_interval_ms = cfg.block_interval_ms;
    config.tuning = step.tuning;
    config.app = AppKind::Transfer;
    let mut file = testnet::init(&TestnetInit {
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
        links: cfg.links.clone(),
        hosts: None,
    })?;
    if !cfg.node_cpus.is_empty() {
        // Kept in testnet.json, so the nodes restarted by a perturbation keep it too.
        for n in &mut file.nodes {
            n.cpus = cfg
                .node_cpus
                .iter()
                .find(|(name, _)| *name == n.name)
                .map(|(_, l)| l.clone());
        }
        file.save(dir)?;
    }
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

/// One fixed-rate run of `step` on a fresh testnet in `dir`; with `probes`, under the eBPF
/// probes.
pub(super) async fn run_step(
    cfg: &ExperimentConfig,
    step: &Step,
    dir: &Path,
    probes: bool,
) -> Result<Outcome> {
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
        hot_accounts: None,
    };
    // Kernel-side evidence for the whole load; a machine without root/BTF runs on without.
    let mut session = None;
    let mut probes_note = None;
    if probes {
        let pids: Vec<u32> = file.nodes.iter().filter_map(testnet::node_pid).collect();
        match probes::Session::start(pids).await {
            Ok(s) => session = Some(s),
            Err(e) => {
                eprintln!("      no eBPF probes: {e}");
                probes_note = Some(e);
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
    let report = audit_and_stop(dir, &file, report, "step").await?;
    Ok(Outcome {
        report,
        probes,
        probes_note,
    })
}

/// Audits that the validators agree, brings the testnet down, and drops its chain data (the
/// logs and configs stay); then hands on the unit's `outcome` if both it and the audit are Ok.
pub(super) async fn audit_and_stop<T>(
    dir: &Path,
    file: &testnet::TestnetFile,
    outcome: Result<T>,
    what: &str,
) -> Result<T> {
    let check = testnet::check(dir, &testnet::CheckScope::default()).await;
    testnet::down(dir)?;
    let outcome = outcome?;
    check.with_context(|| format!("validators disagree after the {what}"))?;
    for n in &file.nodes {
        let _ = std::fs::remove_dir_all(n.home.join("data"));
    }
    Ok(outcome)
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
