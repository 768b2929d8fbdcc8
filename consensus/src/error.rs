//! Errors of block production.

use thiserror::Error;

/// Why producing or committing a block failed. Any of these stops the producer: continuing
/// after a failed commit could fork the node's own history.
#[derive(Debug, Error)]
pub enum ConsensusError {
    /// The state database failed.
    #[error("state db at height {height}: {source}")]
    State {
        /// Height being produced.
        height: u64,
        /// The failure.
        #[source]
        source: tpslab_types::ports::LedgerError,
    },
    /// A blocking task panicked or was cancelled.
    #[error("block task at height {height} did not complete: {reason}")]
    Task {
        /// Height being produced.
        height: u64,
        /// What the runtime reported.
        reason: String,
    },
    /// The Raft engine's log or raft-rs itself failed.
    #[error("raft: {0}")]
    Raft(String),
}

/// Result alias of this crate.
pub type ConsensusResult<T> = Result<T, ConsensusError>;
