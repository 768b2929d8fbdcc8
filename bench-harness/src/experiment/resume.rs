//! `experiment --resume`: the full ladder over several sittings. The steps already in the out
//! dir's results.json are kept, and the run goes on from the first one missing (or the one
//! that failed), provided the parameters and the plan are the same: a row measured at another
//! rate or window would not compare with the rest.

use super::{ExperimentConfig, ExperimentResults, Step};
use anyhow::{bail, Result};

/// The results a run starts from: empty, or with `--resume` those in the out dir.
pub(super) fn start(cfg: &ExperimentConfig, steps: &[Step]) -> Result<ExperimentResults> {
    if !cfg.resume {
        return Ok(ExperimentResults::new(cfg));
    }
    let done = resume(cfg, steps)?;
    eprintln!(
        "resuming {}: {} of {} steps measured before",
        cfg.out.display(),
        done.steps.len(),
        steps.len()
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
    let was = &done.info;
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
    ];
    if let Some((flag, a, b)) = params.iter().find(|(_, a, b)| a != b) {
        bail!(
            "--resume: {} was measured with {flag} {a}, not {b}; resume with that run's \
             arguments, or give another --out",
            path.display()
        );
    }
    if done.steps.len() > steps.len() {
        bail!(
            "--resume: {} holds {} steps, more than this plan's {}: the plan differs (--quick, \
             --ablation, --consensus, --allocators)",
            path.display(),
            done.steps.len(),
            steps.len()
        );
    }
    for (i, (row, step)) in done.steps.iter().zip(steps).enumerate() {
        if row.name != step.name
            || row.engine != step.engine.as_str()
            || row.validators != step.validators
        {
            bail!(
                "--resume: step {} in {} is {} on {} ({} validators), this plan's is {} on {} \
                 ({} validators): the plan differs (--quick, --ablation, --consensus, \
                 --raft-validators, --allocators)",
                i + 1,
                path.display(),
                row.name,
                row.engine,
                row.validators,
                step.name,
                step.engine,
                step.validators
            );
        }
    }
    done.failed = None;
    done.info.resumed_unix.push(now.started_unix);
    Ok(done)
}
