//! What an experiment measured: per-step reports, the seed-style table, results.json, and the
//! comparison of two runs.

use super::{Capacity, ExperimentConfig, Noise, RunFigures, Spread, Step, StepProbes};
use crate::report::LoadReport;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One step's outcome. With several repeats the figures (`tps` ... `lock_wait_us_per_tx`) are
/// medians over `repeats`, and `report` is the first run's full report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepResult {
    /// `baseline`, `+sig-cache`, `tuned - sig-cache`, ...
    pub name: String,
    /// `ladder`, `ablation` or `allocator` (the tuned chain run by another allocator build).
    pub kind: String,
    /// The consensus engine of the step's chain (`bft` in files from before Raft).
    #[serde(default = "bft")]
    pub engine: String,
    /// Validators of the step's chain (0 in files from before Raft: see the run's info).
    #[serde(default)]
    pub validators: usize,
    /// The toggle the step adds (ladder) or removes (ablation), or the allocator.
    pub toggle: Option<String>,
    /// The toggles on.
    pub enabled: Vec<String>,
    /// Committed TPS.
    pub tps: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// CPU of all validators together, % of one core.
    pub cpu_pct: f64,
    /// Heap allocations of all validators during the window per tx committed in it.
    pub allocs_per_tx: Option<f64>,
    /// Mempool + state cache lock wait of all validators per tx committed in the window, us.
    #[serde(default)]
    pub lock_wait_us_per_tx: Option<f64>,
    /// Bytes all validators sent to peers per tx committed in the window.
    #[serde(default)]
    pub p2p_bytes_per_tx: Option<f64>,
    /// TPS relative to the baseline step of the same engine.
    pub x_baseline: f64,
    /// More than 1% of the txs accepted in the window had not committed when the drain
    /// ended: they are in `p50_ms`/`p99_ms` at the time they had waited (lower bounds), so
    /// the P99 (and the P50, past 50%) is "at least".
    #[serde(default)]
    pub latency_censored: bool,
    /// node0's top functions by self time in the window (99 Hz CPU profile).
    #[serde(default)]
    pub profile_top: Vec<crate::profile::FunctionShare>,
    /// The full load report (with `--perturb`: per-second TPS and each fault's effect).
    pub report: LoadReport,
    /// `--perturb` faults this step did not get (kills and restarts with write-batch off).
    #[serde(default)]
    pub faults_skipped: Vec<String>,
    /// node0's CPU flame graph (SVG), relative to the experiment's out dir.
    #[serde(default)]
    pub flame_svg: Option<String>,
    /// node0's differential flame graph against another step (file, that step's name).
    #[serde(default)]
    pub flame_diff_svg: Option<(String, String)>,
    /// Kernel-side figures from the eBPF probes (None when they could not run).
    #[serde(default)]
    pub probes: Option<StepProbes>,
    /// Each fixed-rate run's figures, in the order run (empty in files from before repeats:
    /// the one run is `report`).
    #[serde(default)]
    pub repeats: Vec<RunFigures>,
    /// The step's capacity, when it was searched.
    #[serde(default)]
    pub capacity: Option<Capacity>,
}

fn bft() -> String {
    "bft".into()
}

/// The machine and parameters of a run, for the report and for comparisons.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    /// tpslab version.
    pub version: String,
    /// `uname -srm`-like kernel and arch.
    pub kernel: String,
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Total memory, MiB.
    pub mem_mib: u64,
    /// Validators per BFT step (a Raft step's own count is in its row).
    pub validators: usize,
    /// Offered rate, tx/s.
    pub rate: u64,
    /// Window, s.
    pub duration_secs: f64,
    /// Warm-up, s.
    pub warmup_secs: f64,
    /// Tx size, bytes.
    pub tx_size: usize,
    /// Funded accounts.
    pub accounts: u64,
    /// Block interval, ms.
    pub block_interval_ms: u64,
    /// When it ran (Unix seconds).
    pub started_unix: u64,
    /// How long the load waited for commits after each window, seconds.
    #[serde(default)]
    pub drain_secs: f64,
    /// Why the eBPF probes did not run, if they did not.
    #[serde(default)]
    pub probes_note: Option<String>,
    /// When the run was resumed (`--resume`; Unix seconds), once per sitting after the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed_unix: Vec<u64>,
    /// The data disk: synced 4 KiB writes in the out dir at the start, P50 and P99, us.
    #[serde(default)]
    pub fsync_us: Option<(f64, f64)>,
    /// The CPU: transfer signature verification at the start, us per tx one by one and in
    /// batches of 256 ([`crate::machine::verify_us`]).
    #[serde(default)]
    pub verify_us: Option<(f64, f64)>,
    /// The validators' build: profile and allocator (`release, system allocator`).
    #[serde(default)]
    pub build: String,
    /// SHA-256 of the binary the validators ran.
    #[serde(default)]
    pub binary_sha256: Option<String>,
    /// Fixed-rate runs per step asked for (0 in files from before repeats: one).
    #[serde(default)]
    pub repeats: u32,
    /// Which steps got a capacity search (`none` in files from before it).
    #[serde(default = "no_plan")]
    pub capacity_plan: String,
    /// The latency bound of a capacity trial, ms.
    #[serde(default)]
    pub slo_p99_ms: f64,
    /// Each capacity trial's window, s.
    #[serde(default)]
    pub capacity_trial_secs: f64,
    /// The emulated links between validators, in words (absent: real loopback links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<String>,
    /// Where the validators and the generator ran (`--cpus`, `--generator-cpus`; absent:
    /// anywhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
}

fn no_plan() -> String {
    "none".into()
}

/// Everything an experiment measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExperimentResults {
    /// Schema version of this file.
    pub schema: u32,
    /// Machine and parameters.
    pub info: RunInfo,
    /// Steps in the order run.
    pub steps: Vec<StepResult>,
    /// The step that failed and why, when the run stopped early (the steps before it are
    /// complete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedStep>,
}

/// A step that could not be measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailedStep {
    /// Its name.
    pub name: String,
    /// The error with its causes.
    pub error: String,
    /// Start attempts made (a taken port is retried on fresh ports).
    pub attempts: u32,
}

fn read_first_line(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split(':').nth(1))
        .map(|v| v.trim().to_string())
}

impl StepResult {
    /// The spread of one figure over the step's runs (the one report's, in files from
    /// before repeats).
    pub fn spread(&self, f: impl Fn(&RunFigures) -> f64) -> Option<Spread> {
        if self.repeats.is_empty() {
            return Spread::of([f(&RunFigures::of(&self.report, 0, 0))]);
        }
        Spread::of(self.repeats.iter().map(f))
    }

    /// `>` before latencies that are lower bounds (see `latency_censored`).
    pub fn bound(&self) -> &'static str {
        if self.latency_censored {
            ">"
        } else {
            ""
        }
    }
}

impl ExperimentResults {
    /// Empty results for `cfg`, with this machine's facts.
    pub fn new(cfg: &ExperimentConfig) -> ExperimentResults {
        let mem_kib: u64 = read_first_line("/proc/meminfo", "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {} {}", s.trim(), std::env::consts::ARCH))
            .unwrap_or_else(|_| std::env::consts::OS.to_string());
        ExperimentResults {
            schema: 1,
            info: RunInfo {
                version: env!("CARGO_PKG_VERSION").to_string(),
                kernel,
                cpu: read_first_line("/proc/cpuinfo", "model name").unwrap_or_default(),
                cpus: std::thread::available_parallelism().map_or(1, |p| p.get()),
                mem_mib: mem_kib / 1024,
                validators: cfg.validators,
                rate: cfg.rate,
                duration_secs: cfg.duration.as_secs_f64(),
                warmup_secs: cfg.warmup.as_secs_f64(),
                tx_size: cfg.tx_size,
                accounts: cfg.accounts,
                block_interval_ms: cfg.block_interval_ms,
                started_unix: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                probes_note: None,
                drain_secs: cfg.drain.as_secs_f64(),
                resumed_unix: Vec::new(),
                fsync_us: None,
                verify_us: None,
                build: cfg.build.clone(),
                binary_sha256: crate::machine::file_sha256(&cfg.exe),
                repeats: cfg.repeats,
                capacity_plan: cfg.capacity.plan.to_string(),
                slo_p99_ms: cfg.capacity.slo_p99_ms,
                capacity_trial_secs: cfg.capacity.trial.as_secs_f64(),
                links: cfg.links.describe(),
                placement: cfg.placement.clone(),
            },
            steps: Vec::new(),
            failed: None,
        }
    }

    /// Adds `step`'s first run (its full report) as a new row.
    pub(super) fn push(
        &mut self,
        step: &Step,
        report: LoadReport,
        probes: Option<StepProbes>,
        order: u32,
    ) {
        let first = RunFigures::of(&report, 0, order);
        self.steps.push(StepResult {
            name: step.name.clone(),
            kind: step.kind.to_string(),
            engine: step.engine.as_str().to_string(),
            validators: step.validators,
            toggle: step.toggle.clone(),
            enabled: step
                .tuning
                .enabled()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            tps: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            latency_censored: false,
            cpu_pct: 0.0,
            allocs_per_tx: None,
            lock_wait_us_per_tx: None,
            p2p_bytes_per_tx: None,
            profile_top: report
                .resources
                .first()
                .map(|r| r.profile_top.clone())
                .unwrap_or_default(),
            x_baseline: 0.0,
            report,
            faults_skipped: Vec::new(),
            probes,
            flame_svg: None,
            flame_diff_svg: None,
            repeats: vec![first],
            capacity: None,
        });
        self.refresh();
    }

    /// Adds a later run of step `i`.
    pub(super) fn add_repeat(&mut self, i: usize, run: RunFigures) {
        self.steps[i].repeats.push(run);
        self.refresh();
    }

    /// Recomputes each step's medians, and its TPS against its engine's baseline.
    fn refresh(&mut self) {
        for st in &mut self.steps {
            if st.repeats.is_empty() {
                continue;
            }
            let med = |f: &dyn Fn(&RunFigures) -> Option<f64>| {
                Spread::of(st.repeats.iter().filter_map(f)).map(|s| s.median)
            };
            st.tps = med(&|r| Some(r.tps)).unwrap_or(0.0);
            st.p50_ms = med(&|r| Some(r.p50_ms)).unwrap_or(0.0);
            st.p99_ms = med(&|r| Some(r.p99_ms)).unwrap_or(0.0);
            st.cpu_pct = med(&|r| Some(r.cpu_pct)).unwrap_or(0.0);
            st.allocs_per_tx = med(&|r| r.allocs_per_tx);
            st.lock_wait_us_per_tx = med(&|r| r.lock_wait_us_per_tx);
            st.p2p_bytes_per_tx = med(&|r| r.p2p_bytes_per_tx);
            // A run with more than 1% of its accepted txs uncommitted has latencies that are
            // lower bounds; a median over such runs is one too.
            st.latency_censored = st.repeats.iter().any(|r| r.censored_share > 0.01);
        }
        let bases: Vec<(String, f64)> = self
            .engines()
            .iter()
            .filter_map(|e| Some((e.to_string(), self.baseline_of(e)?.tps)))
            .collect();
        for st in &mut self.steps {
            let base = bases.iter().find(|(e, _)| *e == st.engine).map(|b| b.1);
            st.x_baseline = match base {
                Some(b) if b > 0.0 => st.tps / b,
                _ => 0.0,
            };
        }
    }

    /// Fixed-rate runs measured so far, over all steps.
    pub(super) fn runs_done(&self) -> u32 {
        self.steps
            .iter()
            .map(|s| s.repeats.len().max(1) as u32)
            .sum()
    }

    /// Whether step `i`'s run `repeat` is measured.
    pub(super) fn has_run(&self, i: usize, repeat: u32) -> bool {
        self.steps.get(i).is_some_and(|s| {
            s.repeats.iter().any(|r| r.repeat == repeat) || (repeat == 0 && s.repeats.is_empty())
        })
    }

    /// Where step `i`'s capacity search starts: the capacity of the last step before it on
    /// the same engine that has one, else `default`.
    pub(super) fn capacity_start(&self, i: usize, default: u64) -> u64 {
        let engine = &self.steps[i].engine;
        self.steps[..i]
            .iter()
            .rev()
            .filter(|s| s.engine == *engine)
            .find_map(|s| s.capacity.as_ref()?.rate)
            .unwrap_or(default)
    }

    /// The step a step of `kind` at plan index `i` is compared with: the one before it on
    /// its engine (the ladder adds one toggle), or the all-tuned step (an ablation or
    /// allocator step changes one thing in it).
    pub fn reference(&self, kind: &str, engine: &str, i: usize) -> Option<&StepResult> {
        match kind {
            "ablation" | "allocator" => self.tuned_of(engine),
            _ => self.steps[..i.min(self.steps.len())]
                .iter()
                .rfind(|s| s.engine == engine),
        }
    }

    /// Step `i`'s TPS against its reference's over the repeats.
    pub fn noise(&self, i: usize) -> Option<Noise> {
        let st = &self.steps[i];
        let r = self.reference(&st.kind, &st.engine, i)?;
        if std::ptr::eq(r, st) {
            return None;
        }
        Some(Noise::of(&st.spread(|f| f.tps)?, &r.spread(|f| f.tps)?))
    }

    /// Writes `results.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let p = dir.join("results.json");
        std::fs::write(&p, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", p.display()))
    }

    /// Reads a `results.json`.
    pub fn load(path: &Path) -> Result<ExperimentResults> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a tpslab experiment results file", path.display()))
    }

    /// The baseline step (of the first engine run).
    pub fn baseline(&self) -> Option<&StepResult> {
        self.baseline_of(self.engines().first()?)
    }

    /// The all-tuned step, the last of the ladder (of the first engine run).
    pub fn tuned(&self) -> Option<&StepResult> {
        self.tuned_of(self.engines().first()?)
    }

    /// The baseline step of `engine`.
    pub fn baseline_of(&self, engine: &str) -> Option<&StepResult> {
        self.steps
            .iter()
            .find(|s| s.name == "baseline" && s.engine == engine)
    }

    /// The all-tuned step of `engine`.
    pub fn tuned_of(&self, engine: &str) -> Option<&StepResult> {
        self.steps
            .iter()
            .rfind(|s| s.kind == "ladder" && s.engine == engine)
    }

    /// The engines run, in order of first appearance.
    pub fn engines(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.steps {
            if !out.contains(&s.engine.as_str()) {
                out.push(&s.engine);
            }
        }
        out
    }

    /// A step's name, with its engine when the run compared engines.
    pub fn label(&self, st: &StepResult) -> String {
        if self.engines().len() > 1 {
            format!("{} [{}]", st.name, st.engine)
        } else {
            st.name.clone()
        }
    }
}
