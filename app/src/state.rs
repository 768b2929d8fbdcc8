//! How an app reaches state: sender lanes for admission, the block's view for execution.

use tpslab_types::{Account, Address};

/// A tx's place in its sender's nonce-ordered lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lane {
    /// Who pays and whose nonce it uses.
    pub sender: Address,
    /// The tx's nonce: it must be exactly the lane's next one.
    pub nonce: u64,
    /// What the tx takes from the sender's balance; `None` if it overflows.
    pub cost: Option<u64>,
}

/// A lane's state: what the sender's next tx must carry and can spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneState {
    /// Nonce of the sender's next tx.
    pub next_nonce: u64,
    /// Balance not yet reserved.
    pub available: u64,
}

/// A piece of state a tx may read or write: what parallel execution (the parallel-exec
/// toggle) groups conflicting txs by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StateKey {
    /// An account of the account store.
    Account(Address),
    /// An entry of the entry store.
    Entry(Vec<u8>),
}

/// The state as one tx of a block sees it: the committed state plus the writes of the
/// block's earlier txs. Two stores, both keyed by bytes the app chooses: accounts (balance
/// and nonce, cached and lock-sharded by the node's toggles) and free-form entries.
pub trait BlockState {
    /// Error of the underlying store.
    type Error;
    /// The account at `addr` (default if absent).
    fn account(&self, addr: &Address) -> Result<Account, Self::Error>;
    /// Sets the account at `addr`.
    fn put_account(&mut self, addr: Address, account: Account);
    /// The entry under `key`, if any.
    fn entry(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Sets the entry under `key`.
    fn put_entry(&mut self, key: &[u8], value: &[u8]);
}
