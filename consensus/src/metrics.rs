//! Consensus and block-processing metrics (CometBFT names).

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::{Duration, Instant};

type EvidenceFamily = Family<Vec<(String, String)>, Counter>;
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
    /// Bytes of the committed txs: with `p2p_message_send_bytes`, how many times each tx
    /// byte crossed the wire (what compact-blocks halves).
    pub tx_bytes: Counter,
    /// Time to execute and durably commit a block.
    pub block_processing: Histogram,
    /// Distinct validators this node holds evidence against (two conflicting signed votes
    /// or proposals for one step).
    pub byzantine_validators: Gauge,
    /// Evidence seen, by kind (`duplicate-vote`, `double-proposal`) and validator public key.
    pub evidence: EvidenceFamily,
    /// Proposals whose signature verified but whose block broke a rule (prevoted nil).
    pub invalid_proposals: Counter,
    /// compact-blocks: txs of compact proposals found in this node's mempool.
    pub compact_found: Counter,
    /// compact-blocks: txs of compact proposals fetched from peers (not in the mempool).
    pub compact_fetched: Counter,
    /// compact-blocks: requests for missing txs sent (first asks and retries).
    pub compact_requests: Counter,
    /// compact-blocks: peers' requests for block txs ignored, over their budget.
    pub compact_requests_refused: Counter,
    last_commit: Arc<Mutex<Option<Instant>>>,
    accused: Arc<Mutex<std::collections::HashSet<String>>>,
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
            tx_bytes: Counter::default(),
            block_processing: seconds_histogram(),
            byzantine_validators: Gauge::default(),
            evidence: Family::default(),
            invalid_proposals: Counter::default(),
            compact_found: Counter::default(),
            compact_fetched: Counter::default(),
            compact_requests: Counter::default(),
            compact_requests_refused: Counter::default(),
            last_commit: Arc::new(Mutex::new(None)),
            accused: Arc::default(),
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
            "consensus_committed_tx_bytes",
            "Bytes of the committed txs",
            self.tx_bytes.clone(),
        );
        r.register(
            "consensus_byzantine_validators",
            "Distinct validators this node holds equivocation evidence against",
            self.byzantine_validators.clone(),
        );
        r.register(
            "consensus_evidence",
            "Equivocation evidence seen, by kind and validator",
            self.evidence.clone(),
        );
        r.register(
            "consensus_invalid_proposals",
            "Signed proposals of blocks that break a rule",
            self.invalid_proposals.clone(),
        );
        r.register(
            "consensus_compact_txs_found",
            "Txs of compact proposals found in the mempool (compact-blocks)",
            self.compact_found.clone(),
        );
        r.register(
            "consensus_compact_txs_fetched",
            "Txs of compact proposals fetched from peers (compact-blocks)",
            self.compact_fetched.clone(),
        );
        r.register(
            "consensus_compact_requests",
            "Requests for a compact proposal's missing txs (compact-blocks)",
            self.compact_requests.clone(),
        );
        r.register(
            "consensus_compact_requests_refused",
            "Peers' requests for block txs ignored: over the peer's budget for that block",
            self.compact_requests_refused.clone(),
        );
        r.register(
            "state_block_processing_time",
            "Seconds to execute and commit a block",
            self.block_processing.clone(),
        );
    }

    /// Records a commit.
    pub fn on_commit(&self, height: u64, txs: usize, tx_bytes: usize, processing: Duration) {
        self.height.set(height as i64);
        self.total_txs.inc_by(txs as i64);
        self.tx_bytes.inc_by(tx_bytes as u64);
        self.block_processing.observe(processing.as_secs_f64());
        let now = Instant::now();
        if let Some(prev) = self.last_commit.lock().replace(now) {
            self.block_interval.observe((now - prev).as_secs_f64());
        }
    }

    /// Records evidence of `kind` against the validator with public key `pubkey_hex`.
    pub fn on_evidence(&self, kind: &str, pubkey_hex: String) {
        self.evidence
            .get_or_create(&vec![
                ("kind".to_string(), kind.to_string()),
                ("validator".to_string(), pubkey_hex.clone()),
            ])
            .inc();
        let mut accused = self.accused.lock();
        accused.insert(pubkey_hex);
        self.byzantine_validators.set(accused.len() as i64);
    }

    /// Records the time spent in `step`.
    pub fn on_step(&self, step: &str, secs: f64) {
        self.step_duration
            .get_or_create(&vec![("step".to_string(), step.to_string())])
            .observe(secs);
    }
}
