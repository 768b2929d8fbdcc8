//! A bounded set of recently accepted tx hashes (FIFO eviction), so a tx cannot be admitted
//! twice while it is pending or shortly after it was committed.
//!
//! It keeps the first 8 bytes of each hash, not all 32. The set is probed four or five times
//! per tx (CheckTx twice, admission, commit, eviction), and at its default 200,000 entries
//! 32-byte keys made it ~14 MB per node (set plus FIFO): every probe a cache miss, the
//! cache's inserts 13.7 % of a validator's CPU in a kvstore profile at 15k tx/s. With 8-byte
//! keys it is ~4 MB. The cost is a false "duplicate": a new tx whose hash shares its first 64
//! bits with one of the remembered hashes, by chance 200,000 / 2^64 (~1e-14) per tx, and on
//! purpose only by grinding ~2^64 SHA-256s for one victim tx. A refusal here is this node's
//! mempool verdict only, never a block's: blocks are checked without this cache. The keys
//! still go through the keyed SipHash of `RandomState`, so nobody can aim txs at one bucket.

use std::collections::{HashSet, VecDeque};
use tpslab_types::Hash;

/// The part of a tx hash the cache keeps.
fn key(h: &Hash) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.0[..8]);
    u64::from_le_bytes(b)
}

pub(crate) struct SeenCache {
    cap: usize,
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl SeenCache {
    pub(crate) fn new(cap: usize) -> SeenCache {
        SeenCache {
            cap,
            set: HashSet::with_capacity(cap.min(1 << 20)),
            order: VecDeque::with_capacity(cap.min(1 << 20)),
        }
    }

    pub(crate) fn contains(&self, h: &Hash) -> bool {
        self.set.contains(&key(h))
    }

    pub(crate) fn insert(&mut self, h: Hash) {
        let k = key(&h);
        if self.cap == 0 || !self.set.insert(k) {
            return;
        }
        self.order.push_back(k);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    /// Forgets a hash (a tx evicted as invalid may be resubmitted once fixed state allows).
    pub(crate) fn remove(&mut self, h: &Hash) {
        // The stale entry in `order` is harmless: evicting it later removes nothing present,
        // unless the hash was re-inserted, in which case it leaves a little early.
        self.set.remove(&key(h));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_beyond_capacity() {
        let mut c = SeenCache::new(2);
        let h = |i: u8| Hash([i; 32]);
        c.insert(h(1));
        c.insert(h(2));
        c.insert(h(3));
        assert!(!c.contains(&h(1)));
        assert!(c.contains(&h(2)) && c.contains(&h(3)));
    }

    #[test]
    fn removed_hash_is_new_again() {
        let mut c = SeenCache::new(4);
        let h = Hash::digest(b"tx");
        c.insert(h);
        c.remove(&h);
        assert!(!c.contains(&h));
        c.insert(h);
        assert!(c.contains(&h));
    }
}
