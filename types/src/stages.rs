//! Where a tx waits: HDR histograms of the time between the pipeline's hand-offs, kept by
//! every node (API receive -> CheckTx done -> admitted at a peer -> in a proposal ->
//! committed -> client notified).
//!
//! Each stage is timed where both of its ends are known. Stages that cross processes
//! (`gossip`, `consensus`, `notify`) subtract wall-clock times taken by different processes:
//! exact on one machine, off by the clock skew between machines otherwise.
//!
//! A [`StageSnapshot`] is the lossless content of every histogram (value, count pairs), so a
//! harness can take one at the start and one at the end of a window and subtract them.

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One hand-off of a tx's journey.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// gRPC request received -> CheckTx done, at the node the client sent it to.
    CheckTx,
    /// CheckTx done at the receiving node -> admitted into a peer's mempool (gossip batching,
    /// the network and the peer's own CheckTx).
    Gossip,
    /// Admitted into a mempool -> reaped into a block proposal, at the proposer.
    Mempool,
    /// Block proposed (its header time) -> committed, at every validator.
    Consensus,
    /// Committed -> the commit event handed to a subscribed client.
    Notify,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 5] = [
        Stage::CheckTx,
        Stage::Gossip,
        Stage::Mempool,
        Stage::Consensus,
        Stage::Notify,
    ];

    /// Short name, used in metrics labels and reports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::CheckTx => "check_tx",
            Stage::Gossip => "gossip",
            Stage::Mempool => "mempool",
            Stage::Consensus => "consensus",
            Stage::Notify => "notify",
        }
    }

    /// The stage's two ends, for report tables.
    pub fn describe(self) -> &'static str {
        match self {
            Stage::CheckTx => "API receive -> CheckTx done",
            Stage::Gossip => "CheckTx done -> admitted at a peer",
            Stage::Mempool => "admitted -> in a proposal",
            Stage::Consensus => "proposed -> committed",
            Stage::Notify => "committed -> client notified",
        }
    }

    /// The stage called `name`.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Largest recorded value, microseconds (one hour); longer waits are clamped to it.
const MAX_US: u64 = 3_600_000_000;
/// Two significant digits: 1 % resolution, ~45 KiB per histogram.
const SIGFIG: u8 = 2;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, SIGFIG).expect("constant bounds are valid")
}

/// Unix time now, nanoseconds (0 before 1970).
pub fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Time from `since_unix_nanos` until now; `None` when unknown (0) or in the future (a clock
/// stepped back, or skew between machines).
pub fn since_unix_nanos(since_unix_nanos: u64) -> Option<Duration> {
    if since_unix_nanos == 0 {
        return None;
    }
    now_unix_nanos()
        .checked_sub(since_unix_nanos)
        .map(Duration::from_nanos)
}

/// The per-stage histograms of one node. Share it behind an `Arc`.
pub struct StageLatencies {
    hists: [Mutex<Histogram<u64>>; 5],
}

impl Default for StageLatencies {
    fn default() -> Self {
        StageLatencies {
            hists: std::array::from_fn(|_| Mutex::new(new_histogram())),
        }
    }
}

impl std::fmt::Debug for StageLatencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageLatencies").finish_non_exhaustive()
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

impl StageLatencies {
    /// Records one tx that spent `d` in `stage`.
    pub fn record(&self, stage: Stage, d: Duration) {
        self.record_n(stage, d, 1);
    }

    /// Records `n` txs that each spent `d` in `stage` (a block's txs share its commit).
    pub fn record_n(&self, stage: Stage, d: Duration, n: u64) {
        if n == 0 {
            return;
        }
        let _ = self.hists[stage.index()].lock().record_n(micros(d), n);
    }

    /// Records many txs' times in `stage` under one lock.
    pub fn record_all(&self, stage: Stage, ds: impl IntoIterator<Item = Duration>) {
        let mut h = self.hists[stage.index()].lock();
        for d in ds {
            let _ = h.record(micros(d));
        }
    }

    /// Count and P50/P95/P99 of `stage` since the node started.
    pub fn summary(&self, stage: Stage) -> StageSummary {
        StageSummary::of(stage, &self.hists[stage.index()].lock())
    }

    /// Calls `f` with each stage's histogram since the node started (under its lock).
    pub fn for_each(&self, mut f: impl FnMut(Stage, &Histogram<u64>)) {
        for &s in Stage::ALL.iter() {
            f(s, &self.hists[s.index()].lock());
        }
    }

    /// Every histogram's content.
    pub fn snapshot(&self) -> StageSnapshot {
        StageSnapshot {
            stages: Stage::ALL
                .iter()
                .map(|s| {
                    let h = self.hists[s.index()].lock();
                    StageCounts {
                        stage: s.name().to_string(),
                        counts: h
                            .iter_recorded()
                            .map(|v| (v.value_iterated_to(), v.count_at_value()))
                            .collect(),
                    }
                })
                .collect(),
        }
    }
}

/// One stage's recorded values: (microseconds, count) pairs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageCounts {
    /// [`Stage::name`].
    pub stage: String,
    /// Each recorded bucket's highest equivalent value in microseconds, and its count.
    pub counts: Vec<(u64, u64)>,
}

/// The content of a node's stage histograms, as served on `/debug/stages`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageSnapshot {
    /// One entry per stage.
    pub stages: Vec<StageCounts>,
}

impl StageSnapshot {
    /// The histograms, by stage; unknown stage names are skipped.
    pub fn histograms(&self) -> Vec<(Stage, Histogram<u64>)> {
        self.stages
            .iter()
            .filter_map(|c| {
                let stage = Stage::from_name(&c.stage)?;
                let mut h = new_histogram();
                for &(v, n) in &c.counts {
                    let _ = h.record_n(v.clamp(1, MAX_US), n);
                }
                Some((stage, h))
            })
            .collect()
    }

    /// What was recorded between `earlier` and `self` (both from the same node), per stage.
    pub fn since(&self, earlier: &StageSnapshot) -> Vec<(Stage, Histogram<u64>)> {
        let before = earlier.histograms();
        self.histograms()
            .into_iter()
            .map(|(stage, mut h)| {
                if let Some((_, b)) = before.iter().find(|(s, _)| *s == stage) {
                    // Fails only if `earlier` is not an earlier snapshot of the same node.
                    if h.subtract(b).is_err() {
                        h.reset();
                    }
                }
                (stage, h)
            })
            .collect()
    }
}

/// Count and quantiles of one stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    /// [`Stage::name`].
    pub stage: String,
    /// [`Stage::describe`].
    pub what: String,
    /// Txs (or tx deliveries) recorded.
    pub count: u64,
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile, milliseconds.
    pub p95_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Mean, milliseconds.
    pub mean_ms: f64,
}

impl StageSummary {
    /// The summary of `h`, recorded in microseconds.
    pub fn of(stage: Stage, h: &Histogram<u64>) -> StageSummary {
        let q = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        StageSummary {
            stage: stage.name().to_string(),
            what: stage.describe().to_string(),
            count: h.len(),
            p50_ms: q(0.50),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            mean_ms: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
        }
    }
}

/// Merges the per-node window histograms of several nodes into one summary per stage.
pub fn summarize(per_node: &[Vec<(Stage, Histogram<u64>)>]) -> Vec<StageSummary> {
    Stage::ALL
        .iter()
        .map(|&stage| {
            let mut all = new_histogram();
            for node in per_node {
                for (s, h) in node {
                    if *s == stage {
                        let _ = all.add(h);
                    }
                }
            }
            StageSummary::of(stage, &all)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_the_difference_of_two_snapshots() {
        let s = StageLatencies::default();
        s.record_n(Stage::Consensus, Duration::from_millis(900), 100);
        let before = s.snapshot();
        for i in 1..=100u64 {
            s.record(Stage::Consensus, Duration::from_millis(i));
        }
        s.record_all(Stage::Gossip, [Duration::from_micros(250); 3]);
        let after = s.snapshot();
        let window = after.since(&before);
        let sum = summarize(&[window]);
        let c = sum.iter().find(|x| x.stage == "consensus").unwrap();
        assert_eq!(c.count, 100);
        assert!((c.p50_ms - 50.0).abs() <= 1.0, "{c:?}");
        assert!((c.p99_ms - 99.0).abs() <= 1.0, "{c:?}");
        let g = sum.iter().find(|x| x.stage == "gossip").unwrap();
        assert_eq!(g.count, 3);
        assert!((g.p50_ms - 0.25).abs() < 0.01, "{g:?}");
        // Since start: the 900 ms block shows.
        assert_eq!(s.summary(Stage::Consensus).count, 200);
        assert!(s.summary(Stage::Consensus).p99_ms >= 890.0);
    }

    #[test]
    fn snapshots_round_trip_through_json_and_merge_across_nodes() {
        let a = StageLatencies::default();
        let b = StageLatencies::default();
        a.record(Stage::Notify, Duration::from_millis(2));
        b.record(Stage::Notify, Duration::from_millis(4));
        let parse = |s: &StageLatencies| -> StageSnapshot {
            serde_json::from_str(&serde_json::to_string(&s.snapshot()).unwrap()).unwrap()
        };
        let empty = StageSnapshot::default();
        let sum = summarize(&[parse(&a).since(&empty), parse(&b).since(&empty)]);
        let n = sum.iter().find(|x| x.stage == "notify").unwrap();
        assert_eq!(n.count, 2);
        assert!(n.p99_ms >= 3.9 && n.p50_ms <= 2.1, "{n:?}");
        assert!(sum.iter().all(|x| x.stage == "notify" || x.count == 0));
    }

    #[test]
    fn unknown_or_future_times_are_not_recorded() {
        assert_eq!(since_unix_nanos(0), None);
        assert_eq!(since_unix_nanos(now_unix_nanos() + 10_000_000_000), None);
        assert!(since_unix_nanos(now_unix_nanos() - 1_000_000).is_some());
        assert_eq!(Stage::from_name("gossip"), Some(Stage::Gossip));
        assert_eq!(Stage::from_name("nope"), None);
    }
}
