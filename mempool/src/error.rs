//! Why a tx was not admitted.

use thiserror::Error;
use tpslab_types::{Hash, TypesError};

/// A CheckTx rejection, with the context a client needs to fix or retry the tx.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CheckTxError {
    /// Larger than `max_tx_bytes`.
    #[error("tx too large: {size} bytes > max {max}")]
    TooLarge {
        /// Size of the tx.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Decoding, shape, chain id or signature failure.
    #[error("{0}")]
    Invalid(#[from] TypesError),
    /// The sender already used this nonce.
    #[error("nonce too low: account expects {expected}, tx has {got}")]
    NonceTooLow {
        /// The next nonce the sender may use.
        expected: u64,
        /// The tx's nonce.
        got: u64,
    },
    /// The tx skips nonces.
    #[error("nonce too high: account expects {expected}, tx has {got}")]
    NonceTooHigh {
        /// The next nonce the sender may use.
        expected: u64,
        /// The tx's nonce.
        got: u64,
    },
    /// The sender cannot pay amount + fee after its pending txs.
    #[error("insufficient funds: available {available}, tx costs {cost}")]
    InsufficientFunds {
        /// Balance left after the sender's pending txs.
        available: u64,
        /// amount + fee (saturated on overflow).
        cost: u64,
    },
    /// The same tx is pending or was accepted recently.
    #[error("tx {hash} already in mempool or recently committed")]
    Duplicate {
        /// The tx hash.
        hash: Hash,
    },
    /// No room: retry later.
    #[error("mempool is full: {txs} txs / {bytes} bytes (max {max_txs} txs / {max_bytes} bytes)")]
    Full {
        /// Pending txs.
        txs: usize,
        /// Pending bytes.
        bytes: usize,
        /// Limit in txs.
        max_txs: usize,
        /// Limit in bytes.
        max_bytes: usize,
    },
    /// Reading the state failed.
    #[error("state read failed: {0}")]
    State(String),
}

/// A rejection's category, for status codes and per-reason counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// [`CheckTxError::TooLarge`].
    TooLarge,
    /// Undecodable bytes or bad field shapes.
    Malformed,
    /// Wrong chain id.
    WrongChainId,
    /// Signature does not verify.
    BadSignature,
    /// [`CheckTxError::NonceTooLow`].
    NonceTooLow,
    /// [`CheckTxError::NonceTooHigh`].
    NonceTooHigh,
    /// [`CheckTxError::InsufficientFunds`].
    InsufficientFunds,
    /// [`CheckTxError::Duplicate`].
    Duplicate,
    /// [`CheckTxError::Full`].
    MempoolFull,
    /// [`CheckTxError::State`].
    Internal,
}

impl RejectReason {
    /// A stable snake_case name (for metrics labels and reports).
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::Malformed => "malformed",
            RejectReason::WrongChainId => "wrong_chain_id",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::NonceTooLow => "nonce_too_low",
            RejectReason::NonceTooHigh => "nonce_too_high",
            RejectReason::InsufficientFunds => "insufficient_funds",
            RejectReason::Duplicate => "duplicate",
            RejectReason::MempoolFull => "mempool_full",
            RejectReason::Internal => "internal",
        }
    }
}

impl CheckTxError {
    /// The rejection's category.
    pub fn reason(&self) -> RejectReason {
        match self {
            CheckTxError::TooLarge { .. } => RejectReason::TooLarge,
            CheckTxError::Invalid(TypesError::WrongChainId { .. }) => RejectReason::WrongChainId,
            CheckTxError::Invalid(TypesError::BadSignature) => RejectReason::BadSignature,
            CheckTxError::Invalid(_) => RejectReason::Malformed,
            CheckTxError::NonceTooLow { .. } => RejectReason::NonceTooLow,
            CheckTxError::NonceTooHigh { .. } => RejectReason::NonceTooHigh,
            CheckTxError::InsufficientFunds { .. } => RejectReason::InsufficientFunds,
            CheckTxError::Duplicate { .. } => RejectReason::Duplicate,
            CheckTxError::Full { .. } => RejectReason::MempoolFull,
            CheckTxError::State(_) => RejectReason::Internal,
        }
    }
}
