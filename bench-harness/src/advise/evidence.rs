//! What the advisor reads: one chain's figures over one window, taken from an experiment
//! step (results.json) or measured on a running testnet ([`super::live`]). Every figure is
//! optional; a rule whose figure is missing is reported as not evaluated, with what it needs.

use crate::experiment::{RunInfo, StepProbes, StepResult};
use crate::profile::FunctionShare;
use serde::{Deserialize, Serialize};
use tpslab_types::stages::StageSummary;

/// Shares of node0's CPU samples by the kind of work, from its profile's functions (self
/// time, so the shares add up to at most 1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuShares {
    /// ed25519 verification: curve25519-dalek (its AVX2 backend's intrinsics included: it is
    /// the binary's only AVX2 code), ed25519-dalek, ed25519-zebra.
    pub verify: f64,
    /// RocksDB's C++ (memtable, WAL, reads).
    pub storage: f64,
    /// Text formatting and logging (core::fmt, tracing).
    pub format: f64,
    /// Memory copies (memcpy, copy_nonoverlapping).
    pub copy: f64,
    /// The allocator (malloc/free, jemalloc, Rust's alloc shims).
    pub alloc: f64,
    /// Samples' share covered by the functions given (a top-N list covers part).
    pub covered: f64,
}

impl CpuShares {
    /// The shares of a profile's functions (all of them, or a top-N list).
    pub fn of(functions: &[FunctionShare]) -> Option<CpuShares> {
        if functions.is_empty() {
            return None;
        }
        let mut s = CpuShares::default();
        let mut other = 0.0;
        for f in functions {
            let n = f.name.as_str();
            let has = |parts: &[&str]| parts.iter().any(|p| n.contains(p));
            let slot = if has(&["curve25519_dalek", "ed25519", "core_arch::x86::avx2"]) {
                &mut s.verify
            } else if has(&["rocksdb::"]) {
                &mut s.storage
            } else if has(&["core::fmt", "tracing", "fmt::write"]) {
                &mut s.format
            } else if has(&["copy_nonoverlapping", "memcpy", "memmove"]) {
                &mut s.copy
            } else if has(&["malloc", "_rjem", "__rust_alloc", "__rust_dealloc", "cfree"]) {
                &mut s.alloc
            } else {
                &mut other
            };
            *slot += f.self_share;
        }
        s.covered = other + s.verify + s.storage + s.format + s.copy + s.alloc;
        Some(s)
    }
}

/// One chain's figures over one window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Evidence {
    /// What was read: a step's name, or `testnet DIR (20 s)`.
    pub source: String,
    /// Consensus engine (`bft`, `raft`).
    pub engine: String,
    /// The toggles on.
    pub enabled: Vec<String>,
    /// Committed TPS.
    pub tps: f64,
    /// Offered rate, tx/s (a fixed-rate load), if known.
    pub offered_rate: Option<f64>,
    /// End-to-end P99, ms.
    pub p99_ms: Option<f64>,
    /// node0's CPU by kind of work.
    pub cpu: Option<CpuShares>,
    /// Validators' CPU together, % of one core.
    pub validators_cpu_pct: Option<f64>,
    /// Logical CPUs of the machine.
    pub machine_cpus: Option<usize>,
    /// Heap allocations per committed tx, all validators.
    pub allocs_per_tx: Option<f64>,
    /// Mempool + state lock wait per committed tx, all validators, us.
    pub lock_wait_us_per_tx: Option<f64>,
    /// ed25519 verifications per committed tx per validator (`tpslab_signature_verifications`).
    pub verifications_per_tx: Option<f64>,
    /// Stage latencies (where a tx waits).
    pub stages: Vec<StageSummary>,
    /// The chain's configured block interval, ms.
    pub block_interval_ms: Option<f64>,
    /// Kernel-side figures, when the eBPF probes ran.
    pub probes: Option<StepProbes>,
    /// How many times each committed tx byte was sent to each peer (p2p bytes sent by all
    /// validators / committed tx bytes x (validators - 1)): ~1 is gossip alone, ~2 is gossip
    /// plus whole-tx proposals.
    #[serde(default)]
    pub wire_copies_per_tx: Option<f64>,
}

/// [`Evidence::wire_copies_per_tx`] of one window's node figures.
pub fn wire_copies(resources: &[crate::monitor::NodeResources]) -> Option<f64> {
    let n = resources.len();
    let sent: u64 = resources
        .iter()
        .map(|r| r.p2p_sent_bytes)
        .sum::<Option<u64>>()?;
    let committed: u64 = resources
        .iter()
        .map(|r| r.committed_tx_bytes)
        .sum::<Option<u64>>()?;
    // Each validator committed the same txs: their mean is the window's tx bytes.
    let tx_bytes = committed as f64 / n as f64;
    (n >= 2 && tx_bytes >= 1.0).then(|| sent as f64 / (tx_bytes * (n - 1) as f64))
}

impl Evidence {
    /// A step of an experiment.
    pub fn of_step(step: &StepResult, info: &RunInfo) -> Evidence {
        let r = &step.report;
        Evidence {
            source: step.name.clone(),
            engine: step.engine.clone(),
            enabled: step.enabled.clone(),
            tps: step.tps,
            offered_rate: r.target_rate.map(|x| x as f64),
            p99_ms: Some(step.p99_ms),
            cpu: CpuShares::of(&step.profile_top),
            validators_cpu_pct: Some(step.cpu_pct),
            machine_cpus: Some(info.cpus),
            allocs_per_tx: step.allocs_per_tx,
            lock_wait_us_per_tx: step.lock_wait_us_per_tx,
            verifications_per_tx: None,
            stages: r.stages.clone(),
            block_interval_ms: Some(info.block_interval_ms as f64),
            probes: step.probes.clone(),
            wire_copies_per_tx: wire_copies(&r.resources),
        }
    }

    /// A stage's summary by name (`gossip`, `consensus`, ...).
    pub fn stage(&self, name: &str) -> Option<&StageSummary> {
        self.stages.iter().find(|s| s.stage == name && s.count > 0)
    }

    /// Whether a toggle is on.
    pub fn on(&self, toggle: &str) -> bool {
        self.enabled.iter().any(|t| t == toggle)
    }
}
