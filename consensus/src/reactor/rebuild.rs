//! compact-blocks in the reactor: a compact proposal is rebuilt from the mempool; the txs it
//! lacks are asked of the peer that sent it, then of every peer on each retry; the driver
//! sees the proposal once the block is whole. Peers' requests are answered from the blocks
//! this validator holds. The checks themselves are pure, in `crate::compact`.
//!
//! A proposal nobody can complete (a proposer withholding a tx) never reaches the driver:
//! `timeout_propose` ends the wait with a nil prevote and the round moves on, as for a
//! proposal that never arrived. Retries are well inside that timeout.

use super::*;
use crate::compact::{answer, Assembly};
use tpslab_types::block::block_hash;

/// How long a request for missing txs may go unanswered before it is sent again, to every
/// peer (any that rebuilt or proposed the block can answer). Loopback answers take about a
/// millisecond; `timeout_propose` is 3 s by default.
pub(super) const FETCH_RETRY: Duration = Duration::from_millis(200);

/// A compact proposal being rebuilt.
pub(super) struct Rebuild {
    checked: CheckedProposal,
    /// The proposal's height and round.
    at: (u64, u32),
    assembly: Assembly,
    asked: std::time::Instant,
}

impl Reactor {
    /// Rebuilds a compact proposal whose signature verified: the driver's input now if the
    /// mempool holds every tx (or the compact block is invalid), else None and a request.
    pub(super) fn start_rebuild(
        &mut self,
        peer: PeerId,
        checked: CheckedProposal,
        at: (u64, u32),
        c: pb::CompactBlock,
    ) -> Option<DriverInput> {
        let hash = checked.block_hash;
        // The header must be what was signed before a single tx is looked up.
        let started = if c.header.as_ref().map(block_hash) == Some(hash) {
            let pool = self.pipeline.pool().clone();
            let max_txs = self.pipeline.limits().max_txs;
            Assembly::start(c, max_txs, |hs| pool.lookup(hs))
        } else {
            Err(BlockFault::Hash.into())
        };
        let a = match started {
            Ok(a) => a,
            Err(reason) => {
                warn!(height = at.0, round = at.1, %reason, "invalid compact block proposed");
                self.pipeline.metrics().invalid_proposals.inc();
                return Some(DriverInput::Proposal(ProposalInput {
                    height: at.0,
                    round: at.1,
                    value: hash,
                    pol_round: checked.pol_round,
                    proposer: checked.proposer,
                    valid: false,
                }));
            }
        };
        let found = a.len() - a.missing_count();
        self.pipeline.metrics().compact_found.inc_by(found as u64);
        if a.is_complete() {
            return self.finish_rebuild(checked, at, a);
        }
        let r = Rebuild {
            checked,
            at,
            assembly: a,
            asked: std::time::Instant::now(),
        };
        self.send_request(Some(peer), &hash, &r);
        self.rebuilds.insert(hash, r);
        None
    }

    fn finish_rebuild(
        &mut self,
        checked: CheckedProposal,
        at: (u64, u32),
        a: Assembly,
    ) -> Option<DriverInput> {
        let (block, hashes) = a.finish()?;
        Some(self.judge(checked, at, block, Some(hashes)))
    }

    /// Asks `to` (or every peer) for the txs `r` lacks.
    fn send_request(&self, to: Option<PeerId>, hash: &Hash, r: &Rebuild) {
        self.pipeline.metrics().compact_requests.inc();
        let req = Msg::TxsRequest(pb::BlockTxsRequest {
            height: r.at.0,
            block_hash: hash.to_vec(),
            indexes: r.assembly.missing(),
        });
        match to {
            Some(peer) => self.send_consensus(peer, req),
            None => self.broadcast(req),
        }
    }

    /// A proposal we are rebuilding came again from `peer`: ask it too, unless a request
    /// went out very recently.
    pub(super) fn ask_again(&mut self, peer: PeerId, hash: Hash) {
        let Some(r) = self.rebuilds.get(&hash) else {
            return;
        };
        if r.asked.elapsed() >= FETCH_RETRY {
            self.send_request(Some(peer), &hash, r);
            if let Some(r) = self.rebuilds.get_mut(&hash) {
                r.asked = std::time::Instant::now();
            }
        }
    }

    /// Requests unanswered for [`FETCH_RETRY`] go again, to every peer.
    pub(super) fn retry_rebuilds(&mut self) {
        let now = std::time::Instant::now();
        let due: Vec<Hash> = self
            .rebuilds
            .iter()
            .filter(|(_, r)| now.duration_since(r.asked) >= FETCH_RETRY)
            .map(|(h, _)| *h)
            .collect();
        for hash in due {
            if let Some(r) = self.rebuilds.get(&hash) {
                self.send_request(None, &hash, r);
            }
            if let Some(r) = self.rebuilds.get_mut(&hash) {
                r.asked = now;
            }
        }
    }

    /// Missing txs from a peer: fills the block they belong to; once whole, the driver sees
    /// the proposal. An answer for no block we are rebuilding (a retry answered twice, or
    /// a height that ended) is ignored; txs that are not the ones the block names are the
    /// peer's lie.
    pub(super) async fn on_txs_response(
        &mut self,
        peer: PeerId,
        r: pb::BlockTxsResponse,
    ) -> ConsensusResult<()> {
        let Ok(hash) = Hash::from_slice("block_hash", &r.block_hash) else {
            return Ok(());
        };
        let Some(rb) = self.rebuilds.get_mut(&hash) else {
            return Ok(());
        };
        match rb.assembly.fill(&r) {
            Ok(n) => {
                self.pipeline.metrics().compact_fetched.inc_by(n as u64);
            }
            Err(reason) => {
                let (height, round) = rb.at;
                self.refuse(InvalidMessage {
                    kind: MessageKind::Proposal,
                    peer,
                    height,
                    round: Some(round),
                    reason,
                });
                return Ok(());
            }
        }
        if !rb.assembly.is_complete() {
            return Ok(());
        }
        let Some(rb) = self.rebuilds.remove(&hash) else {
            return Ok(());
        };
        let Some(input) = self.finish_rebuild(rb.checked, rb.at, rb.assembly) else {
            return Ok(());
        };
        let out = self.driver.process(input);
        self.perform(out).await
    }

    /// A peer asks for txs of a block: answered if we hold it whole (proposed or rebuilt),
    /// in responses that each fit a frame, within the peer's budget for that block
    /// ([`crate::compact::ServeBudget`]).
    pub(super) fn on_txs_request(&mut self, peer: PeerId, req: &pb::BlockTxsRequest) {
        if self.withholds() {
            return;
        }
        let Ok(hash) = Hash::from_slice("block_hash", &req.block_hash) else {
            return;
        };
        let Some(block) = self.blocks.get(&hash) else {
            return;
        };
        let max = tpslab_p2p::max_payload_len(self.cfg.max_frame_bytes);
        let responses = answer(block, &hash, req, max);
        let n = responses.iter().map(|r| r.txs.len()).sum();
        if !self.txs_served.take(peer, hash, block.txs.len(), n) {
            self.pipeline.metrics().compact_requests_refused.inc();
            debug!(%peer, height = req.height, txs = n, "request for block txs over the peer's budget: ignored");
            return;
        }
        for r in responses {
            self.send_consensus(peer, Msg::TxsResponse(r));
        }
    }

    /// The compact form of our own proposal, as it goes on the wire with compact-blocks on
    /// (and always for a proposer withholding txs).
    pub(super) fn compacted(&self, full: &pb::Proposal, value: Hash) -> Option<pb::Proposal> {
        if !self.cfg.compact_blocks && !self.withholds() {
            return None;
        }
        let block = full.block.as_ref()?;
        let computed;
        let hashes = match self.tx_hashes.get(&value) {
            Some(hs) => hs,
            None => {
                computed = block
                    .txs
                    .iter()
                    .map(|t| tpslab_types::tx::tx_hash(t))
                    .collect::<Vec<Hash>>();
                &computed
            }
        };
        Some(pb::Proposal {
            block: None,
            compact: Some(crate::compact::compact_of(block, hashes)),
            ..full.clone()
        })
    }
}
