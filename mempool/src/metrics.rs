//! Mempool metrics (CometBFT names).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Counters and gauges the mempool keeps up to date.
#[derive(Clone, Debug, Default)]
pub struct MempoolMetrics {
    /// Pending txs.
    pub size: Gauge,
    /// The limit on pending txs (config `mempool.max_txs`), for fill-ratio alerts.
    pub capacity_txs: Gauge,
    /// The limit on pending bytes (config `mempool.max_bytes`).
    pub capacity_bytes: Gauge,
    /// Txs rejected by CheckTx (any reason).
    pub failed_txs: Counter,
    /// Txs rejected because they were already pending or recently committed.
    pub already_received_txs: Counter,
    /// Time spent waiting to acquire the mempool lock, seconds.
    pub lock_wait: Counter<f64, AtomicU64>,
    /// Gossip of an accepted tx to one peer dropped (its send queue was full), counted per
    /// tx and peer.
    pub gossip_dropped: Counter,
    /// Gossiped txs refused for want of room and kept aside for compact proposals.
    pub side_pool: Gauge,
}

impl MempoolMetrics {
    /// Adds the metrics to `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register("mempool_size", "Number of pending txs", self.size.clone());
        r.register(
            "mempool_capacity_txs",
            "Most pending txs the mempool holds (mempool.max_txs)",
            self.capacity_txs.clone(),
        );
        r.register(
            "mempool_capacity_bytes",
            "Most pending bytes the mempool holds (mempool.max_bytes)",
            self.capacity_bytes.clone(),
        );
        r.register(
            "mempool_failed_txs",
            "Txs rejected by CheckTx",
            self.failed_txs.clone(),
        );
        r.register(
            "mempool_already_received_txs",
            "Txs rejected as duplicates",
            self.already_received_txs.clone(),
        );
        r.register(
            "mempool_gossip_dropped",
            "Tx gossip to a peer dropped on a full send queue (per tx and peer)",
            self.gossip_dropped.clone(),
        );
        r.register(
            "mempool_side_pool_txs",
            "Gossiped txs the full pool refused, kept aside to rebuild compact proposals",
            self.side_pool.clone(),
        );
        r.register(
            "mempool_lock_wait_seconds",
            "Time spent waiting for the mempool lock",
            self.lock_wait.clone(),
        );
    }
}
