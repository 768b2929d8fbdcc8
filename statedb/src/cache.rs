//! The read-cache toggle's tuned path: committed accounts kept in memory, so execution,
//! CheckTx and the mempool recheck stop going to RocksDB for every account access.
//!
//! The cache mirrors what RocksDB holds: writers update it right after their RocksDB write.
//! A reader that missed fills it only if no write happened between its RocksDB read and the
//! fill (an epoch check), so a stale value read before a commit can never be cached after it.

use parking_lot::RwLock;
use std::collections::HashMap;
use tpslab_types::{Account, Address};

/// Most accounts kept; past it the cache starts over (simple, and far above test chains).
const MAX_ENTRIES: usize = 1 << 20;

#[derive(Default)]
pub(crate) struct AccountCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Address, Account>,
    epoch: u64,
}

impl AccountCache {
    /// The cached account, or the epoch to pass to [`AccountCache::fill`] after reading it.
    pub(crate) fn get(&self, addr: &Address) -> Result<Account, u64> {
        let g = self.inner.read();
        g.map.get(addr).copied().ok_or(g.epoch)
    }

    /// Caches a value read from RocksDB at `epoch`, unless a write happened since.
    pub(crate) fn fill(&self, epoch: u64, addr: Address, acc: Account) {
        let mut g = self.inner.write();
        if g.epoch == epoch {
            if g.map.len() >= MAX_ENTRIES {
                g.map.clear();
            }
            g.map.insert(addr, acc);
        }
    }

    /// Records values just written to RocksDB.
    pub(crate) fn written<'a>(&self, accounts: impl Iterator<Item = (&'a Address, Account)>) {
        let mut g = self.inner.write();
        g.epoch += 1;
        for (a, acc) in accounts {
            g.map.insert(*a, acc);
        }
    }
}
