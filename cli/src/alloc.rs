//! The global allocator: the system allocator (or jemalloc, with the `jemalloc` feature) plus
//! a count of every allocation, exported on the node's `/metrics` (see `tpslab_node::alloc`).
//! One relaxed atomic add per allocation.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use tpslab_node::alloc::COUNTERS;

#[cfg(not(feature = "jemalloc"))]
use std::alloc::System as Inner;
#[cfg(feature = "jemalloc")]
use tikv_jemallocator::Jemalloc as Inner;

/// jemalloc's start-up options (read by the prefixed build as `_rjem_malloc_conf`): sampling
/// heap profiler on, one sample per 512 KiB allocated on average (jemalloc_pprof's advice; a
/// few percent of allocation cost), for `/debug/pprof/heap`.
#[cfg(feature = "jemalloc")]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"prof:true,prof_active:true,lg_prof_sample:19\0";

pub struct Counting;

// SAFETY: every method forwards to the inner allocator with the caller's arguments unchanged; counting
// touches only atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNTERS.record(layout.size());
        // SAFETY: forwarded from our caller, who upholds `GlobalAlloc::alloc`'s contract.
        unsafe { Inner.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        COUNTERS.record(layout.size());
        // SAFETY: as above.
        unsafe { Inner.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { Inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNTERS.record(new_size);
        // SAFETY: as above.
        unsafe { Inner.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;
