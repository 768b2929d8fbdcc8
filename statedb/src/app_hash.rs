//! The app hash: a commitment every validator computes identically, and the same one whichever
//! engine cut the txs into blocks.
//!
//! Scheme (chained per-tx write hashing, v2):
//! - leaf(address, account) = SHA-256(address(20) || balance BE || nonce BE)
//! - genesis: `merkle_root(leaves of all genesis accounts, sorted by address)`
//! - each applied tx folds its writes in: `hash' = SHA-256("tpslab/app-hash/v2" || hash ||
//!   for each account it wrote, sorted: "a" || address || account || for each kv entry it
//!   wrote, sorted: "k" || u32 BE len(key) || key || u32 BE len(value) || value)`, the final
//!   value of each key when a tx wrote it twice. A failed tx wrote nothing and folds nothing.
//! - the app hash after block h is the hash after its last applied tx (an empty block, or one
//!   whose txs all failed, leaves it unchanged).
//!
//! Two nodes agree on the app hash exactly when they started from the same genesis and applied
//! the same sequence of per-tx writes, which (state being genesis plus the writes) means they
//! hold the same state. Block boundaries and heights are deliberately not hashed: a BFT chain
//! (a block every height, empty ones too) and a Raft chain (a block only when txs are pending)
//! that ran the same txs in the same order show the same app hash. The cost is one SHA-256 per
//! applied tx over the few dozen bytes it wrote, independent of the number of accounts.
//!
//! What it is not: a state commitment with inclusion proofs (an IAVL-like tree costs O(k log N)
//! per block), nor recomputable from a state snapshot alone: a snapshot carries its app hash.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use tpslab_types::hash::merkle_root;
use tpslab_types::{Account, Address, Hash};

const TX_DOMAIN: &[u8] = b"tpslab/app-hash/v2";

/// The merkle leaf of one account.
pub fn leaf(addr: &Address, account: &Account) -> Hash {
    Hash::digest_parts(&[&addr.0, &account.encode()])
}

/// App hash of the genesis state: the merkle root over its accounts in address order.
pub fn genesis_app_hash(accounts: &BTreeMap<Address, Account>) -> Hash {
    let leaves: Vec<Hash> = accounts.iter().map(|(a, acc)| leaf(a, acc)).collect();
    merkle_root(&leaves)
}

/// The app hash after one applied tx, given the hash before and the tx's final writes, each
/// list sorted by key with no key twice.
pub fn fold_tx(prev: &Hash, accounts: &[(Address, Account)], kv: &[(Vec<u8>, Vec<u8>)]) -> Hash {
    let mut h = Sha256::new();
    h.update(TX_DOMAIN);
    h.update(prev.0);
    for (addr, acc) in accounts {
        h.update(b"a");
        h.update(addr.0);
        h.update(acc.encode());
    }
    for (k, v) in kv {
        h.update(b"k");
        h.update((k.len() as u32).to_be_bytes());
        h.update(k);
        h.update((v.len() as u32).to_be_bytes());
        h.update(v);
    }
    Hash(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(from: u8, to: u8, amount: u64) -> Vec<(Address, Account)> {
        let acc = |balance, nonce| Account { balance, nonce };
        vec![
            (Address([from; 20]), acc(100 - amount, 1)),
            (Address([to; 20]), acc(100 + amount, 0)),
        ]
    }

    fn fold(prev: &Hash, accounts: &[(Address, Account)]) -> Hash {
        fold_tx(prev, accounts, &[])
    }

    #[test]
    fn the_fold_depends_on_order_and_content() {
        let g = Hash::digest(b"genesis");
        let (a, b) = (transfer(1, 2, 5), transfer(3, 4, 7));
        let ab = fold(&fold(&g, &a), &b);
        assert_ne!(ab, fold(&fold(&g, &b), &a), "order is part of the history");
        assert_ne!(ab, fold(&fold(&g, &a), &transfer(3, 4, 8)));
        assert_eq!(ab, fold(&fold(&g, &a.clone()), &b.clone()));
    }

    #[test]
    fn kv_lengths_are_framed() {
        // ("ab", "c") and ("a", "bc") must not hash alike.
        let entry = |k: &[u8], v: &[u8]| vec![(k.to_vec(), v.to_vec())];
        let (x, y) = (entry(b"ab", b"c"), entry(b"a", b"bc"));
        assert_ne!(fold_tx(&Hash::ZERO, &[], &x), fold_tx(&Hash::ZERO, &[], &y));
    }
}
