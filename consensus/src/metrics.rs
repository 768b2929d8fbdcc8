//! Consensus and block-processing metrics (CometBFT names).

use parking_lot::Mutex;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Instant;

type StepFamily = Family<Vec<(String, String)>, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 1 ms .. ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Metrics of block production and BFT rounds.
#[derive(Clone, Debug)]
pub struct ConsensusMetrics {
    /// Height of the last committed block.
    pub height: Gauge,
    /// Round in which the last block was decided (0 = first try).
    pub rounds: Gauge,
    /// Round the validator is in now.
    pub round: Gauge,
    /// Time between consecutive commits.
    pub block_interval: Histogram,
    /// Time spent in each step (propose, prevote, precommit).
    pub step_duration: StepFamily,
    /// Txs committed (including ones that failed execution). A gauge, as in CometBFT, so the
    /// exported name is exactly `consensus_total_txs`.
    pub total_txs: Gauge,
    /// Time to execute and durably commit a block.
    pub block_processing: Histogram,
    last_commit: Arc<Mutex<Option<Instant>>>,
}

impl Default for ConsensusMetrics {
    fn default() -> Self {
        ConsensusMetrics {
            height: Gauge::default(),
            rounds: Gauge::default(),
            round: Gauge::default(),
            block_interval: seconds_histogram(),
            step_duration: Family::new_with_constructor(seconds_histogram),
            total_txs: Gauge::default(),
            block_processing: seconds_histogram(),
            last_commit: Arc::new(Mutex::new(None)),
        }
    }
}

impl ConsensusMetrics {
    /// Adds the metrics to `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "consensus_height",
            "Height of the last committed block",
            self.height.clone(),
        );
        r.register("consensus_round", "Current round", self.round.clone());
        r.register(
            "consensus_rounds",
            "Round of the last decision",
            self.rounds.clone(),
        );
        r.register(
            "consensus_block_interval_seconds",
            "Time between commits",
            self.block_interval.clone(),
        );
        r.register(
            "consensus_step_duration_seconds",
            "Time spent in each consensus step",
            self.step_duration.clone(),
        );
        r.register(
            "consensus_total_txs",
            "Committed txs",
            self.total_txs.clone(),
        );
        r.register(
            "state_block_processing_time",
            "Seconds to execute and commit a block",
            self.block_processing.clone(),
        );
    }

    /// Records a commit.
    pub fn on_commit(&self, height: u64, txs: usize, processing_secs: f64) {
        self.height.set(height as i64);
        self.total_txs.inc_by(txs as i64);
        self.block_processing.observe(processing_secs);
        let now = Instant::now();
        if let Some(prev) = self.last_commit.lock().replace(now) {
            self.block_interval.observe((now - prev).as_secs_f64());
        }
    }

    /// Records the time spent in `step`.
    pub fn on_step(&self, step: &str, secs: f64) {
        self.step_duration
            .get_or_create(&vec![("step".to_string(), step.to_string())])
            .observe(secs);
    }
}
