//! `tpslab experiment`: the seed article's closed tuning loop on the user's machine. For each
//! step a fresh testnet (real node processes) runs the same load; steps are the baseline, then
//! toggles added one at a time (the ladder), then optionally the tuned configuration minus each
//! toggle (the ablation). Results go to a table, a JSON file and a self-contained HTML report.

mod accounting;
mod capacity;
mod compare;
mod faults;
mod flames;
mod html;
pub use html::write as write_report;
mod probes;
mod repeats;
mod results;
mod resume;
mod run_step;
mod table;

pub use probes::{table as probes_table, StepProbes};

pub use capacity::{Capacity, CapacityConfig, CapacityPlan, Trial};
pub use compare::compare;
pub use repeats::{Noise, RunFigures, Spread};
pub use results::{ExperimentResults, FailedStep, RunInfo, StepResult};

use crate::perturb::Schedule;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tpslab_testnet as testnet;
use tpslab_types::tuning::CATALOGUE;
use tpslab_types::{EngineKind, Tuning};

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
    /// Fixed-rate runs per step, interleaved (every step once before any step twice).
    pub repeats: u32,
    /// Where and how each step's capacity is searched.
    pub capacity: CapacityConfig,
    /// Emulated links between every step's validators (`--link`, `--latency-matrix`).
    pub links: tpslab_testnet::Links,
    /// CPUs of named validators in every step (`--cpus`), as `testnet up --cpus` keeps them.
    pub node_cpus: Vec<(String, String)>,
    /// Where the validators and the generator ran, in words (absent: anywhere).
    pub placement: Option<String>,
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

/// Runs every unit (each step's fixed-rate runs, `cfg.repeats` rounds of every step in plan
/// order, and in the first round each step's capacity search) and writes `results.json` and
/// `report.html` into `cfg.out`.
pub async fn run(cfg: &ExperimentConfig) -> Result<ExperimentResults> {
    anyhow::ensure!(cfg.repeats >= 1, "--repeats must be at least 1");
    let steps = all_steps(cfg);
    let mut results = resume::start(cfg, &steps)?;
    std::fs::create_dir_all(&cfg.out)
        .with_context(|| format!("cannot create {}", cfg.out.display()))?;
    if results.info.fsync_us.is_none() {
        results.info.fsync_us = crate::machine::fsync_latency(&cfg.out);
    }
    if results.info.verify_us.is_none() {
        results.info.verify_us = Some(crate::machine::verify_us());
    }
    let mut order = results.runs_done();
    for unit in units(&steps, cfg) {
        match unit {
            Unit::Run { step: i, repeat } if !results.has_run(i, repeat) => {
                let at = (i, steps.len());
                fixed_run(cfg, &mut results, &steps[i], at, repeat, order).await?;
                order += 1;
            }
            Unit::Capacity { step: i } if results.steps[i].capacity.is_none() => {
                capacity_run(cfg, &mut results, &steps[i], i).await?;
            }
            _ => {}
        }
    }
    html::write(&results, &cfg.out.join("report.html"))?;
    Ok(results)
}

/// Step `i`'s fixed-rate run `repeat`, recorded and saved.
async fn fixed_run(
    cfg: &ExperimentConfig,
    results: &mut ExperimentResults,
    step: &Step,
    (i, n): (usize, usize),
    repeat: u32,
    order: u32,
) -> Result<()> {
    announce(cfg, step, i, n, repeat);
    let dir = cfg.out.join(unit_dir(i, repeat, false));
    let probes = cfg.probes && results.info.probes_note.is_none();
    let (outcome, attempts) =
        run_step::retrying(&dir, || run_step::run_step(cfg, step, &dir, probes)).await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return Err(stop(cfg, results, step, &dir, e, attempts)),
    };
    if outcome.probes_note.is_some() {
        results.info.probes_note = outcome.probes_note.clone();
    }
    record_run(cfg, results, step, i, repeat, order, outcome);
    // Keep what was measured so far, in case a later unit fails.
    results.save(&cfg.out)
}

/// Step `i`'s capacity search, recorded and saved.
async fn capacity_run(
    cfg: &ExperimentConfig,
    results: &mut ExperimentResults,
    step: &Step,
    i: usize,
) -> Result<()> {
    let start = results.capacity_start(i, cfg.capacity.start_rate);
    eprintln!(
        "      capacity search from {start} tx/s ({:?} trials, P99 <= {:.0} ms)",
        cfg.capacity.trial, cfg.capacity.slo_p99_ms
    );
    let dir = cfg.out.join(unit_dir(i, 0, true));
    let (found, attempts) =
        run_step::retrying(&dir, || capacity::search(cfg, step, &dir, start)).await;
    let found = match found {
        Ok(c) => c,
        Err(e) => return Err(stop(cfg, results, step, &dir, e, attempts)),
    };
    eprintln!(
        "      capacity {} tx/s ({:.0} TPS at P99 {:.0} ms) after {} trials",
        found.show(),
        found.tps,
        found.p99_ms,
        found.trials.len()
    );
    if let Some(w) = found.floor_warning() {
        eprintln!("      WARNING: {w}");
    }
    results.steps[i].capacity = Some(found);
    results.save(&cfg.out)
}

/// One thing an experiment measures on a fresh testnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A fixed-rate run of a step (index into the plan).
    Run {
        /// The step.
        step: usize,
        /// Which repeat.
        repeat: u32,
    },
    /// A step's capacity search.
    Capacity {
        /// The step.
        step: usize,
    },
}

/// The units of `steps` in the order they run: `cfg.repeats` rounds, each step once per round
/// in plan order (interleaved, so a drift of the machine spreads over every step rather than
/// landing on one), and each searched step's capacity right after its first run, in ladder
/// order (each search starts at the capacity found before it).
pub fn units(steps: &[Step], cfg: &ExperimentConfig) -> Vec<Unit> {
    let mut out = Vec::new();
    for repeat in 0..cfg.repeats {
        for (i, step) in steps.iter().enumerate() {
            out.push(Unit::Run { step: i, repeat });
            if repeat == 0 && cfg.capacity.plan.wants(step) {
                out.push(Unit::Capacity { step: i });
            }
        }
    }
    out
}

/// Where a unit's testnet goes, under the out dir: the first run's dir keeps its flame graphs.
fn unit_dir(i: usize, repeat: u32, capacity: bool) -> String {
    match (repeat, capacity) {
        (_, true) => format!("step{i:02}-capacity"),
        (0, false) => format!("step{i:02}"),
        (r, false) => format!("step{i:02}-repeat{r}"),
    }
}

fn announce(cfg: &ExperimentConfig, step: &Step, i: usize, n: usize, repeat: u32) {
    let of = if cfg.repeats > 1 {
        format!(" (repeat {}/{})", repeat + 1, cfg.repeats)
    } else {
        String::new()
    };
    eprintln!(
        "[{}/{n}] {}{of}: {} {} validators, {} tx/s for {:?}",
        i + 1,
        step.name,
        step.validators,
        step.engine,
        cfg.rate,
        cfg.duration
    );
}

/// Records a failed unit (what was measured stays readable, and the report says what failed)
/// and returns the error to stop with.
fn stop(
    cfg: &ExperimentConfig,
    results: &mut ExperimentResults,
    step: &Step,
    dir: &Path,
    e: anyhow::Error,
    attempts: u32,
) -> anyhow::Error {
    let _ = testnet::down(dir);
    let e = e.context(format!("step {}", step.name));
    results.failed = Some(FailedStep {
        name: step.name.clone(),
        error: format!("{e:#}"),
        attempts,
    });
    if let Err(save) = results
        .save(&cfg.out)
        .and_then(|()| html::write(results, &cfg.out.join("report.html")))
    {
        return save.context(format!("{e:#}"));
    }
    e.context(format!(
        "what was measured before it is in {}",
        cfg.out.display()
    ))
}

/// Adds a fixed-rate run to the results, with its flame graphs when it is the step's first.
fn record_run(
    cfg: &ExperimentConfig,
    results: &mut ExperimentResults,
    step: &Step,
    i: usize,
    repeat: u32,
    order: u32,
    o: run_step::Outcome,
) {
    let report = o.report;
    eprintln!(
        "      committed TPS {:.0}, P50 {:.0} ms, P99 {:.0} ms",
        report.committed_tps, report.latency_ms.p50, report.latency_ms.p99
    );
    if let Some(p) = &o.probes {
        run_step::print_probes(p);
    }
    let skipped = cfg
        .perturb
        .as_ref()
        .map(|s| faults::step_schedule(s, &step.tuning).1)
        .unwrap_or_default();
    faults::print(&report, &skipped);
    if repeat > 0 {
        results.add_repeat(i, RunFigures::of(&report, repeat, order));
        return;
    }
    let dir = cfg.out.join(unit_dir(i, 0, false));
    let flame = flames::write_flame(&report, &dir, &step.name);
    // Against the step before (the ladder adds one toggle) or the all-tuned step (an
    // ablation step removes one): the toggle's own effect on the profile.
    let diff = results
        .reference(step.kind, step.engine.as_str(), i)
        .and_then(|r| flames::write_diff_flame(r, &report, &dir, &step.name));
    results.push(step, report, o.probes, order);
    if let Some(s) = results.steps.last_mut() {
        s.flame_svg = flame.map(|f| format!("step{i:02}/{f}"));
        s.flame_diff_svg = diff.map(|(f, vs)| (format!("step{i:02}/{f}"), vs));
        s.faults_skipped = skipped;
    }
}

#[cfg(test)]
mod tests;
