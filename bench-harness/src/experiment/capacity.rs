//! A step's capacity (../shared/CONVENTIONS.md: the highest offered open-loop rate at which
//! at least 95 % of the txs commit and P99 is within the SLO): `bench saturate`'s search,
//! coarse steps then bisection, with short trials on a fresh testnet of the step's configuration. It starts from
//! the previous step's capacity, so a ladder step usually needs a few trials around it.

use super::run_step::{audit_and_stop, start_testnet};
use super::{ExperimentConfig, Step};
use crate::load::{LoadConfig, Mode};
use crate::saturate::{saturate, SaturateConfig};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use tpslab_api::genesis::Genesis;
use tpslab_types::{AppKind, Tuning};

/// A search trial keeps up when at least this share of the offered rate commits.
const KEEP_UP: f64 = 0.95;
/// Each coarse step multiplies (or divides) the rate by this.
const FACTOR: f64 = 1.5;
/// Bisection trials after the coarse steps (fewer once within 2 %).
const BISECT: u32 = 4;
/// Each rate is tried once: an experiment's run-to-run spread shows in its repeats
/// (`--repeats`), and a retry per failed rate would lengthen every step's search.
const CONFIRM: u32 = 0;
/// The search's lowest rate, tx/s.
const MIN_RATE: u64 = 50;

/// Which steps get a capacity search (`--capacity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityPlan {
    /// None: fixed-rate runs only.
    None,
    /// The baseline and the all-tuned ladder step.
    BaselineTuned,
    /// Every step.
    All,
}

impl std::str::FromStr for CapacityPlan {
    type Err = String;
    fn from_str(s: &str) -> Result<CapacityPlan, String> {
        match s {
            "none" => Ok(CapacityPlan::None),
            "baseline,tuned" | "tuned,baseline" => Ok(CapacityPlan::BaselineTuned),
            "all" => Ok(CapacityPlan::All),
            _ => Err(format!(
                "unknown capacity plan `{s}` (baseline,tuned, all or none)"
            )),
        }
    }
}

impl std::fmt::Display for CapacityPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CapacityPlan::None => "none",
            CapacityPlan::BaselineTuned => "baseline,tuned",
            CapacityPlan::All => "all",
        })
    }
}

/// How capacities are searched.
#[derive(Clone, Debug)]
pub struct CapacityConfig {
    /// Where.
    pub plan: CapacityPlan,
    /// The latency bound of "kept up", ms (CONVENTIONS: 1000).
    pub slo_p99_ms: f64,
    /// Each trial's measured window.
    pub trial: Duration,
    /// The first step's first rate, tx/s (later steps start at the previous capacity).
    pub start_rate: u64,
    /// The search stops above this rate (the capacity is then "at least" the last kept up).
    pub max_rate: u64,
}

impl CapacityPlan {
    /// Whether `step` gets a search.
    pub fn wants(&self, step: &Step) -> bool {
        match self {
            CapacityPlan::None => false,
            CapacityPlan::All => true,
            CapacityPlan::BaselineTuned => {
                step.kind == "ladder"
                    && (step.tuning == Tuning::baseline() || step.tuning == Tuning::tuned())
            }
        }
    }
}

/// One trial of a search.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trial {
    /// Offered rate, tx/s.
    pub rate: u64,
    /// Committed TPS.
    pub tps: f64,
    /// P99, ms.
    pub p99_ms: f64,
    /// Share of accepted txs not committed by the end of the drain.
    pub censored_share: f64,
    /// Whether it kept up.
    pub kept_up: bool,
}

/// A step's capacity and how it was found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Capacity {
    /// The highest offered rate kept up (None: not even the search's lowest).
    pub rate: Option<u64>,
    /// That trial's committed TPS and P99, ms.
    pub tps: f64,
    /// P99 of that trial, ms.
    pub p99_ms: f64,
    /// The lowest rate above `rate` that did not keep up (None: the search's highest rate
    /// kept up, so the capacity is at least `rate`).
    pub failed_at: Option<u64>,
    /// The first trial's rate.
    pub started_at: u64,
    /// The SLO the trials were held to, ms.
    pub slo_p99_ms: f64,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
}

impl Capacity {
    /// `1130`, `>= 200000` (never saturated) or `< 50` (never kept up).
    pub fn show(&self) -> String {
        match (self.rate, self.failed_at) {
            (Some(r), Some(_)) => r.to_string(),
            (Some(r), None) => format!(">= {r}"),
            (None, _) => format!(
                "< {}",
                self.trials
                    .iter()
                    .map(|t| t.rate)
                    .min()
                    .unwrap_or(self.started_at)
            ),
        }
    }

    /// A warning when the P99 bound sits on the chain's latency floor: the lowest rate tried
    /// committed its txs (>= 95 %) yet its P99 was already within 30 % of the bound. Then
    /// which trials pass is decided by latency noise, not by load (a WAN's block time, say),
    /// and the capacity figure says little.
    pub fn floor_warning(&self) -> Option<String> {
        let lowest = self.trials.iter().min_by_key(|t| t.rate)?;
        let committed = lowest.tps >= KEEP_UP * lowest.rate as f64;
        (committed && lowest.p99_ms >= FLOOR_SHARE * self.slo_p99_ms).then(|| {
            format!(
                "P99 was already {:.0} ms at {} tx/s, the lowest rate tried: the {:.0} ms bound is \
                 on this chain's latency floor, so the capacity measures noise; raise --slo-p99",
                lowest.p99_ms, lowest.rate, self.slo_p99_ms
            )
        })
    }

    /// How far apart the last rate kept up and the first not are, % of the former: the
    /// search's resolution.
    pub fn resolution_pct(&self) -> Option<f64> {
        let (lo, hi) = (self.rate?, self.failed_at?);
        Some(100.0 * (hi - lo) as f64 / lo.max(1) as f64)
    }
}

/// A lowest-rate P99 above this share of the bound means the bound is on the latency floor.
const FLOOR_SHARE: f64 = 0.7;

/// Searches `step`'s capacity on a fresh testnet in `dir`, from `start_rate`.
pub(super) async fn search(
    cfg: &ExperimentConfig,
    step: &Step,
    dir: &Path,
    start_rate: u64,
) -> Result<Capacity> {
    let cap = &cfg.capacity;
    let start_rate = start_rate.min(cap.max_rate);
    let file = start_testnet(cfg, step, dir, None).await?;
    let genesis = Genesis::load(&file.nodes[0].home.join("genesis.json"))?;
    let load = LoadConfig {
        targets: file.nodes.iter().map(|n| n.grpc_addr.clone()).collect(),
        genesis,
        workload: AppKind::Transfer,
        mode: Mode::Open { rate: start_rate },
        duration: cap.trial,
        warmup: Duration::from_secs(2),
        tx_size: cfg.tx_size,
        // A tx still uncommitted this long after the window counts at the time it waited,
        // far past the SLO: the trial did not keep up either way.
        drain: Duration::from_secs_f64((2.0 * cap.slo_p99_ms / 1000.0).max(3.0)),
        watch: Vec::new(),
        progress: false,
        perturb: None,
        hot_accounts: None,
    };
    let found = saturate(&SaturateConfig {
        load,
        start_rate,
        factor: FACTOR,
        max_rate: cap.max_rate,
        min_rate: MIN_RATE,
        keep_up: KEEP_UP,
        max_p99_ms: cap.slo_p99_ms,
        bisect: BISECT,
        confirm: CONFIRM,
        settle: Duration::from_secs(30),
    })
    .await;
    let found = audit_and_stop(dir, &file, found, "capacity search").await?;
    if found.steps.is_empty() {
        bail!("the capacity search ran no trial");
    }
    let best = found.saturation.map(|i| &found.steps[i]);
    let rate = best.map(|s| s.rate);
    Ok(Capacity {
        rate,
        tps: best.map_or(0.0, |s| s.report.committed_tps),
        p99_ms: best.map_or(0.0, |s| s.report.latency_ms.p99),
        failed_at: found
            .steps
            .iter()
            .filter(|s| !s.kept_up && rate.is_none_or(|r| s.rate > r))
            .map(|s| s.rate)
            .min(),
        started_at: start_rate,
        slo_p99_ms: cap.slo_p99_ms,
        trials: found
            .steps
            .iter()
            .map(|s| Trial {
                rate: s.rate,
                tps: s.report.committed_tps,
                p99_ms: s.report.latency_ms.p99,
                censored_share: s.report.censored_share(),
                kept_up: s.kept_up,
            })
            .collect(),
    })
}
