//! The maps shared with the collector; sizes and indices come from `tpslab-probe-common`.

use aya_ebpf::macros::map;
use aya_ebpf::maps::{HashMap, PerCpuArray, PerCpuHashMap, RingBuf};
use tpslab_probe_common::*;

/// Followed processes: tgid -> slot.
#[map]
pub static PIDS: HashMap<u32, u32> = HashMap::with_max_entries(MAX_PROCS, 0);
/// Threads of followed processes: tid -> slot (seeded from /proc, learnt at switch-out).
#[map]
pub static TIDS: HashMap<u32, u32> = HashMap::with_max_entries(65_536, 0);

/// Wakeup (or preemption) time of a thread waiting on a run queue.
#[map]
pub static RUNQ_START: HashMap<u32, u64> = HashMap::with_max_entries(65_536, 0);
/// Switch-out time and class of a thread off CPU.
#[map]
pub static OFF_START: HashMap<u32, u64> = HashMap::with_max_entries(65_536, 0);
/// Switch-in time of a thread on CPU.
#[map]
pub static ON_START: HashMap<u32, u64> = HashMap::with_max_entries(65_536, 0);
/// Syscall entry: tid -> entry time.
#[map]
pub static SYS_START: HashMap<u32, u64> = HashMap::with_max_entries(65_536, 0);
/// Function entry: (tid << 8 | func) -> entry time.
#[map]
pub static FUNC_START: HashMap<u64, u64> = HashMap::with_max_entries(65_536, 0);
/// Commit entry arguments, by tid.
#[map]
pub static COMMIT_START: HashMap<u32, CommitStart> = HashMap::with_max_entries(4_096, 0);
/// Direct reclaim entry, by tid.
#[map]
pub static RECLAIM_START: HashMap<u32, u64> = HashMap::with_max_entries(4_096, 0);

/// Run-queue latency, microseconds, log2 buckets per slot.
#[map]
pub static RUNQ_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_PROCS * BUCKETS, 0);
/// Off-CPU time, microseconds, log2 buckets per slot and class.
#[map]
pub static OFF_HIST: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(MAX_PROCS * OFF_CLASSES * BUCKETS, 0);
/// Function latency, nanoseconds, log2 buckets per slot and function.
#[map]
pub static FUNC_HIST: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(MAX_PROCS * NFUNCS * BUCKETS, 0);
/// Tracked syscall latency, nanoseconds, log2 buckets per slot and tracked syscall.
#[map]
pub static SYS_HIST: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(MAX_PROCS * NTRACKED * BUCKETS, 0);
/// Every syscall's count and total time, per slot.
#[map]
pub static SYS_STATS: PerCpuHashMap<SysKey, SysStat> = PerCpuHashMap::with_max_entries(8_192, 0);
/// Per-slot counters (`C_*`).
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_PROCS * NCOUNTERS, 0);
/// One record per committed block.
#[map]
pub static BLOCKS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);
