//! Log compaction, and catching up from a snapshot when the entries a follower needs are
//! gone.
//!
//! Every node compacts its own log once it has applied `2 * log_keep` entries past its first
//! one, keeping the last `log_keep` (a follower that lags a little still replicates from the
//! log). The snapshot it then serves is the chain at its applied index: height, block hash and
//! app hash, a few dozen bytes, so it crosses as one raft-rs message. A follower that installs
//! one fetches the blocks up to that height by block sync (the same requests and budgets as on
//! a BFT chain, in chunks of at most [`MAX_BLOCKS_PER_REQUEST`] blocks or one sync frame),
//! re-executes them, and checks that it arrived at the snapshot's block and app hash. Entries
//! committed after the snapshot's index are held until then: each is judged against the chain
//! at the snapshot's height, on every node alike. (Not a state-sync: state is rebuilt by
//! replaying blocks, so a follower's block store stays complete and `testnet check` compares
//! it.)

use super::core::{CatchUp, Core};
use crate::error::{ConsensusError, ConsensusResult};
use crate::invalid::CommitFault;
use crate::sync::{apply_with, records_budget, MAX_BLOCKS_PER_REQUEST};
use bytes::Bytes;
use prost::Message as _;
use raft::prelude::{Entry, Snapshot, SnapshotMetadata};
use raft::{ProgressState, SnapshotStatus, StateRole};
use tpslab_p2p::{Channel, PeerId};
use tpslab_types::pb;
use tpslab_types::pb::sync_message::Msg;
use tracing::{debug, info, warn};

fn corrupt_snapshot(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Raft(format!("raft snapshot data is corrupt: {e}"))
}

impl Core {
    /// Whether committed entries are being held until the chain reaches a snapshot.
    pub(super) fn catching_up(&self) -> bool {
        self.compaction.catch_up.is_some()
    }

    /// Holds `entries` while catching up; gives them back otherwise.
    pub(super) fn hold(&mut self, entries: Vec<Entry>) -> Option<Vec<Entry>> {
        match &mut self.compaction.catch_up {
            Some(c) => {
                c.held.extend(entries);
                None
            }
            None => Some(entries),
        }
    }

    /// After a Ready is handled: compacts the log if it holds enough applied entries.
    pub(super) fn maybe_compact(&mut self) -> ConsensusResult<()> {
        let keep = self.compaction.log_keep;
        let applied = self.node.raft.raft_log.applied;
        let first = self.store.first_index();
        // Saturating: a huge `log_keep` just never compacts.
        if keep == 0 || self.catching_up() || applied < first.saturating_add(keep.saturating_mul(2))
        {
            return Ok(());
        }
        // Every entry up to `applied` is applied (none held), so the chain is the one at it.
        let tip = self.pipeline.last_committed()?;
        let data = pb::RaftSnapshotData {
            height: tip.height,
            block_hash: tip.block_hash.0.to_vec(),
            app_hash: tip.app_hash.0.to_vec(),
        };
        let term =
            self.node.raft.raft_log.term(applied).map_err(|e| {
                ConsensusError::Raft(format!("term of applied index {applied}: {e}"))
            })?;
        let conf_state = raft::Storage::initial_state(self.store.storage())
            .map_err(|e| ConsensusError::Raft(e.to_string()))?
            .conf_state;
        let snap = Snapshot {
            data: data.encode_to_vec(),
            metadata: Some(SnapshotMetadata {
                conf_state: Some(conf_state),
                index: applied,
                term,
            }),
        };
        self.store.compact(snap, applied - keep)?;
        self.metrics
            .log_first_index
            .set(self.store.first_index() as i64);
        debug!(
            applied,
            height = tip.height,
            first = applied - keep + 1,
            "raft log compacted"
        );
        Ok(())
    }

    /// A leader sent a snapshot (raft-rs restored its log from it): stores it, then brings
    /// the chain to the height it describes.
    pub(super) fn install_snapshot(&mut self, snap: &Snapshot) -> ConsensusResult<()> {
        let target =
            pb::RaftSnapshotData::decode(snap.data.as_slice()).map_err(corrupt_snapshot)?;
        self.store.install(snap)?;
        self.metrics.snapshots_installed.inc();
        self.metrics
            .log_first_index
            .set(self.store.first_index() as i64);
        info!(
            index = snap.get_metadata().index,
            height = target.height,
            "installed a raft snapshot"
        );
        self.begin_catch_up(target)
    }

    /// At start: a snapshot on disk whose height the chain has not reached (the node stopped
    /// while catching up) resumes the catch-up.
    pub(super) fn resume_catch_up(&mut self) -> ConsensusResult<()> {
        match self.store.snapshot() {
            Some(snap) => {
                let target =
                    pb::RaftSnapshotData::decode(snap.data.as_slice()).map_err(corrupt_snapshot)?;
                self.begin_catch_up(target)
            }
            None => Ok(()),
        }
    }

    fn begin_catch_up(&mut self, target: pb::RaftSnapshotData) -> ConsensusResult<()> {
        let height = self.pipeline.last_committed()?.height;
        if height >= target.height {
            return self.check_reached(&target);
        }
        info!(
            from = height + 1,
            to = target.height,
            "fetching blocks up to the snapshot"
        );
        self.compaction.catch_up = Some(CatchUp {
            target,
            held: Vec::new(),
            waited: 0,
            turn: 0,
        });
        self.request_blocks();
        Ok(())
    }

    /// The chain holds the snapshot's block at its height (and, when that is the tip, its
    /// app hash): anything else means this node's chain is not the cluster's.
    fn check_reached(&self, target: &pb::RaftSnapshotData) -> ConsensusResult<()> {
        if target.height == 0 {
            return Ok(());
        }
        let tip = self.pipeline.last_committed()?;
        let stored = self
            .pipeline
            .ledger()
            .block(target.height)
            .map_err(|e| ConsensusError::Raft(e.to_string()))?
            .map(|r| r.block_hash);
        let app_ok = tip.height != target.height || tip.app_hash.0[..] == target.app_hash[..];
        if stored.as_deref() != Some(&target.block_hash[..]) || !app_ok {
            return Err(ConsensusError::Raft(format!(
                "the chain at height {} is not the one the raft snapshot describes",
                target.height
            )));
        }
        Ok(())
    }

    /// Asks a peer for the next blocks up to the snapshot's height: the leader first, then,
    /// each time one does not answer, the next validator.
    fn request_blocks(&mut self) {
        let Ok(tip) = self.pipeline.last_committed() else {
            return;
        };
        let me = self.node.raft.id;
        let leader = self.node.raft.leader_id;
        let others: Vec<u64> = (1..=self.peers.len() as u64).filter(|i| *i != me).collect();
        let Some(c) = &mut self.compaction.catch_up else {
            return;
        };
        let id = if c.turn == 0 && leader != raft::INVALID_ID && leader != me {
            leader
        } else if let Some(id) = others.get(c.turn % others.len().max(1)) {
            *id
        } else {
            return;
        };
        c.waited = 0;
        let req = pb::SyncRequest {
            from_height: tip.height + 1,
            to_height: c.target.height.min(tip.height + MAX_BLOCKS_PER_REQUEST),
            max_bytes: records_budget(self.compaction.max_frame_bytes) as u64,
        };
        self.send_sync(self.peers[id as usize - 1], Msg::Request(req));
    }

    fn send_sync(&self, peer: PeerId, msg: Msg) {
        let m = pb::SyncMessage { msg: Some(msg) };
        self.transport
            .send(peer, Channel::Sync, Bytes::from(m.encode_to_vec()));
    }

    /// A block-sync frame from `from`: serves a request from our chain, or applies blocks
    /// we asked for.
    pub(super) fn on_sync(&mut self, from: PeerId, payload: &[u8]) -> ConsensusResult<()> {
        match pb::SyncMessage::decode(payload).map(|m| m.msg) {
            Ok(Some(Msg::Request(req))) => {
                let own = records_budget(self.compaction.max_frame_bytes);
                let resp = crate::sync::serve(self.pipeline.ledger().as_ref(), &req, own);
                self.send_sync(from, Msg::Response(resp));
                Ok(())
            }
            Ok(Some(Msg::Response(resp))) => self.on_blocks(from, resp.blocks),
            Ok(_) => Ok(()),
            Err(e) => {
                warn!(peer = %from, error = %e, "malformed block-sync frame dropped");
                Ok(())
            }
        }
    }

    /// Commits the records that extend the chain towards the snapshot's height (the same
    /// checks as BFT's block sync, but a Raft commit has no signatures: it must name its
    /// block); once the height is reached, checks the chain and applies the entries held.
    fn on_blocks(&mut self, from: PeerId, records: Vec<pb::BlockRecord>) -> ConsensusResult<()> {
        let Some(target) = self.compaction.catch_up.as_ref().map(|c| c.target.height) else {
            return Ok(());
        };
        // Past the snapshot's height, blocks are the held entries' to decide (a record
        // without a header goes on, to be refused as malformed).
        let records: Vec<_> = records
            .into_iter()
            .filter(|r| {
                r.block
                    .as_ref()
                    .and_then(|b| b.header.as_ref())
                    .is_none_or(|h| h.height <= target)
            })
            .collect();
        let (events, refused) = apply_with(&mut self.pipeline, records, |_, height, hash, c| {
            if c.height != height {
                Err(CommitFault::WrongHeight {
                    got: c.height,
                    expected: height,
                })
            } else if c.block_hash[..] != hash.0[..] {
                Err(CommitFault::OtherBlock)
            } else {
                Ok(())
            }
        })?;
        if let Some((height, why)) = refused {
            warn!(peer = %from, height, reason = %why, "block-sync record refused");
        }
        let progressed = !events.is_empty();
        self.commits.extend(events);
        if self.pipeline.last_committed()?.height >= target {
            return self.finish_catch_up();
        }
        if progressed {
            self.request_blocks();
        }
        Ok(())
    }

    fn finish_catch_up(&mut self) -> ConsensusResult<()> {
        let Some(c) = self.compaction.catch_up.take() else {
            return Ok(());
        };
        self.check_reached(&c.target)?;
        info!(
            height = c.target.height,
            held = c.held.len(),
            "reached the snapshot's chain; applying the entries held"
        );
        self.apply(c.held)
    }

    /// Each tick: a catching-up follower asks again (another peer) if no blocks came; a
    /// leader whose snapshot went unanswered tells raft-rs it failed, so it is sent again
    /// (raft-rs otherwise waits on it forever, and a dropped message is never resent).
    pub(super) fn tick_catch_up(&mut self) {
        let patience = self.compaction.patience;
        if let Some(c) = &mut self.compaction.catch_up {
            c.waited += 1;
            if c.waited > patience {
                c.turn += 1;
                self.request_blocks();
            }
        }
        if self.node.raft.state != StateRole::Leader {
            self.compaction.waiting.clear();
            return;
        }
        let stuck: Vec<u64> = self
            .node
            .raft
            .prs()
            .iter()
            .filter(|(_, pr)| pr.state == ProgressState::Snapshot)
            .map(|(id, _)| *id)
            .collect();
        let waiting = &mut self.compaction.waiting;
        waiting.retain(|id, _| stuck.contains(id));
        let mut failed = Vec::new();
        for id in stuck {
            let t = waiting.entry(id).or_default();
            *t += 1;
            if *t > patience {
                waiting.remove(&id);
                failed.push(id);
            }
        }
        for id in failed {
            debug!(peer = id, "raft snapshot unanswered; sending again");
            self.node.report_snapshot(id, SnapshotStatus::Failure);
        }
    }
}
