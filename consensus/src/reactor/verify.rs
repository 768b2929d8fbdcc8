//! Checking what peers send before the driver sees it: proposal and vote signatures, and
//! whether a proposed block links to our chain.

use super::*;

impl Reactor {
    /// Verifies a proposal's signature and block; an invalid block is still a proposal (the
    /// driver prevotes nil on it), a bad signature is misbehaviour.
    /// `Ok(None)`: a proposal already seen, or a third different one of a round, ignored (it
    /// may come from an honest peer re-gossiping what a byzantine proposer showed it); or a
    /// compact one still missing txs, asked of `peer` (the driver sees it once rebuilt).
    pub(super) fn check_proposal(
        &mut self,
        peer: PeerId,
        mut p: pb::Proposal,
    ) -> Result<Option<DriverInput>, Invalid> {
        let checked = check_proposal_signature(self.pipeline.chain_id(), &self.vals, &p)?;
        let hash = checked.block_hash;
        let compact = match (p.block.is_some(), p.compact.take()) {
            (true, None) => None,
            (false, Some(c)) => Some(c),
            (false, None) => return Err(Invalid::Missing("block")),
            (true, Some(_)) => {
                return Err(Invalid::Malformed {
                    field: "proposal",
                    reason: "carries both a block and a compact block".into(),
                })
            }
        };
        // An honest proposer signs one block per round; keep at most two (the second is
        // evidence), so a byzantine one cannot fill our memory with signed blocks.
        let known = self.proposal_values.entry(p.round).or_default();
        if known.contains(&hash) {
            // Re-gossip of a proposal already checked and fed to the driver, or one still
            // being rebuilt: this peer may hold the txs the first one did not send.
            self.ask_again(peer, hash);
            return Ok(None);
        }
        if known.len() >= 2 {
            debug!(
                height = p.height,
                round = p.round,
                "third proposal of a round ignored"
            );
            return Ok(None);
        }
        known.push(hash);
        self.note_value(p.height, p.round, hash);
        let Some(c) = compact else {
            self.proposals_seen
                .entry(p.round)
                .or_insert_with(|| p.clone());
            let block = p.block.take().ok_or(Invalid::Missing("block"))?;
            return Ok(Some(self.judge(checked, (p.height, p.round), block, None)));
        };
        let mut wire = p.clone();
        wire.compact = Some(c.clone());
        self.proposals_seen.entry(p.round).or_insert(wire);
        Ok(self.start_rebuild(peer, checked, (p.height, p.round), c))
    }

    /// The driver's input for a whole proposed block: valid if it extends our chain, links
    /// to our last commit and hashes to what was signed (`hashes`: its tx hashes, when
    /// known). The block is kept for the decision either way.
    pub(super) fn judge(
        &mut self,
        checked: CheckedProposal,
        (height, round): (u64, u32),
        block: pb::Block,
        hashes: Option<Vec<Hash>>,
    ) -> DriverInput {
        let hash = checked.block_hash;
        // Hashed once here; the commit reuses them if this block is decided.
        let hashes = hashes.unwrap_or_else(|| {
            block
                .txs
                .iter()
                .map(|t| tpslab_types::tx::tx_hash(t))
                .collect::<Vec<_>>()
        });
        let check = self
            .pipeline
            .check_block_hashed(&block, Some(&hashes))
            .and_then(|h| {
                if h != hash {
                    return Err(BlockFault::Hash.into());
                }
                self.check_last_commit(&block)
            });
        let valid = match check {
            Ok(()) => {
                self.tx_hashes.insert(hash, hashes);
                true
            }
            Err(reason) => {
                warn!(height, round, %reason, "invalid block proposed");
                self.pipeline.metrics().invalid_proposals.inc();
                false
            }
        };
        self.blocks.insert(hash, block);
        DriverInput::Proposal(ProposalInput {
            height,
            round,
            value: hash,
            pol_round: checked.pol_round,
            proposer: checked.proposer,
            valid,
        })
    }

    pub(super) fn check_last_commit(&self, block: &pb::Block) -> Result<(), Invalid> {
        if self.height == 1 {
            return Ok(());
        }
        let prev = self
            .pipeline
            .last_committed()
            .map_err(|e| Invalid::Unverifiable(e.to_string()))?;
        let c = block
            .last_commit
            .as_ref()
            .ok_or(Invalid::Missing("last_commit"))?;
        verify_commit(
            self.pipeline.chain_id(),
            &self.vals,
            self.height - 1,
            &prev.block_hash,
            c,
        )?;
        Ok(())
    }

    pub(super) fn check_vote(&self, v: &pb::Vote) -> Result<Option<DriverInput>, Invalid> {
        check_vote(self.pipeline.chain_id(), &self.vals, v).map(|v| Some(DriverInput::Vote(v)))
    }
}
