//! The BFT reactor: the actor that runs Tendermint consensus for a multi-validator chain. It
//! verifies proposals and votes arriving from the p2p network, feeds them to the pure
//! [`Driver`], and performs its outputs: build and sign proposals, sign votes (WAL first),
//! broadcast, schedule timeouts, and on a decision execute and commit the block.

use crate::bft::check::{check_proposal_signature, check_vote, CheckedProposal};
use crate::bft::commit::{build_commit, verify_commit};
use crate::bft::{
    Driver, DriverInput, DriverOutput, ProposalInput, SignedVote, TimeoutKind, Timeouts,
    ValidatorSet,
};
use crate::error::{ConsensusError, ConsensusResult};
use crate::event::CommitEvent;
use crate::invalid::{BlockFault, Invalid, InvalidMessage, MessageKind};
use crate::pipeline::{now_unix_nanos, BlockPipeline};
use crate::signer::{PrivValidator, SignError};
use crate::transport::Transport;
use bytes::Bytes;
use prost::Message;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tpslab_p2p::{Channel, Event, PeerId};
use tpslab_types::pb::{self, consensus_message::Msg, sync_message::Msg as SyncMsg, VoteType};
use tpslab_types::Hash;
use tracing::{debug, info, warn};

mod block_sync;
mod byzantine;
mod pause;
mod perform;
mod rebuild;
mod verify;

use byzantine::ByzState;
pub use byzantine::Byzantine;

/// Settings of the reactor.
#[derive(Clone, Debug)]
pub struct ReactorConfig {
    /// Round timeouts.
    pub timeouts: Timeouts,
    /// Pause after a commit before the next height starts (CometBFT's timeout_commit), so txs
    /// can gather for the next block.
    pub commit_pause: Duration,
    /// adaptive-pause toggle: the pause follows the height's work (at most `commit_pause`)
    /// and ends when the mempool holds a full block ([`pause`]).
    pub adaptive_pause: bool,
    /// `p2p.max_frame_bytes`: block-sync responses are cut to fit it.
    pub max_frame_bytes: usize,
    /// compact-blocks toggle: our proposals carry tx hashes instead of txs (peers' compact
    /// proposals are rebuilt either way, so mixed settings interoperate).
    pub compact_blocks: bool,
    /// Test only: make this validator misbehave.
    pub byzantine: Option<Byzantine>,
}

/// Runs consensus for one validator.
pub struct Reactor {
    cfg: ReactorConfig,
    vals: Arc<ValidatorSet>,
    me: Option<usize>,
    signer: PrivValidator,
    pipeline: BlockPipeline,
    net: Arc<dyn Transport>,
    tx_commits: broadcast::Sender<Arc<CommitEvent>>,
    driver: Driver,
    height: u64,
    /// Candidate blocks of the current height, by hash.
    blocks: HashMap<Hash, pb::Block>,
    /// Tx hashes of candidate blocks, by block hash: computed once (when we built it, when
    /// its tx root was checked, or by the compact rebuild) and reused by the commit.
    tx_hashes: HashMap<Hash, Vec<Hash>>,
    /// Block txs served to each peer at this height (compact-blocks requests are budgeted).
    txs_served: crate::compact::ServeBudget,
    /// Proposals seen at the current height, by round (for re-gossip).
    proposals_seen: HashMap<u32, pb::Proposal>,
    /// Distinct proposed block hashes by round at the current height (at most two kept).
    proposal_values: HashMap<u32, Vec<Hash>>,
    /// Compact proposals of the current height still missing txs, by block hash.
    rebuilds: HashMap<Hash, rebuild::Rebuild>,
    /// Messages for the next height, replayed when it starts.
    future: Vec<(PeerId, pb::ConsensusMessage)>,
    tx_timeouts: mpsc::Sender<(u64, TimeoutKind, u32)>,
    rx_timeouts: mpsc::Receiver<(u64, TimeoutKind, u32)>,
    /// The step we are in and since when (for step duration metrics).
    step_since: (crate::bft::Step, std::time::Instant),
    /// When we last asked a peer for blocks (one request in flight at a time).
    sync_asked: Option<std::time::Instant>,
    /// After a commit: when `height` (already the next one) starts. A timer, not a sleep, so
    /// peers' gossip and next-height messages keep flowing during the pause.
    start_at: Option<tokio::time::Instant>,
    /// adaptive-pause: what may end the pause before `start_at`.
    early: Option<pause::Early>,
    /// When the current height started (the adaptive pause after it follows its length).
    height_started: Option<tokio::time::Instant>,
    /// Set when this validator is told to misbehave.
    byz: Option<ByzState>,
}

/// A refusal of the double-sign guard is the guard working (typically after a restart, for a
/// step signed before the crash): log it and sign nothing. Only a WAL failure is fatal.
fn refused(e: SignError) -> Result<(), SignError> {
    match e {
        SignError::DoubleSign { .. } | SignError::Stale { .. } => {
            warn!(error = %e, "not signing");
            Ok(())
        }
        e => Err(e),
    }
}

fn malformed_frame(
    peer: PeerId,
    height: u64,
    field: &'static str,
    e: prost::DecodeError,
) -> InvalidMessage {
    InvalidMessage {
        kind: MessageKind::Frame,
        peer,
        height,
        round: None,
        reason: Invalid::Malformed {
            field,
            reason: e.to_string(),
        },
    }
}

fn sync_frame(msg: SyncMsg) -> Bytes {
    Bytes::from(pb::SyncMessage { msg: Some(msg) }.encode_to_vec())
}

impl Reactor {
    /// A reactor starting at the height after the last committed block.
    pub fn new(
        cfg: ReactorConfig,
        vals: Arc<ValidatorSet>,
        signer: PrivValidator,
        pipeline: BlockPipeline,
        net: Arc<dyn Transport>,
        tx_commits: broadcast::Sender<Arc<CommitEvent>>,
    ) -> ConsensusResult<Reactor> {
        let height = pipeline.last_committed()?.height + 1;
        let me = vals.index_of(&signer.pubkey());
        let (tx_timeouts, rx_timeouts) = mpsc::channel(1024);
        if let Some(b) = &cfg.byzantine {
            warn!(behaviour = %b.behaviour, "this validator is byzantine (test mode)");
        }
        Ok(Reactor {
            byz: cfg.byzantine.clone().map(ByzState::new),
            driver: Driver::new(height, vals.clone(), me, cfg.timeouts),
            cfg,
            vals,
            me,
            signer,
            pipeline,
            net,
            tx_commits,
            height,
            blocks: HashMap::new(),
            tx_hashes: HashMap::new(),
            txs_served: Default::default(),
            proposals_seen: HashMap::new(),
            proposal_values: HashMap::new(),
            rebuilds: HashMap::new(),
            future: Vec::new(),
            tx_timeouts,
            rx_timeouts,
            sync_asked: None,
            start_at: None,
            early: None,
            height_started: None,
            step_since: (crate::bft::Step::Unstarted, std::time::Instant::now()),
        })
    }

    /// Runs until `shutdown` turns true. A block being committed is finished first.
    /// `rx_net` carries the consensus and block-sync traffic (the node routes tx gossip to
    /// its CheckTx).
    pub async fn run(
        mut self,
        mut rx_net: mpsc::Receiver<Event>,
        mut shutdown: watch::Receiver<bool>,
    ) -> ConsensusResult<()> {
        info!(height = self.height, validator = ?self.me, "consensus started");
        self.begin_height().await?;
        let mut status_tick = tokio::time::interval(crate::sync::STATUS_INTERVAL);
        let mut last_tick_height = 0;
        let mut garbage_tick = tokio::time::interval(byzantine::GARBAGE_EVERY);
        let garbage = self.behaviour() == Some(tpslab_types::byzantine::Behaviour::Garbage);
        let mut fetch_tick = tokio::time::interval(rebuild::FETCH_RETRY);
        fetch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // adaptive-pause looks at the mempool this often while it pauses.
        let mut pause_tick = tokio::time::interval(pause::CHECK_EVERY);
        pause_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let start_at = self.start_at;
            let flush_at = self.byz.as_ref().and_then(|b| b.flush_at);
            tokio::select! {
                _ = tokio::time::sleep_until(flush_at.unwrap_or_else(tokio::time::Instant::now)),
                    if flush_at.is_some() => self.flush_held(),
                _ = garbage_tick.tick(), if garbage => self.spray_garbage(),
                _ = fetch_tick.tick(), if !self.rebuilds.is_empty() => self.retry_rebuilds(),
                _ = tokio::time::sleep_until(start_at.unwrap_or_else(tokio::time::Instant::now)),
                    if start_at.is_some() => {
                    self.start_height(self.height).await?;
                }
                _ = pause_tick.tick(), if self.early.is_some() => {
                    if self.pause_over() {
                        self.start_height(self.height).await?;
                    }
                }
                _ = status_tick.tick() => {
                    let msg = SyncMsg::Status(pb::SyncStatus { height: self.height - 1 });
                    if let Some(f) = self.outgoing(Channel::Sync, sync_frame(msg)) {
                        self.net.broadcast(Channel::Sync, f);
                    }
                    // No progress for a whole interval: messages may have been lost (a peer
                    // was down or not yet connected); send everything of this height again.
                    if last_tick_height == self.height {
                        self.regossip();
                    }
                    last_tick_height = self.height;
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { info!("consensus stopped"); return Ok(()); }
                }
                Some((h, kind, round)) = self.rx_timeouts.recv() => {
                    if h == self.height {
                        let out = self.driver.process(DriverInput::Timeout { kind, round });
                        self.perform(out).await?;
                    }
                }
                ev = rx_net.recv() => match ev {
                    Some(Event::Message { peer, channel: Channel::Consensus, payload }) => {
                        match pb::ConsensusMessage::decode(payload) {
                            Ok(m) => self.on_message(peer, m).await?,
                            Err(e) => self.refuse(malformed_frame(peer, self.height, "consensus message", e)),
                        }
                    }
                    // Tx gossip is the node's to route to CheckTx, not the engine's.
                    Some(Event::Message { channel: Channel::Mempool, .. }) => {}
                    // A Raft node fails the handshake with a BFT one; nothing sends these here.
                    Some(Event::Message { channel: Channel::Raft, .. }) => {}
                    Some(Event::Message { peer, channel: Channel::Sync, payload }) => {
                        match pb::SyncMessage::decode(payload) {
                            Ok(m) => self.on_sync(peer, m).await?,
                            Err(e) => self.refuse(malformed_frame(peer, self.height, "sync message", e)),
                        }
                    }
                    Some(Event::PeerUp(p)) => debug!(peer = %p, "peer up"),
                    Some(Event::PeerDown { peer, reason }) => debug!(%peer, %reason, "peer down"),
                    None => return Ok(()),
                },
            }
        }
    }

    async fn on_message(&mut self, peer: PeerId, m: pb::ConsensusMessage) -> ConsensusResult<()> {
        let height = match m.msg {
            Some(Msg::Proposal(ref p)) => p.height,
            Some(Msg::Vote(ref v)) => v.height,
            // compact-blocks traffic: answered from any height we hold, taken only for a
            // block being rebuilt.
            Some(Msg::TxsRequest(ref r)) => {
                self.on_txs_request(peer, r);
                return Ok(());
            }
            Some(Msg::TxsResponse(r)) => return self.on_txs_response(peer, r).await,
            None => return Ok(()),
        };
        // During the pause after a commit `self.height` is the next height, not started yet.
        let next = if self.start_at.is_some() {
            self.height
        } else {
            self.height + 1
        };
        if height == next {
            if self.future.len() < 10_000 {
                self.future.push((peer, m));
            }
            return Ok(());
        }
        if height != self.height {
            return Ok(());
        }
        if let Some(Msg::Proposal(p)) = &m.msg {
            self.flood_tx_requests(p);
        }
        let (kind, round, checked) = match m.msg {
            Some(Msg::Proposal(p)) => {
                (MessageKind::Proposal, p.round, self.check_proposal(peer, p))
            }
            Some(Msg::Vote(v)) => (MessageKind::Vote, v.round, self.check_vote(&v)),
            _ => return Ok(()),
        };
        let input = match checked {
            Ok(Some(i)) => i,
            Ok(None) => return Ok(()),
            Err(reason) => {
                let refused = InvalidMessage {
                    kind,
                    peer,
                    height,
                    round: Some(round),
                    reason,
                };
                self.refuse(refused);
                return Ok(());
            }
        };
        let out = self.driver.process(input);
        self.perform(out).await
    }

    /// Drops the peer that sent an invalid message (it is misbehaving, or on another chain).
    fn refuse(&self, m: InvalidMessage) {
        self.net.disconnect(m.peer, m.to_string());
    }

    /// Re-broadcasts every proposal and vote seen at the current height, so validators that
    /// missed them (restarted, reconnected) can reach the same polkas and commits.
    fn regossip(&self) {
        for p in self.proposals_seen.values() {
            self.broadcast(Msg::Proposal(p.clone()));
        }
        for v in self.driver.votes().all_votes() {
            let Some(val) = self.vals.get(v.validator) else {
                continue;
            };
            self.broadcast(Msg::Vote(pb::Vote {
                vote_type: v.vote_type as i32,
                height: v.height,
                round: v.round,
                block_hash: v.value.map(|h| h.to_vec()).unwrap_or_default(),
                timestamp_unix_nanos: v.timestamp_unix_nanos,
                validator: val.pubkey.to_vec(),
                signature: v.signature.clone(),
            }));
        }
    }

    fn broadcast(&self, msg: Msg) {
        if let Some(f) = self.consensus_frame(msg) {
            self.net.broadcast(Channel::Consensus, f);
        }
    }

    /// `msg` encoded for the consensus channel (None: a byzantine mode swallowed it).
    fn consensus_frame(&self, msg: Msg) -> Option<Bytes> {
        let bytes = Bytes::from(pb::ConsensusMessage { msg: Some(msg) }.encode_to_vec());
        self.outgoing(Channel::Consensus, bytes)
    }

    /// Sends a consensus message to one peer (dropped if its queue is full: every request
    /// and answer is retried).
    fn send_consensus(&self, peer: PeerId, msg: Msg) {
        if let Some(f) = self.consensus_frame(msg) {
            self.net.send(peer, Channel::Consensus, f);
        }
    }

    /// Runs `f` on the pipeline on the blocking pool (block execution, synced RocksDB
    /// writes), so the reactor runs on any tokio runtime, a single-threaded one included.
    async fn off_thread<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut BlockPipeline) -> T + Send + 'static,
    ) -> ConsensusResult<T> {
        let mut p = self.pipeline.clone();
        let (p, out) = tokio::task::spawn_blocking(move || {
            let out = f(&mut p);
            (p, out)
        })
        .await
        .map_err(|e| ConsensusError::Task {
            height: self.height,
            reason: e.to_string(),
        })?;
        self.pipeline = p;
        Ok(out)
    }

    /// Sends a block-sync frame to one peer; false when it was dropped.
    fn send_sync(&self, peer: PeerId, msg: SyncMsg) -> bool {
        match self.outgoing(Channel::Sync, sync_frame(msg)) {
            Some(f) => self.net.send(peer, Channel::Sync, f),
            None => true,
        }
    }
}
