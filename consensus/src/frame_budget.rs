//! The frame budget: how many bytes the largest proposal and the largest block-sync record
//! take on the wire under a chain's block limits, so a node whose blocks could not travel
//! refuses to start (naming the fields) instead of halting the chain the first time a full
//! block is proposed: a proposal over `p2p.max_frame_bytes` is dropped by every peer, and a
//! dropped proposal is re-sent, refused again, forever.
//!
//! The bounds are exact up to a few bytes of length varints: the encoding of a skeleton
//! message with every scalar at its widest and every fixed-size field full, plus the
//! worst case of the txs (each costs a tag and a length varint besides its bytes), plus the
//! growth of the enclosing length varints.

use tpslab_types::pb;

/// What decides the size of a block on the wire.
#[derive(Clone, Copy, Debug)]
pub struct WireLimits {
    /// Length of the chain id (it is in every header).
    pub chain_id_len: usize,
    /// Validators (each may have a signature in a block's `last_commit`).
    pub validators: usize,
    /// `consensus.max_block_txs`.
    pub max_block_txs: usize,
    /// `consensus.max_block_bytes` (sum of the txs' bytes).
    pub max_block_bytes: usize,
}

/// Each enclosing message's length varint can grow by at most this when the txs are added.
const VARINT_GROWTH: usize = 5;

fn full_commit(l: &WireLimits) -> pb::Commit {
    pb::Commit {
        height: u64::MAX,
        round: u32::MAX,
        block_hash: vec![0xff; 32],
        signatures: (0..l.validators)
            .map(|_| pb::CommitSig {
                validator: vec![0xff; 32],
                timestamp_unix_nanos: u64::MAX,
                signature: vec![0xff; 64],
            })
            .collect(),
    }
}

/// A block with the widest header and a full last commit, and no txs.
fn skeleton_block(l: &WireLimits) -> pb::Block {
    pb::Block {
        header: Some(pb::Header {
            chain_id: "x".repeat(l.chain_id_len),
            height: u64::MAX,
            time_unix_nanos: u64::MAX,
            prev_block_hash: vec![0xff; 32],
            tx_root: vec![0xff; 32],
            app_hash: vec![0xff; 32],
            proposer: vec![0xff; 32],
            num_txs: u32::MAX,
            last_commit_hash: vec![0xff; 32],
        }),
        txs: Vec::new(),
        last_commit: Some(full_commit(l)),
    }
}

/// The most the txs can add to a block: their bytes, and per tx a tag and a length varint.
fn txs_bound(l: &WireLimits) -> usize {
    let per_tx = 1 + prost::length_delimiter_len(l.max_block_bytes);
    l.max_block_bytes + l.max_block_txs * per_tx
}

/// Largest encoded `ConsensusMessage` carrying a proposal (the payload of its frame).
pub fn max_proposal_payload(l: &WireLimits) -> usize {
    use prost::Message;
    let msg = pb::ConsensusMessage {
        msg: Some(pb::consensus_message::Msg::Proposal(pb::Proposal {
            height: u64::MAX,
            round: u32::MAX,
            pol_round: i64::MIN,
            block: Some(skeleton_block(l)),
            block_hash: vec![0xff; 32],
            timestamp_unix_nanos: u64::MAX,
            proposer: vec![0xff; 32],
            signature: vec![0xff; 64],
            compact: None,
        })),
    };
    // Block inside Proposal inside ConsensusMessage: two length varints grow.
    let full = msg.encoded_len() + txs_bound(l) + 2 * VARINT_GROWTH;
    // compact-blocks: the same header and commit, and per tx a 32-byte hash with its tag
    // and length (more than a tx of under 32 bytes costs in full).
    let compact = msg.encoded_len() + l.max_block_txs * (1 + 1 + 32) + 2 * VARINT_GROWTH;
    full.max(compact)
}

/// Largest encoded `BlockRecord` (a committed block as stored and synced).
pub fn max_record_len(l: &WireLimits) -> usize {
    use prost::Message;
    let rec = pb::BlockRecord {
        block: Some(skeleton_block(l)),
        block_hash: vec![0xff; 32],
        commit: Some(full_commit(l)),
        result_app_hash: vec![0xff; 32],
        tx_codes: Vec::new(),
    };
    // tx_codes: packed, at most 5 bytes per code (u32 varint), plus its tag and length.
    let codes = 1 + VARINT_GROWTH + 5 * l.max_block_txs;
    rec.encoded_len() + txs_bound(l) + VARINT_GROWTH + codes
}

/// Bytes a `SyncMessage` carrying a response adds around its records (each record also
/// costs [`record_overhead`]).
pub const SYNC_RESPONSE_OVERHEAD: usize = 1 + VARINT_GROWTH;

/// What one record costs inside a `SyncResponse` besides its own bytes.
pub fn record_overhead(record_len: usize) -> usize {
    1 + prost::length_delimiter_len(record_len)
}

/// Largest sync response payload holding one block of the largest size.
pub fn max_one_block_sync_payload(l: &WireLimits) -> usize {
    let r = max_record_len(l);
    SYNC_RESPONSE_OVERHEAD + record_overhead(r) + r
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn limits(txs: usize, bytes: usize) -> WireLimits {
        WireLimits {
            chain_id_len: 12,
            validators: 4,
            max_block_txs: txs,
            max_block_bytes: bytes,
        }
    }

    /// Real maximal messages never exceed the bound, and the bound is tight (a few bytes
    /// per tx at most over the real size).
    #[test]
    fn the_bounds_hold_for_real_maximal_blocks() {
        for (n, size) in [
            (1usize, 1usize),
            (10, 100),
            (5000, 200),
            (3, 1 << 20),
            (200, 40_000),
        ] {
            let l = limits(n, n * size);
            let mut block = skeleton_block(&l);
            block.txs = (0..n).map(|_| vec![0xab; size]).collect();
            let msg = pb::ConsensusMessage {
                msg: Some(pb::consensus_message::Msg::Proposal(pb::Proposal {
                    height: u64::MAX,
                    round: u32::MAX,
                    pol_round: -1,
                    block: Some(block.clone()),
                    block_hash: vec![1; 32],
                    timestamp_unix_nanos: u64::MAX,
                    proposer: vec![1; 32],
                    signature: vec![1; 64],
                    compact: None,
                })),
            };
            // The larger of the whole and the compact proposal (txs under 32 bytes cost
            // less whole than as hashes).
            let compact = match &msg.msg {
                Some(pb::consensus_message::Msg::Proposal(p)) => {
                    let hashes: Vec<tpslab_types::Hash> = block
                        .txs
                        .iter()
                        .map(|t| tpslab_types::tx::tx_hash(t))
                        .collect();
                    pb::ConsensusMessage {
                        msg: Some(pb::consensus_message::Msg::Proposal(pb::Proposal {
                            block: None,
                            compact: Some(crate::compact::compact_of(&block, &hashes)),
                            ..p.clone()
                        })),
                    }
                    .encoded_len()
                }
                _ => 0,
            };
            let real = msg.encoded_len().max(compact);
            let bound = max_proposal_payload(&l);
            assert!(real <= bound, "{n} x {size}: {real} > {bound}");
            assert!(
                bound - real <= 32 + 4 * n,
                "{n} x {size}: bound {bound}, real {real}"
            );

            let rec = pb::BlockRecord {
                block: Some(block),
                block_hash: vec![1; 32],
                commit: Some(full_commit(&l)),
                result_app_hash: vec![1; 32],
                tx_codes: vec![u32::MAX; n],
            };
            let resp = pb::SyncMessage {
                msg: Some(pb::sync_message::Msg::Response(pb::SyncResponse {
                    blocks: vec![rec],
                })),
            };
            assert!(resp.encoded_len() <= max_one_block_sync_payload(&l));
        }
    }
}
