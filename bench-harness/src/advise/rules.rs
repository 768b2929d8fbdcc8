//! The advisor's rules, in one table: which figure points at which toggle (or, for a chain
//! with nothing left to toggle, at what limits it), the threshold, the direction the figure
//! should move once the toggle is on, and why. Order matters: the first rule that fires names
//! the toggle to try next, so the table runs from the largest per-tx cost the ladder showed
//! to the smallest (docs/DESIGN.md, "Advisor").

use super::evidence::Evidence;

/// A figure the rules read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// ed25519 verification's share of node0's CPU samples.
    VerifyShare,
    /// RocksDB's share of node0's CPU samples.
    StorageShare,
    /// Formatting and logging's share of node0's CPU samples.
    FormatShare,
    /// ed25519 verifications per committed tx per validator.
    VerificationsPerTx,
    /// The consensus stage's (proposed -> committed) P50 in block intervals.
    CommitBlocks,
    /// The gossip stage's (CheckTx done -> admitted at a peer) P99, ms.
    GossipP99Ms,
    /// Mempool + state lock wait per committed tx, us.
    LockWaitUsPerTx,
    /// Heap allocations per committed tx.
    AllocsPerTx,
    /// fsync + fdatasync per committed tx (probes).
    FsyncsPerTx,
    /// write + writev + sendto per committed tx (probes).
    WritesPerTx,
    /// Run-queue latency P99 of the validators' threads, us (probes).
    RunqP99Us,
    /// The validators' CPU as a share of the machine's cores.
    MachineCpuShare,
    /// Times each committed tx byte was sent to each peer.
    WireCopiesPerTx,
}

impl Metric {
    /// The figure in `e`, if it was measured.
    pub fn value(self, e: &Evidence) -> Option<f64> {
        let probes = e.probes.as_ref();
        match self {
            Metric::VerifyShare => e.cpu.as_ref().map(|c| c.verify),
            Metric::StorageShare => e.cpu.as_ref().map(|c| c.storage),
            Metric::FormatShare => e.cpu.as_ref().map(|c| c.format),
            Metric::VerificationsPerTx => e.verifications_per_tx,
            Metric::CommitBlocks => {
                let interval = e.block_interval_ms.filter(|b| *b > 0.0)?;
                Some(e.stage("consensus")?.p50_ms / interval)
            }
            Metric::GossipP99Ms => e.stage("gossip").map(|s| s.p99_ms),
            Metric::LockWaitUsPerTx => e.lock_wait_us_per_tx,
            Metric::AllocsPerTx => e.allocs_per_tx,
            Metric::FsyncsPerTx => probes?.fsyncs_per_tx,
            Metric::WritesPerTx => probes?.writes_per_tx,
            Metric::RunqP99Us => probes?.runq_p99_us.map(|v| v as f64),
            Metric::MachineCpuShare => {
                let cores = e.machine_cpus.filter(|c| *c > 0)? as f64;
                Some(e.validators_cpu_pct? / (100.0 * cores))
            }
            Metric::WireCopiesPerTx => e.wire_copies_per_tx,
        }
    }

    /// The figure in words, `value` filled in.
    pub fn describe(self, v: f64) -> String {
        match self {
            Metric::VerifyShare => format!(
                "ed25519 verification {:.0} % of node0's CPU samples",
                v * 100.0
            ),
            Metric::StorageShare => format!("RocksDB {:.0} % of node0's CPU samples", v * 100.0),
            Metric::FormatShare => format!(
                "formatting/logging {:.0} % of node0's CPU samples",
                v * 100.0
            ),
            Metric::VerificationsPerTx => {
                format!("{v:.2} ed25519 verifications per committed tx per validator")
            }
            Metric::CommitBlocks => format!("proposed -> committed P50 {v:.1} block intervals"),
            Metric::GossipP99Ms => {
                format!("gossip stage (CheckTx done -> admitted at a peer) P99 {v:.0} ms")
            }
            Metric::LockWaitUsPerTx => format!("lock wait {v:.0} us per committed tx"),
            Metric::AllocsPerTx => format!("{v:.0} heap allocations per committed tx"),
            Metric::FsyncsPerTx => format!("{v:.2} fsyncs per committed tx"),
            Metric::WritesPerTx => format!("{v:.1} write syscalls per committed tx"),
            Metric::RunqP99Us => format!("run-queue P99 {:.1} ms", v / 1000.0),
            Metric::MachineCpuShare => {
                format!("validators use {:.0} % of the machine's cores", v * 100.0)
            }
            Metric::WireCopiesPerTx => format!(
                "each committed tx byte sent {v:.1} times to each peer (p2p bytes / tx bytes)"
            ),
        }
    }

    /// Just the amount, with its unit (`30 %`, `100 ms`), for thresholds.
    pub fn amount(self, v: f64) -> String {
        match self {
            Metric::VerifyShare
            | Metric::StorageShare
            | Metric::FormatShare
            | Metric::MachineCpuShare => format!("{:.0} %", v * 100.0),
            Metric::CommitBlocks => format!("{v:.1} block intervals"),
            Metric::GossipP99Ms => format!("{v:.0} ms"),
            Metric::LockWaitUsPerTx => format!("{v:.0} us per tx"),
            Metric::RunqP99Us => format!("{:.1} ms", v / 1000.0),
            Metric::VerificationsPerTx | Metric::FsyncsPerTx => format!("{v:.2} per tx"),
            Metric::AllocsPerTx | Metric::WritesPerTx => format!("{v:.0} per tx"),
            Metric::WireCopiesPerTx => format!("{v:.1} copies per peer"),
        }
    }

    /// What measuring it takes, for rules left unevaluated.
    pub fn needs(self) -> &'static str {
        match self {
            Metric::VerifyShare | Metric::StorageShare | Metric::FormatShare => {
                "a CPU profile of node0 (the experiment without --no-profile)"
            }
            Metric::VerificationsPerTx => "the nodes' /metrics over a window (advise --testnet)",
            Metric::CommitBlocks | Metric::GossipP99Ms => "stage latencies (/debug/stages)",
            Metric::LockWaitUsPerTx
            | Metric::AllocsPerTx
            | Metric::MachineCpuShare
            | Metric::WireCopiesPerTx => "the validators' /metrics and /proc over a window",
            Metric::FsyncsPerTx | Metric::WritesPerTx | Metric::RunqP99Us => {
                "the eBPF probes (experiment --probes, as root)"
            }
        }
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// The toggle it points at; None for a limit of the chain (nothing to toggle).
    pub toggle: Option<&'static str>,
    /// For a limit: what limits the chain (`signature verification CPU`, ...).
    pub limit: &'static str,
    /// The figure.
    pub metric: Metric,
    /// It fires at or above this.
    pub at_least: f64,
    /// Toggles that must be on for the rule to apply (the toggle's effect depends on them).
    pub requires: &'static [&'static str],
    /// Where the figure should go once the toggle is on.
    pub expect: &'static str,
    /// Why the figure points there, and where the threshold comes from.
    pub why: &'static str,
}

const fn toggle(
    name: &'static str,
    metric: Metric,
    at_least: f64,
    requires: &'static [&'static str],
    expect: &'static str,
    why: &'static str,
) -> Rule {
    Rule {
        toggle: Some(name),
        limit: "",
        metric,
        at_least,
        requires,
        expect,
        why,
    }
}

const fn limit(
    what: &'static str,
    metric: Metric,
    at_least: f64,
    requires: &'static [&'static str],
    why: &'static str,
) -> Rule {
    Rule {
        toggle: None,
        limit: what,
        metric,
        at_least,
        requires,
        expect: "",
        why,
    }
}

/// Every rule, toggles first (in the order their first firing rule is tried), then limits.
pub const RULES: &[Rule] = &[
    toggle("sig-cache", Metric::VerifyShare, 0.30, &[],
        "verification share and CPU per tx down (one verification per tx per validator, not two); TPS up",
        "with sig-cache off each tx is verified at CheckTx and again when its block executes; \
         verification past 30 % of the profile is the largest per-tx cost (the full ladder: \
         56 % at baseline, and sig-cache doubled capacity)"),
    toggle("sig-cache", Metric::VerificationsPerTx, 1.5, &[],
        "verifications per tx down to ~1",
        "one verification per tx per validator is the floor (CheckTx); ~2 means every block \
         re-verifies its txs"),
    toggle("write-batch", Metric::FsyncsPerTx, 0.5, &[],
        "fsyncs per tx down to ~1 per block; block commit time down; TPS up",
        "the naive commit puts each tx's writes with their own WAL sync (fsync P50 is in the \
         run's info); one per block is what a batch costs"),
    toggle("write-batch", Metric::CommitBlocks, 4.0, &[],
        "proposed -> committed time down to ~1-2 block intervals; TPS up",
        "a block that takes more than 4 intervals from proposal to commit is spending them in \
         execution and persistence: per-tx synced writes are the naive path's cost (the full \
         ladder: 12 intervals at baseline, 5 after write-batch)"),
    toggle("gossip-batch", Metric::GossipP99Ms, 100.0, &[],
        "gossip stage P99 down to ~the 5 ms batch window; p2p write syscalls per tx down; capacity up",
        "per-tx gossip sends one frame per tx per peer; past 100 ms at P99 the peers' inbound \
         queues are the wait (the full ladder: 270-737 ms before gossip-batch, 36 ms after, \
         capacity +50 %)"),
    toggle("read-cache", Metric::StorageShare, 0.05, &[],
        "RocksDB share of the profile down; block processing time down",
        "every account read of CheckTx, execution and recheck goes to RocksDB; its memtable \
         lookups past 5 % of CPU are reads a cache would answer"),
    toggle("sharded-state", Metric::LockWaitUsPerTx, 100.0, &["read-cache"],
        "lock wait per tx down",
        "one RwLock over the state cache: past 100 us per tx, CheckTx queues behind block \
         commits (no effect without read-cache, which owns the lock)"),
    toggle("buffer-pool", Metric::AllocsPerTx, 100.0, &[],
        "allocations per tx down by about half; CPU in malloc/free down",
        "each tx decode allocates a fresh message and each check a sign-bytes buffer; the \
         pooled path measured 69 per tx in the full ladder, the naive one 140-360"),
    toggle("quiet-log", Metric::FormatShare, 0.05, &[],
        "formatting share and write syscalls per tx down",
        "debug logging formats and writes a line per tx synchronously; past 5 % of CPU it is a \
         fixed per-tx cost"),
    toggle("crypto-pool", Metric::RunqP99Us, 5000.0, &[],
        "run-queue P99 of the I/O threads down; API receive latency down",
        "CheckTx inline on the async I/O threads: a 5 ms run-queue P99 means reads of the \
         gRPC stream wait behind verification"),
    toggle("sig-batch", Metric::VerifyShare, 0.40, &["sig-cache"],
        "CPU per verified signature down (~52 -> ~27 us: types/benches/verify.rs)",
        "with one verification per tx left, batch verification is the remaining lever on a \
         verification-bound profile"),
    toggle("zero-copy-net", Metric::WritesPerTx, 2.0, &["gossip-batch"],
        "write syscalls per frame and memcpy in the p2p writer down",
        "with gossip batched, more than 2 writes per tx is one flush per frame (votes, parts)"),
    toggle("compact-blocks", Metric::WireCopiesPerTx, 1.6, &[],
        "p2p bytes per committed tx down to ~1 copy per peer (gossip alone); consensus stage \
         latency down where blocks are large",
        "peers already hold a block's txs from gossip, and a proposal carrying them whole sends \
         each again: ~2 copies per peer per tx byte (tuned transfers, 4 validators, 3000 tx/s: \
         2.1 with whole proposals, 1.2 with compact ones, where fetches and votes make the rest)"),
    toggle("parallel-exec", Metric::VerificationsPerTx, 1.2, &["sig-cache"],
        "block processing time of blocks with unchecked txs down (verified on every core)",
        "with sig-cache on, verifications past 1.2 per tx are txs this validator never \
         checked (fetched for a compact proposal, synced, or after a restart), verified when \
         their block executes; parallel-exec spreads that over the cores (1000 transfers: \
         17.6 -> 10.5 ms on 2)"),
    limit("signature verification CPU", Metric::VerifyShare, 0.35, &["sig-cache"],
        "every validator verifies each tx once at CheckTx, all on this machine's cores: more \
         cores (or fewer validators per machine) is what raises this limit"),
    limit("fsync (the disk)", Metric::FsyncsPerTx, 0.05, &["write-batch"],
        "one synced batch per block is left; the disk's fsync latency bounds the block rate"),
    limit("fsync (the disk)", Metric::CommitBlocks, 4.0, &["write-batch"],
        "blocks take more than 4 intervals to commit with writes batched: persistence is the wait"),
    limit("network and consensus rounds", Metric::GossipP99Ms, 100.0, &["gossip-batch"],
        "txs take more than 100 ms to reach peers with gossip batched: the links or the peers' \
         inbound queues are the wait"),
    limit("the machine's CPU", Metric::MachineCpuShare, 0.70, &[],
        "the validators use most of the machine's cores: every lever left trades CPU"),
];
