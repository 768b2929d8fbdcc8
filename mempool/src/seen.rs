//! A bounded set of recently accepted tx hashes (FIFO eviction), so a tx cannot be admitted
//! twice while it is pending or shortly after it was committed.

use std::collections::{HashSet, VecDeque};
use tpslab_types::Hash;

pub(crate) struct SeenCache {
    cap: usize,
    set: HashSet<Hash>,
    order: VecDeque<Hash>,
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
        self.set.contains(h)
    }

    pub(crate) fn insert(&mut self, h: Hash) {
        if self.cap == 0 || !self.set.insert(h) {
            return;
        }
        self.order.push_back(h);
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
        self.set.remove(h);
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
}
