//! `tpslab probe --serve ADDR`: the probes' figures as Prometheus metrics, kept up to date
//! while the probes stay attached. Block records come from the commit uretprobe's ring
//! buffer, so block timing stays visible from the kernel side even when a node's own
//! /metrics endpoint stalls.

use anyhow::{Context, Result};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tpslab_probe::Probes;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Pid {
    pid: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PidSyscall {
    pid: String,
    syscall: String,
}

#[derive(Default)]
struct Metrics {
    blocks: Family<Pid, Counter>,
    block_txs: Family<Pid, Counter>,
    height: Family<Pid, Gauge>,
    last_commit: Family<Pid, Gauge<f64, AtomicU64>>,
    commit_seconds: Family<Pid, Counter<f64, AtomicU64>>,
    runq_seconds: Family<Pid, Gauge<f64, AtomicU64>>,
    oncpu_seconds: Family<Pid, Gauge<f64, AtomicU64>>,
    offcpu_seconds: Family<Pid, Gauge<f64, AtomicU64>>,
    syscalls: Family<PidSyscall, Gauge>,
    syscall_seconds: Family<PidSyscall, Gauge<f64, AtomicU64>>,
}

impl Metrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "tpslab_ebpf_blocks",
            "Blocks committed, from the commit uretprobe",
            self.blocks.clone(),
        );
        r.register(
            "tpslab_ebpf_block_txs",
            "Txs in committed blocks",
            self.block_txs.clone(),
        );
        r.register(
            "tpslab_ebpf_height",
            "Last committed height seen by the commit uretprobe",
            self.height.clone(),
        );
        r.register(
            "tpslab_ebpf_last_commit_seconds",
            "Duration of the last block commit",
            self.last_commit.clone(),
        );
        r.register(
            "tpslab_ebpf_commit_seconds",
            "Time spent committing blocks",
            self.commit_seconds.clone(),
        );
        r.register(
            "tpslab_ebpf_runq_seconds",
            "Thread time runnable but waiting for a CPU since attach",
            self.runq_seconds.clone(),
        );
        r.register(
            "tpslab_ebpf_oncpu_seconds",
            "Thread time on CPU since attach",
            self.oncpu_seconds.clone(),
        );
        r.register(
            "tpslab_ebpf_offcpu_seconds",
            "Thread time off CPU (sleeping or blocked) since attach",
            self.offcpu_seconds.clone(),
        );
        r.register(
            "tpslab_ebpf_syscall_calls",
            "Syscalls completed since attach",
            self.syscalls.clone(),
        );
        r.register(
            "tpslab_ebpf_syscall_time_seconds",
            "Time inside syscalls since attach",
            self.syscall_seconds.clone(),
        );
    }
}

/// Serves metrics on `addr` until `duration` has passed.
pub fn serve(mut probes: Probes, addr: &str, duration: Duration) -> Result<()> {
    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let registry = Arc::new(registry);
    // A worker thread drives the server while this thread polls the probes.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(addr))
        .with_context(|| format!("cannot bind {addr}"))?;
    eprintln!("eBPF metrics on http://{}/metrics", listener.local_addr()?);
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut text = String::new();
                if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
                    text = "# metrics encoding failed\n".into();
                }
                text
            }
        }),
    );
    let server = rt.spawn(async move { axum::serve(listener, router).await });
    let end = Instant::now() + duration;
    let mut last_read = Instant::now();
    while Instant::now() < end && !server.is_finished() {
        std::thread::sleep(Duration::from_millis(250));
        for b in probes.poll_blocks() {
            let pid = Pid {
                pid: b.pid.to_string(),
            };
            metrics.blocks.get_or_create(&pid).inc();
            metrics.block_txs.get_or_create(&pid).inc_by(b.txs);
            metrics.height.get_or_create(&pid).set(b.height as i64);
            let secs = b.duration_ns as f64 / 1e9;
            metrics.last_commit.get_or_create(&pid).set(secs);
            metrics.commit_seconds.get_or_create(&pid).inc_by(secs);
        }
        if last_read.elapsed() >= Duration::from_secs(2) {
            last_read = Instant::now();
            let report = probes.read()?;
            for p in &report.procs {
                let pid = Pid {
                    pid: p.pid.to_string(),
                };
                let o = &p.offcpu;
                metrics
                    .runq_seconds
                    .get_or_create(&pid)
                    .set(o.runq_ns as f64 / 1e9);
                metrics
                    .oncpu_seconds
                    .get_or_create(&pid)
                    .set(o.oncpu_ns as f64 / 1e9);
                metrics
                    .offcpu_seconds
                    .get_or_create(&pid)
                    .set((o.sleeping_ns + o.blocked_ns) as f64 / 1e9);
                for s in &p.syscalls {
                    let l = PidSyscall {
                        pid: pid.pid.clone(),
                        syscall: s.name.clone(),
                    };
                    metrics.syscalls.get_or_create(&l).set(s.count as i64);
                    metrics
                        .syscall_seconds
                        .get_or_create(&l)
                        .set(s.total_ns as f64 / 1e9);
                }
            }
        }
    }
    if server.is_finished() {
        rt.block_on(server)?.context("metrics server")?;
    }
    Ok(())
}
