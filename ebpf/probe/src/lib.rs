//! tpslab-probe: loads tpslab's eBPF programs (built from `ebpf/probes`) into the kernel,
//! attaches them to a set of processes (the validators) and reads back log2 histograms and
//! counters: run-queue latency, off-CPU time, syscalls, the node's own function latencies
//! (uprobes on the `tpslab_probe_*` symbols) and one ring-buffer record per committed block.
//!
//! The kernel side only has tracepoints and uprobes here (no kprobes, no fentry), so every
//! probe is built on those; tracepoint field offsets are checked against tracefs at load time.
// unsafe only where the kernel interface needs it (raising RLIMIT_MEMLOCK, reading maps of
// plain-old-data records), each block allowed at its site.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

mod attach;
mod env;
mod error;
mod hist;
mod kind;
mod report;

pub use attach::{Probes, Target};
pub use env::available;
pub use error::ProbeError;
pub use hist::Log2Hist;
pub use kind::ProbeKind;
pub use report::{BlockRecord, FuncStat, OffCpu, ProbeReport, ProcReport, SyscallStat};
