//! What one probe window measured, per process, and how it prints.

use crate::{Log2Hist, ProbeKind};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Everything read from the probes at the end of a window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    /// Window length.
    pub duration_secs: f64,
    /// Families attached.
    pub kinds: Vec<ProbeKind>,
    /// One entry per followed process.
    pub procs: Vec<ProcReport>,
    /// Blocks committed in the window, from the commit uretprobe's ring buffer.
    pub blocks: Vec<BlockRecord>,
}

/// One process's figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProcReport {
    /// Process id.
    pub pid: u32,
    /// Run-queue latency (usecs).
    pub runq: Log2Hist,
    /// Off-CPU and on-CPU time.
    pub offcpu: OffCpu,
    /// Syscalls by total time, descending.
    pub syscalls: Vec<SyscallStat>,
    /// Latency of the node's probe-point functions.
    pub funcs: Vec<FuncStat>,
    /// Packets received in this process's context.
    pub net_rx: u64,
    /// TCP retransmits in this process's context.
    pub tcp_retransmits: u64,
    /// Direct reclaims entered.
    pub reclaims: u64,
    /// Time in direct reclaim, nanoseconds.
    pub reclaim_ns: u64,
}

/// Time off and on CPU, summed over the process's threads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OffCpu {
    /// Off-CPU spells that started in a sleeping state (usecs).
    pub sleeping: Log2Hist,
    /// Off-CPU spells that started blocked, D state (usecs).
    pub blocked: Log2Hist,
    /// Nanoseconds off CPU, sleeping.
    pub sleeping_ns: u64,
    /// Nanoseconds off CPU, blocked.
    pub blocked_ns: u64,
    /// Nanoseconds on CPU.
    pub oncpu_ns: u64,
    /// Nanoseconds runnable but waiting for a CPU.
    pub runq_ns: u64,
}

impl OffCpu {
    /// Share of thread time spent waiting off CPU (sleeping + blocked + run queue) out of all
    /// thread time observed; None before anything was observed.
    pub fn off_share(&self) -> Option<f64> {
        let off = self.sleeping_ns + self.blocked_ns + self.runq_ns;
        let all = off + self.oncpu_ns;
        (all > 0).then(|| off as f64 / all as f64)
    }
}

/// One syscall in one process.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SyscallStat {
    /// Name (x86_64 table).
    pub name: String,
    /// Number.
    pub nr: u32,
    /// Calls completed in the window.
    pub count: u64,
    /// Total time inside, nanoseconds.
    pub total_ns: u64,
    /// Latency (nsecs), for the tracked syscalls only.
    pub hist: Option<Log2Hist>,
}

/// One timed function.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FuncStat {
    /// Symbol.
    pub name: String,
    /// Latency (nsecs).
    pub hist: Log2Hist,
}

/// One committed block, as the kernel saw it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct BlockRecord {
    /// Committing process.
    pub pid: u32,
    /// Height.
    pub height: u64,
    /// Txs in the block.
    pub txs: u64,
    /// Execute + write duration, nanoseconds.
    pub duration_ns: u64,
}

impl ProcReport {
    /// The named syscall's figures.
    pub fn syscall(&self, name: &str) -> Option<&SyscallStat> {
        self.syscalls.iter().find(|s| s.name == name)
    }

    /// The named function's figures (`commit_block`, `check_txs`, ... or the full symbol).
    pub fn func(&self, name: &str) -> Option<&FuncStat> {
        self.funcs
            .iter()
            .find(|f| f.name == name || f.name.strip_prefix("tpslab_probe_") == Some(name))
    }
}

impl ProbeReport {
    /// bcc-style text for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for p in &self.procs {
            let _ = writeln!(out, "== pid {} ({:.1} s)", p.pid, self.duration_secs);
            if self.kinds.contains(&ProbeKind::Runqlat) {
                let _ = writeln!(
                    out,
                    "\nrun-queue latency: {} waits, P50 <= {} us, P99 <= {} us",
                    p.runq.total(),
                    fmt_opt(p.runq.quantile(0.5)),
                    fmt_opt(p.runq.quantile(0.99))
                );
                out.push_str(&p.runq.render());
            }
            if self.kinds.contains(&ProbeKind::Offcpu) {
                let o = &p.offcpu;
                let _ = writeln!(
                    out,
                    "\noff-CPU: sleeping {:.3} s, blocked (D) {:.3} s, run queue {:.3} s, on CPU {:.3} s, off share {}",
                    o.sleeping_ns as f64 / 1e9,
                    o.blocked_ns as f64 / 1e9,
                    o.runq_ns as f64 / 1e9,
                    o.oncpu_ns as f64 / 1e9,
                    o.off_share().map_or("-".into(), |s| format!("{:.1} %", s * 100.0))
                );
                if o.blocked.total() > 0 {
                    out.push_str("blocked spells:\n");
                    out.push_str(&o.blocked.render());
                }
            }
            if self.kinds.contains(&ProbeKind::Syscalls) {
                render_syscalls(&mut out, p);
            }
            if self.kinds.contains(&ProbeKind::Funclatency) {
                render_funcs(&mut out, p);
            }
            if self.kinds.contains(&ProbeKind::Net) {
                let _ = writeln!(
                    out,
                    "\nnet: {} packets received in-process, {} TCP retransmits; {} direct reclaims ({:.1} ms)",
                    p.net_rx,
                    p.tcp_retransmits,
                    p.reclaims,
                    p.reclaim_ns as f64 / 1e6
                );
            }
            out.push('\n');
        }
        if !self.blocks.is_empty() {
            let _ = writeln!(
                out,
                "{} block commits seen by the commit uprobe (ring buffer); last: {:?}",
                self.blocks.len(),
                self.blocks.last()
            );
        }
        out
    }
}

fn render_syscalls(out: &mut String, p: &ProcReport) {
    let _ = writeln!(
        out,
        "\n{:<16} {:>10} {:>12} {:>10}",
        "syscall", "count", "total ms", "avg us"
    );
    for s in p.syscalls.iter().take(15) {
        let _ = writeln!(
            out,
            "{:<16} {:>10} {:>12.1} {:>10.1}",
            s.name,
            s.count,
            s.total_ns as f64 / 1e6,
            s.total_ns as f64 / 1e3 / s.count.max(1) as f64
        );
    }
}

fn render_funcs(out: &mut String, p: &ProcReport) {
    for f in &p.funcs {
        if f.hist.total() == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{}: {} calls, P50 <= {} ns, P99 <= {} ns",
            f.name,
            f.hist.total(),
            fmt_opt(f.hist.quantile(0.5)),
            fmt_opt(f.hist.quantile(0.99))
        );
        out.push_str(&f.hist.render());
    }
}

fn fmt_opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}
