//! Loading the programs, attaching them to the followed processes, reading the maps back.

use crate::report::{BlockRecord, FuncStat, OffCpu, ProcReport, SyscallStat};
use crate::{env, Log2Hist, ProbeError, ProbeKind, ProbeReport};
use aya::maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use aya::programs::{TracePoint, UProbe};
use aya::Ebpf;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::time::Instant;
use tpslab_probe_common::*;

/// The compiled programs (empty when the build had no BPF toolchain; see `available`).
static PROGRAMS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tpslab-probes"));

/// A process to follow.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Its pid.
    pub pid: u32,
}

/// Probes loaded and attached; detached when dropped.
pub struct Probes {
    bpf: Ebpf,
    blocks: Option<RingBuf<MapData>>,
    pids: Vec<u32>,
    kinds: Vec<ProbeKind>,
    started: Instant,
    seen_blocks: Vec<BlockRecord>,
}

const TRACEPOINTS: &[(ProbeKind, &str, &str, &str)] = &[
    (ProbeKind::Runqlat, "sched_wakeup", "sched", "sched_wakeup"),
    (
        ProbeKind::Runqlat,
        "sched_wakeup_new",
        "sched",
        "sched_wakeup_new",
    ),
    (ProbeKind::Runqlat, "sched_switch", "sched", "sched_switch"),
    (
        ProbeKind::Syscalls,
        "sys_enter",
        "raw_syscalls",
        "sys_enter",
    ),
    (ProbeKind::Syscalls, "sys_exit", "raw_syscalls", "sys_exit"),
    (
        ProbeKind::Net,
        "netif_receive_skb",
        "net",
        "netif_receive_skb",
    ),
    (
        ProbeKind::Net,
        "tcp_retransmit_skb",
        "tcp",
        "tcp_retransmit_skb",
    ),
    (
        ProbeKind::Net,
        "direct_reclaim_begin",
        "vmscan",
        "mm_vmscan_direct_reclaim_begin",
    ),
    (
        ProbeKind::Net,
        "direct_reclaim_end",
        "vmscan",
        "mm_vmscan_direct_reclaim_end",
    ),
];

/// uprobe programs per function id (`FUNCS` order): entry, return.
const UPROBES: [(&str, &str); 4] = [
    ("commit_enter", "commit_exit"),
    ("check_enter", "check_exit"),
    ("verify_enter", "verify_exit"),
    ("write_enter", "write_exit"),
];

impl Probes {
    /// Loads the programs and attaches the `kinds` families to `targets`.
    pub fn attach(targets: &[Target], kinds: &[ProbeKind]) -> Result<Probes, ProbeError> {
        env::available()?;
        if targets.len() > MAX_PROCS as usize {
            return Err(ProbeError::TooManyPids {
                max: MAX_PROCS,
                got: targets.len(),
            });
        }
        for t in targets {
            if !std::path::Path::new(&format!("/proc/{}", t.pid)).exists() {
                return Err(ProbeError::NoProcess(t.pid));
            }
        }
        env::check_layout()?;
        env::raise_memlock();
        let mut bpf =
            Ebpf::load(PROGRAMS).map_err(|e| ProbeError::kernel("loading programs", e))?;
        {
            let mut pids: HashMap<_, u32, u32> = map(&mut bpf, "PIDS")?;
            for (slot, t) in targets.iter().enumerate() {
                pids.insert(t.pid, slot as u32, 0)
                    .map_err(|e| ProbeError::kernel("filling PIDS", e))?;
            }
        }
        {
            // Seed the thread map; threads started later are learnt at their first switch-out.
            let mut tids: HashMap<_, u32, u32> = map(&mut bpf, "TIDS")?;
            for (slot, t) in targets.iter().enumerate() {
                for tid in threads(t.pid) {
                    let _ = tids.insert(tid, slot as u32, 0);
                }
            }
        }
        // sched_switch serves both runqlat and offcpu.
        let sched = kinds.contains(&ProbeKind::Runqlat) || kinds.contains(&ProbeKind::Offcpu);
        for (kind, prog, category, name) in TRACEPOINTS {
            let wanted = if *kind == ProbeKind::Runqlat {
                sched
            } else {
                kinds.contains(kind)
            };
            if wanted {
                attach_tracepoint(&mut bpf, prog, category, name)?;
            }
        }
        if kinds.contains(&ProbeKind::Funclatency) {
            let mut exes = HashSet::new();
            for t in targets {
                let exe = format!("/proc/{}/exe", t.pid);
                let meta = std::fs::metadata(&exe)
                    .map_err(|e| ProbeError::kernel(format!("reading {exe}"), e))?;
                // One attachment per binary: uprobes fire for every process mapping it and
                // the programs filter by pid.
                if exes.insert((meta.dev(), meta.ino())) {
                    attach_uprobes(&mut bpf, &exe)?;
                }
            }
        }
        let blocks = bpf
            .take_map("BLOCKS")
            .map(RingBuf::try_from)
            .transpose()
            .map_err(|e| ProbeError::kernel("opening the block ring buffer", e))?;
        Ok(Probes {
            bpf,
            blocks,
            pids: targets.iter().map(|t| t.pid).collect(),
            kinds: kinds.to_vec(),
            started: Instant::now(),
            seen_blocks: Vec::new(),
        })
    }

    /// Block records that arrived since the last call (also kept for [`Probes::read`]).
    pub fn poll_blocks(&mut self) -> Vec<BlockRecord> {
        let mut fresh = Vec::new();
        if let Some(rb) = &mut self.blocks {
            while let Some(item) = rb.next() {
                if item.len() >= std::mem::size_of::<BlockEvent>() {
                    // SAFETY: the kernel wrote one BlockEvent; read_unaligned copies it out.
                    #[allow(unsafe_code)]
                    let ev: BlockEvent =
                        unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<BlockEvent>()) };
                    fresh.push(BlockRecord {
                        pid: ev.pid,
                        height: ev.height,
                        txs: ev.txs,
                        duration_ns: ev.duration_ns,
                    });
                }
            }
        }
        self.seen_blocks.extend_from_slice(&fresh);
        fresh
    }

    /// Everything counted since the probes were attached.
    pub fn read(&mut self) -> Result<ProbeReport, ProbeError> {
        self.poll_blocks();
        let n = self.pids.len() as u32;
        let runq = sum_range(&self.bpf, "RUNQ_HIST", n * BUCKETS)?;
        let off = sum_range(&self.bpf, "OFF_HIST", n * OFF_CLASSES * BUCKETS)?;
        let funcs = sum_range(&self.bpf, "FUNC_HIST", n * NFUNCS * BUCKETS)?;
        let sys_hist = sum_range(&self.bpf, "SYS_HIST", n * NTRACKED * BUCKETS)?;
        let counters = sum_range(&self.bpf, "COUNTERS", n * NCOUNTERS)?;
        let mut syscalls: Vec<Vec<SyscallStat>> = vec![Vec::new(); n as usize];
        {
            let stats: PerCpuHashMap<_, SysKey, SysStat> = PerCpuHashMap::try_from(
                self.bpf
                    .map("SYS_STATS")
                    .ok_or_else(|| missing("SYS_STATS"))?,
            )
            .map_err(|e| ProbeError::kernel("SYS_STATS", e))?;
            for entry in stats.iter() {
                let (key, values) = entry.map_err(|e| ProbeError::kernel("SYS_STATS", e))?;
                // nr -1: a task leaving the kernel outside a syscall (signal return, restart).
                if key.slot >= n || key.nr == u32::MAX {
                    continue;
                }
                let (count, total_ns) = values
                    .iter()
                    .fold((0, 0), |(c, t), v| (c + v.count, t + v.total_ns));
                let tracked = TRACKED_SYSCALLS.iter().position(|nr| *nr == key.nr);
                let hist = tracked.map(|i| {
                    let start = sys_idx(key.slot, i as u32, 0) as usize;
                    Log2Hist::new("nsecs", sys_hist[start..start + BUCKETS as usize].to_vec())
                });
                syscalls[key.slot as usize].push(SyscallStat {
                    name: syscall_name(key.nr),
                    nr: key.nr,
                    count,
                    total_ns,
                    hist,
                });
            }
        }
        let slice = |v: &[u64], start: u32| v[start as usize..(start + BUCKETS) as usize].to_vec();
        let procs = self
            .pids
            .iter()
            .enumerate()
            .map(|(slot, &pid)| {
                let s = slot as u32;
                let c = |k| counters[counter_idx(s, k) as usize];
                let mut sys = std::mem::take(&mut syscalls[slot]);
                sys.sort_by_key(|s| std::cmp::Reverse(s.total_ns));
                ProcReport {
                    pid,
                    runq: Log2Hist::new("usecs", slice(&runq, runq_idx(s, 0))),
                    offcpu: OffCpu {
                        sleeping: Log2Hist::new("usecs", slice(&off, off_idx(s, OFF_SLEEPING, 0))),
                        blocked: Log2Hist::new("usecs", slice(&off, off_idx(s, OFF_BLOCKED, 0))),
                        sleeping_ns: c(C_OFF_SLEEP_NS),
                        blocked_ns: c(C_OFF_BLOCK_NS),
                        oncpu_ns: c(C_ONCPU_NS),
                        runq_ns: c(C_RUNQ_NS),
                    },
                    syscalls: sys,
                    funcs: FUNCS
                        .iter()
                        .enumerate()
                        .map(|(f, name)| FuncStat {
                            name: name.to_string(),
                            hist: Log2Hist::new("nsecs", slice(&funcs, func_idx(s, f as u32, 0))),
                        })
                        .collect(),
                    net_rx: c(C_NET_RX),
                    tcp_retransmits: c(C_TCP_RETRANS),
                    reclaims: c(C_RECLAIMS),
                    reclaim_ns: c(C_RECLAIM_NS),
                }
            })
            .collect();
        Ok(ProbeReport {
            duration_secs: self.started.elapsed().as_secs_f64(),
            kinds: self.kinds.clone(),
            procs,
            blocks: self.seen_blocks.clone(),
        })
    }
}

fn missing(name: &str) -> ProbeError {
    ProbeError::NotBuilt(format!("map {name} missing from the eBPF object"))
}

fn map<'a, K: aya::Pod, V: aya::Pod>(
    bpf: &'a mut Ebpf,
    name: &str,
) -> Result<HashMap<&'a mut MapData, K, V>, ProbeError> {
    let m = bpf.map_mut(name).ok_or_else(|| missing(name))?;
    HashMap::try_from(m).map_err(|e| ProbeError::kernel(name.to_string(), e))
}

/// The first `len` entries of a per-CPU u64 array, summed over CPUs.
fn sum_range(bpf: &Ebpf, name: &str, len: u32) -> Result<Vec<u64>, ProbeError> {
    let arr: PerCpuArray<_, u64> =
        PerCpuArray::try_from(bpf.map(name).ok_or_else(|| missing(name))?)
            .map_err(|e| ProbeError::kernel(name.to_string(), e))?;
    (0..len)
        .map(|i| {
            arr.get(&i, 0)
                .map(|v| v.iter().sum())
                .map_err(|e| ProbeError::kernel(format!("reading {name}[{i}]"), e))
        })
        .collect()
}

fn attach_tracepoint(
    bpf: &mut Ebpf,
    prog: &str,
    category: &str,
    name: &str,
) -> Result<(), ProbeError> {
    let p: &mut TracePoint = bpf
        .program_mut(prog)
        .ok_or_else(|| missing(prog))?
        .try_into()
        .map_err(|e| ProbeError::kernel(prog.to_string(), e))?;
    p.load()
        .map_err(|e| ProbeError::kernel(format!("loading {prog}"), e))?;
    p.attach(category, name)
        .map_err(|e| ProbeError::kernel(format!("attaching {category}:{name}"), e))?;
    Ok(())
}

/// Attaches the entry/return pairs of every probe point `exe` contains (a binary that never
/// calls one of them has no such symbol); errors only if it has none.
fn attach_uprobes(bpf: &mut Ebpf, exe: &str) -> Result<(), ProbeError> {
    let mut attached = 0;
    let mut last_err = None;
    'funcs: for (func, (enter, exit)) in FUNCS.iter().zip(UPROBES) {
        for prog in [enter, exit] {
            let p: &mut UProbe = bpf
                .program_mut(prog)
                .ok_or_else(|| missing(prog))?
                .try_into()
                .map_err(|e| ProbeError::kernel(prog.to_string(), e))?;
            if p.fd().is_err() {
                p.load()
                    .map_err(|e| ProbeError::kernel(format!("loading {prog}"), e))?;
            }
            if let Err(e) = p.attach(*func, exe, aya::programs::uprobe::UProbeScope::AllProcesses) {
                last_err = Some(ProbeError::kernel(
                    format!("attaching {prog} to {func} in {exe}"),
                    e,
                ));
                continue 'funcs;
            }
        }
        attached += 1;
    }
    match last_err {
        Some(e) if attached == 0 => Err(e),
        _ => Ok(()),
    }
}

/// Thread ids of `pid`.
fn threads(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn syscall_name(nr: u32) -> String {
    syscalls::Sysno::new(nr as usize)
        .map_or_else(|| format!("syscall_{nr}"), |s| s.name().to_string())
}
