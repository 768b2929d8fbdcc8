//! Each step's kernel-side evidence: the eBPF probes attached to the step's validators for
//! the whole load (warm-up, window, drain), summarised per committed tx. Probes need root and
//! BTF; without them the experiment runs on and says why once.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tpslab_probe::{Log2Hist, ProbeKind, ProbeReport, Probes, Target};

/// What the probes saw in one step, all validators together.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepProbes {
    /// Txs in the blocks the commit uprobe reported, per validator (the denominator below).
    pub committed_txs: f64,
    /// Run-queue latency of the validators' threads (usecs, log2).
    pub runq: Log2Hist,
    /// Run-queue P50, us (log2 bucket upper bound).
    pub runq_p50_us: Option<u64>,
    /// Run-queue P99, us.
    pub runq_p99_us: Option<u64>,
    /// Share of the validators' thread time spent off CPU (sleeping, blocked, runnable).
    pub off_cpu_share: Option<f64>,
    /// Syscalls per committed tx.
    pub syscalls_per_tx: Option<f64>,
    /// fsync + fdatasync per committed tx.
    pub fsyncs_per_tx: Option<f64>,
    /// write + writev + sendto per committed tx.
    pub writes_per_tx: Option<f64>,
    /// Time inside futex (lock and condition waits) per committed tx, us.
    pub futex_us_per_tx: Option<f64>,
    /// Block commit (execute + write) latency P50 / P99, us, from the uprobe pair.
    pub commit_p50_us: Option<f64>,
    /// See `commit_p50_us`.
    pub commit_p99_us: Option<f64>,
    /// CheckTx batch latency P50 / P99, us.
    pub check_p50_us: Option<f64>,
    /// See `check_p50_us`.
    pub check_p99_us: Option<f64>,
    /// Block records received through the ring buffer.
    pub blocks_seen: usize,
}

impl StepProbes {
    /// Summarises a report.
    pub fn from_report(r: &ProbeReport) -> StepProbes {
        let procs = r.procs.len().max(1) as f64;
        let committed_txs = r.blocks.iter().map(|b| b.txs).sum::<u64>() as f64 / procs;
        let per_tx = |v: f64| (committed_txs >= 1.0).then(|| v / committed_txs);
        let mut runq = Log2Hist::default();
        let mut commit = Log2Hist::default();
        let mut check = Log2Hist::default();
        let (mut syscalls, mut fsyncs, mut writes, mut futex_ns) = (0u64, 0u64, 0u64, 0u64);
        let mut shares = Vec::new();
        for p in &r.procs {
            runq.merge(&p.runq);
            if let Some(f) = p.func("commit_block") {
                commit.merge(&f.hist);
            }
            if let Some(f) = p.func("check_txs") {
                check.merge(&f.hist);
            }
            syscalls += p.syscalls.iter().map(|s| s.count).sum::<u64>();
            let count = |n: &str| p.syscall(n).map_or(0, |s| s.count);
            fsyncs += count("fsync") + count("fdatasync");
            writes += count("write") + count("writev") + count("sendto");
            futex_ns += p.syscall("futex").map_or(0, |s| s.total_ns);
            shares.extend(p.offcpu.off_share());
        }
        let us = |h: &Log2Hist, q| h.quantile(q).map(|ns| ns as f64 / 1000.0);
        StepProbes {
            committed_txs,
            runq_p50_us: runq.quantile(0.5),
            runq_p99_us: runq.quantile(0.99),
            runq,
            off_cpu_share: (!shares.is_empty())
                .then(|| shares.iter().sum::<f64>() / shares.len() as f64),
            syscalls_per_tx: per_tx(syscalls as f64),
            fsyncs_per_tx: per_tx(fsyncs as f64),
            writes_per_tx: per_tx(writes as f64),
            futex_us_per_tx: per_tx(futex_ns as f64 / 1000.0),
            commit_p50_us: us(&commit, 0.5),
            commit_p99_us: us(&commit, 0.99),
            check_p50_us: us(&check, 0.5),
            check_p99_us: us(&check, 0.99),
            blocks_seen: r.blocks.len(),
        }
    }
}

/// Probes running on a blocking thread until [`Session::finish`].
pub struct Session {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<ProbeReport, String>>,
}

impl Session {
    /// Attaches every probe family to `pids`; Err is the one-line reason they cannot run.
    pub async fn start(pids: Vec<u32>) -> Result<Session, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let flag = stop.clone();
        let task = tokio::task::spawn_blocking(move || {
            let targets: Vec<Target> = pids.iter().map(|&pid| Target { pid }).collect();
            let mut probes = match Probes::attach(&targets, &ProbeKind::ALL) {
                Ok(p) => {
                    let _ = ready_tx.send(Ok(()));
                    p
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return Err(e.to_string());
                }
            };
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                probes.poll_blocks();
            }
            probes.read().map_err(|e| e.to_string())
        });
        match ready_rx.await {
            Ok(Ok(())) => Ok(Session { stop, task }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the probe thread ended early".into()),
        }
    }

    /// Reads the probes and detaches them.
    pub async fn finish(self) -> Result<ProbeReport, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.map_err(|e| e.to_string())?
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn optf(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// One row per step: the kernel-side figures.
pub(super) fn rows(r: &super::ExperimentResults) -> Vec<[String; 9]> {
    r.steps
        .iter()
        .filter_map(|s| {
            let p = s.probes.as_ref()?;
            Some([
                r.label(s),
                opt(p.runq_p50_us),
                opt(p.runq_p99_us),
                optf(p.off_cpu_share.map(|v| v * 100.0), 1),
                optf(p.fsyncs_per_tx, 3),
                optf(p.syscalls_per_tx, 1),
                optf(p.futex_us_per_tx, 0),
                format!(
                    "{} / {}",
                    optf(p.commit_p50_us, 0),
                    optf(p.commit_p99_us, 0)
                ),
                format!("{} / {}", optf(p.check_p50_us, 0), optf(p.check_p99_us, 0)),
            ])
        })
        .collect()
}

/// Column headings of [`rows`].
pub(super) const HEADINGS: [&str; 9] = [
    "step",
    "run queue P50 us",
    "run queue P99 us",
    "off-CPU %",
    "fsyncs/tx",
    "syscalls/tx",
    "futex us/tx",
    "commit P50/P99 us",
    "CheckTx batch P50/P99 us",
];

/// The kernel-side figures as a markdown table (empty when the probes did not run).
pub fn table(r: &super::ExperimentResults) -> String {
    let rows = rows(r);
    if rows.is_empty() {
        return r
            .info
            .probes_note
            .as_ref()
            .map(|n| format!("\nno eBPF probe figures: {n}\n"))
            .unwrap_or_default();
    }
    let mut s = format!(
        "\neBPF probes were attached in every step; they cost most where syscalls and context \
         switches are many (the naive steps): take headline TPS ratios from a run without --probes.\n\n\
         | {} |\n|{}\n",
        HEADINGS.join(" | "),
        "---|".repeat(HEADINGS.len())
    );
    for row in rows {
        s.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    s
}
