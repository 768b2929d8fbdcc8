//! Each tuning toggle's path, chosen here once from the config's `[tuning]` and handed to the
//! crate it applies to as that crate's own options (state DB, mempool, execution, p2p, the
//! check pool, logging). No other module of the node reads `cfg.tuning`, so what a toggle
//! switches can be read in one place.

use std::sync::Arc;
use std::time::Duration;
use tpslab_api::config::Config;
use tpslab_mempool::MempoolConfig;
use tpslab_statedb::StateDbOptions;
use tpslab_types::ports::ExecParams;
use tpslab_types::sigcache::SigCache;

/// read-cache and sharded-state: the state DB's account cache and its layout.
pub(crate) fn state_db(cfg: &Config) -> StateDbOptions {
    StateDbOptions {
        sync_writes: cfg.storage.sync_writes,
        read_cache: cfg.tuning.read_cache,
        sharded_state: cfg.tuning.sharded_state,
        ..StateDbOptions::default()
    }
}

/// compact-blocks: whether this validator's BFT proposals carry tx hashes instead of txs
/// (it rebuilds peers' compact proposals either way; Raft log entries carry whole blocks).
pub(crate) fn compact_blocks(cfg: &Config) -> bool {
    cfg.tuning.compact_blocks
}

/// adaptive-pause: whether the pause after a BFT commit follows the height's work and ends
/// when a full block waits, or is always `block_interval_ms`.
pub(crate) fn adaptive_pause(cfg: &Config) -> bool {
    cfg.tuning.adaptive_pause
}

/// sig-cache: one cache of verified tx hashes, filled at CheckTx and read at execution; off,
/// none exists (nothing fills or reads it).
pub(crate) fn sig_cache(cfg: &Config) -> Option<Arc<SigCache>> {
    cfg.tuning
        .sig_cache
        .then(|| Arc::new(SigCache::new(cfg.mempool.cache_size)))
}

/// The mempool's settings: the `[mempool]` section, with the chain, and sig-batch and
/// buffer-pool (admission's batch verification and pooled decoding).
pub(crate) fn mempool(cfg: &Config, chain_id: &str) -> MempoolConfig {
    MempoolConfig {
        app: cfg.app,
        chain_id: chain_id.to_string(),
        max_txs: cfg.mempool.max_txs,
        max_bytes: cfg.mempool.max_bytes,
        max_tx_bytes: cfg.mempool.max_tx_bytes,
        cache_size: cfg.mempool.cache_size,
        sig_batch: cfg.tuning.sig_batch,
        buffer_pool: cfg.tuning.buffer_pool,
    }
}

/// How blocks execute: write-batch, sig-batch, sig-cache (the cache, when on), buffer-pool,
/// and recheck-incremental (execution reports the accounts a block wrote only when on; the
/// pool rechecks every sender without them).
pub(crate) fn exec(cfg: &Config, chain_id: &str, sig_cache: Option<Arc<SigCache>>) -> ExecParams {
    ExecParams::new(chain_id, cfg.app, &cfg.tuning, sig_cache)
}

/// sig-batch: CheckTx gathers gossip frames from every peer, and streamed API txs with
/// crypto-pool, for up to [`crate::gather::WINDOW`] while txs come fast (off, or an app
/// without signatures: each frame, or each chunk of what has arrived, is checked at once).
pub(crate) fn check_gather(cfg: &Config) -> Option<Duration> {
    (cfg.tuning.sig_batch && tpslab_app::signed(cfg.app)).then_some(crate::gather::WINDOW)
}

/// gossip-batch: txs gossiped in batches (off: one frame per tx).
pub(crate) fn gossip_batch(cfg: &Config) -> bool {
    cfg.tuning.gossip_batch
}

/// zero-copy-net: p2p frames handed on without copying.
pub(crate) fn zero_copy_net(cfg: &Config) -> bool {
    cfg.tuning.zero_copy_net
}

/// quiet-log: per-tx debug logs off and logging through a non-blocking writer.
pub(crate) fn quiet_log(cfg: &Config) -> bool {
    cfg.tuning.quiet_log
}

/// crypto-pool: where CheckTx (signature verification) of API and gossip txs runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckPlace {
    /// Inline on the async I/O thread that received the txs (the naive path).
    IoThread,
    /// On tokio's blocking pool, so I/O threads keep reading while signatures verify.
    Pool,
}

impl CheckPlace {
    /// The place `cfg` chooses.
    pub(crate) fn of(cfg: &Config) -> CheckPlace {
        if cfg.tuning.crypto_pool {
            CheckPlace::Pool
        } else {
            CheckPlace::IoThread
        }
    }

    /// Runs the check `f` here; None if the pool's task failed (it panicked or the runtime
    /// is shutting down).
    pub async fn run<T, F>(self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match self {
            CheckPlace::IoThread => Some(f()),
            CheckPlace::Pool => tokio::task::spawn_blocking(f).await.ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tpslab_types::Tuning;

    /// The `[mempool]` defaults of the file format are the mempool's own defaults.
    #[test]
    fn mempool_section_defaults_match_the_mempool() {
        let c = mempool(&Config::default(), "tpslab");
        let d = MempoolConfig::default();
        assert_eq!(
            (c.max_txs, c.max_bytes, c.max_tx_bytes, c.cache_size),
            (d.max_txs, d.max_bytes, d.max_tx_bytes, d.cache_size)
        );
    }

    /// Off, a toggle's machinery does not exist: no sig cache to fill, no written-accounts
    /// report, checks inline; on, each is there.
    #[test]
    fn each_toggle_picks_its_path_here() {
        let mut cfg = Config {
            tuning: Tuning::baseline(),
            ..Config::default()
        };
        let cache = sig_cache(&cfg);
        assert!(cache.is_none());
        let e = exec(&cfg, "c", cache);
        assert!(!e.write_batch && !e.sig_batch && !e.buffer_pool && !e.want_touched);
        assert!(e.sig_cache.is_none());
        assert_eq!(CheckPlace::of(&cfg), CheckPlace::IoThread);
        assert!(!state_db(&cfg).read_cache && !gossip_batch(&cfg) && !quiet_log(&cfg));
        assert_eq!(check_gather(&cfg), None);
        cfg.tuning = Tuning::tuned();
        assert_eq!(check_gather(&cfg), Some(crate::gather::WINDOW));
        // Gathering is for signature batches: a kvstore chain has none to make.
        cfg.app = tpslab_types::AppKind::KvStore;
        assert_eq!(check_gather(&cfg), None);
        cfg.app = tpslab_types::AppKind::Transfer;
        let cache = sig_cache(&cfg);
        assert!(cache.is_some());
        let e = exec(&cfg, "c", cache);
        assert!(e.write_batch && e.sig_batch && e.buffer_pool && e.want_touched);
        assert!(e.sig_cache.is_some());
        assert_eq!(CheckPlace::of(&cfg), CheckPlace::Pool);
        assert!(state_db(&cfg).sharded_state && zero_copy_net(&cfg) && quiet_log(&cfg));
    }
}
