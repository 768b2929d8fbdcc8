//! tpslab's eBPF programs: run-queue latency, off-CPU time, syscall counts and latency,
//! function latency of the node's exported probe points, network receive, TCP retransmits
//! and direct reclaim, each only for the processes the collector put in `PIDS`.
//!
//! rustc emits no CO-RE relocations, so tracepoint fields are read at fixed offsets; the
//! collector checks them against /sys/kernel/tracing/events/*/format before attaching.
#![no_std]
#![no_main]

mod maps;
mod probes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
