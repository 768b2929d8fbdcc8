//! A seeded, in-process simulated network for the Raft engine: the real [`Core`] (raft-rs, the
//! block pipeline, the Raft log and the chain on RocksDB in temp dirs) of every validator,
//! driven tick by tick by the simulation instead of timers. The network drops, delays and
//! reorders messages and cuts partitions; validators crash and restart from their disk. Every
//! decision comes from the seed (raft-rs's own randomized election timeouts are overridden
//! from it), so a failing seed reproduces: `TPSLAB_SIM_SEED=N cargo test -p tpslab-consensus
//! raft_sim`. `TPSLAB_SIM_SEEDS=N` runs more seeds than CI's 200.
//!
//! Checked: agreement (no two validators ever hold different blocks at a height), and after
//! the faults stop, liveness (every validator ends at the same height with every tx committed).

use super::core::Core;
use super::metrics::RaftMetrics;
use super::{RaftConfig, RaftEngine};
use crate::memory::MemPool;
use crate::pipeline::{BlockLimits, BlockPipeline, PipelineParts};
use crate::transport::Transport;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tpslab_p2p::{Channel, PeerId};
use tpslab_statedb::{StateDb, StateDbOptions};
use tpslab_types::keys::account_key;
use tpslab_types::ports::{Ledger, TxPool};
use tpslab_types::sigcache::SigCache;
use tpslab_types::{AppKind, Hash, Tuning};

const CHAIN: &str = "sim";
const ELECTION_TICKS: usize = 10;

/// splitmix64: a small, well-mixed generator; the simulation needs nothing stronger.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `pct` percent.
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// What one validator sent since the simulation last looked: (to, payload), in send order.
#[derive(Default)]
struct Wire {
    sent: Mutex<Vec<(usize, Bytes)>>,
}

/// One validator's side of the simulated network: what it sends is collected, and the
/// simulation decides when (and whether) it arrives.
struct SimTransport {
    peers: Vec<PeerId>,
    wire: Arc<Wire>,
}

impl Transport for SimTransport {
    fn send(&self, peer: PeerId, channel: Channel, payload: Bytes) -> bool {
        let Some(to) = self.peers.iter().position(|p| *p == peer) else {
            return false;
        };
        if channel == Channel::Raft {
            self.wire.sent.lock().push((to, payload));
        }
        true
    }
}

struct SimNode {
    core: Option<Box<Core>>,
    db: Option<StateDb>,
    pool: Arc<MemPool>,
    wire: Arc<Wire>,
}

fn peers(n: usize) -> Vec<PeerId> {
    (0..n)
        .map(|i| PeerId(account_key("sim", i as u64).verifying_key().to_bytes()))
        .collect()
}

/// Opens (or reopens, after a crash) validator `i`'s disk in `dir` and builds its core.
fn boot(dir: &Path, i: usize, n: usize, pool: &Arc<MemPool>, wire: &Arc<Wire>) -> SimNode {
    let opts = StateDbOptions {
        sync_writes: false,
        ..StateDbOptions::default()
    };
    let db = StateDb::open(&dir.join(format!("node{i}")), &opts).expect("open state db");
    db.init_genesis(AppKind::KvStore, CHAIN, 0, &BTreeMap::new())
        .expect("genesis");
    let pipeline = BlockPipeline::new(PipelineParts {
        app: AppKind::KvStore,
        chain_id: CHAIN.into(),
        key: account_key("sim", i as u64),
        ledger: Arc::new(db.clone()),
        pool: pool.clone(),
        limits: BlockLimits {
            max_txs: 8,
            max_bytes: 1 << 20,
        },
        last_commit: None,
        metrics: Default::default(),
        tuning: Tuning::tuned(),
        sig_cache: Arc::new(SigCache::new(16)),
        stages: Default::default(),
    });
    let transport = Arc::new(SimTransport {
        peers: peers(n),
        wire: wire.clone(),
    });
    let cfg = RaftConfig {
        tick: Duration::from_millis(1),
        election_ticks: ELECTION_TICKS,
        heartbeat_ticks: 2,
        linger: Duration::ZERO,
        max_block_txs: 8,
        seed: None,
    };
    let engine = RaftEngine::new(
        cfg,
        peers(n),
        i,
        Arc::new(db.clone()),
        pipeline,
        transport,
        RaftMetrics::default(),
        tokio::sync::broadcast::channel(16).0,
    )
    .expect("raft engine");
    SimNode {
        core: engine.core,
        db: Some(db),
        pool: pool.clone(),
        wire: wire.clone(),
    }
}

/// The election timeout validator `i` gets in `term`: drawn from the seed, not thread_rng.
fn election_timeout(seed: u64, i: usize, term: u64) -> usize {
    let mut r = Rng(seed ^ (i as u64).wrapping_mul(0x1000_0001) ^ term.wrapping_mul(0x5bd1_e995));
    ELECTION_TICKS + r.below(ELECTION_TICKS as u64) as usize
}

/// Runs one seed; returns a description of the first violation.
fn run_seed(seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    let n = if rng.chance(30) { 5 } else { 3 };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut nodes: Vec<SimNode> = (0..n)
        .map(|i| {
            boot(
                dir.path(),
                i,
                n,
                &Arc::new(MemPool::default()),
                &Arc::default(),
            )
        })
        .collect();
    let ids = peers(n);
    let mut in_flight: Vec<(u64, usize, usize, Bytes)> = Vec::new();
    // side[i]: validators on different sides cannot talk; 0 everywhere is no partition.
    let mut side = vec![0u8; n];
    let mut txs_added = 0u64;
    let mut agreement = Agreement::default();
    let (faulty, calm) = (400u64, 400u64);
    for t in 0..faulty + calm {
        let faults = t < faulty;
        if faults {
            if rng.chance(2) {
                // A random split, or heal.
                for s in side.iter_mut() {
                    *s = if rng.chance(50) { 0 } else { 1 };
                }
            }
            if rng.chance(1) {
                let i = rng.below(n as u64) as usize;
                if nodes[i].core.is_some() {
                    // Crash: everything in memory is gone; the disk stays.
                    nodes[i].core = None;
                    nodes[i].db = None;
                } else {
                    let (pool, wire) = (nodes[i].pool.clone(), nodes[i].wire.clone());
                    nodes[i] = boot(dir.path(), i, n, &pool, &wire);
                }
            }
        } else if t == faulty {
            side.fill(0);
            for i in 0..n {
                if nodes[i].core.is_none() {
                    let (pool, wire) = (nodes[i].pool.clone(), nodes[i].wire.clone());
                    nodes[i] = boot(dir.path(), i, n, &pool, &wire);
                }
            }
        }
        if faults && rng.chance(20) {
            // Gossip: every validator's mempool gets the tx.
            let tx = format!("k{txs_added}=v{seed}").into_bytes();
            txs_added += 1;
            for node in &nodes {
                node.pool.add([tx.clone()]);
            }
        }
        // Deliver what is due, in send order.
        let mut due = Vec::new();
        in_flight.retain(|m| {
            if m.0 <= t {
                due.push(m.clone());
                false
            } else {
                true
            }
        });
        for (_, from, to, payload) in due {
            if let Some(core) = nodes[to].core.as_mut() {
                if side[from] == side[to] {
                    core.step(ids[from], &payload);
                }
            }
        }
        for (i, node) in nodes.iter_mut().enumerate() {
            let Some(core) = node.core.as_mut() else {
                continue;
            };
            let term = core.node.raft.term;
            core.node
                .raft
                .set_randomized_election_timeout(election_timeout(seed, i, term));
            core.node.tick();
            if node.pool.size() > 0 && core.may_propose(Duration::MAX) {
                core.propose_block().map_err(|e| e.to_string())?;
            }
            core.on_ready().map_err(|e| format!("node{i}: {e}"))?;
            core.commits.clear();
            for (to, payload) in node.wire.sent.lock().drain(..) {
                if faults && rng.chance(5) {
                    continue;
                }
                let delay = if faults { rng.below(4) } else { 1 };
                in_flight.push((t + delay.max(1), i, to, payload));
            }
        }
        agreement
            .check(&nodes)
            .map_err(|e| format!("tick {t}: {e}"))?;
    }
    let heights: Vec<u64> = nodes
        .iter()
        .map(|node| {
            node.db
                .as_ref()
                .map_or(0, |db| Ledger::last_committed(db).map_or(0, |c| c.height))
        })
        .collect();
    if heights.iter().any(|h| *h != heights[0]) || heights[0] == 0 {
        return Err(format!("no convergence after healing: heights {heights:?}"));
    }
    eprintln!("seed {seed}: {n} validators, heights {heights:?}, {txs_added} txs");
    let pending: Vec<usize> = nodes.iter().map(|node| node.pool.size()).collect();
    if pending.iter().any(|p| *p > 0) {
        return Err(format!(
            "txs never committed: pending {pending:?} of {txs_added}"
        ));
    }
    Ok(())
}

/// Every block any validator committed, by height: no two may differ.
#[derive(Default)]
struct Agreement {
    hashes: Vec<Hash>,
    /// How far each validator's chain was checked.
    checked: BTreeMap<usize, u64>,
}

impl Agreement {
    /// Checks the blocks `nodes` committed since the last call.
    fn check(&mut self, nodes: &[SimNode]) -> Result<(), String> {
        for (i, node) in nodes.iter().enumerate() {
            let Some(db) = &node.db else { continue };
            let top = Ledger::last_committed(db).map_err(|e| e.0)?.height;
            let from = self.checked.get(&i).copied().unwrap_or(0) + 1;
            for h in from..=top {
                let rec = Ledger::block(db, h)
                    .map_err(|e| e.0)?
                    .ok_or(format!("node{i} lost block {h}"))?;
                let hash =
                    Hash::from_slice("block_hash", &rec.block_hash).map_err(|e| e.to_string())?;
                match self.hashes.get(h as usize - 1) {
                    Some(seen) if *seen != hash => {
                        return Err(format!("node{i} committed another block at height {h}"))
                    }
                    Some(_) => {}
                    None => self.hashes.push(hash),
                }
            }
            self.checked.insert(i, top);
        }
        Ok(())
    }
}

#[test]
fn raft_sim_never_breaks_agreement_and_converges_after_healing() {
    let seeds: Vec<u64> = match std::env::var("TPSLAB_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("TPSLAB_SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("TPSLAB_SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(200u64);
            (0..n).collect()
        }
    };
    for seed in seeds {
        if let Err(e) = run_seed(seed) {
            panic!("seed {seed}: {e} (reproduce: TPSLAB_SIM_SEED={seed} cargo test -p tpslab-consensus raft_sim)");
        }
    }
}
