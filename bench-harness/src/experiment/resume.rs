//! `experiment --resume`: the full ladder over several sittings. The units (a step's repeat,
//! a step's capacity search) already in the out dir's results.json are kept, and the run goes
//! on with the first one missing (or the one that failed), provided the parameters, the plan, the CPU and the binary are the same: a row
//! measured at another rate, or by another build, would not compare with the rest.

use super::results::RunInfo;
use super::{ExperimentConfig, ExperimentResults, Step, StepResult};
use anyhow::{anyhow, bail, Result};

/// The results a run starts from: empty, or with `--resume` those in the out dir.
pub(super) fn start(cfg: &ExperimentConfig, steps: &[Step]) -> Result<ExperimentResults> {
    if !cfg.resume {
        return Ok(ExperimentResults::new(cfg));
    }
    let done = resume(cfg, steps)?;
    let searched = done.steps.iter().filter(|s| s.capacity.is_some()).count();
    eprintln!(
        "resuming {}: {} of {} steps measured before ({} runs, {searched} capacity searches)",
        cfg.out.display(),
        done.steps.len(),
        steps.len(),
        done.runs_done()
    );
    Ok(done)
}

/// The results to continue from, checked against `cfg` and its `steps`.
fn resume(cfg: &ExperimentConfig, steps: &[Step]) -> Result<ExperimentResults> {
    let path = cfg.out.join("results.json");
    if !path.exists() {
        bail!(
            "--resume: there is no {} to continue (run without --resume first)",
            path.display()
        );
    }
    let mut done = ExperimentResults::load(&path)?;
    let now = ExperimentResults::new(cfg).info;
    let at = path.display();
    same_machine(&done.info, &now)
        .map_err(|e| anyhow!("--resume: {at} {e}; give another --out"))?;
    same_params(&done.info, &now).map_err(|e| {
        anyhow!("--resume: {at} {e}; resume with that run's arguments, or give another --out")
    })?;
    same_plan(&done.steps, steps).map_err(|e| anyhow!("--resume: {at} {e}"))?;
    done.failed = None;
    done.info.resumed_unix.push(now.started_unix);
    // More (or fewer) repeats only add (or leave out) units: the ones measured still compare.
    done.info.repeats = now.repeats;
    Ok(done)
}

/// The same CPU and the same tpslab binary: rows from two builds or machines do not compare.
fn same_machine(was: &RunInfo, now: &RunInfo) -> Result<()> {
    if was.cpu != now.cpu {
        bail!(
            "was measured on another CPU ({}), not this one ({})",
            was.cpu,
            now.cpu
        );
    }
    if let (Some(a), Some(b)) = (&was.binary_sha256, &now.binary_sha256) {
        if a != b {
            bail!(
                "was measured with another tpslab binary (sha256 {a:.12}..., this one \
                 {b:.12}...): rows from two builds do not compare"
            );
        }
    }
    Ok(())
}

/// The same load parameters, flag by flag.
fn same_params(was: &RunInfo, now: &RunInfo) -> Result<()> {
    let secs = |s: f64| format!("{s}s");
    let params = [
        (
            "--validators",
            was.validators.to_string(),
            now.validators.to_string(),
        ),
        ("--rate", was.rate.to_string(), now.rate.to_string()),
        (
            "--duration",
            secs(was.duration_secs),
            secs(now.duration_secs),
        ),
        ("--warmup", secs(was.warmup_secs), secs(now.warmup_secs)),
        ("--drain", secs(was.drain_secs), secs(now.drain_secs)),
        (
            "--tx-size",
            was.tx_size.to_string(),
            now.tx_size.to_string(),
        ),
        (
            "--accounts",
            was.accounts.to_string(),
            now.accounts.to_string(),
        ),
        (
            "--block-interval-ms",
            was.block_interval_ms.to_string(),
            now.block_interval_ms.to_string(),
        ),
        (
            "--capacity",
            was.capacity_plan.clone(),
            now.capacity_plan.clone(),
        ),
        (
            "--link/--latency-matrix",
            was.links.clone().unwrap_or_default(),
            now.links.clone().unwrap_or_default(),
        ),
        (
            "--cpus/--generator-cpus",
            was.placement.clone().unwrap_or_default(),
            now.placement.clone().unwrap_or_default(),
        ),
        (
            "--slo-p99",
            format!("{}ms", was.slo_p99_ms),
            format!("{}ms", now.slo_p99_ms),
        ),
        (
            "--capacity-trial",
            secs(was.capacity_trial_secs),
            secs(now.capacity_trial_secs),
        ),
    ];
    match params.iter().find(|(_, a, b)| a != b) {
        Some((flag, a, b)) => bail!("was measured with {flag} {a}, not {b}"),
        None => Ok(()),
    }
}

/// The rows done are the plan's first steps, in order.
fn same_plan(done: &[StepResult], steps: &[Step]) -> Result<()> {
    const FLAGS: &str = "--quick, --ablation, --consensus, --raft-validators, --allocators";
    if done.len() > steps.len() {
        bail!(
            "holds {} steps, more than this plan's {}: the plan differs ({FLAGS})",
            done.len(),
            steps.len()
        );
    }
    for (i, (row, step)) in done.iter().zip(steps).enumerate() {
        if row.name != step.name
            || row.engine != step.engine.as_str()
            || row.validators != step.validators
        {
            bail!(
                "has step {} as {} on {} ({} validators), this plan's is {} on {} ({} \
                 validators): the plan differs ({FLAGS})",
                i + 1,
                row.name,
                row.engine,
                row.validators,
                step.name,
                step.engine,
                step.validators
            );
        }
    }
    Ok(())
}
