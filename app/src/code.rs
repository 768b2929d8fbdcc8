//! Per-tx outcome codes, as a block records them.

use tpslab_types::TypesError;

/// Outcome of one tx in a block. The numbers are stored in `BlockRecord.tx_codes`; a failing
/// tx is skipped and its code recorded, as a Cosmos DeliverTx failure would be, and the
/// block itself stays valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum TxCode {
    /// Applied.
    Ok = 0,
    /// The bytes do not decode to a well-formed tx.
    Malformed = 1,
    /// Made for another chain.
    WrongChainId = 2,
    /// The signature does not verify.
    BadSignature = 3,
    /// The nonce is not the sender's next nonce.
    BadNonce = 4,
    /// The sender cannot pay amount + fee.
    InsufficientFunds = 5,
    /// A balance would overflow.
    Overflow = 6,
}

impl TxCode {
    /// The code of a tx that [`App::decode`](crate::App::decode) refused.
    pub fn of_decode_error(e: &TypesError) -> TxCode {
        match e {
            TypesError::WrongChainId { .. } => TxCode::WrongChainId,
            TypesError::BadSignature => TxCode::BadSignature,
            _ => TxCode::Malformed,
        }
    }
}
