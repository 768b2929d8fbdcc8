//! The app hash: a commitment to the state that every validator computes identically.
//!
//! Scheme (chained write-set hashing):
//! - leaf(address, account) = SHA-256(address(20) || balance BE || nonce BE)
//! - genesis: `merkle_root(leaves of all genesis accounts, sorted by address)`
//! - kv leaf(key, value) = SHA-256("kv" || u32 BE len(key) || key || value) (kvstore app)
//! - block h: `SHA-256("tpslab/app-hash/v1" || app_hash(h-1) || h BE || merkle_root(leaves of
//!   the accounts block h wrote, sorted by address, then of the keys it wrote, sorted))`
//!
//! Two nodes agree on the app hash at h exactly when they started from the same genesis and
//! wrote the same account values at every height, which (state being the genesis plus all
//! write sets) means they hold the same state. Cost per block is O(k) SHA-256 calls for k
//! touched accounts (at most 2 per transfer, about 4k hashes with the tree), independent of the
//! total number of accounts; a full-state merkle tree (IAVL-like) would also give inclusion
//! proofs but costs O(k log N) with a persistent tree, or O(N) rebuilt per block.

use crate::write_set::WriteSet;
use std::collections::BTreeMap;
use tpslab_types::hash::merkle_root;
use tpslab_types::{Account, Address, Hash};

const BLOCK_DOMAIN: &[u8] = b"tpslab/app-hash/v1";

/// The merkle leaf of one account.
pub fn leaf(addr: &Address, account: &Account) -> Hash {
    Hash::digest_parts(&[&addr.0, &account.encode()])
}

/// Root over accounts in address order (a BTreeMap iterates sorted).
pub fn accounts_root(accounts: &BTreeMap<Address, Account>) -> Hash {
    let leaves: Vec<Hash> = accounts.iter().map(|(a, acc)| leaf(a, acc)).collect();
    merkle_root(&leaves)
}

/// App hash of the genesis state.
pub fn genesis_app_hash(accounts: &BTreeMap<Address, Account>) -> Hash {
    accounts_root(accounts)
}

/// The merkle leaf of one kvstore entry.
pub fn kv_leaf(key: &[u8], value: &[u8]) -> Hash {
    Hash::digest_parts(&[b"kv", &(key.len() as u32).to_be_bytes(), key, value])
}

/// App hash after block `height` wrote `write_set`.
pub fn block_app_hash(prev: &Hash, height: u64, write_set: &WriteSet) -> Hash {
    let leaves: Vec<Hash> = write_set
        .accounts
        .iter()
        .map(|(a, acc)| leaf(a, acc))
        .chain(write_set.kv.iter().map(|(k, v)| kv_leaf(k, v)))
        .collect();
    let root = merkle_root(&leaves);
    Hash::digest_parts(&[BLOCK_DOMAIN, &prev.0, &height.to_be_bytes(), &root.0])
}
