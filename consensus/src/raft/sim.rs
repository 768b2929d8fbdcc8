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
use crate::sim::{seeds, SimRng as Rng};
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
use tpslab_types::ports::{ExecParams, Ledger, TxPool};
use tpslab_types::{AppKind, Hash, Tuning};

const CHAIN: &str = "sim";
const ELECTION_TICKS: usize = 10;

/// What one validator sent since the simulation last looked: (to, channel, payload), in
/// send order.
#[derive(Default)]
struct Wire {
    sent: Mutex<Vec<(usize, Channel, Bytes)>>,
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
        self.wire.sent.lock().push((to, channel, payload));
        true
    }

    fn peers(&self) -> Vec<PeerId> {
        self.peers.clone()
    }

    fn disconnect(&self, _peer: PeerId, _reason: String) {}
}

struct SimNode {
    core: Option<Box<Core>>,
    db: Option<StateDb>,
    links: Links,
}

/// What outlives a validator's crash: its mempool (gossip keeps refilling it), its wire and
/// its metrics (counted over all its lives).
#[derive(Clone, Default)]
struct Links {
    pool: Arc<MemPool>,
    wire: Arc<Wire>,
    metrics: RaftMetrics,
}

fn peers(n: usize) -> Vec<PeerId> {
    (0..n)
        .map(|i| PeerId(account_key("sim", i as u64).verifying_key().to_bytes()))
        .collect()
}

/// Opens (or reopens, after a crash) validator `i`'s disk in `dir` and builds its core.
fn boot(dir: &Path, i: usize, n: usize, log_keep: u64, links: Links) -> SimNode {
    let opts = StateDbOptions {
        sync_writes: false,
        ..StateDbOptions::default()
    };
    let db = StateDb::open(&dir.join(format!("node{i}")), &opts).expect("open state db");
    db.init_genesis(AppKind::KvStore, CHAIN, 0, &BTreeMap::new())
        .expect("genesis");
    let pipeline = BlockPipeline::new(PipelineParts {
        exec: ExecParams::new(CHAIN, AppKind::KvStore, &Tuning::tuned(), None),
        key: account_key("sim", i as u64),
        ledger: Arc::new(db.clone()),
        pool: links.pool.clone(),
        limits: BlockLimits {
            max_txs: 8,
            max_bytes: 1 << 20,
        },
        last_commit: None,
        metrics: Default::default(),
        stages: Default::default(),
    });
    let transport = Arc::new(SimTransport {
        peers: peers(n),
        wire: links.wire.clone(),
    });
    let cfg = RaftConfig {
        tick: Duration::from_millis(1),
        election_ticks: ELECTION_TICKS,
        heartbeat_ticks: 2,
        linger: Duration::ZERO,
        max_block_txs: 8,
        seed: None,
        log_keep,
        max_frame_bytes: 1 << 20,
    };
    let engine = RaftEngine::new(
        cfg,
        peers(n),
        i,
        Arc::new(db.clone()),
        pipeline,
        transport,
        links.metrics.clone(),
        tokio::sync::broadcast::channel(16).0,
    )
    .expect("raft engine");
    SimNode {
        core: engine.core,
        db: Some(db),
        links,
    }
}

/// The election timeout validator `i` gets in `term`: drawn from the seed, not thread_rng.
fn election_timeout(seed: u64, i: usize, term: u64) -> usize {
    let mut r = Rng(seed ^ (i as u64).wrapping_mul(0x1000_0001) ^ term.wrapping_mul(0x5bd1_e995));
    ELECTION_TICKS + r.below(ELECTION_TICKS as u64) as usize
}

/// One seed's simulation: the validators, the messages in flight and the partition.
struct RaftSim {
    seed: u64,
    rng: Rng,
    n: usize,
    dir: tempfile::TempDir,
    nodes: Vec<SimNode>,
    ids: Vec<PeerId>,
    /// Entries each validator keeps when it compacts its log (small: most seeds send
    /// snapshots).
    log_keep: u64,
    /// (deliver at tick, from, to, channel, payload), in send order.
    in_flight: Vec<(u64, usize, usize, Channel, Bytes)>,
    /// side[i]: validators on different sides cannot talk; 0 everywhere is no partition.
    side: Vec<u8>,
    txs_added: u64,
    /// Whether a validator's disk was wiped in this run (once at most).
    wiped: bool,
}

impl RaftSim {
    fn new(seed: u64) -> Result<RaftSim, String> {
        let mut rng = Rng(seed);
        let n = if rng.chance(30) { 5 } else { 3 };
        let log_keep = 1 + rng.below(4);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let nodes = (0..n)
            .map(|i| boot(dir.path(), i, n, log_keep, Links::default()))
            .collect();
        Ok(RaftSim {
            seed,
            rng,
            n,
            log_keep,
            dir,
            nodes,
            ids: peers(n),
            in_flight: Vec::new(),
            side: vec![0; n],
            txs_added: 0,
            wiped: false,
        })
    }

    /// Restarts validator `i` from its disk.
    fn restart(&mut self, i: usize) {
        let links = self.nodes[i].links.clone();
        self.nodes[i] = boot(self.dir.path(), i, self.n, self.log_keep, links);
    }

    /// This tick's faults: a new split (or a heal), a crash or a restart, a new tx.
    fn perturb(&mut self) {
        if self.rng.chance(2) {
            for s in 0..self.n {
                self.side[s] = u8::from(self.rng.chance(50));
            }
        }
        if self.rng.chance(1) {
            let i = self.rng.below(self.n as u64) as usize;
            if self.nodes[i].core.is_some() {
                // A wipe only while every validator votes: with more than f fresh (empty
                // disk, not caught up) at once, no leader can be elected (documented).
                let all_vote = self
                    .nodes
                    .iter()
                    .all(|n| n.core.as_ref().is_some_and(|c| !c.fresh));
                // Crash: everything in memory is gone; the disk stays (or, once a run, is
                // wiped: the validator comes back with nothing, and must not vote early).
                self.nodes[i].core = None;
                self.nodes[i].db = None;
                if !self.wiped && self.rng.chance(30) && all_vote {
                    self.wiped = true;
                    let _ = std::fs::remove_dir_all(self.dir.path().join(format!("node{i}")));
                }
            } else {
                self.restart(i);
            }
        }
        if self.rng.chance(20) {
            // Gossip: every validator's mempool gets the tx.
            let tx = format!("k{}=v{}", self.txs_added, self.seed).into_bytes();
            self.txs_added += 1;
            for node in &self.nodes {
                node.links.pool.add([tx.clone()]);
            }
        }
    }

    /// The faults stop: the partition heals and every crashed validator restarts.
    fn calm_down(&mut self) {
        self.side.fill(0);
        for i in 0..self.n {
            if self.nodes[i].core.is_none() {
                self.restart(i);
            }
        }
    }

    /// Delivers what is due at `t`, in send order, across no partition.
    fn deliver(&mut self, t: u64) -> Result<(), String> {
        let mut due = Vec::new();
        self.in_flight.retain(|m| {
            if m.0 <= t {
                due.push(m.clone());
                false
            } else {
                true
            }
        });
        for (_, from, to, channel, payload) in due {
            let same_side = self.side[from] == self.side[to];
            if let Some(core) = self.nodes[to].core.as_mut().filter(|_| same_side) {
                core.receive(self.ids[from], channel, &payload)
                    .map_err(|e| format!("node{to}: {e}"))?;
            }
        }
        Ok(())
    }

    /// One tick of every running validator: tick, propose, handle Ready; what it sent goes
    /// on the wire (dropped or delayed while `faults`).
    fn tick(&mut self, t: u64, faults: bool) -> Result<(), String> {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let Some(core) = node.core.as_mut() else {
                continue;
            };
            let term = core.node.raft.term;
            core.node
                .raft
                .set_randomized_election_timeout(election_timeout(self.seed, i, term));
            core.tick();
            if node.links.pool.size() > 0 && core.may_propose(Duration::MAX) {
                core.propose_block().map_err(|e| e.to_string())?;
            }
            core.on_ready().map_err(|e| format!("node{i}: {e}"))?;
            core.commits.clear();
            for (to, channel, payload) in node.links.wire.sent.lock().drain(..) {
                if faults && self.rng.chance(5) {
                    continue;
                }
                let delay = if faults { self.rng.below(4) } else { 1 };
                self.in_flight
                    .push((t + delay.max(1), i, to, channel, payload));
            }
        }
        Ok(())
    }
}

/// Runs one seed; returns a description of the first violation.
/// Returns how many snapshots the validators installed.
fn run_seed(seed: u64) -> Result<u64, String> {
    let mut sim = RaftSim::new(seed)?;
    let mut agreement = Agreement::default();
    let (faulty, calm) = (400u64, 400u64);
    for t in 0..faulty + calm {
        let faults = t < faulty;
        if faults {
            sim.perturb();
        } else if t == faulty {
            sim.calm_down();
        }
        sim.deliver(t)?;
        sim.tick(t, faults)?;
        agreement
            .check(&sim.nodes)
            .map_err(|e| format!("tick {t}: {e}"))?;
    }
    let heights: Vec<u64> = sim
        .nodes
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
    let pending: Vec<usize> = sim
        .nodes
        .iter()
        .map(|node| node.links.pool.size())
        .collect();
    if pending.iter().any(|p| *p > 0) {
        return Err(format!(
            "txs never committed: pending {pending:?} of {}",
            sim.txs_added
        ));
    }
    Ok(sim
        .nodes
        .iter()
        .map(|node| node.links.metrics.snapshots_installed.get())
        .sum())
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
    let (mut runs, mut with_snapshots) = (0, 0);
    for seed in seeds() {
        match run_seed(seed) {
            Ok(snapshots) => with_snapshots += u64::from(snapshots > 0),
            Err(e) => panic!("seed {seed}: {e} (reproduce: TPSLAB_SIM_SEED={seed} cargo test -p tpslab-consensus raft_sim)"),
        }
        runs += 1;
    }
    // Logs are compacted to a few entries, so crashed and wiped validators often need one.
    assert!(
        runs < 50 || with_snapshots * 10 >= runs,
        "only {with_snapshots} of {runs} seeds installed a snapshot"
    );
    eprintln!("{with_snapshots} of {runs} seeds installed a snapshot");
}
