//! Gossiped txs the pool had no room for, kept aside (bounded, oldest out first) so a compact
//! proposal carrying them is rebuilt without fetching them from the proposer: under
//! overload, full mempools refused a quarter of the txs later proposed to them
//! (`scripts/bench-kvstore`: 26 % of block txs fetched at 50k tx/s offered; none with it). They were never checked here, so nothing else uses them: a block
//! rebuilt from them goes through the same block checks and execution as a fetched one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tpslab_types::Hash;

/// The side pool: at most `max_txs` txs and `max_bytes` bytes.
#[derive(Debug)]
pub(super) struct SidePool {
    txs: HashMap<Hash, Arc<[u8]>>,
    order: VecDeque<Hash>,
    bytes: usize,
    max_txs: usize,
    max_bytes: usize,
}

impl SidePool {
    pub(super) fn new(max_txs: usize, max_bytes: usize) -> Self {
        SidePool {
            txs: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_txs,
            max_bytes,
        }
    }

    /// Keeps `raw` under `hash`, dropping the oldest to make room; a tx larger than the
    /// whole side pool is not kept.
    pub(super) fn keep(&mut self, hash: Hash, raw: &[u8]) {
        if raw.len() > self.max_bytes || self.max_txs == 0 || self.txs.contains_key(&hash) {
            return;
        }
        while self.txs.len() >= self.max_txs || self.bytes + raw.len() > self.max_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(t) = self.txs.remove(&old) {
                self.bytes -= t.len();
            }
        }
        self.bytes += raw.len();
        self.txs.insert(hash, Arc::from(raw));
        self.order.push_back(hash);
    }

    pub(super) fn get(&self, hash: &Hash) -> Option<Arc<[u8]>> {
        self.txs.get(hash).cloned()
    }

    pub(super) fn len(&self) -> usize {
        self.txs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> Hash {
        Hash::from_slice("h", &[i; 32]).unwrap()
    }

    #[test]
    fn bounded_by_count_and_bytes_oldest_out_first() {
        let mut s = SidePool::new(3, 100);
        for i in 0..5 {
            s.keep(h(i), &[i; 10]);
        }
        assert_eq!(s.len(), 3);
        assert!(s.get(&h(0)).is_none() && s.get(&h(1)).is_none());
        assert_eq!(&*s.get(&h(4)).unwrap(), &[4; 10]);
        // Bytes: a 90-byte tx pushes out the oldest until it fits (30 + 90 > 100: two go).
        s.keep(h(9), &[9; 90]);
        assert_eq!(s.len(), 2);
        assert!(s.get(&h(3)).is_none() && s.get(&h(4)).is_some() && s.get(&h(9)).is_some());
        // Too large for the whole pool: not kept, nothing evicted.
        s.keep(h(10), &[0; 101]);
        assert!(s.get(&h(10)).is_none() && s.get(&h(9)).is_some());
        // The same tx twice is kept once.
        s.keep(h(9), &[9; 90]);
        assert_eq!(s.len(), 2);
    }
}
