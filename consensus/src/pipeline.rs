//! The synchronous block pipeline: build a block from the mempool, execute it, commit it.
//! Kept free of async so it can run on a blocking thread and be timed from outside.

use crate::error::{ConsensusError, ConsensusResult};
use crate::event::CommitEvent;
use crate::metrics::ConsensusMetrics;
use std::sync::Arc;
use tpslab_mempool::Mempool;
use tpslab_statedb::ExecOptions;
use tpslab_statedb::{execute_block, StateDb};
use tpslab_types::block::{block_hash, commit_hash, tx_root};
use tpslab_types::keys::SigningKey;
use tpslab_types::pb::{self, VoteType};
use tpslab_types::sigcache::SigCache;
use tpslab_types::stages::Stage;
use tpslab_types::tx::tx_hash;
use tpslab_types::vote::{commit_sig_from_vote, VoteData};
use tpslab_types::{App, Hash, Tuning};

/// Size limits of one block.
#[derive(Clone, Copy, Debug)]
pub struct BlockLimits {
    /// Most txs in a block.
    pub max_txs: usize,
    /// Most tx bytes in a block.
    pub max_bytes: usize,
}

/// Everything needed to turn pending txs into committed blocks.
pub struct BlockPipeline {
    /// The state machine blocks are executed with.
    pub app: App,
    /// Chain id.
    pub chain_id: String,
    /// The proposer's key; it also signs the commit.
    pub key: SigningKey,
    /// The state.
    pub db: StateDb,
    /// Where txs come from.
    pub mempool: Arc<Mempool<StateDb>>,
    /// Limits per block.
    pub limits: BlockLimits,
    /// Commit of the last block, carried by the next block as `last_commit`.
    pub last_commit: Option<pb::Commit>,
    /// Where commits are counted and timed.
    pub metrics: ConsensusMetrics,
    /// The tuning toggles (write-batch, sig-batch, sig-cache, recheck-incremental apply here).
    pub tuning: Tuning,
    /// Hashes of txs verified at CheckTx (used when `tuning.sig_cache`).
    pub sig_cache: Arc<SigCache>,
}

pub use tpslab_types::stages::now_unix_nanos;

impl BlockPipeline {
    /// Reaps txs and builds the next block on top of the last committed one (not executed:
    /// the header carries the previous block's app hash, as in Tendermint).
    pub fn build_block(&self) -> ConsensusResult<(pb::Block, Hash)> {
        let last = self
            .db
            .last_committed()
            .map_err(|source| ConsensusError::State { height: 0, source })?;
        let height = last.height + 1;
        let txs: Vec<Vec<u8>> = self
            .mempool
            .reap(self.limits.max_txs, self.limits.max_bytes)
            .iter()
            .map(|t| t.to_vec())
            .collect();
        let header = pb::Header {
            chain_id: self.chain_id.clone(),
            height,
            time_unix_nanos: now_unix_nanos().max(last.time_unix_nanos + 1),
            prev_block_hash: last.block_hash.to_vec(),
            tx_root: tx_root(&txs).to_vec(),
            app_hash: last.app_hash.to_vec(),
            proposer: self.key.verifying_key().to_bytes().to_vec(),
            num_txs: txs.len() as u32,
            last_commit_hash: commit_hash(self.last_commit.as_ref()).to_vec(),
        };
        let hash = block_hash(&header);
        Ok((
            pb::Block {
                header: Some(header),
                txs,
                last_commit: self.last_commit.clone(),
            },
            hash,
        ))
    }

    /// Checks that `block` is a well-formed successor of the last committed block (height,
    /// chain, links, tx root, counts) and returns its hash. Signatures in `last_commit` are
    /// the caller's to check (it knows the validator set).
    pub fn check_block(&self, block: &pb::Block) -> Result<Hash, String> {
        let last = self.db.last_committed().map_err(|e| e.to_string())?;
        let h = block.header.as_ref().ok_or("block without header")?;
        let expect = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
        expect(h.chain_id == self.chain_id, "wrong chain id")?;
        expect(h.height == last.height + 1, "wrong height")?;
        expect(
            h.prev_block_hash == last.block_hash.0,
            "prev_block_hash does not link",
        )?;
        expect(h.app_hash == last.app_hash.0, "app_hash differs from ours")?;
        expect(
            h.time_unix_nanos > last.time_unix_nanos,
            "time not after the last block",
        )?;
        expect(
            h.num_txs as usize == block.txs.len(),
            "num_txs differs from txs",
        )?;
        if block.txs.len() > self.limits.max_txs {
            return Err(format!(
                "{} txs, over max_block_txs ({})",
                block.txs.len(),
                self.limits.max_txs
            ));
        }
        let bytes: usize = block.txs.iter().map(|t| t.len()).sum();
        if bytes > self.limits.max_bytes {
            return Err(format!(
                "{bytes} bytes of txs, over max_block_bytes ({})",
                self.limits.max_bytes
            ));
        }
        expect(h.tx_root == tx_root(&block.txs).0, "tx_root differs")?;
        expect(
            h.last_commit_hash == commit_hash(block.last_commit.as_ref()).0,
            "last_commit_hash differs",
        )?;
        Ok(block_hash(h))
    }

    /// Executes `block` (hash `hash`, finalised by `commit`), writes it atomically, updates
    /// the mempool, and remembers `commit` for the next block's `last_commit`.
    pub fn commit_block(
        &mut self,
        block: pb::Block,
        hash: Hash,
        commit: pb::Commit,
    ) -> ConsensusResult<CommitEvent> {
        let height = block.header.as_ref().map_or(0, |h| h.height);
        let txs = block.txs.len() as u64;
        // Under a stable symbol, so the eBPF commit uprobes time it and report each block.
        tpslab_probe_points::commit_block(height, txs, || {
            self.execute_and_commit(block, hash, commit)
        })
    }

    fn execute_and_commit(
        &mut self,
        block: pb::Block,
        hash: Hash,
        commit: pb::Commit,
    ) -> ConsensusResult<CommitEvent> {
        let last = self
            .db
            .last_committed()
            .map_err(|source| ConsensusError::State { height: 0, source })?;
        let height = last.height + 1;
        let started = std::time::Instant::now();
        let state_err = |source| ConsensusError::State { height, source };
        let opts = ExecOptions {
            app: self.app,
            write_batch: self.tuning.write_batch,
            sig_batch: self.tuning.sig_batch,
            sig_cache: self.tuning.sig_cache.then_some(&*self.sig_cache),
            buffer_pool: self.tuning.buffer_pool,
        };
        let out = execute_block(
            &self.db,
            &opts,
            &self.chain_id,
            height,
            &last.app_hash,
            &block.txs,
        )
        .map_err(state_err)?;
        // Only the incremental recheck needs the set of written accounts.
        let touched: Option<std::collections::HashSet<_>> = self
            .tuning
            .recheck_incremental
            .then(|| out.write_set.accounts.keys().copied().collect());
        let block_time = block.header.as_ref().map_or(0, |h| h.time_unix_nanos);
        let tx_hashes: Vec<_> = block.txs.iter().map(|t| tx_hash(t)).collect();
        let record = pb::BlockRecord {
            block: Some(block),
            block_hash: hash.to_vec(),
            commit: Some(commit.clone()),
            result_app_hash: out.app_hash.to_vec(),
            tx_codes: out.tx_codes,
        };
        self.db
            .commit_block(&record, block_time, &out.write_set)
            .map_err(state_err)?;
        self.last_commit = Some(commit);
        self.metrics
            .on_commit(height, tx_hashes.len(), started.elapsed().as_secs_f64());
        self.mempool.update(&tx_hashes, touched.as_ref());
        if let Some(d) = tpslab_types::stages::since_unix_nanos(block_time) {
            let stages = self.mempool.stages();
            stages.record_n(Stage::Consensus, d, tx_hashes.len() as u64);
        }
        Ok(CommitEvent {
            height,
            block_hash: hash,
            app_hash: out.app_hash,
            tx_hashes,
            block_time_unix_nanos: block_time,
            commit_time_unix_nanos: now_unix_nanos(),
        })
    }

    /// Single-validator mode: builds, self-commits (one precommit signature) and commits the
    /// next block. Either the whole block is durable when this returns Ok, or nothing of it.
    pub fn produce(&mut self) -> ConsensusResult<CommitEvent> {
        let (block, hash) = self.build_block()?;
        let height = block.header.as_ref().map_or(0, |h| h.height);
        let precommit = VoteData {
            chain_id: &self.chain_id,
            vote_type: VoteType::Precommit,
            height,
            round: 0,
            block_hash: Some(hash),
            timestamp_unix_nanos: now_unix_nanos(),
        }
        .sign(&self.key);
        let commit = pb::Commit {
            height,
            round: 0,
            block_hash: hash.to_vec(),
            signatures: vec![commit_sig_from_vote(&precommit)],
        };
        self.commit_block(block, hash, commit)
    }
}
