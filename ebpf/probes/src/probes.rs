//! The programs. Each returns 0; a failed map update loses one sample, never the event stream.

use crate::maps::*;
use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns};
use aya_ebpf::macros::{tracepoint, uprobe, uretprobe};
use aya_ebpf::maps::PerCpuArray;
use aya_ebpf::programs::{ProbeContext, RetProbeContext, TracePointContext};
use tpslab_probe_common::*;

// Tracepoint field offsets (checked by the collector against the format files).
const SWITCH_PREV_PID: usize = 24;
const SWITCH_PREV_STATE: usize = 32;
const SWITCH_NEXT_PID: usize = 56;
const WAKEUP_PID: usize = 24;
const SYS_ID: usize = 8;

/// Top bit of an `OFF_START` value: the thread left in D state.
const BLOCKED_BIT: u64 = 1 << 63;

#[inline(always)]
fn now() -> u64 {
    // SAFETY: a plain helper call.
    unsafe { bpf_ktime_get_ns() }
}

/// The current thread id and its process's slot, if the process is followed.
#[inline(always)]
fn current() -> (u32, Option<u32>) {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    // SAFETY: the value is copied out at once.
    let slot = unsafe { PIDS.get(&tgid) }.copied();
    (id as u32, slot)
}

#[inline(always)]
fn add(map: &PerCpuArray<u64>, idx: u32, v: u64) {
    if let Some(p) = map.get_ptr_mut(idx) {
        // SAFETY: a per-CPU slot: no other writer while this program runs on this CPU.
        unsafe { *p += v }
    }
}

#[inline(always)]
fn bucket(v: u64) -> u32 {
    let b = log2_bucket(v);
    if b >= BUCKETS {
        BUCKETS - 1
    } else {
        b
    }
}

#[inline(always)]
fn slot_ok(slot: u32) -> bool {
    slot < MAX_PROCS
}

#[tracepoint]
pub fn sched_wakeup(ctx: TracePointContext) -> u32 {
    wakeup(&ctx);
    0
}

#[tracepoint]
pub fn sched_wakeup_new(ctx: TracePointContext) -> u32 {
    wakeup(&ctx);
    0
}

#[inline(always)]
fn wakeup(ctx: &TracePointContext) {
    // SAFETY: reading the event record at a checked offset.
    let Ok(tid) = (unsafe { ctx.read_at::<i32>(WAKEUP_PID) }) else {
        return;
    };
    let tid = tid as u32;
    // SAFETY: copied out at once.
    if unsafe { TIDS.get(&tid) }.is_some() {
        let _ = RUNQ_START.insert(&tid, &now(), 0);
    }
}

#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    switch(&ctx);
    0
}

#[inline(always)]
fn switch(ctx: &TracePointContext) {
    let ts = now();
    // SAFETY: reading the event record at checked offsets.
    let (prev, state, next) = unsafe {
        (
            ctx.read_at::<i32>(SWITCH_PREV_PID).unwrap_or(0) as u32,
            ctx.read_at::<i64>(SWITCH_PREV_STATE).unwrap_or(0) as u64,
            ctx.read_at::<i32>(SWITCH_NEXT_PID).unwrap_or(0) as u32,
        )
    };
    // The previous task is the current one, so its process is known here: learn its thread.
    let (_, slot) = current();
    if let Some(slot) = slot.filter(|s| slot_ok(*s)) {
        if prev != 0 {
            let _ = TIDS.insert(&prev, &slot, 0);
            // SAFETY: copied out at once.
            if let Some(start) = unsafe { ON_START.get(&prev) }.copied() {
                add(&COUNTERS, counter_idx(slot, C_ONCPU_NS), ts.saturating_sub(start));
                let _ = ON_START.remove(&prev);
            }
            // Low byte 0: still runnable (preempted or yielded), so it waits on a run queue.
            // 0x30: exiting (zombie/dead), never switched in again.
            if state & 0xff == 0 {
                let _ = RUNQ_START.insert(&prev, &ts, 0);
            } else if state & 0x30 == 0 {
                let v = if state & 2 != 0 { ts | BLOCKED_BIT } else { ts };
                let _ = OFF_START.insert(&prev, &v, 0);
            }
        }
    }
    // SAFETY: copied out at once.
    let Some(slot) = (unsafe { TIDS.get(&next) }).copied() else {
        return;
    };
    if !slot_ok(slot) || next == 0 {
        return;
    }
    // SAFETY: copied out at once.
    if let Some(start) = unsafe { RUNQ_START.get(&next) }.copied() {
        let d = ts.saturating_sub(start);
        add(&RUNQ_HIST, runq_idx(slot, bucket(d / 1000)), 1);
        add(&COUNTERS, counter_idx(slot, C_RUNQ_NS), d);
        let _ = RUNQ_START.remove(&next);
    }
    // SAFETY: copied out at once.
    if let Some(v) = unsafe { OFF_START.get(&next) }.copied() {
        let class = if v & BLOCKED_BIT != 0 { OFF_BLOCKED } else { OFF_SLEEPING };
        let d = ts.saturating_sub(v & !BLOCKED_BIT);
        add(&OFF_HIST, off_idx(slot, class, bucket(d / 1000)), 1);
        let c = if class == OFF_BLOCKED { C_OFF_BLOCK_NS } else { C_OFF_SLEEP_NS };
        add(&COUNTERS, counter_idx(slot, c), d);
        let _ = OFF_START.remove(&next);
    }
    let _ = ON_START.insert(&next, &ts, 0);
}

#[tracepoint]
pub fn sys_enter(_ctx: TracePointContext) -> u32 {
    let (tid, slot) = current();
    if slot.is_some() {
        let _ = SYS_START.insert(&tid, &now(), 0);
    }
    0
}

#[tracepoint]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    let (tid, slot) = current();
    let Some(slot) = slot.filter(|s| slot_ok(*s)) else {
        return 0;
    };
    // SAFETY: copied out at once.
    let Some(start) = (unsafe { SYS_START.get(&tid) }).copied() else {
        return 0;
    };
    let _ = SYS_START.remove(&tid);
    // SAFETY: reading the event record at a checked offset.
    let Ok(nr) = (unsafe { ctx.read_at::<i64>(SYS_ID) }) else {
        return 0;
    };
    let nr = nr as u32;
    let d = now().saturating_sub(start);
    let key = SysKey { slot, nr };
    match SYS_STATS.get_ptr_mut(&key) {
        Some(p) => {
            // SAFETY: a per-CPU value: no other writer on this CPU.
            unsafe {
                (*p).count += 1;
                (*p).total_ns += d;
            }
        }
        None => {
            let v = SysStat {
                count: 1,
                total_ns: d,
            };
            let _ = SYS_STATS.insert(&key, &v, 0);
        }
    }
    let mut i = 0;
    while i < NTRACKED {
        if TRACKED_SYSCALLS[i as usize] == nr {
            add(&SYS_HIST, sys_idx(slot, i, bucket(d)), 1);
            break;
        }
        i += 1;
    }
    0
}

#[inline(always)]
fn func_enter(func: u32) {
    let (tid, slot) = current();
    if slot.is_some() {
        let key = ((tid as u64) << 8) | func as u64;
        let _ = FUNC_START.insert(&key, &now(), 0);
    }
}

/// Records a function's latency; returns (slot, duration) when it did.
#[inline(always)]
fn func_exit(func: u32) -> Option<(u32, u64)> {
    let (tid, slot) = current();
    let slot = slot.filter(|s| slot_ok(*s))?;
    let key = ((tid as u64) << 8) | func as u64;
    // SAFETY: copied out at once.
    let start = unsafe { FUNC_START.get(&key) }.copied()?;
    let _ = FUNC_START.remove(&key);
    let d = now().saturating_sub(start);
    add(&FUNC_HIST, func_idx(slot, func, bucket(d)), 1);
    Some((slot, d))
}

#[uprobe]
pub fn commit_enter(ctx: ProbeContext) -> u32 {
    func_enter(0);
    let (tid, slot) = current();
    if slot.is_some() {
        let s = CommitStart {
            ts: now(),
            height: ctx.arg::<u64>(0).unwrap_or(0),
            txs: ctx.arg::<u64>(1).unwrap_or(0),
        };
        let _ = COMMIT_START.insert(&tid, &s, 0);
    }
    0
}

#[uretprobe]
pub fn commit_exit(_ctx: RetProbeContext) -> u32 {
    func_exit(0);
    let id = bpf_get_current_pid_tgid();
    let tid = id as u32;
    // SAFETY: copied out at once.
    let Some(s) = (unsafe { COMMIT_START.get(&tid) }).copied() else {
        return 0;
    };
    let _ = COMMIT_START.remove(&tid);
    let end = now();
    let ev = BlockEvent {
        pid: (id >> 32) as u32,
        _pad: 0,
        height: s.height,
        txs: s.txs,
        duration_ns: end.saturating_sub(s.ts),
        end_ns: end,
    };
    let _ = BLOCKS.output::<BlockEvent>(&ev, 0);
    0
}

#[uprobe]
pub fn check_enter(_ctx: ProbeContext) -> u32 {
    func_enter(1);
    0
}

#[uretprobe]
pub fn check_exit(_ctx: RetProbeContext) -> u32 {
    func_exit(1);
    0
}

#[uprobe]
pub fn verify_enter(_ctx: ProbeContext) -> u32 {
    func_enter(2);
    0
}

#[uretprobe]
pub fn verify_exit(_ctx: RetProbeContext) -> u32 {
    func_exit(2);
    0
}

#[uprobe]
pub fn write_enter(_ctx: ProbeContext) -> u32 {
    func_enter(3);
    0
}

#[uretprobe]
pub fn write_exit(_ctx: RetProbeContext) -> u32 {
    func_exit(3);
    0
}

#[tracepoint]
pub fn netif_receive_skb(_ctx: TracePointContext) -> u32 {
    if let (_, Some(slot)) = current() {
        add(&COUNTERS, counter_idx(slot, C_NET_RX), 1);
    }
    0
}

#[tracepoint]
pub fn tcp_retransmit_skb(_ctx: TracePointContext) -> u32 {
    if let (_, Some(slot)) = current() {
        add(&COUNTERS, counter_idx(slot, C_TCP_RETRANS), 1);
    }
    0
}

#[tracepoint]
pub fn direct_reclaim_begin(_ctx: TracePointContext) -> u32 {
    if let (tid, Some(slot)) = current() {
        add(&COUNTERS, counter_idx(slot, C_RECLAIMS), 1);
        let _ = RECLAIM_START.insert(&tid, &now(), 0);
    }
    0
}

#[tracepoint]
pub fn direct_reclaim_end(_ctx: TracePointContext) -> u32 {
    if let (tid, Some(slot)) = current() {
        // SAFETY: copied out at once.
        if let Some(start) = unsafe { RECLAIM_START.get(&tid) }.copied() {
            add(&COUNTERS, counter_idx(slot, C_RECLAIM_NS), now().saturating_sub(start));
            let _ = RECLAIM_START.remove(&tid);
        }
    }
    0
}
