//! The run's results: counts, rates and latency percentiles; a table and JSON.

use serde::Serialize;
use std::collections::BTreeMap;

/// Everything a load run measured.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// Offered rate, tx/s.
    pub target_rate: u64,
    /// Measured window, seconds (warm-up excluded).
    pub duration_secs: f64,
    /// Txs sent in the window.
    pub sent: u64,
    /// Txs the nodes accepted (CheckTx ok).
    pub accepted: u64,
    /// Rejections by reason (the node's message, up to the first ':').
    pub rejected: BTreeMap<String, u64>,
    /// Txs sent more than 10 ms after their intended time (the generator fell behind).
    pub sent_late: u64,
    /// Txs sent in the window and seen committed (possibly after it, within the drain time).
    pub committed: u64,
    /// Every generated tx seen committed, warm-up included (for cross-checks with the chain).
    pub committed_including_warmup: u64,
    /// Blocks committed during the window (as seen on the first target).
    pub blocks: u64,
    /// Achieved send rate, tx/s.
    pub send_rate: f64,
    /// Commits that happened inside the window (any generated tx) per second: the throughput
    /// the chain sustained, which falls below the offered rate once it saturates.
    pub committed_tps: f64,
    /// Latency from intended send time to commit, milliseconds.
    pub latency_ms: Percentiles,
}

/// Latency percentiles, milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
    /// Minimum.
    pub min: f64,
    /// Mean.
    pub mean: f64,
}

impl LoadReport {
    /// A human summary table.
    pub fn table(&self) -> String {
        let l = &self.latency_ms;
        let mut s = String::new();
        s.push_str(&format!(
            "| offered | sent | accepted | rejected | late | committed | send/s | committed TPS | P50 ms | P90 ms | P99 ms | P99.9 ms | max ms |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
             | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            self.target_rate,
            self.sent,
            self.accepted,
            self.rejected.values().sum::<u64>(),
            self.sent_late,
            self.committed,
            self.send_rate,
            self.committed_tps,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max
        ));
        for (reason, n) in &self.rejected {
            s.push_str(&format!("rejected {n}: {reason}\n"));
        }
        s
    }
}
