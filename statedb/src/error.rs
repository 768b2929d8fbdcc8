//! Errors of the state database.

use thiserror::Error;

/// Why a state operation failed.
#[derive(Debug, Error)]
pub enum StateError {
    /// RocksDB returned an error.
    #[error("rocksdb {op}: {source}")]
    Db {
        /// What was being done.
        op: &'static str,
        /// The RocksDB error.
        #[source]
        source: rocksdb::Error,
    },
    /// Stored bytes could not be decoded: the database is corrupt or from another version.
    #[error("corrupt {what} in state db: {reason}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// The database holds another chain.
    #[error("state db belongs to chain {found:?}, genesis says {expected:?}")]
    WrongChain {
        /// Chain id of the genesis.
        expected: String,
        /// Chain id stored in the database.
        found: String,
    },
    /// The database holds state of another app.
    #[error("the database holds {found} state but the node is configured for the {expected} app")]
    WrongApp {
        /// App of the node's config.
        expected: String,
        /// App recorded in the database.
        found: String,
    },
    /// A block was committed out of order.
    #[error("commit of height {got}, expected {expected}")]
    HeightMismatch {
        /// The next height.
        expected: u64,
        /// The height offered.
        got: u64,
    },
    /// A parallel-exec worker thread panicked (a bug; the block is not applied).
    #[error("parallel execution: {0}")]
    Parallel(String),
    /// The database has no genesis yet.
    #[error("state db is not initialised with a genesis")]
    NotInitialised,
}

/// Result alias of this crate.
pub type StateResult<T> = Result<T, StateError>;

pub(crate) fn db_err(op: &'static str) -> impl FnOnce(rocksdb::Error) -> StateError {
    move |source| StateError::Db { op, source }
}
