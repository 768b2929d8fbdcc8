//! The counting global allocator: wraps the binary's allocator (system or jemalloc) and counts
//! every allocation, exported on the node's `/metrics` (see `tpslab_node::alloc`). One relaxed
//! atomic add per allocation.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use tpslab_node::alloc::COUNTERS;

/// `A` with every allocation counted; a binary installs it with `#[global_allocator]`.
pub struct Counting<A>(pub A);

// SAFETY: every method forwards to the inner allocator with the caller's arguments unchanged; counting
// touches only atomics and never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNTERS.record(layout.size());
        // SAFETY: forwarded from our caller, who upholds `GlobalAlloc::alloc`'s contract.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        COUNTERS.record(layout.size());
        // SAFETY: as above.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNTERS.record(new_size);
        // SAFETY: as above.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}
