//! Errors of decoding and verifying wire types.

use thiserror::Error;

/// Why a wire object was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TypesError {
    /// The bytes are not a valid encoding of the message.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which message was being decoded.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// A field has the wrong length.
    #[error("{field} must be {expected} bytes, got {got}")]
    BadLength {
        /// The field name.
        field: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// The public key is not a valid ed25519 point.
    #[error("invalid ed25519 public key")]
    BadPublicKey,
    /// The object was made for another chain.
    #[error("wrong chain id: expected {expected:?}, got {got:?}")]
    WrongChainId {
        /// This node's chain id.
        expected: String,
        /// The object's chain id.
        got: String,
    },
    /// The signature does not verify against the sign-bytes and public key.
    #[error("invalid signature")]
    BadSignature,
}

/// Result alias of this crate.
pub type TypesResult<T> = Result<T, TypesError>;
