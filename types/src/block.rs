//! Block and commit hashing.

use crate::hash::{merkle_root, Hash};
use crate::pb;
use crate::tx::tx_hash;
use prost::Message;

/// Block hash: SHA-256 of the prost encoding of the header (scalar and bytes fields only,
/// so the encoding is deterministic).
pub fn block_hash(header: &pb::Header) -> Hash {
    Hash::digest(&header.encode_to_vec())
}

/// Merkle root of the tx hashes, in block order.
pub fn tx_root(txs: &[Vec<u8>]) -> Hash {
    let hashes: Vec<Hash> = txs.iter().map(|t| tx_hash(t)).collect();
    tx_root_of(&hashes)
}

/// Merkle root of tx hashes already computed, in block order (the same root as [`tx_root`]).
pub fn tx_root_of(hashes: &[Hash]) -> Hash {
    merkle_root(hashes)
}

/// Hash of a commit (zero for "no commit", i.e. the first block).
pub fn commit_hash(commit: Option<&pb::Commit>) -> Hash {
    match commit {
        Some(c) => Hash::digest(&c.encode_to_vec()),
        None => Hash::ZERO,
    }
}
