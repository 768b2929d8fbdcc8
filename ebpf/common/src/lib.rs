//! The layout contract between tpslab's eBPF probes (`ebpf/probes`, built for the BPF target)
//! and the userspace collector (`tpslab-probe`): map sizes, indices and `repr(C)` records.
//! Both sides compute map indices with the functions here, so they cannot drift apart.
#![no_std]

/// Most processes (validators) one probe set follows.
pub const MAX_PROCS: u32 = 16;
/// log2 buckets per histogram (bucket `b` holds values in `[2^b, 2^(b+1))`, 0 holds 0 and 1).
pub const BUCKETS: u32 = 64;

/// Off-CPU classes, from the state a thread was switched out in.
pub const OFF_SLEEPING: u32 = 0;
/// Uninterruptible (D state): waiting on I/O or a kernel lock.
pub const OFF_BLOCKED: u32 = 1;
/// Number of off-CPU classes.
pub const OFF_CLASSES: u32 = 2;

/// The node functions timed by uprobe/uretprobe pairs, by their exported symbol; the index is
/// the function id used in map indices.
pub const FUNCS: [&str; 4] = [
    "tpslab_probe_commit_block",
    "tpslab_probe_check_txs",
    "tpslab_probe_verify_batch",
    "tpslab_probe_write_batch",
];
/// Number of timed functions.
pub const NFUNCS: u32 = FUNCS.len() as u32;

/// x86_64 syscall numbers whose latency gets a histogram (all syscalls get count and total).
pub const TRACKED_SYSCALLS: [u32; 10] = [
    74,  // fsync
    75,  // fdatasync
    1,   // write
    20,  // writev
    44,  // sendto
    45,  // recvfrom
    232, // epoll_wait
    281, // epoll_pwait
    202, // futex
    0,   // read
];
/// Number of tracked syscalls.
pub const NTRACKED: u32 = TRACKED_SYSCALLS.len() as u32;

/// Per-process counters in the `COUNTERS` array: `slot * NCOUNTERS + counter`.
pub const C_ONCPU_NS: u32 = 0;
/// Nanoseconds off CPU while sleeping.
pub const C_OFF_SLEEP_NS: u32 = 1;
/// Nanoseconds off CPU while blocked (D state).
pub const C_OFF_BLOCK_NS: u32 = 2;
/// Packets received in the process's context (net:netif_receive_skb).
pub const C_NET_RX: u32 = 3;
/// TCP retransmits in the process's context (tcp:tcp_retransmit_skb).
pub const C_TCP_RETRANS: u32 = 4;
/// Direct reclaims entered (vmscan:mm_vmscan_direct_reclaim_begin).
pub const C_RECLAIMS: u32 = 5;
/// Nanoseconds in direct reclaim.
pub const C_RECLAIM_NS: u32 = 6;
/// Run-queue waits recorded.
pub const C_RUNQ_NS: u32 = 7;
/// Counters per process.
pub const NCOUNTERS: u32 = 8;

/// Index of bucket `b` of process `slot`'s run-queue latency histogram (microseconds).
pub const fn runq_idx(slot: u32, b: u32) -> u32 {
    slot * BUCKETS + b
}
/// Index into the off-CPU histogram (microseconds) for `slot`, class `class`.
pub const fn off_idx(slot: u32, class: u32, b: u32) -> u32 {
    (slot * OFF_CLASSES + class) * BUCKETS + b
}
/// Index into the function latency histogram (nanoseconds).
pub const fn func_idx(slot: u32, func: u32, b: u32) -> u32 {
    (slot * NFUNCS + func) * BUCKETS + b
}
/// Index into the tracked-syscall latency histogram (nanoseconds).
pub const fn sys_idx(slot: u32, tracked: u32, b: u32) -> u32 {
    (slot * NTRACKED + tracked) * BUCKETS + b
}
/// Index into `COUNTERS`.
pub const fn counter_idx(slot: u32, counter: u32) -> u32 {
    slot * NCOUNTERS + counter
}

/// log2 bucket of `v`: 0 for 0 and 1, otherwise floor(log2(v)).
#[inline(always)]
pub fn log2_bucket(v: u64) -> u32 {
    if v <= 1 {
        0
    } else {
        63 - v.leading_zeros()
    }
}

/// Key of the per-syscall counters: process slot and syscall number.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SysKey {
    /// Process slot.
    pub slot: u32,
    /// Syscall number.
    pub nr: u32,
}

/// Count and total time of one syscall in one process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SysStat {
    /// Calls completed.
    pub count: u64,
    /// Nanoseconds from entry to exit, summed.
    pub total_ns: u64,
}

/// One committed block, sent from the commit uretprobe through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockEvent {
    /// The committing process.
    pub pid: u32,
    /// Padding (zero).
    pub _pad: u32,
    /// Height committed.
    pub height: u64,
    /// Txs in the block.
    pub txs: u64,
    /// Commit duration (execute + write), nanoseconds.
    pub duration_ns: u64,
    /// Kernel monotonic time at commit end, nanoseconds.
    pub end_ns: u64,
}

/// Where a commit started, kept between the commit uprobe and uretprobe.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CommitStart {
    /// Entry time.
    pub ts: u64,
    /// Height argument.
    pub height: u64,
    /// Tx count argument.
    pub txs: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain repr(C) integers with no padding holes the kernel could leave undefined.
    unsafe impl aya::Pod for super::SysKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SysStat {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::BlockEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::CommitStart {}
}
