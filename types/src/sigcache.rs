//! The verified-signature cache of the sig-cache toggle: hashes of txs whose signature
//! verified (at CheckTx), so block execution need not verify them again.
//!
//! A tx hash covers the exact wire bytes, signature included, so a hit means these very bytes
//! were verified before. Bounded: the oldest entries are forgotten first.

use crate::hash::Hash;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A bounded set of tx hashes with verified signatures. Share it behind an `Arc`.
pub struct SigCache {
    inner: Mutex<Inner>,
    cap: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Inner {
    set: HashSet<Hash>,
    order: VecDeque<Hash>,
}

impl SigCache {
    /// A cache of at most `cap` hashes.
    pub fn new(cap: usize) -> SigCache {
        SigCache {
            inner: Mutex::new(Inner {
                set: HashSet::with_capacity(cap.min(1 << 20)),
                order: VecDeque::new(),
            }),
            cap: cap.max(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Records that `hash`'s signature verified.
    pub fn insert(&self, hash: Hash) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !g.set.insert(hash) {
            return;
        }
        g.order.push_back(hash);
        while g.order.len() > self.cap {
            if let Some(old) = g.order.pop_front() {
                g.set.remove(&old);
            }
        }
    }

    /// Whether `hash`'s signature verified before (counted as a hit or a miss).
    pub fn contains(&self, hash: &Hash) -> bool {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let hit = g.set.contains(hash);
        let c = if hit { &self.hits } else { &self.misses };
        c.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Lookups so far: (hits, misses).
    pub fn lookups(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Number of cached hashes.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set
            .len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_entries_are_forgotten_first() {
        let c = SigCache::new(2);
        let h = |i: u8| Hash::digest(&[i]);
        c.insert(h(1));
        c.insert(h(2));
        c.insert(h(1));
        c.insert(h(3));
        assert!(!c.contains(&h(1)));
        assert!(c.contains(&h(2)) && c.contains(&h(3)));
        assert_eq!(c.len(), 2);
    }
}
