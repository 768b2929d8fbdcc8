//! Accounts, addresses and the read-only view of state the mempool checks against.

use crate::hash::Hash;
use crate::{TypesError, TypesResult};
use std::fmt;

/// A 20-byte account address: the first 20 bytes of SHA-256(ed25519 public key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of an ed25519 public key.
    pub fn from_pubkey(pubkey: &[u8; 32]) -> Address {
        let h = Hash::digest(pubkey);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h.0[..20]);
        Address(a)
    }

    /// Parses an address from a 20-byte slice.
    pub fn from_slice(field: &'static str, b: &[u8]) -> TypesResult<Address> {
        let arr: [u8; 20] = b.try_into().map_err(|_| TypesError::BadLength {
            field,
            expected: 20,
            got: b.len(),
        })?;
        Ok(Address(arr))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..10])
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An account's state. A missing account reads as the default (zero balance, nonce 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Account {
    /// Spendable balance.
    pub balance: u64,
    /// Number of txs this account has sent; the next tx must carry exactly this nonce.
    pub nonce: u64,
}

impl Account {
    /// Fixed 16-byte big-endian encoding (balance, nonce), used as the stored value and in
    /// the app hash leaves.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.balance.to_be_bytes());
        out[8..].copy_from_slice(&self.nonce.to_be_bytes());
        out
    }

    /// Inverse of [`Account::encode`].
    pub fn decode(b: &[u8]) -> TypesResult<Account> {
        if b.len() != 16 {
            return Err(TypesError::BadLength {
                field: "account",
                expected: 16,
                got: b.len(),
            });
        }
        let mut bal = [0u8; 8];
        let mut non = [0u8; 8];
        bal.copy_from_slice(&b[..8]);
        non.copy_from_slice(&b[8..]);
        Ok(Account {
            balance: u64::from_be_bytes(bal),
            nonce: u64::from_be_bytes(non),
        })
    }
}

/// Read access to the latest committed state, as the mempool needs it.
pub trait StateView: Send + Sync {
    /// Error of the underlying store.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The committed account at `addr` (default if absent).
    fn account(&self, addr: &Address) -> Result<Account, Self::Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_roundtrip() {
        let a = Account {
            balance: 12345,
            nonce: 7,
        };
        assert_eq!(Account::decode(&a.encode()), Ok(a));
        assert!(Account::decode(&[1, 2, 3]).is_err());
    }
}
