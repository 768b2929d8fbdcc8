//! `tpslab bench saturate`: open-loop steps at rising rates on the same chain until committed
//! TPS stops following the offered rate or P99 passes a bound (the CometBFT QA method), then
//! bisection between the last rate kept up and the first not. The saturation point (the
//! capacity) is the highest rate that kept up.

use crate::load::{run, LoadConfig, Mode};
use crate::report::LoadReport;
use anyhow::Result;
use serde::Serialize;

/// How the rate is stepped.
#[derive(Clone, Debug)]
pub struct SaturateConfig {
    /// Everything but the rate; `mode` is replaced by each step's open-loop rate.
    pub load: LoadConfig,
    /// First offered rate, tx/s.
    pub start_rate: u64,
    /// Each step multiplies the rate by this (> 1).
    pub factor: f64,
    /// Give up above this rate.
    pub max_rate: u64,
    /// A step keeps up when committed TPS >= this fraction of the offered rate...
    pub keep_up: f64,
    /// ...and P99 latency is at most this, ms.
    pub max_p99_ms: f64,
    /// After the rising steps, at most this many trials bisecting between the last rate kept
    /// up and the first not (fewer once they are within 2% of each other); 0: none, the
    /// capacity is then only as fine as `factor`.
    pub bisect: u32,
}

/// One step's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Offered rate, tx/s.
    pub rate: u64,
    /// Whether the chain kept up.
    pub kept_up: bool,
    /// The step's full report.
    pub report: LoadReport,
}

/// All steps and the saturation point.
#[derive(Clone, Debug, Serialize)]
pub struct SaturateReport {
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Index into `steps` of the last step that kept up (None: not even the first).
    pub saturation: Option<usize>,
}

impl SaturateReport {
    /// Table of steps and a line naming the saturation point.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| offered tx/s | send/s | committed TPS | P50 ms | P99 ms | late | rejected | kept up |\n|---|---|---|---|---|---|---|---|\n",
        );
        for st in &self.steps {
            let r = &st.report;
            s.push_str(&format!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} |\n",
                st.rate,
                r.send_rate,
                r.committed_tps,
                r.latency_ms.p50,
                r.latency_ms.p99,
                r.sent_late,
                r.rejected.values().sum::<u64>(),
                if st.kept_up { "yes" } else { "no" }
            ));
        }
        let none_failed = self.steps.iter().all(|s| s.kept_up);
        match self.saturation {
            Some(i) if none_failed => {
                let r = &self.steps[i].report;
                s.push_str(&format!(
                    "saturation point: not reached; the last step ({} tx/s) kept up with {:.0} committed TPS at P99 {:.0} ms (raise --max-rate)\n",
                    self.steps[i].rate, r.committed_tps, r.latency_ms.p99
                ));
            }
            Some(i) => {
                let r = &self.steps[i].report;
                s.push_str(&format!(
                    "saturation point: {:.0} committed TPS at P99 {:.0} ms (offered {} tx/s)\n",
                    r.committed_tps, r.latency_ms.p99, self.steps[i].rate
                ));
            }
            None => s.push_str("saturation point: below the first step's rate\n"),
        }
        s
    }
}

/// Runs steps until one does not keep up (or `max_rate`), then bisects.
pub async fn saturate(cfg: &SaturateConfig) -> Result<SaturateReport> {
    anyhow::ensure!(cfg.factor > 1.0, "--factor must be above 1");
    anyhow::ensure!(cfg.start_rate > 0, "--start-rate must be positive");
    let mut steps = Vec::new();
    let mut saturation = None;
    let mut rate = cfg.start_rate;
    let mut failed_at = None;
    while rate <= cfg.max_rate {
        let step = trial(cfg, rate, "step").await?;
        let kept_up = step.kept_up;
        steps.push(step);
        if !kept_up {
            failed_at = Some(rate);
            break;
        }
        saturation = Some(steps.len() - 1);
        rate = ((rate as f64 * cfg.factor).round() as u64).max(rate + 1);
    }
    let (Some(mut lo), Some(mut hi)) = (saturation.map(|i| steps[i].rate), failed_at) else {
        return Ok(SaturateReport { steps, saturation });
    };
    for _ in 0..cfg.bisect {
        if hi - lo <= (lo / 50).max(1) {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        let step = trial(cfg, mid, "bisect").await?;
        if step.kept_up {
            lo = mid;
            saturation = Some(steps.len());
        } else {
            hi = mid;
        }
        steps.push(step);
    }
    Ok(SaturateReport { steps, saturation })
}

/// One open-loop run at `rate`, judged against the keep-up rule.
async fn trial(cfg: &SaturateConfig, rate: u64, what: &str) -> Result<Step> {
    let mut load = cfg.load.clone();
    load.mode = Mode::Open { rate };
    let report = run(&load).await?;
    let kept_up = report.committed_tps >= cfg.keep_up * rate as f64
        && report.latency_ms.p99 <= cfg.max_p99_ms
        && report.committed >= (cfg.keep_up * report.sent as f64) as u64;
    eprintln!(
        "{what} {rate} tx/s: committed TPS {:.0}, P99 {:.0} ms{}",
        report.committed_tps,
        report.latency_ms.p99,
        if kept_up { "" } else { " -> saturated" }
    );
    Ok(Step {
        rate,
        kept_up,
        report,
    })
}
