//! compact-blocks: a proposal carries its block's header, last commit and tx hashes instead of
//! the txs; each peer rebuilds the block from its own mempool and fetches only the txs it
//! lacks. Everything here is pure (no network, no clock), so the reactor, the tests and the
//! fuzz target drive the same code.
//!
//! What a compact block may claim is checked before any tx is looked up: every hash is 32
//! bytes, their count is the header's `num_txs` and within `max_block_txs`, and their merkle
//! root is the header's `tx_root`. A fetched tx fills its slot only if it hashes to the
//! slot's hash, so the rebuilt block is exactly the one the proposer signed (same header,
//! same block hash); the rebuilt block then goes through the same `check_block` as a full
//! one, and its txs through the same execution checks as any other (one verdict).

use crate::invalid::{BlockFault, Invalid};
use std::sync::Arc;
use tpslab_types::block::tx_root_of;
use tpslab_types::pb;
use tpslab_types::tx::tx_hash;
use tpslab_types::Hash;

/// The compact form of `block`, whose tx hashes are `hashes` (in block order).
pub fn compact_of(block: &pb::Block, hashes: &[Hash]) -> pb::CompactBlock {
    pb::CompactBlock {
        header: block.header.clone(),
        tx_hashes: hashes.iter().map(|h| h.to_vec()).collect(),
        last_commit: block.last_commit.clone(),
    }
}

/// A compact block being rebuilt: the txs found so far, by slot.
#[derive(Debug)]
pub struct Assembly {
    header: pb::Header,
    last_commit: Option<pb::Commit>,
    hashes: Vec<Hash>,
    txs: Vec<Option<Arc<[u8]>>>,
    missing: usize,
}

impl Assembly {
    /// Checks what `c` claims (see the module doc) and fills every slot `lookup` knows
    /// (called once with all the hashes; the mempool answers under one lock).
    pub fn start(
        c: pb::CompactBlock,
        max_txs: usize,
        lookup: impl FnOnce(&[Hash]) -> Vec<Option<Arc<[u8]>>>,
    ) -> Result<Assembly, Invalid> {
        let header = c.header.ok_or(BlockFault::NoHeader)?;
        let n = c.tx_hashes.len();
        if n > max_txs {
            return Err(BlockFault::TooManyTxs {
                txs: n,
                max: max_txs,
            }
            .into());
        }
        if header.num_txs as usize != n {
            return Err(BlockFault::NumTxs.into());
        }
        let hashes = c
            .tx_hashes
            .iter()
            .map(|h| Hash::from_slice("compact block tx hash", h))
            .collect::<Result<Vec<Hash>, _>>()
            .map_err(|e| Invalid::Malformed {
                field: "compact block tx hash",
                reason: e.to_string(),
            })?;
        if tx_root_of(&hashes).0.as_slice() != header.tx_root.as_slice() {
            return Err(BlockFault::TxRoot.into());
        }
        let mut txs = lookup(&hashes);
        // A port that answered the wrong number of slots knows nothing we can place.
        if txs.len() != n {
            txs = vec![None; n];
        }
        let missing = txs.iter().filter(|t| t.is_none()).count();
        Ok(Assembly {
            header,
            last_commit: c.last_commit,
            hashes,
            txs,
            missing,
        })
    }

    /// The header's height.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Number of txs in the block.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the block has no txs.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Slots still empty, in block order.
    pub fn missing(&self) -> Vec<u32> {
        self.txs
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_none())
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// Number of slots still empty.
    pub fn missing_count(&self) -> usize {
        self.missing
    }

    /// Whether every tx is in place.
    pub fn is_complete(&self) -> bool {
        self.missing == 0
    }

    /// Fills slots from a peer's answer; returns how many it filled. A tx that is not the
    /// one its slot's hash names, or a slot outside the block, is the sender's lie: nothing
    /// of its answer is kept.
    pub fn fill(&mut self, r: &pb::BlockTxsResponse) -> Result<usize, Invalid> {
        let bad = |reason: String| Invalid::Malformed {
            field: "block txs response",
            reason,
        };
        if r.indexes.len() != r.txs.len() {
            return Err(bad(format!(
                "{} indexes for {} txs",
                r.indexes.len(),
                r.txs.len()
            )));
        }
        for (&i, tx) in r.indexes.iter().zip(&r.txs) {
            let Some(want) = self.hashes.get(i as usize) else {
                return Err(bad(format!(
                    "index {i} outside a block of {}",
                    self.hashes.len()
                )));
            };
            if tx_hash(tx) != *want {
                return Err(bad(format!(
                    "the tx at index {i} is not the one the block names"
                )));
            }
        }
        let mut filled = 0;
        for (&i, tx) in r.indexes.iter().zip(&r.txs) {
            let slot = &mut self.txs[i as usize];
            if slot.is_none() {
                *slot = Some(Arc::from(tx.as_slice()));
                filled += 1;
            }
        }
        self.missing -= filled;
        Ok(filled)
    }

    /// The whole block and its tx hashes, once complete (None while a slot is empty).
    pub fn finish(self) -> Option<(pb::Block, Vec<Hash>)> {
        let txs = self
            .txs
            .into_iter()
            .map(|t| t.map(|t| t.to_vec()))
            .collect::<Option<Vec<Vec<u8>>>>()?;
        let block = pb::Block {
            header: Some(self.header),
            txs,
            last_commit: self.last_commit,
        };
        Some((block, self.hashes))
    }
}

/// How many times over a block's txs one peer may have them served, per block: an honest
/// peer asks for what its mempool lacks, then again every `FETCH_RETRY` only while answers
/// are lost; more is a peer using us to amplify traffic (a request of a few bytes per tx
/// returns the txs themselves).
pub const SERVE_BUDGET_BLOCKS: usize = 4;

/// Txs served per (peer, block) at the current height, against [`SERVE_BUDGET_BLOCKS`].
#[derive(Debug, Default)]
pub struct ServeBudget {
    served: std::collections::HashMap<(tpslab_p2p::PeerId, Hash), usize>,
}

impl ServeBudget {
    /// Whether `n` more of a `block_len`-tx block's txs may go to `peer`; counts them if so.
    pub fn take(
        &mut self,
        peer: tpslab_p2p::PeerId,
        block: Hash,
        block_len: usize,
        n: usize,
    ) -> bool {
        let used = self.served.entry((peer, block)).or_insert(0);
        if *used + n > SERVE_BUDGET_BLOCKS * block_len.max(1) {
            return false;
        }
        *used += n;
        true
    }

    /// A new height: the old blocks are no longer served.
    pub fn clear(&mut self) {
        self.served.clear();
    }
}

/// What to answer a peer's request for some of `block`'s txs: each index once, those inside
/// the block only, cut into responses of at most `max_payload` bytes each (a response must
/// travel in one frame; a request listing every slot twice gets each tx once).
pub fn answer(
    block: &pb::Block,
    hash: &Hash,
    req: &pb::BlockTxsRequest,
    max_payload: usize,
) -> Vec<pb::BlockTxsResponse> {
    // Per tx: the tx's tag and length varint, and up to 5 bytes of packed index.
    const PER_TX: usize = 1 + 5 + 5;
    // height, block hash, the packed field's tag and length, the message wrappers.
    const FIXED: usize = 11 + 34 + 6 + 12;
    let height = block.header.as_ref().map_or(0, |h| h.height);
    let empty = || pb::BlockTxsResponse {
        height,
        block_hash: hash.to_vec(),
        indexes: Vec::new(),
        txs: Vec::new(),
    };
    let mut seen = vec![false; block.txs.len()];
    let mut out = Vec::new();
    let mut cur = empty();
    let mut size = FIXED;
    for &i in &req.indexes {
        let Some(tx) = block.txs.get(i as usize) else {
            continue;
        };
        if std::mem::replace(&mut seen[i as usize], true) {
            continue;
        }
        let cost = tx.len() + PER_TX;
        if !cur.txs.is_empty() && size + cost > max_payload {
            out.push(std::mem::replace(&mut cur, empty()));
            size = FIXED;
        }
        size += cost;
        cur.indexes.push(i);
        cur.txs.push(tx.clone());
    }
    if !cur.txs.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_a_block_a_few_times_over_and_no_more() {
        let mut b = ServeBudget::default();
        let (honest, greedy) = (tpslab_p2p::PeerId([1; 32]), tpslab_p2p::PeerId([2; 32]));
        let block = Hash::from_slice("h", &[7; 32]).unwrap();
        // An honest peer missing a fifth of 1000 txs, retrying a few times: always served.
        for _ in 0..10 {
            assert!(b.take(honest, block, 1000, 200));
        }
        // One asking for the whole block again and again: four times, then refused, without
        // touching the honest peer's budget or another block's.
        for _ in 0..4 {
            assert!(b.take(greedy, block, 1000, 1000));
        }
        assert!(!b.take(greedy, block, 1000, 1000));
        assert!(!b.take(greedy, block, 1000, 1));
        assert!(b.take(honest, block, 1000, 200));
        let other = Hash::from_slice("h", &[8; 32]).unwrap();
        assert!(b.take(greedy, other, 1000, 1000));
        b.clear();
        assert!(b.take(greedy, block, 1000, 1000));
    }
    use prost::Message;
    use tpslab_types::block::tx_root;

    fn block(n: usize) -> (pb::Block, Vec<Hash>) {
        let txs: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i}=v{i}").into_bytes()).collect();
        let hashes = txs.iter().map(|t| tx_hash(t)).collect();
        let header = pb::Header {
            height: 7,
            tx_root: tx_root(&txs).to_vec(),
            num_txs: n as u32,
            ..Default::default()
        };
        (
            pb::Block {
                header: Some(header),
                txs,
                last_commit: None,
            },
            hashes,
        )
    }

    /// A pool holding the txs at the even slots.
    fn evens(b: &pb::Block) -> impl FnOnce(&[Hash]) -> Vec<Option<Arc<[u8]>>> + '_ {
        move |hashes: &[Hash]| {
            (0..hashes.len())
                .map(|i| (i % 2 == 0).then(|| Arc::from(b.txs[i].as_slice())))
                .collect()
        }
    }

    #[test]
    fn a_peer_missing_txs_rebuilds_the_same_block_from_the_answers() {
        let (b, hashes) = block(9);
        let c = compact_of(&b, &hashes);
        let mut a = Assembly::start(c, 100, evens(&b)).unwrap();
        assert_eq!(a.missing(), [1, 3, 5, 7]);
        let req = pb::BlockTxsRequest {
            height: 7,
            block_hash: vec![0; 32],
            indexes: a.missing(),
        };
        // A tight budget cuts the answer into several responses.
        let answers = answer(&b, &Hash([0; 32]), &req, 80);
        assert!(answers.len() > 1, "{answers:?}");
        for r in &answers {
            assert!(r.encoded_len() <= 80, "{}", r.encoded_len());
            a.fill(r).unwrap();
        }
        assert!(a.is_complete());
        let (rebuilt, h) = a.finish().unwrap();
        assert_eq!(rebuilt, b);
        assert_eq!(h, hashes);
    }

    #[test]
    fn what_a_compact_block_claims_is_checked_before_any_lookup() {
        let (b, hashes) = block(4);
        let never = |_: &[Hash]| -> Vec<Option<Arc<[u8]>>> { panic!("looked up") };
        let mut c = compact_of(&b, &hashes);
        c.tx_hashes.swap(0, 1);
        assert_eq!(
            Assembly::start(c, 100, never).unwrap_err(),
            BlockFault::TxRoot.into()
        );
        let mut c = compact_of(&b, &hashes);
        c.tx_hashes[2].pop();
        assert!(matches!(
            Assembly::start(c, 100, never).unwrap_err(),
            Invalid::Malformed { .. }
        ));
        let mut c = compact_of(&b, &hashes);
        c.tx_hashes.pop();
        assert_eq!(
            Assembly::start(c, 100, never).unwrap_err(),
            BlockFault::NumTxs.into()
        );
        let c = compact_of(&b, &hashes);
        assert!(matches!(
            Assembly::start(c, 3, never).unwrap_err(),
            Invalid::Block(BlockFault::TooManyTxs { txs: 4, max: 3 })
        ));
        let mut c = compact_of(&b, &hashes);
        c.header = None;
        assert!(Assembly::start(c, 100, never).is_err());
    }

    #[test]
    fn a_lying_answer_fills_nothing() {
        let (b, hashes) = block(4);
        let mut a = Assembly::start(compact_of(&b, &hashes), 100, evens(&b)).unwrap();
        let lie = |indexes: Vec<u32>, txs: Vec<Vec<u8>>| pb::BlockTxsResponse {
            height: 7,
            block_hash: vec![],
            indexes,
            txs,
        };
        // Slot 3's tx offered for slot 1, with slot 1's right beside it: all refused.
        assert!(a
            .fill(&lie(vec![3, 1], vec![b.txs[1].clone(), b.txs[3].clone()]))
            .is_err());
        assert!(a.fill(&lie(vec![9], vec![b.txs[1].clone()])).is_err());
        assert!(a.fill(&lie(vec![1, 3], vec![b.txs[1].clone()])).is_err());
        assert_eq!(a.missing_count(), 2);
        // A repeated answer fills once.
        assert_eq!(
            a.fill(&lie(vec![1, 1], vec![b.txs[1].clone(), b.txs[1].clone()]))
                .unwrap(),
            1
        );
        assert_eq!(a.missing(), [3]);
        assert!(a.finish().is_none());
    }

    #[test]
    fn answers_skip_unknown_and_repeated_indexes() {
        let (b, _) = block(3);
        let req = pb::BlockTxsRequest {
            height: 7,
            block_hash: vec![],
            indexes: vec![2, 2, 99, 0, 2, u32::MAX],
        };
        let r = answer(&b, &Hash([1; 32]), &req, 1 << 20);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].indexes, [2, 0]);
        assert_eq!(r[0].txs, [b.txs[2].clone(), b.txs[0].clone()]);
    }
}
