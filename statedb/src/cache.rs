//! The read-cache toggle's tuned path: committed accounts kept in memory, so execution,
//! CheckTx and the mempool recheck stop going to RocksDB for every account access.
//!
//! The cache mirrors what RocksDB holds: writers update it right after their RocksDB write.
//! A reader that missed fills it only if no write happened between its RocksDB read and the
//! fill (an epoch check), so a stale value read before a commit can never be cached after it.

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tpslab_types::{Account, Address};

/// Most accounts kept; past it the cache starts over (simple, and far above test chains).
const MAX_ENTRIES: usize = 1 << 20;

#[derive(Default)]
pub(crate) struct AccountCache {
    inner: RwLock<Inner>,
    /// Nanoseconds spent waiting to acquire `inner` (only contended acquisitions are timed).
    wait_nanos: AtomicU64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Address, Account>,
    epoch: u64,
}

impl AccountCache {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        if let Some(g) = self.inner.try_read() {
            return g;
        }
        let t = Instant::now();
        let g = self.inner.read();
        self.waited(t);
        g
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        if let Some(g) = self.inner.try_write() {
            return g;
        }
        let t = Instant::now();
        let g = self.inner.write();
        self.waited(t);
        g
    }

    fn waited(&self, since: Instant) {
        let nanos = since.elapsed().as_nanos() as u64;
        self.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Total time spent waiting for the cache lock, seconds.
    pub(crate) fn lock_wait_seconds(&self) -> f64 {
        self.wait_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// The cached account, or the epoch to pass to [`AccountCache::fill`] after reading it.
    pub(crate) fn get(&self, addr: &Address) -> Result<Account, u64> {
        let g = self.read();
        g.map.get(addr).copied().ok_or(g.epoch)
    }

    /// Caches a value read from RocksDB at `epoch`, unless a write happened since.
    pub(crate) fn fill(&self, epoch: u64, addr: Address, acc: Account) {
        let mut g = self.write();
        if g.epoch == epoch {
            if g.map.len() >= MAX_ENTRIES {
                g.map.clear();
            }
            g.map.insert(addr, acc);
        }
    }

    /// Records values just written to RocksDB.
    pub(crate) fn written<'a>(&self, accounts: impl Iterator<Item = (&'a Address, Account)>) {
        let mut g = self.write();
        g.epoch += 1;
        for (a, acc) in accounts {
            g.map.insert(*a, acc);
        }
    }
}
