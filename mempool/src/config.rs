//! Mempool limits.

use tpslab_types::AppKind;

/// Limits and identity of a mempool.
#[derive(Clone, Debug)]
pub struct MempoolConfig {
    /// The app whose txs are admitted.
    pub app: AppKind,
    /// Chain id every tx must carry.
    pub chain_id: String,
    /// Maximum number of pending txs.
    pub max_txs: usize,
    /// Maximum total bytes of pending txs.
    pub max_bytes: usize,
    /// Maximum size of one tx.
    pub max_tx_bytes: usize,
    /// How many recently accepted tx hashes are remembered to reject duplicates (including
    /// txs already committed).
    pub cache_size: usize,
    /// sig-batch toggle: verify the txs of one [`Mempool::check_txs`](crate::Mempool::check_txs)
    /// call in one batch.
    pub sig_batch: bool,
    /// buffer-pool toggle: decode txs into pooled messages.
    pub buffer_pool: bool,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            app: AppKind::Transfer,
            chain_id: "tpslab".into(),
            max_txs: 50_000,
            max_bytes: 64 << 20,
            max_tx_bytes: 16 << 10,
            cache_size: 200_000,
            sig_batch: true,
            buffer_pool: true,
        }
    }
}
