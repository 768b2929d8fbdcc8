//! `tpslab bench saturate`: open-loop steps at rising rates on the same chain until committed
//! TPS stops following the offered rate or P99 passes a bound (the CometBFT QA method), then
//! bisection between the last rate kept up and the first not. The saturation point (the
//! capacity) is the highest rate that kept up. A rate that does not keep up is tried again
//! (`confirm` times) before it counts as saturated. When the first rate does not keep up the steps
//! fall instead (down to `min_rate`), so a search may start from a guess on either side, as
//! the experiment's does from the previous step's capacity.

use crate::load::{run, LoadConfig, Mode};
use crate::report::LoadReport;
use anyhow::Result;
use serde::Serialize;
use std::future::Future;
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
    /// A trial that does not keep up is run again at the same rate up to this many times; the
    /// rate counts as not kept up only when every try fails. One transient P99 spike (a
    /// compaction, a noisy neighbour on a shared host) otherwise ends a search early: two
    /// searches of one build on one host found 6,183 and 11,381 tx/s that way. Every try is
    /// listed.
    pub confirm: u32,
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
        // A rate that failed once but kept up on a retry is not a saturation.
        let none_failed = self
            .steps
            .iter()
            .all(|s| s.kept_up || self.steps.iter().any(|o| o.rate == s.rate && o.kept_up));
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
    let plan = Plan {
        start_rate: cfg.start_rate,
        factor: cfg.factor,
        max_rate: cfg.max_rate,
        min_rate: cfg.min_rate,
        bisect: cfg.bisect,
        confirm: cfg.confirm,
    };
    let (steps, saturation) =
        search(&plan, |rate, what, settle| trial(cfg, rate, what, settle)).await?;
    Ok(SaturateReport {
        steps,
        saturation,
        verify_us,
    })
}

/// The rates a search tries, from [`SaturateConfig`]'s fields of the same names.
struct Plan {
    start_rate: u64,
    factor: f64,
    max_rate: u64,
    min_rate: u64,
    bisect: u32,
    confirm: u32,
}

/// The search itself, over any trial (`trial(rate, what, settle)`): every trial run, and the
/// index of the one that sets the saturation point.
async fn search<F, Fut>(cfg: &Plan, mut trial: F) -> Result<(Vec<Step>, Option<usize>)>
where
    F: FnMut(u64, &'static str, bool) -> Fut,
    Fut: Future<Output = Result<Step>>,
{
    let mut steps: Vec<Step> = Vec::new();
    let mut saturation = None;
    // The highest rate kept up and the lowest not, as far as known.
    let (mut lo, mut hi) = (None, None);
    let mut rate = cfg.start_rate;
    loop {
        let settle = !steps.is_empty();
        if let Some(i) = judge(cfg, &mut trial, rate, "step", settle, &mut steps).await? {
            saturation = Some(i);
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
        return Ok((steps, saturation));
    };
    for _ in 0..cfg.bisect {
        if hi - lo <= (lo / 50).max(1) {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        if let Some(i) = judge(cfg, &mut trial, mid, "bisect", true, &mut steps).await? {
            lo = mid;
            saturation = Some(i);
        } else {
            hi = mid;
        }
    }
    Ok((steps, saturation))
}

/// Tries `rate`, and again (up to `cfg.confirm` times) while it does not keep up; every try
/// goes onto `steps`. The index of the try that kept up, if one did.
async fn judge<F, Fut>(
    cfg: &Plan,
    trial: &mut F,
    rate: u64,
    what: &'static str,
    settle: bool,
    steps: &mut Vec<Step>,
) -> Result<Option<usize>>
where
    F: FnMut(u64, &'static str, bool) -> Fut,
    Fut: Future<Output = Result<Step>>,
{
    for attempt in 0..=cfg.confirm {
        let what = if attempt == 0 { what } else { "retry" };
        let step = trial(rate, what, settle || attempt > 0).await?;
        let kept_up = step.kept_up;
        steps.push(step);
        if kept_up {
            return Ok(Some(steps.len() - 1));
        }
    }
    Ok(None)
}

/// One open-loop run at `rate`, judged against the keep-up rule.
async fn trial(cfg: &SaturateConfig, rate: u64, what: &'static str, settle: bool) -> Result<Step> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(confirm: u32) -> Plan {
        Plan {
            start_rate: 1_000,
            factor: 2.0,
            max_rate: 100_000,
            min_rate: 50,
            bisect: 0,
            confirm,
        }
    }

    fn step(rate: u64, kept_up: bool) -> Step {
        Step {
            rate,
            kept_up,
            report: LoadReport::default(),
        }
    }

    /// A report of these tries (rate, kept up), as `bench saturate` prints it.
    fn table(tries: &[(u64, bool)], saturation: usize) -> String {
        SaturateReport {
            steps: tries
                .iter()
                .map(|&(rate, kept_up)| step(rate, kept_up))
                .collect(),
            saturation: Some(saturation),
            verify_us: (50.0, 20.0),
        }
        .table()
    }

    /// Searches a chain whose capacity is 10,000 tx/s but whose first try at 4,000 tx/s hits
    /// a transient spike; the rates tried, and the capacity found.
    async fn flaky_search(confirm: u32) -> (Vec<(u64, bool)>, Option<u64>) {
        let mut tries_at_4000 = 0;
        let (steps, sat) = search(&plan(confirm), |rate, _what, _settle| {
            if rate == 4_000 {
                tries_at_4000 += 1;
            }
            let kept_up = rate <= 10_000 && !(rate == 4_000 && tries_at_4000 == 1);
            async move { Ok(step(rate, kept_up)) }
        })
        .await
        .unwrap();
        let found = sat.map(|i| steps[i].rate);
        (steps.iter().map(|s| (s.rate, s.kept_up)).collect(), found)
    }

    #[tokio::test]
    async fn one_spike_ends_a_search_without_a_retry() {
        let (tried, found) = flaky_search(0).await;
        assert_eq!(tried, [(1_000, true), (2_000, true), (4_000, false)]);
        assert_eq!(found, Some(2_000));
    }

    #[tokio::test]
    async fn a_retry_carries_the_search_past_one_spike() {
        let (tried, found) = flaky_search(1).await;
        assert_eq!(
            tried,
            [
                (1_000, true),
                (2_000, true),
                (4_000, false),
                (4_000, true),
                (8_000, true),
                (16_000, false),
                (16_000, false),
            ]
        );
        assert_eq!(found, Some(8_000));
        assert!(table(&tried, 4).contains("saturation point: 0 committed TPS"));
    }

    #[test]
    fn a_spike_retried_at_the_top_rate_is_not_a_saturation() {
        let tries = [(1_000, true), (2_000, false), (2_000, true)];
        assert!(table(&tries, 2).contains("saturation point: not reached"));
    }
}
