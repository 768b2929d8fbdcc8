//! Single-validator mode: the one validator proposes and commits alone.

use crate::error::{ConsensusError, ConsensusResult};
use crate::event::CommitEvent;
use crate::pipeline::BlockPipeline;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tracing::{debug, info};

/// When to cut a block.
#[derive(Clone, Debug)]
pub struct SoloConfig {
    /// Cut a block as soon as this many txs are pending (and at most this many go in).
    pub max_block_txs: usize,
    /// Otherwise cut one this long after the previous block, if anything is pending.
    pub block_interval: Duration,
    /// Also cut empty blocks every interval.
    pub create_empty_blocks: bool,
}

/// The block producer of a single-validator chain.
pub struct SoloProducer {
    cfg: SoloConfig,
    pipeline: Option<BlockPipeline>,
    tx_commits: broadcast::Sender<Arc<CommitEvent>>,
}

impl SoloProducer {
    /// A producer that announces each commit on `tx_commits`.
    pub fn new(
        cfg: SoloConfig,
        pipeline: BlockPipeline,
        tx_commits: broadcast::Sender<Arc<CommitEvent>>,
    ) -> Self {
        SoloProducer {
            cfg,
            pipeline: Some(pipeline),
            tx_commits,
        }
    }

    /// Produces blocks until `shutdown` turns true. A block in flight is always finished
    /// (committed atomically) before the loop looks at `shutdown` again.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> ConsensusResult<()> {
        let interval = self.cfg.block_interval;
        let mut last_block_at = Instant::now();
        loop {
            if *shutdown.borrow() {
                info!("block producer stopped");
                return Ok(());
            }
            let pending = self.mempool_size();
            let due = last_block_at + interval <= Instant::now();
            if pending >= self.cfg.max_block_txs
                || (due && (pending > 0 || self.cfg.create_empty_blocks))
            {
                self.produce_one().await?;
                last_block_at = Instant::now();
                continue;
            }
            let pool = self.pipeline.as_ref().map(|p| p.pool().clone());
            let Some(pool) = pool else {
                return Ok(());
            };
            // Once the interval has passed, any tx is enough; before, only a full block is.
            let want = if due && !self.cfg.create_empty_blocks {
                1
            } else {
                self.cfg.max_block_txs
            };
            tokio::select! {
                _ = pool.wait_for_txs(want) => {}
                _ = tokio::time::sleep_until(last_block_at + interval), if !due => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    fn mempool_size(&self) -> usize {
        self.pipeline.as_ref().map_or(0, |p| p.pool().size())
    }

    async fn produce_one(&mut self) -> ConsensusResult<()> {
        let Some(mut pipeline) = self.pipeline.take() else {
            return Ok(());
        };
        // Execution and the synced RocksDB write block; keep them off the async workers.
        let (pipeline, result) = tokio::task::spawn_blocking(move || {
            let r = pipeline.produce();
            (pipeline, r)
        })
        .await
        .map_err(|e| ConsensusError::Task {
            height: 0,
            reason: e.to_string(),
        })?;
        self.pipeline = Some(pipeline);
        let event = result?;
        debug!(
            height = event.height,
            txs = event.tx_hashes.len(),
            "committed block"
        );
        // No subscribers is fine.
        let _ = self.tx_commits.send(Arc::new(event));
        Ok(())
    }
}
