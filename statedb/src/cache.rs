//! The read-cache toggle's tuned path: committed accounts kept in memory, so execution,
//! CheckTx and the mempool recheck stop going to RocksDB for every account access.
//!
//! The cache mirrors what RocksDB holds: writers update it right after their RocksDB write.
//! A reader that missed fills it only if no write happened to its shard between its RocksDB
//! read and the fill (an epoch check), so a stale value read before a commit can never be
//! cached after it.
//!
//! The sharded-state toggle picks the lock layout. Naive: one RwLock over the whole map (the
//! global `sync.RWMutex` around a state map that the seed article found contended): a block
//! commit holds it while it writes every touched account, and every CheckTx read and miss-fill
//! queues behind it. Tuned: [`SHARDS`] independent locks chosen by address, each held only
//! for its own accounts.

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tpslab_types::{Account, Address};

/// Most accounts kept; past it a shard starts over (simple, and far above test chains).
const MAX_ENTRIES: usize = 1 << 20;
/// Lock shards with the sharded-state toggle on.
pub(crate) const SHARDS: usize = 64;

pub(crate) struct AccountCache {
    shards: Vec<Shard>,
    /// Nanoseconds spent waiting to acquire a shard lock (only contended acquisitions are
    /// timed).
    wait_nanos: AtomicU64,
}

#[derive(Default)]
struct Shard {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Address, Account>,
    epoch: u64,
}

impl AccountCache {
    /// A cache with one lock (`sharded = false`) or [`SHARDS`] locks.
    pub(crate) fn new(sharded: bool) -> AccountCache {
        let n = if sharded { SHARDS } else { 1 };
        AccountCache {
            shards: (0..n).map(|_| Shard::default()).collect(),
            wait_nanos: AtomicU64::new(0),
        }
    }

    fn shard_of(&self, addr: &Address) -> usize {
        // Addresses are hash outputs, so their first bytes are uniform.
        u16::from_le_bytes([addr.0[0], addr.0[1]]) as usize % self.shards.len()
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, Inner> {
        let lock = &self.shards[shard].inner;
        if let Some(g) = lock.try_read() {
            return g;
        }
        let t = Instant::now();
        let g = lock.read();
        self.waited(t);
        g
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Inner> {
        let lock = &self.shards[shard].inner;
        if let Some(g) = lock.try_write() {
            return g;
        }
        let t = Instant::now();
        let g = lock.write();
        self.waited(t);
        g
    }

    fn waited(&self, since: Instant) {
        let nanos = since.elapsed().as_nanos() as u64;
        self.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Total time spent waiting for the cache locks, seconds.
    pub(crate) fn lock_wait_seconds(&self) -> f64 {
        self.wait_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// The cached account, or the epoch to pass to [`AccountCache::fill`] after reading it.
    pub(crate) fn get(&self, addr: &Address) -> Result<Account, u64> {
        let g = self.read(self.shard_of(addr));
        g.map.get(addr).copied().ok_or(g.epoch)
    }

    /// Caches a value read from RocksDB at `epoch`, unless a write to its shard happened since.
    pub(crate) fn fill(&self, epoch: u64, addr: Address, acc: Account) {
        let limit = MAX_ENTRIES / self.shards.len();
        let mut g = self.write(self.shard_of(&addr));
        if g.epoch == epoch {
            if g.map.len() >= limit {
                g.map.clear();
            }
            g.map.insert(addr, acc);
        }
    }

    /// Records values just written to RocksDB: each shard's accounts under one acquisition
    /// of that shard's lock (with one shard: the whole block under the global lock).
    pub(crate) fn written<'a>(&self, accounts: impl Iterator<Item = (&'a Address, Account)>) {
        let mut by_shard: Vec<Vec<(Address, Account)>> = vec![Vec::new(); self.shards.len()];
        for (a, acc) in accounts {
            by_shard[self.shard_of(a)].push((*a, acc));
        }
        for (shard, entries) in by_shard.into_iter().enumerate() {
            if entries.is_empty() {
                continue;
            }
            let mut g = self.write(shard);
            g.epoch += 1;
            g.map.extend(entries);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::Duration;

    /// Two addresses the sharded layout puts in different shards.
    fn two_shards(cache: &AccountCache) -> (Address, Address) {
        let a = Address([0; 20]);
        let mut b = Address([0; 20]);
        b.0[0] = 1;
        assert_ne!(cache.shard_of(&a), cache.shard_of(&b));
        (a, b)
    }

    /// Reads `addr` on another thread while the caller holds a write lock; the receiver gets
    /// the result once the read got through.
    fn read_elsewhere(
        cache: &Arc<AccountCache>,
        addr: Address,
    ) -> mpsc::Receiver<Result<Account, u64>> {
        let (tx, rx) = mpsc::channel();
        let cache = cache.clone();
        std::thread::spawn(move || tx.send(cache.get(&addr)).unwrap());
        rx
    }

    #[test]
    fn a_commit_holding_one_shard_does_not_block_reads_of_another() {
        let cache = Arc::new(AccountCache::new(true));
        let (a, b) = two_shards(&cache);
        let held = cache.write(cache.shard_of(&a));
        // Generous: it fails only if the read is blocked (or the machine stalls for 30 s).
        let got = read_elsewhere(&cache, b).recv_timeout(Duration::from_secs(30));
        assert_eq!(
            got,
            Ok(Err(0)),
            "a read of another shard waited for the writer"
        );
        drop(held);
        assert_eq!(
            cache.lock_wait_seconds(),
            0.0,
            "no acquisition was contended"
        );
    }

    #[test]
    fn with_one_global_lock_a_commit_blocks_every_read_and_the_wait_is_counted() {
        let cache = Arc::new(AccountCache::new(false));
        let mut b = Address([0; 20]);
        b.0[0] = 1;
        let acc = Account {
            balance: 7,
            nonce: 1,
        };
        cache.written([(&b, acc)].into_iter());
        // A reader preempted between starting and its try-read could find the lock already
        // free (nothing counted); a few attempts make that vanishingly unlikely.
        for _ in 0..5 {
            let held = cache.write(0);
            let rx = read_elsewhere(&cache, b);
            // A blocked reader never sends, so this times out whatever the machine's speed.
            assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
            drop(held);
            let got = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("read after release");
            assert_eq!(got, Ok(acc));
            if cache.lock_wait_seconds() > 0.0 {
                return;
            }
        }
        panic!("the blocked reads' waits were never counted");
    }
}
