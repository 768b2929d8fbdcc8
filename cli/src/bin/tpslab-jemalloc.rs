//! `tpslab-jemalloc`: the same command line with the Rust heap on jemalloc and its sampling
//! heap profiler on (`/debug/pprof/heap`). A second binary rather than a cargo feature, so both
//! build from one set of dependencies (one RocksDB build) and `experiment --allocators
//! system,jemalloc` finds it next to `tpslab` instead of building it.

use tikv_jemallocator::Jemalloc;
use tpslab_cli::alloc::Counting;

#[global_allocator]
static GLOBAL: Counting<Jemalloc> = Counting(Jemalloc);

/// jemalloc's start-up options (read by the prefixed build as `_rjem_malloc_conf`): sampling
/// heap profiler on, one sample per 512 KiB allocated on average (jemalloc_pprof's advice; a
/// few percent of allocation cost).
#[allow(non_upper_case_globals, unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"prof:true,prof_active:true,lg_prof_sample:19\0";

fn main() -> anyhow::Result<()> {
    tpslab_cli::main(tpslab_node::heap::Allocator::Jemalloc)
}
