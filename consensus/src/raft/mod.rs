//! The Raft engine: raft-rs (tikv/raft-rs, the Raft core of TiKV) driving the same block
//! pipeline BFT uses. The leader reaps the mempool into a block and proposes it as a log
//! entry; a majority's append acks commit it; every node applies committed blocks in log
//! order (see [`core`] for the one verdict per entry). Txs reach every node by the mempool's
//! gossip, as on a BFT chain, so a leader's death loses no pending tx that reached a follower,
//! and a new leader proposes them.
//!
//! Pre-vote and check-quorum are on. One block is in flight at a time: block H+1's header
//! carries the app hash after H, so the leader cannot build it before H is applied.

mod catch_up;
mod core;
pub mod metrics;
#[cfg(test)]
mod sim;
mod slog_bridge;
mod storage;
mod store;

use self::core::Compaction;
use self::core::Core;
use crate::error::{ConsensusError, ConsensusResult};
use crate::event::CommitEvent;
use crate::pipeline::BlockPipeline;
use crate::transport::Transport;
use metrics::RaftMetrics;
use std::sync::Arc;
use std::time::Duration;
use store::RaftStore;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tpslab_p2p::{Channel, Event, PeerId};
use tpslab_types::ports::{RaftLog, TxPool};
use tracing::info;

/// Settings of the Raft engine.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    /// One tick.
    pub tick: Duration,
    /// Election timeout, in ticks.
    pub election_ticks: usize,
    /// Heartbeat interval, in ticks.
    pub heartbeat_ticks: usize,
    /// Once a tx is pending, wait up to this long for a full block.
    pub linger: Duration,
    /// A block is cut as soon as this many txs are pending.
    pub max_block_txs: usize,
    /// Seed of the election timeouts (reproducible runs); None draws them at random.
    pub seed: Option<u64>,
    /// Log entries kept behind the applied index when compacting (0: never compact).
    pub log_keep: u64,
    /// `p2p.max_frame_bytes`: block-sync responses to catching-up followers fit it.
    pub max_frame_bytes: usize,
}

/// One Raft validator.
pub struct RaftEngine {
    cfg: RaftConfig,
    core: Option<Box<Core>>,
    pool: Arc<dyn TxPool>,
    tx_commits: broadcast::Sender<Arc<CommitEvent>>,
}

/// How long a proposal may stay uncommitted before the leader proposes afresh (it was lost
/// with a leadership change raft-rs did not report, or dropped on the wire).
const PROPOSAL_STALE: Duration = Duration::from_secs(2);

impl RaftEngine {
    /// An engine for the validator at `me` among `validators` (genesis order; Raft ids are
    /// index + 1), persisting to `log`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: RaftConfig,
        validators: Vec<PeerId>,
        me: usize,
        log: Arc<dyn RaftLog>,
        pipeline: BlockPipeline,
        transport: Arc<dyn Transport>,
        metrics: RaftMetrics,
        tx_commits: broadcast::Sender<Arc<CommitEvent>>,
    ) -> ConsensusResult<RaftEngine> {
        let voters: Vec<u64> = (1..=validators.len() as u64).collect();
        let (store, fresh) = RaftStore::open(log, voters)?;
        let pipeline_pool = pipeline.pool().clone();
        let rcfg = raft::Config {
            id: me as u64 + 1,
            election_tick: cfg.election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..raft::Config::default()
        };
        rcfg.validate()
            .map_err(|e| ConsensusError::Raft(format!("raft config: {e}")))?;
        let mut node = raft::RawNode::new(&rcfg, store.storage().clone(), &slog_bridge::logger())
            .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        if let Some(seed) = cfg.seed {
            // raft-rs draws timeouts from thread_rng; a seeded one makes elections replayable.
            let t = cfg.election_ticks
                + (seed.wrapping_mul(0x9e37_79b9) as usize + me) % cfg.election_ticks;
            node.raft.set_randomized_election_timeout(t);
        }
        info!(id = me + 1, fresh, voters = validators.len(), "raft engine");
        let compaction = Compaction {
            log_keep: cfg.log_keep,
            max_frame_bytes: cfg.max_frame_bytes,
            // Two election timeouts without an answer: the message was lost, or the peer is.
            patience: 2 * cfg.election_ticks,
            ..Compaction::default()
        };
        let mut core = Box::new(Core {
            node,
            store,
            pipeline,
            transport,
            peers: validators,
            metrics,
            in_flight: None,
            fresh,
            empty_logs: Default::default(),
            chain_started: false,
            last_leader: 0,
            commits: Vec::new(),
            compaction,
        });
        core.metrics
            .log_first_index
            .set(core.store.first_index() as i64);
        core.resume_catch_up()?;
        Ok(RaftEngine {
            cfg,
            pool: pipeline_pool,
            core: Some(core),
            tx_commits,
        })
    }

    /// Runs until `shutdown`: ticks, steps inbound Raft messages, proposes blocks when
    /// leading, and handles raft-rs's Ready on the blocking pool.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Event>,
        mut shutdown: watch::Receiver<bool>,
    ) -> ConsensusResult<()> {
        let mut tick = tokio::time::interval(self.cfg.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending_since: Option<Instant> = None;
        let mut inbox: Vec<(PeerId, Channel, bytes::Bytes)> = Vec::new();
        loop {
            if *shutdown.borrow() {
                info!("raft engine stopped");
                return Ok(());
            }
            let mut ticked = false;
            let pool = self.pool.clone();
            let linger_left = pending_since
                .map(|t| (t + self.cfg.linger).saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = tick.tick() => ticked = true,
                ev = rx.recv() => match ev {
                    Some(Event::Message { peer, channel: channel @ (Channel::Raft | Channel::Sync), payload }) => {
                        inbox.push((peer, channel, payload));
                        // Take what else is queued, so one Ready covers the batch.
                        while let Ok(ev) = rx.try_recv() {
                            if let Event::Message { peer, channel: channel @ (Channel::Raft | Channel::Sync), payload } = ev {
                                inbox.push((peer, channel, payload));
                            }
                        }
                    }
                    Some(_) => continue,
                    None => return Ok(()),
                },
                _ = pool.wait_for_txs(1), if pending_since.is_none() => {}
                _ = tokio::time::sleep(linger_left.unwrap_or_default()), if linger_left.is_some() => {}
                _ = shutdown.changed() => continue,
            }
            let size = pool.size();
            if size == 0 {
                pending_since = None;
            } else if pending_since.is_none() {
                pending_since = Some(Instant::now());
            }
            let propose = size >= self.cfg.max_block_txs
                || pending_since.is_some_and(|t| t.elapsed() >= self.cfg.linger);
            let batch = std::mem::take(&mut inbox);
            let proposed = self
                .step_blocking(move |c| {
                    for (peer, channel, payload) in &batch {
                        c.receive(*peer, *channel, payload)?;
                    }
                    if ticked {
                        c.tick();
                    }
                    let mut proposed = false;
                    if propose && c.may_propose(PROPOSAL_STALE) {
                        c.propose_block()?;
                        proposed = true;
                    }
                    c.on_ready()?;
                    Ok(proposed)
                })
                .await?;
            if proposed {
                pending_since = None;
            }
        }
    }

    /// Runs `f` on the core on the blocking pool (it writes RocksDB and executes blocks),
    /// then announces the blocks it committed.
    async fn step_blocking<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Core) -> ConsensusResult<T> + Send + 'static,
    ) -> ConsensusResult<T> {
        let Some(mut core) = self.core.take() else {
            return Err(ConsensusError::Raft("engine core lost".into()));
        };
        let (core, out) = tokio::task::spawn_blocking(move || {
            let out = f(&mut core);
            (core, out)
        })
        .await
        .map_err(|e| ConsensusError::Task {
            height: 0,
            reason: e.to_string(),
        })?;
        let mut core = core;
        for ev in core.commits.drain(..) {
            let _ = self.tx_commits.send(Arc::new(ev));
        }
        self.core = Some(core);
        out
    }
}
