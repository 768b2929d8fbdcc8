//! Repeats of a step's fixed-rate run: each run's figures, their median and min-max, and the
//! "within noise" verdict between a step and the one it is compared with.
//!
//! A step is within noise when its median TPS differs from its reference's by less than the
//! wider of the two min-max ranges: with three repeats, a toggle whose effect is smaller than
//! what the same configuration varies by from run to run has not been shown to do anything.

use crate::report::LoadReport;
use serde::{Deserialize, Serialize};

/// One fixed-rate run of a step.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunFigures {
    /// Which repeat (0-based).
    pub repeat: u32,
    /// Its place in the order the experiment ran its units (0-based): repeats are
    /// interleaved, every step once before any step twice.
    pub order: u32,
    /// Committed TPS.
    pub tps: f64,
    /// Latency P50, ms (censored txs at the time they had waited).
    pub p50_ms: f64,
    /// Latency P99, ms.
    pub p99_ms: f64,
    /// Share of the accepted txs not committed by the end of the drain.
    pub censored_share: f64,
    /// CPU of all validators together, % of one core.
    pub cpu_pct: f64,
    /// The load generator's CPU, % of one core.
    pub generator_cpu_pct: Option<f64>,
    /// Share of the sends more than 10 ms late.
    pub late_share: f64,
    /// Heap allocations of all validators in the window per tx committed in it...
    pub allocs_per_tx: Option<f64>,
    /// ...and per tx offered in it.
    pub allocs_per_offered_tx: Option<f64>,
    /// Mempool + state cache lock wait of all validators per tx committed in the window, us...
    pub lock_wait_us_per_tx: Option<f64>,
    /// ...and per tx offered in it.
    pub lock_wait_us_per_offered_tx: Option<f64>,
    /// Bytes all validators sent to their peers in the window per tx committed in it (what
    /// compact-blocks and gossip-batch move).
    #[serde(default)]
    pub p2p_bytes_per_tx: Option<f64>,
}

impl RunFigures {
    /// The figures of one run's report.
    pub fn of(report: &LoadReport, repeat: u32, order: u32) -> RunFigures {
        let committed = report.committed_tps * report.duration_secs;
        let offered = report
            .target_rate
            .map_or(report.sent as f64, |r| r as f64 * report.duration_secs);
        let per = |total: Option<f64>, n: f64| total.filter(|_| n >= 1.0).map(|t| t / n);
        let allocs = report
            .resources
            .iter()
            .map(|r| r.allocations)
            .sum::<Option<u64>>()
            .filter(|a| *a > 0)
            .map(|a| a as f64);
        let lock_us = report
            .resources
            .iter()
            .map(|r| r.lock_wait_ms)
            .sum::<Option<f64>>()
            .map(|ms| 1000.0 * ms);
        let sent = report
            .resources
            .iter()
            .map(|r| r.p2p_sent_bytes)
            .sum::<Option<u64>>()
            .filter(|b| *b > 0)
            .map(|b| b as f64);
        RunFigures {
            repeat,
            order,
            tps: report.committed_tps,
            p50_ms: report.latency_ms.p50,
            p99_ms: report.latency_ms.p99,
            censored_share: report.censored_share(),
            cpu_pct: report.resources.iter().filter_map(|r| r.cpu_pct).sum(),
            generator_cpu_pct: report.generator_cpu_pct,
            late_share: report.sent_late as f64 / report.sent.max(1) as f64,
            allocs_per_tx: per(allocs, committed),
            allocs_per_offered_tx: per(allocs, offered),
            lock_wait_us_per_tx: per(lock_us, committed),
            lock_wait_us_per_offered_tx: per(lock_us, offered),
            p2p_bytes_per_tx: per(sent, committed),
        }
    }
}

/// Median and range of one figure over a step's repeats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// The spread of `values` (None when empty).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// `max - min`.
    pub fn range(&self) -> f64 {
        self.max - self.min
    }

    /// `median (min-max)` with `digits` decimals, or just the median for one run.
    pub fn show(&self, digits: usize) -> String {
        if self.n < 2 {
            format!("{:.digits$}", self.median)
        } else {
            format!(
                "{:.digits$} ({:.digits$}-{:.digits$})",
                self.median, self.min, self.max
            )
        }
    }
}

/// How a step's TPS compares with its reference's over the repeats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Noise {
    /// One run of either: the spread is unknown.
    Unknown,
    /// The medians differ by less than the wider range.
    Within,
    /// The medians differ by more: this ratio (step / reference).
    Beyond(f64),
}

impl Noise {
    /// The verdict for `step` against `reference`.
    pub fn of(step: &Spread, reference: &Spread) -> Noise {
        if step.n < 2 || reference.n < 2 {
            return Noise::Unknown;
        }
        let wider = step.range().max(reference.range());
        if (step.median - reference.median).abs() < wider {
            Noise::Within
        } else {
            Noise::Beyond(step.median / reference.median.max(1e-9))
        }
    }

    /// For a table cell.
    pub fn show(&self) -> String {
        match self {
            Noise::Unknown => "1 run".into(),
            Noise::Within => "within noise".into(),
            Noise::Beyond(x) => format!("{x:.2}x"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_ranges_and_the_noise_verdict() {
        let a = Spread::of([10.0, 30.0, 20.0]).unwrap();
        assert_eq!((a.median, a.min, a.max, a.n), (20.0, 10.0, 30.0, 3));
        assert_eq!(a.show(0), "20 (10-30)");
        assert_eq!(Spread::of([1.0, 2.0, 3.0, 10.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of([]), None);
        // 20 +- 10 against 25 +- 2: the 5 apart is inside the wider range (20).
        let b = Spread::of([23.0, 25.0, 27.0]).unwrap();
        assert_eq!(Noise::of(&b, &a), Noise::Within);
        let c = Spread::of([58.0, 60.0, 62.0]).unwrap();
        assert_eq!(Noise::of(&c, &a), Noise::Beyond(3.0));
        let single = Spread::of([60.0]).unwrap();
        assert_eq!(single.show(0), "60");
        assert_eq!(Noise::of(&single, &a), Noise::Unknown);
    }
}
