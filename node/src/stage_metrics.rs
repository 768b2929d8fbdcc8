//! The stage-latency histograms on `/metrics`: quantiles and counts since start, computed from
//! the HDR histograms at scrape time (Prometheus summary style; the lossless content is on
//! `/debug/stages`).

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tpslab_types::stages::{Stage, StageLatencies};

type Labels = Vec<(String, String)>;

/// Gauges refreshed from a node's [`StageLatencies`] on every scrape.
#[derive(Clone, Default)]
pub struct StageGauges {
    quantiles: Family<Labels, Gauge<f64, AtomicU64>>,
    counts: Family<Labels, Gauge<u64, AtomicU64>>,
    means: Family<Labels, Gauge<f64, AtomicU64>>,
}

impl StageGauges {
    /// Adds the gauges to `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "tpslab_stage_latency_seconds",
            "Per-tx time in each pipeline stage since start, by quantile (HDR histogram)",
            self.quantiles.clone(),
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
    }

    /// Copies the current figures of `stages` into the gauges.
    pub fn update(&self, stages: &StageLatencies) {
        for stage in Stage::ALL {
            let s = stages.summary(stage);
            let name = ("stage".to_string(), stage.name().to_string());
            for (q, ms) in [("0.5", s.p50_ms), ("0.95", s.p95_ms), ("0.99", s.p99_ms)] {
                self.quantiles
                    .get_or_create(&vec![name.clone(), ("quantile".to_string(), q.to_string())])
                    .set(ms / 1000.0);
            }
            self.counts.get_or_create(&vec![name.clone()]).set(s.count);
            self.means
                .get_or_create(&vec![name])
                .set(s.mean_ms / 1000.0);
        }
    }
}
