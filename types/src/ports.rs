//! The ports a consensus engine reaches the rest of the node through: the [`Ledger`] (the
//! committed chain and its state: read the last block, serve stored blocks, execute and
//! durably commit a decided block) and the [`TxPool`] (pending txs to propose, and what to
//! drop once a block commits). The state database and the mempool implement them; consensus
//! sees only these traits, so it links neither RocksDB nor the mempool, and a second engine
//! (Raft) plugs into the same two ports.

use crate::sigcache::SigCache;
use crate::{pb, Address, AppKind, Hash};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use thiserror::Error;

/// The last committed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Committed {
    /// Height of the last committed block (0 = only the genesis).
    pub height: u64,
    /// App hash after that block.
    pub app_hash: Hash,
    /// Its block hash (zero at genesis).
    pub block_hash: Hash,
    /// Its header time (genesis time at height 0).
    pub time_unix_nanos: u64,
}

/// How a block is executed: the chain, the app, and the tuning toggles that touch execution.
#[derive(Clone)]
pub struct ExecParams {
    /// The chain id txs must carry.
    pub chain_id: String,
    /// The state machine.
    pub app: AppKind,
    /// write-batch toggle: one write batch per block (off: every tx's writes synced alone).
    pub write_batch: bool,
    /// sig-batch toggle: verify the block's signatures in one batch.
    pub sig_batch: bool,
    /// sig-cache toggle: skip verifying txs whose hash is in the cache (verified at CheckTx).
    pub sig_cache: Option<Arc<SigCache>>,
    /// buffer-pool toggle: decode txs into pooled messages.
    pub buffer_pool: bool,
    /// recheck-incremental toggle: report the accounts the block wrote, so the pool rechecks
    /// only their senders (off: none reported, every sender rechecked).
    pub want_touched: bool,
    /// parallel-exec toggle: txs that share no state execute on different threads.
    pub parallel: bool,
}

impl ExecParams {
    /// Execution of `app` blocks on chain `chain_id` with `tuning`'s execution toggles;
    /// `sig_cache` is read only with sig-cache on.
    pub fn new(
        chain_id: &str,
        app: AppKind,
        tuning: &crate::Tuning,
        sig_cache: Option<Arc<SigCache>>,
    ) -> ExecParams {
        ExecParams {
            chain_id: chain_id.to_string(),
            app,
            write_batch: tuning.write_batch,
            sig_batch: tuning.sig_batch,
            sig_cache: sig_cache.filter(|_| tuning.sig_cache),
            buffer_pool: tuning.buffer_pool,
            want_touched: tuning.recheck_incremental,
            parallel: tuning.parallel_exec,
        }
    }
}

/// What committing a block did.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// App hash after the block.
    pub app_hash: Hash,
    /// Accounts the block wrote, when asked for.
    pub touched: Option<HashSet<Address>>,
}

/// The ledger failed: storage, or a stored value that does not decode. A node cannot go on
/// after one (its own history would be in doubt), so the message is all a caller needs.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct LedgerError(pub String);

/// The committed chain and its state.
pub trait Ledger: Send + Sync {
    /// The last committed block.
    fn last_committed(&self) -> Result<Committed, LedgerError>;

    /// The stored record of block `height`, if committed.
    fn block(&self, height: u64) -> Result<Option<pb::BlockRecord>, LedgerError>;

    /// Executes `block` (hash `hash`, finalised by `commit`) on top of the last committed
    /// block and writes it durably: either the whole block is committed when this returns Ok,
    /// or none of it.
    fn apply_block(
        &self,
        block: pb::Block,
        hash: Hash,
        commit: pb::Commit,
        params: &ExecParams,
    ) -> Result<Applied, LedgerError>;
}

/// A future borrowing the pool.
pub type PoolFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Pending txs, as consensus sees them.
pub trait TxPool: Send + Sync {
    /// Up to `max_txs` txs and `max_bytes` bytes to propose, in the pool's fair order; they
    /// stay pending until [`TxPool::committed`] sees them.
    fn reap(&self, max_txs: usize, max_bytes: usize) -> Vec<Arc<[u8]>>;

    /// Drops the txs of a committed block, and rechecks the rest (only the senders in
    /// `touched` when given).
    fn committed(&self, hashes: &[Hash], touched: Option<&HashSet<Address>>);

    /// Number of pending txs.
    fn size(&self) -> usize;

    /// Total bytes of the pending txs.
    fn bytes(&self) -> usize;

    /// The pending txs with these hashes, in the same order (None where not pending): how a
    /// peer rebuilds a compact block from its own pool.
    fn lookup(&self, hashes: &[Hash]) -> Vec<Option<Arc<[u8]>>>;

    /// Resolves once at least `n` txs are pending (or spuriously; callers re-check).
    fn wait_for_txs(&self, n: usize) -> PoolFuture<'_>;
}

/// What a Raft engine keeps durably: the hard state (term, vote, commit), the conf state
/// (voters, learners) and the log, each as the engine's own encoding (the port does not know
/// Raft's types). Loaded once at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftState {
    /// Encoded hard state (empty on first start).
    pub hard_state: Vec<u8>,
    /// Encoded conf state (empty on first start).
    pub conf_state: Vec<u8>,
    /// Log entries in index order: (index, encoded entry).
    pub entries: Vec<(u64, Vec<u8>)>,
    /// Encoded metadata (index, term) of the last entry compacted away: the log continues
    /// right after it (empty while nothing was compacted).
    pub log_base: Vec<u8>,
    /// The encoded snapshot a leader sends a follower that needs compacted entries (empty
    /// while there is none).
    pub snapshot: Vec<u8>,
    /// Whether the engine was abstaining from votes (it started with nothing and had not yet
    /// caught up) when it stopped: a restart must not end that.
    pub abstaining: bool,
}

/// One durable step of a Raft engine, written atomically and synced before it returns: the
/// messages that depend on it (votes, append acks) may leave only after.
#[derive(Clone, Debug, Default)]
pub struct RaftWrite {
    /// Entries to append; any stored entry at or after the first one's index is replaced
    /// (a new leader overwrote an uncommitted suffix).
    pub entries: Vec<(u64, Vec<u8>)>,
    /// A new hard state.
    pub hard_state: Option<Vec<u8>>,
    /// A new conf state.
    pub conf_state: Option<Vec<u8>>,
    /// Drop entries below this index (the log was compacted after apply, or replaced by a
    /// snapshot). Applied after `entries`.
    pub compact_below: Option<u64>,
    /// A new log base (see [`RaftState::log_base`]).
    pub log_base: Option<Vec<u8>>,
    /// A new snapshot (see [`RaftState::snapshot`]).
    pub snapshot: Option<Vec<u8>>,
    /// Starts or ends abstention (see [`RaftState::abstaining`]).
    pub abstaining: Option<bool>,
}

/// The durable Raft log and hard state, beside the chain in the same database.
pub trait RaftLog: Send + Sync {
    /// Everything stored.
    fn load(&self) -> Result<RaftState, LedgerError>;

    /// Writes `w` atomically and durably.
    fn write(&self, w: &RaftWrite) -> Result<(), LedgerError>;
}
