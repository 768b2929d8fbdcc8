//! Deterministic ed25519 keys: test accounts from a seed, so the genesis and a load generator
//! derive the same funded keys without exchanging files.

use crate::account::Address;
use crate::hash::Hash;
pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// Domain separator of account key derivation.
const ACCOUNT_DOMAIN: &[u8] = b"tpslab/account-key/v1";

/// The `index`-th test account key of `seed`:
/// `SHA-256("tpslab/account-key/v1" || len(seed) as u32 BE || seed || index as u64 BE)`
/// used as the ed25519 secret.
pub fn account_key(seed: &str, index: u64) -> SigningKey {
    let len = (seed.len() as u32).to_be_bytes();
    let secret = Hash::digest_parts(&[ACCOUNT_DOMAIN, &len, seed.as_bytes(), &index.to_be_bytes()]);
    SigningKey::from_bytes(&secret.0)
}

/// The address of a signing key.
pub fn address_of(key: &SigningKey) -> Address {
    Address::from_pubkey(key.verifying_key().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_seed_dependent() {
        assert_eq!(
            account_key("s", 3).to_bytes(),
            account_key("s", 3).to_bytes()
        );
        assert_ne!(
            account_key("s", 3).to_bytes(),
            account_key("s", 4).to_bytes()
        );
        assert_ne!(
            account_key("s", 3).to_bytes(),
            account_key("t", 3).to_bytes()
        );
    }
}
