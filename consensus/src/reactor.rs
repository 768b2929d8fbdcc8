//! The BFT reactor: the actor that runs Tendermint consensus for a multi-validator chain. It
//! verifies proposals and votes arriving from the p2p network, feeds them to the pure
//! [`Driver`], and performs its outputs: build and sign proposals, sign votes (WAL first),
//! broadcast, schedule timeouts, and on a decision execute and commit the block.

use crate::bft::commit::{build_commit, verify_commit};
use crate::bft::{
    Driver, DriverInput, DriverOutput, ProposalInput, SignedVote, TimeoutKind, Timeouts,
    ValidatorSet,
};
use crate::error::{ConsensusError, ConsensusResult};
use crate::event::CommitEvent;
use crate::pipeline::{now_unix_nanos, BlockPipeline};
use crate::signer::{PrivValidator, SignError};
use bytes::Bytes;
use prost::Message;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tpslab_p2p::{Channel, Event, Network, PeerId};
use tpslab_types::pb::{self, consensus_message::Msg, sync_message::Msg as SyncMsg, VoteType};
use tpslab_types::vote::{
    verify_proposal_signature, verify_vote_signature, ProposalData, VoteData,
};
use tpslab_types::Hash;
use tracing::{debug, info, warn};

/// Settings of the reactor.
#[derive(Clone, Debug)]
pub struct ReactorConfig {
    /// Round timeouts.
    pub timeouts: Timeouts,
    /// Pause after a commit before the next height starts (CometBFT's timeout_commit), so txs
    /// can gather for the next block.
    pub commit_pause: Duration,
}

/// Runs consensus for one validator.
pub struct Reactor {
    cfg: ReactorConfig,
    vals: Arc<ValidatorSet>,
    me: Option<usize>,
    signer: PrivValidator,
    pipeline: BlockPipeline,
    net: Network,
    tx_commits: broadcast::Sender<Arc<CommitEvent>>,
    driver: Driver,
    height: u64,
    /// Candidate blocks of the current height, by hash.
    blocks: HashMap<Hash, pb::Block>,
    /// Proposals seen at the current height, by round (for re-gossip).
    proposals_seen: HashMap<u32, pb::Proposal>,
    /// Messages for the next height, replayed when it starts.
    future: Vec<(PeerId, pb::ConsensusMessage)>,
    tx_timeouts: mpsc::Sender<(u64, TimeoutKind, u32)>,
    rx_timeouts: mpsc::Receiver<(u64, TimeoutKind, u32)>,
    tx_ingest: mpsc::Sender<Bytes>,
    /// The step we are in and since when (for step duration metrics).
    step_since: (crate::bft::Step, std::time::Instant),
    /// When we last asked a peer for blocks (one request in flight at a time).
    sync_asked: Option<std::time::Instant>,
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
        net: Network,
        tx_commits: broadcast::Sender<Arc<CommitEvent>>,
    ) -> ConsensusResult<Reactor> {
        let height = pipeline
            .db
            .last_committed()
            .map_err(|source| ConsensusError::State { height: 0, source })?
            .height
            + 1;
        let me = vals.index_of(&signer.pubkey());
        let (tx_timeouts, rx_timeouts) = mpsc::channel(1024);
        // Txs gossiped by peers are checked off the consensus task (signature checks are slow).
        let (tx_ingest, mut rx_ingest) = mpsc::channel::<Bytes>(4096);
        let mempool = pipeline.mempool.clone();
        tokio::spawn(async move {
            while let Some(payload) = rx_ingest.recv().await {
                if let Ok(batch) = pb::TxBatch::decode(payload) {
                    for tx in batch.txs {
                        // Duplicates and txs this node already has are expected; not errors.
                        let _ = mempool.check_tx(&tx);
                    }
                }
            }
        });
        Ok(Reactor {
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
            proposals_seen: HashMap::new(),
            future: Vec::new(),
            tx_timeouts,
            rx_timeouts,
            tx_ingest,
            sync_asked: None,
            step_since: (crate::bft::Step::Unstarted, std::time::Instant::now()),
        })
    }

    /// Runs until `shutdown` turns true. A block being committed is finished first.
    pub async fn run(
        mut self,
        mut rx_net: mpsc::Receiver<Event>,
        mut shutdown: watch::Receiver<bool>,
    ) -> ConsensusResult<()> {
        info!(height = self.height, validator = ?self.me, "consensus started");
        let out = self.driver.process(DriverInput::Start);
        self.perform(out).await?;
        self.replay_own_votes().await?;
        let mut status_tick = tokio::time::interval(crate::sync::STATUS_INTERVAL);
        let mut last_tick_height = 0;
        loop {
            tokio::select! {
                _ = status_tick.tick() => {
                    let msg = SyncMsg::Status(pb::SyncStatus { height: self.height - 1 });
                    self.net.broadcast(Channel::Sync, sync_frame(msg));
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
                            Err(e) => self.net.disconnect(peer, format!("malformed consensus message: {e}")).await,
                        }
                    }
                    Some(Event::Message { channel: Channel::Mempool, payload, .. }) => {
                        let _ = self.tx_ingest.try_send(payload);
                    }
                    Some(Event::Message { peer, channel: Channel::Sync, payload }) => {
                        match pb::SyncMessage::decode(payload) {
                            Ok(m) => self.on_sync(peer, m).await?,
                            Err(e) => self.net.disconnect(peer, format!("malformed sync message: {e}")).await,
                        }
                    }
                    Some(Event::PeerUp(p)) => debug!(peer = %p, "peer up"),
                    Some(Event::PeerDown { peer, reason }) => debug!(%peer, %reason, "peer down"),
                    None => return Ok(()),
                },
            }
        }
    }

    async fn on_sync(&mut self, peer: PeerId, m: pb::SyncMessage) -> ConsensusResult<()> {
        let committed = self.height - 1;
        match m.msg {
            Some(SyncMsg::Status(s)) => {
                let stale = self
                    .sync_asked
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(2));
                if s.height > committed && stale {
                    let req = pb::SyncRequest {
                        from_height: committed + 1,
                        to_height: s.height,
                    };
                    if self
                        .net
                        .try_send(peer, Channel::Sync, sync_frame(SyncMsg::Request(req)))
                        .is_ok()
                    {
                        self.sync_asked = Some(std::time::Instant::now());
                    }
                }
            }
            Some(SyncMsg::Request(req)) => {
                let db = self.pipeline.db.clone();
                let resp = tokio::task::block_in_place(|| crate::sync::serve(&db, &req));
                let _ = self
                    .net
                    .try_send(peer, Channel::Sync, sync_frame(SyncMsg::Response(resp)));
            }
            Some(SyncMsg::Response(resp)) => {
                self.sync_asked = None;
                let vals = self.vals.clone();
                let pipeline = &mut self.pipeline;
                let (events, err) = tokio::task::block_in_place(|| {
                    crate::sync::apply(pipeline, &vals, resp.blocks)
                });
                if let Some(e) = err {
                    self.net
                        .disconnect(peer, format!("bad block sync response: {e}"))
                        .await;
                }
                if let Some(last) = events.last() {
                    info!(
                        from = committed + 1,
                        to = last.height,
                        "caught up by block sync"
                    );
                    let next = last.height + 1;
                    for ev in events {
                        let _ = self.tx_commits.send(Arc::new(ev));
                    }
                    self.start_height(next).await?;
                }
            }
            None => {}
        }
        Ok(())
    }

    async fn on_message(&mut self, peer: PeerId, m: pb::ConsensusMessage) -> ConsensusResult<()> {
        let height = match &m.msg {
            Some(Msg::Proposal(p)) => p.height,
            Some(Msg::Vote(v)) => v.height,
            None => return Ok(()),
        };
        if height == self.height + 1 {
            if self.future.len() < 10_000 {
                self.future.push((peer, m));
            }
            return Ok(());
        }
        if height != self.height {
            return Ok(());
        }
        let input = match m.msg {
            Some(Msg::Proposal(p)) => match self.check_proposal(p) {
                Ok(i) => i,
                Err(reason) => {
                    self.net.disconnect(peer, reason).await;
                    return Ok(());
                }
            },
            Some(Msg::Vote(v)) => match self.check_vote(&v) {
                Ok(i) => i,
                Err(reason) => {
                    self.net.disconnect(peer, reason).await;
                    return Ok(());
                }
            },
            None => return Ok(()),
        };
        let out = self.driver.process(input);
        self.perform(out).await
    }

    /// Verifies a proposal's signature and block; an invalid block is still a proposal (the
    /// driver prevotes nil on it), a bad signature is misbehaviour.
    fn check_proposal(&mut self, p: pb::Proposal) -> Result<DriverInput, String> {
        let proposer = self
            .vals
            .index_of(&p.proposer)
            .ok_or("proposal from an unknown validator")?;
        let hash =
            Hash::from_slice("proposal.block_hash", &p.block_hash).map_err(|e| e.to_string())?;
        let pol_round = u32::try_from(p.pol_round).ok();
        let data = ProposalData {
            chain_id: &self.pipeline.chain_id,
            height: p.height,
            round: p.round,
            pol_round,
            block_hash: hash,
            timestamp_unix_nanos: p.timestamp_unix_nanos,
        };
        verify_proposal_signature(&data, &p.proposer, &p.signature)
            .map_err(|e| format!("invalid proposal signature: {e}"))?;
        self.proposals_seen
            .entry(p.round)
            .or_insert_with(|| p.clone());
        let block = p.block.ok_or("proposal without block")?;
        let valid = match self.pipeline.check_block(&block) {
            Ok(h) if h == hash => self.check_last_commit(&block).is_ok(),
            _ => false,
        };
        if !valid {
            warn!(height = p.height, round = p.round, "invalid block proposed");
        }
        self.blocks.insert(hash, block);
        Ok(DriverInput::Proposal(ProposalInput {
            height: p.height,
            round: p.round,
            value: hash,
            pol_round,
            proposer,
            valid,
        }))
    }

    fn check_last_commit(&self, block: &pb::Block) -> Result<(), String> {
        if self.height == 1 {
            return Ok(());
        }
        let prev = self
            .pipeline
            .db
            .last_committed()
            .map_err(|e| e.to_string())?;
        let c = block
            .last_commit
            .as_ref()
            .ok_or("block without last_commit")?;
        verify_commit(
            &self.pipeline.chain_id,
            &self.vals,
            self.height - 1,
            &prev.block_hash,
            c,
        )
    }

    fn check_vote(&self, v: &pb::Vote) -> Result<DriverInput, String> {
        let validator = self
            .vals
            .index_of(&v.validator)
            .ok_or("vote from an unknown validator")?;
        let vote_type = VoteType::try_from(v.vote_type)
            .ok()
            .filter(|t| *t != VoteType::Unknown)
            .ok_or("vote of unknown type")?;
        let value = if v.block_hash.is_empty() {
            None
        } else {
            Some(Hash::from_slice("vote.block_hash", &v.block_hash).map_err(|e| e.to_string())?)
        };
        let data = VoteData {
            chain_id: &self.pipeline.chain_id,
            vote_type,
            height: v.height,
            round: v.round,
            block_hash: value,
            timestamp_unix_nanos: v.timestamp_unix_nanos,
        };
        verify_vote_signature(&data, &v.validator, &v.signature)
            .map_err(|e| format!("invalid vote signature: {e}"))?;
        Ok(DriverInput::Vote(SignedVote {
            vote_type,
            height: v.height,
            round: v.round,
            value,
            validator,
            timestamp_unix_nanos: v.timestamp_unix_nanos,
            signature: v.signature.clone(),
        }))
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
        let bytes = Bytes::from(pb::ConsensusMessage { msg: Some(msg) }.encode_to_vec());
        self.net.broadcast(Channel::Consensus, bytes);
    }

    /// Observes the time spent in the step just left, if the step changed.
    fn note_step(&mut self) {
        use crate::bft::Step;
        let now_step = self.driver.state().step;
        self.pipeline
            .metrics
            .round
            .set(i64::from(self.driver.state().round));
        let (step, since) = self.step_since;
        if now_step != step {
            let name = match step {
                Step::Propose => Some("propose"),
                Step::Prevote => Some("prevote"),
                Step::Precommit => Some("precommit"),
                _ => None,
            };
            if let Some(n) = name {
                self.pipeline
                    .metrics
                    .on_step(n, since.elapsed().as_secs_f64());
            }
            self.step_since = (now_step, std::time::Instant::now());
        }
    }

    /// Performs driver outputs, including the inputs they feed back (own proposals and votes).
    async fn perform(&mut self, mut queue: Vec<DriverOutput>) -> ConsensusResult<()> {
        let sign_err = |e: SignError| ConsensusError::Task {
            height: 0,
            reason: e.to_string(),
        };
        while !queue.is_empty() {
            self.note_step();
            let mut next = Vec::new();
            for o in queue {
                match o {
                    DriverOutput::GetValue { round, .. } => {
                        let (block, hash) = self.pipeline.build_block()?;
                        self.blocks.insert(hash, block);
                        next.extend(
                            self.driver
                                .process(DriverInput::ProposeValue { round, value: hash }),
                        );
                    }
                    DriverOutput::Propose {
                        height,
                        round,
                        value,
                        pol_round,
                    } => {
                        let Some(block) = self.blocks.get(&value).cloned() else {
                            warn!(height, round, "asked to propose an unknown block");
                            continue;
                        };
                        let signed = self.signer.sign_proposal(
                            height,
                            round,
                            pol_round,
                            value,
                            now_unix_nanos(),
                        );
                        let (ts, sig) = match signed {
                            Ok(s) => s,
                            Err(e) => {
                                refused(e).map_err(sign_err)?;
                                continue;
                            }
                        };
                        let proposal = pb::Proposal {
                            height,
                            round,
                            pol_round: pol_round.map_or(-1, i64::from),
                            block: Some(block),
                            block_hash: value.to_vec(),
                            timestamp_unix_nanos: ts,
                            proposer: self.signer.pubkey().to_vec(),
                            signature: sig,
                        };
                        self.proposals_seen.insert(round, proposal.clone());
                        self.broadcast(Msg::Proposal(proposal));
                        if let Some(me) = self.me {
                            next.extend(self.driver.process(DriverInput::Proposal(
                                ProposalInput {
                                    height,
                                    round,
                                    value,
                                    pol_round,
                                    proposer: me,
                                    valid: true,
                                },
                            )));
                        }
                    }
                    DriverOutput::Vote {
                        vote_type,
                        height,
                        round,
                        value,
                    } => {
                        let signed = self.signer.sign_vote(
                            vote_type,
                            height,
                            round,
                            value,
                            now_unix_nanos(),
                        );
                        let vote = match signed {
                            Ok(v) => v,
                            Err(e) => {
                                refused(e).map_err(sign_err)?;
                                continue;
                            }
                        };
                        self.broadcast(Msg::Vote(vote.clone()));
                        if let Some(me) = self.me {
                            next.extend(self.driver.process(DriverInput::Vote(SignedVote {
                                vote_type,
                                height,
                                round,
                                value,
                                validator: me,
                                timestamp_unix_nanos: vote.timestamp_unix_nanos,
                                signature: vote.signature,
                            })));
                        }
                    }
                    DriverOutput::ScheduleTimeout {
                        kind,
                        height,
                        round,
                        after,
                    } => {
                        let tx = self.tx_timeouts.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(after).await;
                            let _ = tx.send((height, kind, round)).await;
                        });
                    }
                    DriverOutput::Decide {
                        height,
                        round,
                        value,
                        precommits,
                    } => {
                        self.pipeline.metrics.rounds.set(round as i64);
                        self.decide(height, round, value, &precommits).await?;
                        return Ok(());
                    }
                    DriverOutput::Equivocation(e) => warn!(
                        validator = e.first.validator,
                        height = e.first.height,
                        round = e.first.round,
                        "equivocation: validator signed two different votes"
                    ),
                    DriverOutput::WrongProposer { round, proposer } => {
                        warn!(
                            round,
                            proposer, "proposal from a validator that is not the proposer"
                        )
                    }
                }
            }
            queue = next;
        }
        self.note_step();
        Ok(())
    }

    async fn decide(
        &mut self,
        height: u64,
        round: u32,
        value: Hash,
        precommits: &[SignedVote],
    ) -> ConsensusResult<()> {
        let Some(block) = self.blocks.remove(&value) else {
            return Err(ConsensusError::Task {
                height,
                reason: "decided a block we do not have".into(),
            });
        };
        let commit = build_commit(&self.vals, height, round, &value, precommits);
        // Execution and the synced write block this worker; consensus has nothing else to do
        // until the block is durable.
        let pipeline = &mut self.pipeline;
        let event = tokio::task::block_in_place(|| pipeline.commit_block(block, value, commit))?;
        debug!(
            height,
            round,
            txs = event.tx_hashes.len(),
            "committed block"
        );
        let _ = self.tx_commits.send(Arc::new(event));
        if let Err(e) = self.signer.prune_below(height) {
            warn!(error = %e, "could not prune the consensus wal");
        }
        tokio::time::sleep(self.cfg.commit_pause).await;
        self.start_height(height + 1).await
    }

    /// Feeds the votes this validator signed at the current height before a restart (from the
    /// WAL) back into the driver, so its vote count matches what peers saw.
    async fn replay_own_votes(&mut self) -> ConsensusResult<()> {
        let Some(me) = self.me else { return Ok(()) };
        for e in self.signer.signed_at(self.height) {
            let vote_type = match e.step {
                crate::wal::step::PREVOTE => VoteType::Prevote,
                crate::wal::step::PRECOMMIT => VoteType::Precommit,
                _ => continue,
            };
            let value = Hash::from_slice("wal.value", &e.value).ok();
            let out = self.driver.process(DriverInput::Vote(SignedVote {
                vote_type,
                height: e.height,
                round: e.round,
                value,
                validator: me,
                timestamp_unix_nanos: e.timestamp_unix_nanos,
                signature: e.signature,
            }));
            Box::pin(self.perform(out)).await?;
        }
        Ok(())
    }

    /// Moves consensus to `height` (after a commit or a sync) and replays buffered messages.
    async fn start_height(&mut self, height: u64) -> ConsensusResult<()> {
        self.height = height;
        self.blocks.clear();
        self.proposals_seen.clear();
        self.driver = Driver::new(self.height, self.vals.clone(), self.me, self.cfg.timeouts);
        let out = self.driver.process(DriverInput::Start);
        Box::pin(self.perform(out)).await?;
        for (peer, m) in std::mem::take(&mut self.future) {
            Box::pin(self.on_message(peer, m)).await?;
        }
        Ok(())
    }
}
