//! What an experiment measured: per-step reports, the seed-style table, results.json, and the
//! comparison of two runs.

use super::StepProbes;
use super::{ExperimentConfig, Step};
use crate::report::LoadReport;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One step's outcome.
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
    /// The validators' build: profile and allocator (`release, system allocator`).
    #[serde(default)]
    pub build: String,
    /// SHA-256 of the binary the validators ran.
    #[serde(default)]
    pub binary_sha256: Option<String>,
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
                build: cfg.build.clone(),
                binary_sha256: super::machine::file_sha256(&cfg.exe),
            },
            steps: Vec::new(),
            failed: None,
        }
    }

    pub(super) fn push(&mut self, step: &Step, report: LoadReport, probes: Option<StepProbes>) {
        let engine = step.engine.as_str();
        let base = self
            .steps
            .iter()
            .find(|b| b.engine == engine)
            .map_or(report.committed_tps, |b| b.tps);
        let cpu: f64 = report.resources.iter().filter_map(|r| r.cpu_pct).sum();
        let allocs: Option<u64> = report.resources.iter().map(|r| r.allocations).sum();
        let committed_in_window = report.committed_tps * report.duration_secs;
        // The report's latencies count uncommitted txs at the time they had waited: its P99
        // is a lower bound once more than 1% of the accepted txs never committed.
        let censored = report.censored_share() > 0.01;
        let (p50_ms, p99_ms) = (report.latency_ms.p50, report.latency_ms.p99);
        let allocs_per_tx = allocs
            .filter(|a| *a > 0 && committed_in_window >= 1.0)
            .map(|a| a as f64 / committed_in_window);
        self.steps.push(StepResult {
            name: step.name.clone(),
            kind: step.kind.to_string(),
            engine: engine.to_string(),
            validators: step.validators,
            toggle: step.toggle.clone(),
            enabled: step
                .tuning
                .enabled()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            tps: report.committed_tps,
            p50_ms,
            p99_ms,
            latency_censored: censored,
            cpu_pct: cpu,
            allocs_per_tx,
            lock_wait_us_per_tx: report
                .resources
                .iter()
                .map(|r| r.lock_wait_ms)
                .sum::<Option<f64>>()
                .filter(|_| committed_in_window >= 1.0)
                .map(|ms| 1000.0 * ms / committed_in_window),
            profile_top: report
                .resources
                .first()
                .map(|r| r.profile_top.clone())
                .unwrap_or_default(),
            x_baseline: if base > 0.0 {
                report.committed_tps / base
            } else {
                0.0
            },
            report,
            faults_skipped: Vec::new(),
            probes,
            flame_svg: None,
            flame_diff_svg: None,
        });
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

    /// The seed-style table.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| step | toggle added | TPS | P50 | P99 | CPU % | allocs/tx | x baseline |\n|---|---|---|---|---|---|---|---|\n",
        );
        for st in &self.steps {
            let toggle = match (st.kind.as_str(), &st.toggle) {
                ("ablation", Some(t)) => format!("(removed) {t}"),
                ("allocator", Some(t)) => format!("(allocator) {t}"),
                (_, Some(t)) => t.clone(),
                _ => "-".into(),
            };
            s.push_str(&format!(
                "| {} | {} | {:.0} | {}{:.0} ms | {}{:.0} ms | {:.0} | {} | {:.2}x |\n",
                self.label(st),
                toggle,
                st.tps,
                st.bound(),
                st.p50_ms,
                st.bound(),
                st.p99_ms,
                st.cpu_pct,
                st.allocs_per_tx.map_or("-".into(), |a| format!("{a:.0}")),
                st.x_baseline
            ));
        }
        for engine in self.engines() {
            let (Some(b), Some(t)) = (self.baseline_of(engine), self.tuned_of(engine)) else {
                continue;
            };
            let of = if self.engines().len() > 1 {
                format!(" [{engine}, {} validators]", t.validators)
            } else {
                String::new()
            };
            s.push_str(&format!(
                "\ntuned vs baseline{of} at {} tx/s offered: {:.2}x committed TPS ({:.0} vs {:.0}), P99 {:.0} ms vs {}{:.0} ms ({}1/{:.1})\n",
                self.info.rate,
                t.tps / b.tps.max(1e-9),
                t.tps,
                b.tps,
                t.p99_ms,
                b.bound(),
                b.p99_ms,
                if b.latency_censored { "at least " } else { "" },
                b.p99_ms / t.p99_ms.max(1e-9)
            ));
        }
        s.push_str(&self.engines_line());
        for st in &self.steps {
            for n in &st.report.resources {
                if let Some(t) = n.tasks.as_ref().filter(|t| t.leak_suspected) {
                    s.push_str(&format!(
                        "warning: {} {}: live tasks only grew over the window, {} -> {} (possible task leak)\n",
                        st.name, n.name, t.start, t.end
                    ));
                }
            }
        }
        s
    }

    /// Stage latencies of every step on one line each: P50 / P99 ms per stage.
    pub fn stages_table(&self) -> String {
        let names: Vec<&str> = tpslab_types::stages::Stage::ALL
            .iter()
            .map(|s| s.name())
            .collect();
        let mut s =
            String::from("\nwhere txs wait (P50 / P99 ms per stage, all validators):\n| step |");
        for n in &names {
            s.push_str(&format!(" {n} |"));
        }
        s.push_str(&format!("\n|---|{}\n", "---|".repeat(names.len())));
        for st in &self.steps {
            s.push_str(&format!("| {} |", self.label(st)));
            for n in &names {
                match st
                    .report
                    .stages
                    .iter()
                    .find(|x| x.stage == *n && x.count > 0)
                {
                    Some(x) => s.push_str(&format!(" {:.1} / {:.1} |", x.p50_ms, x.p99_ms)),
                    None => s.push_str(" - |"),
                }
            }
            s.push('\n');
        }
        s
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

    /// Raft against BFT, step by step, when the run had both: what Byzantine tolerance costs
    /// under each toggle set.
    fn engines_line(&self) -> String {
        let (Some(raft), Some(bft)) = (self.tuned_of("raft"), self.tuned_of("bft")) else {
            return String::new();
        };
        let pairs: Vec<String> = self
            .steps
            .iter()
            .filter(|r| r.engine == "raft")
            .filter_map(|r| {
                let b = self
                    .steps
                    .iter()
                    .find(|b| b.engine == "bft" && b.name == r.name)?;
                Some(format!(
                    "{} {:.2}x ({:.0} vs {:.0})",
                    r.name,
                    r.tps / b.tps.max(1e-9),
                    r.tps,
                    b.tps
                ))
            })
            .collect();
        format!(
            "raft ({} validators) vs bft ({} validators), committed TPS: {}\n",
            raft.validators,
            bft.validators,
            pairs.join("; ")
        )
    }
}
