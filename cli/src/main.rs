//! `tpslab`: the command line with the Rust heap on the system allocator (glibc malloc).

use std::alloc::System;
use tpslab_cli::alloc::Counting;

#[global_allocator]
static GLOBAL: Counting<System> = Counting(System);

fn main() -> anyhow::Result<()> {
    tpslab_cli::main(tpslab_node::heap::Allocator::System)
}
