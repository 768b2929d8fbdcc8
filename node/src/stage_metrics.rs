//! The stage latencies on `/metrics`: one Prometheus histogram per stage
//! (`tpslab_stage_latency_seconds_bucket{stage,le}`, `_sum`, `_count`), filled at scrape time
//! from the node's HDR histograms, so `histogram_quantile(0.99, rate(...[1m]))` gives a
//! windowed P99 (the lossless content is on `/debug/stages`); and a mean per stage since
//! start.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tpslab_types::stages::StageLatencies;

type Labels = Vec<(String, String)>;

/// Bucket bounds, seconds: a stage spans 50 us (CheckTx) to tens of seconds (an overloaded
/// mempool wait).
const BOUNDS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// One stage's histogram as last copied from the HDR histogram.
#[derive(Debug, Default)]
struct Snapshot {
    /// Seconds, all txs together.
    sum: f64,
    count: u64,
    /// (upper bound, count in the bucket): not cumulative, the encoder accumulates.
    buckets: Vec<(f64, u64)>,
}

#[derive(Clone, Debug, Default)]
struct Buckets(Arc<Mutex<Snapshot>>);

impl TypedMetric for Buckets {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Buckets {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        encoder.encode_histogram::<NoLabelSet>(g.sum, g.count, &g.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Metrics refreshed from a node's [`StageLatencies`] on every scrape.
#[derive(Clone, Default)]
pub struct StageGauges {
    histograms: Family<Labels, Buckets>,
    counts: Family<Labels, Gauge<u64, AtomicU64>>,
    means: Family<Labels, Gauge<f64, AtomicU64>>,
}

impl StageGauges {
    /// Adds the metrics to `r`, every stage present from the first scrape (an alert on a
    /// stage must not see it missing before its first tx).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "tpslab_stage_latency_seconds",
            "Per-tx time in each pipeline stage since start (from the node's HDR histogram)",
            self.histograms.clone(),
        );
        r.register(
            "tpslab_stage_txs",
            "Txs recorded per pipeline stage since start",
            self.counts.clone(),
        );
        r.register(
            "tpslab_stage_latency_mean_seconds",
            "Mean per-tx time in each pipeline stage since start",
            self.means.clone(),
        );
        self.update(&StageLatencies::default());
    }

    /// Copies the current figures of `stages` into the metrics.
    pub fn update(&self, stages: &StageLatencies) {
        stages.for_each(|stage, h| {
            let name = vec![("stage".to_string(), stage.name().to_string())];
            let total = h.len();
            let mut buckets = Vec::with_capacity(BOUNDS.len() + 1);
            let mut below = 0;
            for b in BOUNDS {
                // Recorded in microseconds.
                let upto = h.count_between(0, (b * 1e6) as u64).min(total);
                buckets.push((b, upto.saturating_sub(below)));
                below = upto.max(below);
            }
            buckets.push((f64::MAX, total.saturating_sub(below)));
            let mean_s = if total == 0 { 0.0 } else { h.mean() / 1e6 };
            *self
                .histograms
                .get_or_create(&name)
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Snapshot {
                sum: mean_s * total as f64,
                count: total,
                buckets,
            };
            self.counts.get_or_create(&name).set(total);
            self.means.get_or_create(&name).set(mean_s);
        });
    }
}
