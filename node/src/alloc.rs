//! Allocation counters for `/metrics` (`process_allocations_total`,
//! `process_allocated_bytes_total`): the `tpslab` binary's global allocator calls
//! [`AllocCounters::record`] on every allocation, so allocations per committed tx can be read
//! from outside, per experiment step. A library user without that allocator sees zeros.

use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide allocation counts.
pub struct AllocCounters {
    allocs: AtomicU64,
    bytes: AtomicU64,
}

/// The counters the binary's allocator feeds.
pub static COUNTERS: AllocCounters = AllocCounters {
    allocs: AtomicU64::new(0),
    bytes: AtomicU64::new(0),
};

impl AllocCounters {
    /// Counts one allocation (or reallocation) of `size` bytes.
    #[inline]
    pub fn record(&self, size: usize) {
        self.allocs.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size as u64, Ordering::Relaxed);
    }

    /// Allocations so far.
    pub fn allocations(&self) -> u64 {
        self.allocs.load(Ordering::Relaxed)
    }

    /// Bytes allocated so far (not net of frees).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}
