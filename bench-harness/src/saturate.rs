//! `tpslab bench saturate`: open-loop steps at rising rates on the same chain until committed
//! TPS stops following the offered rate or P99 passes a bound (the CometBFT QA method), then
//! bisection between the last rate kept up and the first not. The saturation point (the
//! capacity) is the highest rate that kept up. When the first rate does not keep up the steps
//! fall instead (down to `min_rate`), so a search may start from a guess on either side, as
//! the experiment's does from the previous step's capacity.

use crate::load::{run, LoadConfig, Mode};
use crate::report::LoadReport;
use anyhow::Result;
use serde::Serialize;
use std::time::Duration;

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
    /// When the first rate does not keep up, step down (dividing by `factor`) to at most
    /// this rate before giving up.
    pub min_rate: u64,
    /// A step keeps up when committed TPS >= this fraction of the offered rate...
    pub keep_up: f64,
    /// ...and P99 latency is at most this, ms.
    pub max_p99_ms: f64,
    /// After the rising steps, at most this many trials bisecting between the last rate kept
    /// up and the first not (fewer once they are within 2% of each other); 0: none, the
    /// capacity is then only as fine as `factor`.
    pub bisect: u32,
    /// Before each trial after the first, wait at most this long for the targets' mempools
    /// to empty: the txs a saturated trial left behind would otherwise load the next one.
    pub settle: Duration,
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
    /// This machine's signature cost, us per transfer tx (one by one, batched), measured
    /// before the first step: a capacity quoted without it cannot be set beside another
    /// machine's.
    pub verify_us: (f64, f64),
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
            None => s.push_str(&format!(
                "saturation point: below the lowest rate tried ({} tx/s)\n",
                self.steps.iter().map(|s| s.rate).min().unwrap_or(0)
            )),
        }
        s.push_str(&format!(
            "this machine: {}\n",
            crate::machine::verify_line(self.verify_us)
        ));
        s
    }
}

/// Runs steps until one does not keep up (or `max_rate`), or, when the first does not, down
/// until one does (or `min_rate`); then bisects between the two rates found.
pub async fn saturate(cfg: &SaturateConfig) -> Result<SaturateReport> {
    anyhow::ensure!(cfg.factor > 1.0, "--factor must be above 1");
    anyhow::ensure!(cfg.start_rate > 0, "--start-rate must be positive");
    let verify_us = crate::machine::verify_us();
    let mut steps: Vec<Step> = Vec::new();
    let mut saturation = None;
    // The highest rate kept up and the lowest not, as far as known.
    let (mut lo, mut hi) = (None, None);
    let mut rate = cfg.start_rate;
    loop {
        let step = trial(cfg, rate, "step", !steps.is_empty()).await?;
        let kept_up = step.kept_up;
        steps.push(step);
        if kept_up {
            saturation = Some(steps.len() - 1);
            lo = Some(rate);
            let next = ((rate as f64 * cfg.factor).round() as u64).max(rate + 1);
            if hi.is_some() || next > cfg.max_rate {
                break;
            }
            rate = next;
        } else {
            hi = Some(rate);
            let next = ((rate as f64 / cfg.factor).round() as u64).min(rate - 1);
            if lo.is_some() || next < cfg.min_rate.max(1) {
                break;
            }
            rate = next;
        }
    }
    let (Some(mut lo), Some(mut hi)) = (lo, hi) else {
        return Ok(SaturateReport {
            steps,
            saturation,
            verify_us,
        });
    };
    for _ in 0..cfg.bisect {
        if hi - lo <= (lo / 50).max(1) {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        let step = trial(cfg, mid, "bisect", true).await?;
        if step.kept_up {
            lo = mid;
            saturation = Some(steps.len());
        } else {
            hi = mid;
        }
        steps.push(step);
    }
    Ok(SaturateReport {
        steps,
        saturation,
        verify_us,
    })
}

/// One open-loop run at `rate`, judged against the keep-up rule.
async fn trial(cfg: &SaturateConfig, rate: u64, what: &str, settle: bool) -> Result<Step> {
    if settle {
        settle_mempools(&cfg.load.targets, cfg.settle).await;
    }
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

/// Waits until every target's mempool is empty, at most `timeout` (a target that does not
/// answer counts as empty: the trial's own run reports it).
pub(crate) async fn settle_mempools(targets: &[String], timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    for addr in targets {
        let Ok(mut client) = tpslab_api::client::connect(addr).await else {
            continue;
        };
        loop {
            let left = client
                .status(tpslab_api::proto::StatusRequest {})
                .await
                .map_or(0, |r| r.into_inner().mempool_txs);
            if left == 0 || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
