//! The run's results: counts, rates, latency percentiles and resource use; a table and JSON.

use crate::monitor::NodeResources;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tpslab_types::stages::StageSummary;

/// Everything a load run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadReport {
    /// `transfer` or `kvstore`.
    pub workload: String,
    /// `open` (constant rate) or `closed` (fixed concurrency).
    pub mode: String,
    /// Offered rate, tx/s (open loop).
    pub target_rate: Option<u64>,
    /// Txs in flight (closed loop).
    pub concurrency: Option<usize>,
    /// Approximate size of each tx, bytes.
    pub tx_size: usize,
    /// `--hot-accounts`: every tx paid one of this many accounts (None: senders shared no state).
    #[serde(default)]
    pub hot_accounts: Option<u64>,
    /// Number of nodes the load was spread over.
    pub targets: usize,
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
    /// The closed loop used every pre-made tx before the window ended.
    pub ran_out_of_txs: bool,
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
    /// Latency to commit, milliseconds: from the intended send time (open loop) or the actual
    /// send (closed loop), over every accepted tx of the window: the `uncommitted` ones count
    /// at the time they had waited when the drain ended (lower bounds; see
    /// [`LoadReport::censored_share`]).
    pub latency_ms: Percentiles,
    /// The latency distribution as `[quantile, ms]` points (for CDF charts).
    pub latency_cdf: Vec<[f64; 2]>,
    /// Each watched node's CPU, memory and consensus figures over the window.
    pub resources: Vec<NodeResources>,
    /// Where txs waited during the window: each pipeline stage's latency, all watched nodes
    /// merged (empty when no node's `/debug/stages` was reachable).
    #[serde(default)]
    pub stages: Vec<StageSummary>,
    /// Txs seen committed in each second of the window.
    #[serde(default)]
    pub per_second_tps: Vec<u64>,
    /// Txs sent in the window, neither rejected nor seen committed by the end of the drain.
    #[serde(default)]
    pub uncommitted: u64,
    /// What each `--perturb` fault did to committed TPS.
    #[serde(default)]
    pub faults: Vec<crate::perturb::FaultOutcome>,
    /// The load generator's own CPU over the window, % of one core (it shares the machine
    /// with the nodes it measures).
    #[serde(default)]
    pub generator_cpu_pct: Option<f64>,
    /// Where the generator and the validators ran (`--cpus`), when pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
}

/// Latency percentiles, milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
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

/// `[quantile, ms]` points of a histogram of microseconds, dense in the tail.
pub fn cdf(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut qs: Vec<f64> = (0..=98).map(|i| i as f64 / 100.0).collect();
    qs.extend([0.99, 0.995, 0.999, 0.9999, 1.0]);
    qs.into_iter()
        .map(|q| [q, h.value_at_quantile(q) as f64 / 1000.0])
        .collect()
}

impl Percentiles {
    /// Percentiles of a histogram of microseconds (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// `start -> end (peak)`, with a warning when the count only grew.
pub fn task_cell(t: &crate::monitor::TaskCounts) -> String {
    format!(
        "{} -> {} ({}){}",
        t.start,
        t.end,
        t.peak,
        if t.leak_suspected {
            " LEAK? only grew"
        } else {
            ""
        }
    )
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

impl LoadReport {
    /// The share of the latency samples that are lower bounds: txs accepted in the window
    /// and not committed by the end of the drain. Percentiles above `1 - share` are lower
    /// bounds.
    pub fn censored_share(&self) -> f64 {
        if self.accepted == 0 {
            return 0.0;
        }
        self.uncommitted as f64 / self.accepted as f64
    }

    /// A human summary: the Caliper-like table, rejections by reason, then resource use.
    pub fn table(&self) -> String {
        let l = &self.latency_ms;
        let offered = match (self.target_rate, self.concurrency) {
            (Some(r), _) => format!("{r}/s"),
            (None, Some(c)) => format!("{c} in flight"),
            _ => "-".into(),
        };
        let contention = self
            .hot_accounts
            .map(|h| format!(", {h} hot account(s)"))
            .unwrap_or_default();
        let mut s = format!(
            "{} workload, {} loop, ~{} B txs{contention}, {} target(s), {:.0} s window\n\n",
            self.workload, self.mode, self.tx_size, self.targets, self.duration_secs
        );
        s.push_str(&format!(
            "| offered | sent | accepted | rejected | late | committed | send/s | committed TPS | P50 ms | P90 ms | P99 ms | P99.9 ms | max ms |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
             | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            offered,
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
        if let Some(cpu) = self.generator_cpu_pct {
            let cores = std::thread::available_parallelism().map_or(1, |p| p.get());
            s.push_str(&format!(
                "generator: {cpu:.0}% CPU (of one core; this machine has {cores})\n"
            ));
        }
        if let Some(p) = &self.placement {
            s.push_str(&format!("placement: {p}\n"));
        }
        if self.uncommitted > 0 {
            s.push_str(&format!(
                "uncommitted {} ({:.1}% of accepted): sent in the window, neither rejected nor committed by the end of the drain; in the latencies at the time they had waited (censored: percentiles above {:.1}% are lower bounds)\n",
                self.uncommitted,
                100.0 * self.censored_share(),
                100.0 * (1.0 - self.censored_share())
            ));
        }
        if !self.faults.is_empty() {
            s.push_str(&fault_table(&self.faults, &self.per_second_tps));
        }
        if self.ran_out_of_txs {
            s.push_str("note: the closed loop used every pre-made tx before the window ended (raise --max-txs)\n");
        }
        if self.stages.iter().any(|st| st.count > 0) {
            s.push('\n');
            s.push_str(&stage_table(&self.stages));
        }
        if !self.resources.is_empty() {
            s.push_str(
                "\n| node | CPU % | RSS MiB (peak) | blocks | max round | mempool (peak) | tasks (start -> end, peak) |\n|---|---|---|---|---|---|---|\n",
            );
            for r in &self.resources {
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} |\n",
                    r.name,
                    r.cpu_pct.map_or("-".into(), |v| format!("{v:.0}")),
                    r.rss_peak_mib.map_or("-".into(), |v| format!("{v:.0}")),
                    opt(r.blocks),
                    opt(r.max_round),
                    opt(r.mempool_peak),
                    r.tasks.as_ref().map_or("-".into(), task_cell),
                ));
            }
        }
        s
    }
}

/// The seed-style stage table: where a tx waits, P50/P95/P99 per pipeline stage.
pub fn stage_table(stages: &[StageSummary]) -> String {
    let mut s = String::from(
        "| stage | from -> to | txs | P50 ms | P95 ms | P99 ms | mean ms |\n|---|---|---|---|---|---|---|\n",
    );
    for st in stages {
        s.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            st.stage, st.what, st.count, st.p50_ms, st.p95_ms, st.p99_ms, st.mean_ms
        ));
    }
    s
}

/// The faults of a `--perturb` run and the per-second TPS they are read from.
fn fault_table(faults: &[crate::perturb::FaultOutcome], per_second: &[u64]) -> String {
    let mut s = String::from(
        "\n| fault | pre-fault TPS (3 s) | dip TPS | recovered after |\n|---|---|---|---|\n",
    );
    for f in faults {
        let cell = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let recovered = match (&f.error, f.recovered_after_secs, f.pre_tps) {
            (Some(e), _, _) => format!("not applied: {e}"),
            (None, Some(r), _) => format!("{r} s"),
            (None, None, Some(_)) => "not within the window".into(),
            (None, None, None) => "- (too early to judge)".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            f.fault,
            cell(f.pre_tps.map(|t| format!("{t:.0}"))),
            cell(f.dip_tps.map(|t| t.to_string())),
            recovered
        ));
    }
    let secs: Vec<String> = per_second.iter().map(u64::to_string).collect();
    s.push_str(&format!("committed per second: {}\n", secs.join(" ")));
    s
}
