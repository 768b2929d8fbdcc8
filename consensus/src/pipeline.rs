//! The synchronous block pipeline: build a block from the mempool, execute it, commit it.
//! Kept free of async so it can run on a blocking thread and be timed from outside.

use crate::error::{ConsensusError, ConsensusResult};
use crate::event::CommitEvent;
use crate::invalid::{BlockFault, Invalid};
use crate::metrics::ConsensusMetrics;
use std::sync::Arc;
use tpslab_types::block::{block_hash, commit_hash, tx_root, tx_root_of};
use tpslab_types::keys::SigningKey;
use tpslab_types::pb::{self, VoteType};
use tpslab_types::ports::{Committed, ExecParams, Ledger, TxPool};
use tpslab_types::stages::{Stage, StageLatencies};
use tpslab_types::tx::tx_hash;
use tpslab_types::vote::{commit_sig_from_vote, VoteData};
use tpslab_types::Hash;

/// Size limits of one block.
#[derive(Clone, Copy, Debug)]
pub struct BlockLimits {
    /// Most txs in a block.
    pub max_txs: usize,
    /// Most tx bytes in a block.
    pub max_bytes: usize,
}

/// What a [`BlockPipeline`] is made of.
#[derive(Clone)]
pub struct PipelineParts {
    /// The chain id, the state machine, and how blocks are executed: the paths of the toggles
    /// that apply to execution (write-batch, sig-batch, sig-cache, buffer-pool) and whether
    /// the pool's recheck wants the accounts a block wrote (recheck-incremental), as the node
    /// chose them from its `[tuning]`.
    pub exec: ExecParams,
    /// The proposer's key; it also signs the commit.
    pub key: SigningKey,
    /// The committed chain and its state.
    pub ledger: Arc<dyn Ledger>,
    /// Where txs come from.
    pub pool: Arc<dyn TxPool>,
    /// Limits per block.
    pub limits: BlockLimits,
    /// Commit of the last block, carried by the next block as `last_commit`.
    pub last_commit: Option<pb::Commit>,
    /// Where commits are counted and timed.
    pub metrics: ConsensusMetrics,
    /// The node's stage latencies; the pipeline times the `consensus` stage.
    pub stages: Arc<StageLatencies>,
}

/// Everything needed to turn pending txs into committed blocks. Its state is its own: the
/// reactor and block sync reach it through the methods below. A clone shares the chain and
/// the mempool; only `last_commit` is its own (the reactor hands a clone to the blocking pool
/// and takes it back).
#[derive(Clone)]
pub struct BlockPipeline {
    parts: PipelineParts,
}

pub use tpslab_types::stages::now_unix_nanos;

impl BlockPipeline {
    /// A pipeline continuing from the last block committed to `parts.ledger`.
    pub fn new(parts: PipelineParts) -> BlockPipeline {
        BlockPipeline { parts }
    }

    /// Chain id.
    pub fn chain_id(&self) -> &str {
        &self.parts.exec.chain_id
    }

    /// The committed chain and its state.
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.parts.ledger
    }

    /// Where txs come from.
    pub fn pool(&self) -> &Arc<dyn TxPool> {
        &self.parts.pool
    }

    /// Commit counters and timings.
    pub fn metrics(&self) -> &ConsensusMetrics {
        &self.parts.metrics
    }

    /// The last committed block's height, hashes and time.
    pub fn last_committed(&self) -> ConsensusResult<Committed> {
        self.parts
            .ledger
            .last_committed()
            .map_err(|source| ConsensusError::State { height: 0, source })
    }

    /// The size limits blocks are built and checked against.
    pub fn limits(&self) -> BlockLimits {
        self.parts.limits
    }

    /// Changes the size limits (for tests of the checks).
    pub fn set_limits(&mut self, limits: BlockLimits) {
        self.parts.limits = limits;
    }

    /// Reaps txs and builds the next block on top of the last committed one (not executed:
    /// the header carries the previous block's app hash, as in Tendermint).
    pub fn build_block(&self) -> ConsensusResult<(pb::Block, Hash)> {
        self.build_block_hashed()
            .map(|(block, hash, _)| (block, hash))
    }

    /// [`BlockPipeline::build_block`], also returning the txs' hashes (computed once for the
    /// tx root), so the compact form and the commit need not hash them again.
    pub fn build_block_hashed(&self) -> ConsensusResult<(pb::Block, Hash, Vec<Hash>)> {
        let last = self.last_committed()?;
        let height = last.height + 1;
        let txs: Vec<Vec<u8>> = self
            .parts
            .pool
            .reap(self.parts.limits.max_txs, self.parts.limits.max_bytes)
            .iter()
            .map(|t| t.to_vec())
            .collect();
        let tx_hashes: Vec<Hash> = txs.iter().map(|t| tx_hash(t)).collect();
        let header = pb::Header {
            chain_id: self.parts.exec.chain_id.clone(),
            height,
            time_unix_nanos: now_unix_nanos().max(last.time_unix_nanos + 1),
            prev_block_hash: last.block_hash.to_vec(),
            tx_root: tx_root_of(&tx_hashes).to_vec(),
            app_hash: last.app_hash.to_vec(),
            proposer: self.parts.key.verifying_key().to_bytes().to_vec(),
            num_txs: txs.len() as u32,
            last_commit_hash: commit_hash(self.parts.last_commit.as_ref()).to_vec(),
        };
        let hash = block_hash(&header);
        Ok((
            pb::Block {
                header: Some(header),
                txs,
                last_commit: self.parts.last_commit.clone(),
            },
            hash,
            tx_hashes,
        ))
    }

    /// Checks that `block` is a well-formed successor of the last committed block (height,
    /// chain, links, tx root, counts, size limits) and returns its hash. Signatures in
    /// `last_commit` are the caller's to check (it knows the validator set).
    pub fn check_block(&self, block: &pb::Block) -> Result<Hash, Invalid> {
        self.check_block_hashed(block, None)
    }

    /// [`BlockPipeline::check_block`] with the txs' hashes already known (a compact block
    /// rebuilt by hash), so they are not computed again for the tx root.
    pub fn check_block_hashed(
        &self,
        block: &pb::Block,
        hashes: Option<&[Hash]>,
    ) -> Result<Hash, Invalid> {
        let last = self
            .last_committed()
            .map_err(|e| Invalid::Unverifiable(e.to_string()))?;
        let h = block.header.as_ref().ok_or(BlockFault::NoHeader)?;
        let expect = |ok: bool, fault: BlockFault| if ok { Ok(()) } else { Err(fault) };
        expect(
            h.chain_id == self.parts.exec.chain_id,
            BlockFault::WrongChain,
        )?;
        expect(
            h.height == last.height + 1,
            BlockFault::WrongHeight {
                got: h.height,
                expected: last.height + 1,
            },
        )?;
        expect(h.prev_block_hash == last.block_hash.0, BlockFault::PrevHash)?;
        expect(h.app_hash == last.app_hash.0, BlockFault::AppHash)?;
        expect(h.time_unix_nanos > last.time_unix_nanos, BlockFault::Time)?;
        expect(h.num_txs as usize == block.txs.len(), BlockFault::NumTxs)?;
        let max = self.parts.limits.max_txs;
        expect(
            block.txs.len() <= max,
            BlockFault::TooManyTxs {
                txs: block.txs.len(),
                max,
            },
        )?;
        let bytes: usize = block.txs.iter().map(|t| t.len()).sum();
        let max = self.parts.limits.max_bytes;
        expect(bytes <= max, BlockFault::TooManyBytes { bytes, max })?;
        let root = match hashes {
            Some(hs) if hs.len() == block.txs.len() => tx_root_of(hs),
            _ => tx_root(&block.txs),
        };
        expect(h.tx_root == root.0, BlockFault::TxRoot)?;
        expect(
            h.last_commit_hash == commit_hash(block.last_commit.as_ref()).0,
            BlockFault::LastCommitHash,
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
        self.commit_block_hashed(block, hash, commit, None)
    }

    /// [`BlockPipeline::commit_block`] with the txs' hashes already known (checked against
    /// the tx root, or computed when the block was built), so they are not computed again.
    pub fn commit_block_hashed(
        &mut self,
        block: pb::Block,
        hash: Hash,
        commit: pb::Commit,
        tx_hashes: Option<Vec<Hash>>,
    ) -> ConsensusResult<CommitEvent> {
        let height = block.header.as_ref().map_or(0, |h| h.height);
        let txs = block.txs.len() as u64;
        // Under a stable symbol, so the eBPF commit uprobes time it and report each block.
        tpslab_probe_points::commit_block(height, txs, || {
            self.execute_and_commit(block, hash, commit, tx_hashes)
        })
    }

    fn execute_and_commit(
        &mut self,
        block: pb::Block,
        hash: Hash,
        commit: pb::Commit,
        tx_hashes: Option<Vec<Hash>>,
    ) -> ConsensusResult<CommitEvent> {
        let last = self.last_committed()?;
        let height = last.height + 1;
        let started = std::time::Instant::now();
        let params = &self.parts.exec;
        let block_time = block.header.as_ref().map_or(0, |h| h.time_unix_nanos);
        let tx_hashes = match tx_hashes {
            Some(hs) if hs.len() == block.txs.len() => hs,
            _ => block.txs.iter().map(|t| tx_hash(t)).collect(),
        };
        let tx_bytes: usize = block.txs.iter().map(|t| t.len()).sum();
        let applied = self
            .parts
            .ledger
            .apply_block(block, hash, commit.clone(), params)
            .map_err(|source| ConsensusError::State { height, source })?;
        self.parts.last_commit = Some(commit);
        self.parts
            .metrics
            .on_commit(height, tx_hashes.len(), tx_bytes, started.elapsed());
        self.parts
            .pool
            .committed(&tx_hashes, applied.touched.as_ref());
        if let Some(d) = tpslab_types::stages::since_unix_nanos(block_time) {
            let stages = &self.parts.stages;
            stages.record_n(Stage::Consensus, d, tx_hashes.len() as u64);
        }
        Ok(CommitEvent {
            height,
            block_hash: hash,
            app_hash: applied.app_hash,
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
            chain_id: &self.parts.exec.chain_id,
            vote_type: VoteType::Precommit,
            height,
            round: 0,
            block_hash: Some(hash),
            timestamp_unix_nanos: now_unix_nanos(),
        }
        .sign(&self.parts.key);
        let commit = pb::Commit {
            height,
            round: 0,
            block_hash: hash.to_vec(),
            signatures: vec![commit_sig_from_vote(&precommit)],
        };
        self.commit_block(block, hash, commit)
    }
}
