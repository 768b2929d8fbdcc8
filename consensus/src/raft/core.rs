//! The synchronous half of the Raft engine: raft-rs's `RawNode`, its storage, and the block
//! pipeline. Everything here blocks (RocksDB writes, block execution), so the async loop runs
//! it on the blocking pool, one step at a time.
//!
//! A log entry's data is an encoded block built by the leader on top of the chain as it had
//! applied it. Every node applies committed entries in log order and judges each block only by
//! the entry and the chain before it (height, links, app hash, tx root, sizes: the same check
//! BFT's proposals get), so all nodes reach the same verdict. A block that no longer fits (a
//! deposed leader's block, superseded by its successor's at the same height) is skipped by
//! everyone alike. (Compaction and snapshot catch-up are in [`super::catch_up`].)

use super::metrics::RaftMetrics;
use super::storage::ChainStorage;
use super::store::RaftStore;
use crate::error::ConsensusResult;
use crate::event::CommitEvent;
use crate::pipeline::BlockPipeline;
use crate::transport::Transport;
use bytes::Bytes;
use prost::Message as _;
use raft::prelude::{Entry, EntryType, Message};
use raft::{RawNode, StateRole};
use std::sync::Arc;
use std::time::Instant;
use tpslab_p2p::{Channel, PeerId};
use tpslab_types::pb;
use tracing::{debug, info, warn};

/// A follower rebuilding the chain a snapshot describes.
pub(super) struct CatchUp {
    pub(super) target: pb::RaftSnapshotData,
    /// Entries committed after the snapshot's index, applied once the chain reaches it.
    pub(super) held: Vec<Entry>,
    /// Ticks since blocks were last asked for (or arrived).
    pub(super) waited: usize,
    /// Which peer to ask next when the last one did not answer.
    pub(super) turn: usize,
}

/// Compaction and catch-up settings, and the leader's wait on snapshots sent.
#[derive(Default)]
pub(super) struct Compaction {
    /// Entries kept behind the applied index (0: never compact).
    pub(super) log_keep: u64,
    /// `p2p.max_frame_bytes`: block-sync responses are cut to fit it.
    pub(super) max_frame_bytes: usize,
    /// Ticks without an answer before asking again (a snapshot, or blocks).
    pub(super) patience: usize,
    /// Leader: ticks each follower has been waiting on a snapshot.
    pub(super) waiting: std::collections::HashMap<u64, usize>,
    pub(super) catch_up: Option<CatchUp>,
}

/// The state the async loop hands to the blocking pool and back.
pub struct Core {
    pub(super) node: RawNode<ChainStorage>,
    pub(super) store: RaftStore,
    pub(super) pipeline: BlockPipeline,
    pub(super) transport: Arc<dyn Transport>,
    /// Raft id - 1 -> peer, in genesis order.
    pub(super) peers: Vec<PeerId>,
    pub(super) metrics: RaftMetrics,
    /// The height of the block this node proposed and has not seen applied yet, and when.
    pub(super) in_flight: Option<(u64, Instant)>,
    /// Still true while a node that started with an empty Raft state has not caught up with
    /// a leader: it casts no vote until then (it may have voted in this term before it lost
    /// its disk).
    pub(super) fresh: bool,
    /// Validators a fresh node has seen ask for a vote with an empty log.
    pub(super) empty_logs: std::collections::HashSet<u64>,
    /// Whether a fresh node has seen a peer with a non-empty log (a leader, or a candidate
    /// with entries): the chain has started.
    pub(super) chain_started: bool,
    pub(super) last_leader: u64,
    /// Commits to announce (the async side sends them on).
    pub(super) commits: Vec<CommitEvent>,
    pub(super) compaction: Compaction,
}

impl Core {
    /// Feeds a frame that arrived on `channel` from `from`: Raft messages, and block sync
    /// (served from the chain, or the blocks a catch-up asked for).
    pub fn receive(
        &mut self,
        from: PeerId,
        channel: Channel,
        payload: &[u8],
    ) -> ConsensusResult<()> {
        match channel {
            Channel::Raft => self.step(from, payload),
            Channel::Sync => self.on_sync(from, payload)?,
            _ => {}
        }
        Ok(())
    }

    /// One tick of raft-rs's logical clock, and of the catch-up's retries.
    pub fn tick(&mut self) {
        self.node.tick();
        self.tick_catch_up();
    }

    /// Feeds a frame from `from` (already authenticated by the p2p handshake).
    pub fn step(&mut self, from: PeerId, payload: &[u8]) {
        use pb::raft_frame::Kind;
        // A peer speaks only for itself: the sender field must be its own Raft id.
        let Some(id) = self
            .peers
            .iter()
            .position(|p| *p == from)
            .map(|i| i as u64 + 1)
        else {
            return;
        };
        let msg = match pb::RaftFrame::decode(payload).map(|f| f.kind) {
            Ok(Some(Kind::Message(m))) => <Message as prost011::Message>::decode(m).ok(),
            Ok(Some(Kind::LostLog(l))) => {
                self.on_lost_log(id, l.last_index);
                return;
            }
            _ => None,
        };
        let Some(msg) = msg else {
            warn!(peer = %from, "malformed raft frame dropped");
            return;
        };
        if msg.from != id || msg.to != self.node.raft.id {
            warn!(peer = %from, from = msg.from, to = msg.to, "raft message with a forged address dropped");
            return;
        }
        use raft::prelude::MessageType as T;
        let mut msg = msg;
        let (kind, commit) = (msg.get_msg_type(), msg.commit);
        let last = self.node.raft.raft_log.last_index();
        if kind == T::MsgHeartbeat && msg.commit > last {
            // A leader caps a heartbeat's commit at what it believes this node holds; after
            // a wipe that belief is stale (raft-rs panics on a commit past its log, and its
            // leader ignores rejections below the match index it keeps). Capped here, and
            // the leader told, so that it replicates to this node from the start again.
            msg.commit = last;
            self.send_frame(from, Kind::LostLog(pb::RaftLostLog { last_index: last }));
        }
        if self.fresh && matches!(kind, T::MsgRequestVote | T::MsgRequestPreVote) {
            self.note_candidate(id, msg.index);
            if self.fresh {
                debug!(peer = %from, "fresh node: not voting before catching up");
                return;
            }
        }
        if self.fresh && matches!(kind, T::MsgAppend | T::MsgHeartbeat | T::MsgSnapshot) {
            // A leader exists: this chain has started, and only catching up ends abstention.
            self.chain_started = true;
        }
        if let Err(e) = self.node.step(msg) {
            debug!(error = %e, "raft step");
        }
        // Only an append carries the leader's own commit index (a heartbeat's is capped at
        // what this node already matches).
        if self.fresh && kind == T::MsgAppend && self.node.raft.raft_log.committed >= commit {
            self.end_abstention();
            info!(commit, "caught up with the leader; voting from now on");
        }
    }

    /// A fresh node saw candidate `id` with last log index `index`. On a new chain every node
    /// is fresh and someone has to vote: abstention ends once every other validator has asked
    /// for a vote with an empty log and no peer has shown a non-empty one. Then nothing was
    /// ever elected (raft-rs's leader appends an entry at once), so no vote this node may have
    /// cast before losing its disk elected anyone. A wiped node among started peers waits for
    /// a leader instead, however long that takes: a vote twice in one term could elect two
    /// leaders.
    fn note_candidate(&mut self, id: u64, index: u64) {
        if index > 0 {
            self.chain_started = true;
        } else {
            self.empty_logs.insert(id);
        }
        if !self.chain_started && self.empty_logs.len() + 1 >= self.peers.len() {
            self.end_abstention();
            info!("every validator's log is empty (a new chain): voting");
        }
    }

    /// Votes from now on, and durably so: a node that restarts before it caught up must
    /// still abstain. (If the write fails, it abstains a while longer: safe.)
    fn end_abstention(&mut self) {
        match self.store.end_abstention() {
            Ok(()) => self.fresh = false,
            Err(e) => warn!(error = %e, "cannot record the end of abstention"),
        }
    }

    /// Whether this node leads and may propose the next block now.
    pub fn may_propose(&self, stale_after: std::time::Duration) -> bool {
        self.node.raft.state == StateRole::Leader
            && !self.catching_up()
            && self
                .in_flight
                .is_none_or(|(_, at)| at.elapsed() >= stale_after)
    }

    /// Builds the next block from the mempool and proposes it as a log entry.
    pub fn propose_block(&mut self) -> ConsensusResult<()> {
        let (block, _hash) = self.pipeline.build_block()?;
        let height = block.header.as_ref().map_or(0, |h| h.height);
        match self.node.propose(vec![], block.encode_to_vec()) {
            Ok(()) => self.in_flight = Some((height, Instant::now())),
            Err(e) => {
                self.metrics.proposals_dropped.inc();
                debug!(error = %e, height, "proposal dropped");
            }
        }
        Ok(())
    }

    /// A follower says it holds log only up to `last_index`: if this leader believes it
    /// matched more (the follower lost its disk), replication to it restarts from index 1.
    /// Commits already made stand: the follower votes again only once it has caught up.
    fn on_lost_log(&mut self, id: u64, last_index: u64) {
        if self.node.raft.state != StateRole::Leader {
            return;
        }
        let Some(pr) = self.node.raft.mut_prs().get_mut(id) else {
            return;
        };
        if pr.matched > last_index {
            info!(
                peer = id,
                matched = pr.matched,
                last_index,
                "follower lost its log; replicating from the start"
            );
            pr.matched = 0;
            pr.become_probe();
        }
    }

    fn send_frame(&self, peer: PeerId, kind: pb::raft_frame::Kind) {
        let frame = pb::RaftFrame { kind: Some(kind) };
        self.transport
            .send(peer, Channel::Raft, Bytes::from(frame.encode_to_vec()));
    }

    fn send(&self, msgs: Vec<Message>) {
        for m in msgs {
            let Some(peer) = (m.to as usize)
                .checked_sub(1)
                .and_then(|i| self.peers.get(i))
            else {
                continue;
            };
            let bytes = Bytes::from(prost011::Message::encode_to_vec(&m));
            self.send_frame(*peer, pb::raft_frame::Kind::Message(bytes));
        }
    }

    /// Handles everything raft-rs has ready, in its order: leader messages go out at once;
    /// entries and hard state are synced before the messages that depend on them.
    pub fn on_ready(&mut self) -> ConsensusResult<()> {
        if !self.node.has_ready() {
            return Ok(());
        }
        let mut rd = self.node.ready();
        self.send(rd.take_messages());
        if !rd.snapshot().is_empty() {
            self.install_snapshot(rd.snapshot())?;
        }
        self.apply(rd.take_committed_entries())?;
        let t = Instant::now();
        self.store.persist(rd.entries(), rd.hs())?;
        if !rd.entries().is_empty() || rd.hs().is_some() {
            self.metrics
                .append_latency
                .observe(t.elapsed().as_secs_f64());
        }
        self.send(rd.take_persisted_messages());
        let mut light = self.node.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.store.set_commit(commit)?;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.node.advance_apply();
        self.maybe_compact()?;
        self.observe();
        Ok(())
    }

    /// Applies committed entries in order (held instead while catching up to a snapshot).
    pub(super) fn apply(&mut self, entries: Vec<Entry>) -> ConsensusResult<()> {
        let Some(entries) = self.hold(entries) else {
            return Ok(());
        };
        for e in entries {
            if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                self.apply_block(&e)?;
            }
            self.metrics.applied_index.set(e.index as i64);
        }
        Ok(())
    }

    fn apply_block(&mut self, e: &Entry) -> ConsensusResult<()> {
        let block = match pb::Block::decode(e.data.as_ref()) {
            Ok(b) => b,
            Err(err) => {
                warn!(index = e.index, error = %err, "raft entry is not a block; skipped");
                return Ok(());
            }
        };
        let hash = match self.pipeline.check_block(&block) {
            Ok(h) => h,
            Err(why) => {
                // A deposed leader's block at a height its successor filled: everyone skips it.
                debug!(index = e.index, reason = %why, "raft entry skipped");
                return Ok(());
            }
        };
        let height = block.header.as_ref().map_or(0, |h| h.height);
        let commit = pb::Commit {
            height,
            round: 0,
            block_hash: hash.to_vec(),
            // Raft's commit certificate is the majority's append acks, not signatures.
            signatures: vec![],
        };
        let event = self.pipeline.commit_block(block, hash, commit)?;
        if self.in_flight.is_some_and(|(h, _)| h <= height) {
            self.in_flight = None;
        }
        self.commits.push(event);
        Ok(())
    }

    /// Updates the gauges from raft-rs's state.
    pub fn observe(&mut self) {
        let r = &self.node.raft;
        self.metrics.term.set(r.term as i64);
        self.metrics.commit_index.set(r.raft_log.committed as i64);
        self.metrics.role.set(match r.state {
            StateRole::Follower => 0,
            StateRole::Candidate => 1,
            StateRole::Leader => 2,
            StateRole::PreCandidate => 3,
        });
        self.metrics.leader.set(r.leader_id as i64);
        if r.leader_id != self.last_leader {
            if r.leader_id != raft::INVALID_ID {
                self.metrics.leader_changes.inc();
                info!(leader = r.leader_id, term = r.term, "raft leader");
            }
            self.last_leader = r.leader_id;
            // A proposal in flight under the old leader may never commit.
            self.in_flight = None;
        }
    }
}
