//! The state machines a chain can run, behind one [`App`] trait.
//!
//! An app says what its txs are and what they do: how raw bytes decode (and which stateless
//! checks they must pass), whether they carry signatures, which sender lane orders them in
//! the mempool, and how one tx changes the state. The mempool (admission) and the state
//! database (execution) are written once against this trait; neither knows which app runs.
//! State is reached only through [`StateView`](tpslab_types::StateView) (committed accounts,
//! for admission) and [`BlockState`] (the block's view, for execution), so no RocksDB type
//! appears here and an app is one file: see [`transfer`] and [`kvstore`], and add the new
//! one to [`AppKind`](tpslab_types::AppKind) and [`visit`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

mod code;
pub mod kvstore;
mod registry;
mod state;
pub mod transfer;

pub use code::TxCode;
pub use kvstore::KvStore;
pub use registry::{signed, visit, AppVisitor};
pub use state::{BlockState, Lane, LaneState, StateKey};
pub use transfer::Transfer;

use tpslab_types::{Address, AppKind, Hash, StateView, TypesResult};

/// What every stateless check of a tx needs to know about the chain and the node.
#[derive(Clone, Copy, Debug)]
pub struct TxContext<'a> {
    /// The chain id a signed tx must carry.
    pub chain_id: &'a str,
    /// buffer-pool toggle: decode into pooled messages.
    pub buffer_pool: bool,
}

/// A state machine a chain runs. Every validator of a chain runs the same one (the genesis
/// names it), and every method is deterministic: two honest nodes given the same bytes and
/// state reach the same verdict.
pub trait App: Send + Sync + 'static {
    /// A tx decoded and checked for shape: what admission and execution work on.
    type Tx<'a>: Send + Sync;

    /// The name the config and genesis use.
    const KIND: AppKind;
    /// Whether txs carry signatures. Only then do verification, the sig-batch and the
    /// sig-cache toggles apply.
    const SIGNED: bool;

    /// Decodes `raw` and runs every stateless check (field shapes, chain id). The error's
    /// variant picks the block's failure code (see [`TxCode::of_decode_error`]).
    fn decode<'a>(&self, raw: &'a [u8], ctx: &TxContext<'_>) -> TypesResult<Self::Tx<'a>>;

    /// The tx's hash (its identity in the mempool, the sig cache and the block).
    fn hash(&self, tx: &Self::Tx<'_>) -> Hash;

    /// The sender lane that orders the tx in the mempool (strict nonces, funds reserved by
    /// pending txs), or `None` for arrival order.
    /// The default: no lane.
    fn lane(&self, _tx: &Self::Tx<'_>) -> Option<Lane> {
        None
    }

    /// A lane's committed state: the sender's next nonce and spendable balance. The default
    /// is the account model: the sender account's nonce and balance. Only asked for senders
    /// of txs that have a lane.
    fn lane_state<S: StateView + ?Sized>(
        &self,
        state: &S,
        sender: &Address,
    ) -> Result<LaneState, S::Error> {
        let acc = state.account(sender)?;
        Ok(LaneState {
            next_nonce: acc.nonce,
            available: acc.balance,
        })
    }

    /// Verifies the txs' signatures: `out[i]` tells whether tx `i`'s verifies. Batched or
    /// not, each tx gets the same verdict. Unsigned apps return all `true`.
    fn verify(&self, txs: &[&Self::Tx<'_>], batch: bool) -> Vec<bool>;

    /// [`App::verify`] of one tx (override to spare the vector).
    fn verify_one(&self, tx: &Self::Tx<'_>) -> bool {
        self.verify(&[tx], false).first().copied().unwrap_or(false)
    }

    /// Every piece of state [`App::deliver`] may read or write for `tx`, so txs of a block
    /// that share none can execute in parallel (parallel-exec). `None` (the default): not
    /// known, the block executes one tx after another. Execution checks each access against
    /// this list and falls back to the sequential path on any access outside it, so a wrong
    /// list costs time, never a different result.
    fn conflict_keys(&self, _tx: &Self::Tx<'_>) -> Option<Vec<StateKey>> {
        None
    }

    /// Applies one decoded tx whose signature verified to the block's state. Writes become
    /// part of the block only if the code is [`TxCode::Ok`]; a failing tx's writes are dropped.
    fn deliver<S: BlockState + ?Sized>(
        &self,
        tx: &Self::Tx<'_>,
        state: &mut S,
    ) -> Result<TxCode, S::Error>;
}
