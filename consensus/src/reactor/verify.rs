//! Checking what peers send before the driver sees it: proposal and vote signatures, and
//! whether a proposed block links to our chain.

use super::*;

impl Reactor {
    /// Verifies a proposal's signature and block; an invalid block is still a proposal (the
    /// driver prevotes nil on it), a bad signature is misbehaviour.
    /// `Ok(None)`: a proposal already seen, or a third different one of a round, ignored (it
    /// may come from an honest peer re-gossiping what a byzantine proposer showed it).
    pub(super) fn check_proposal(
        &mut self,
        p: pb::Proposal,
    ) -> Result<Option<DriverInput>, Invalid> {
        let CheckedProposal {
            proposer,
            block_hash: hash,
            pol_round,
        } = check_proposal_signature(self.pipeline.chain_id(), &self.vals, &p)?;
        let block = p.block.as_ref().ok_or(Invalid::Missing("block"))?;
        // An honest proposer signs one block per round; keep at most two (the second is
        // evidence), so a byzantine one cannot fill our memory with signed blocks.
        let known = self.proposal_values.entry(p.round).or_default();
        if known.contains(&hash) {
            // Re-gossip of a proposal already checked and fed to the driver.
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
        self.proposals_seen
            .entry(p.round)
            .or_insert_with(|| p.clone());
        self.note_value(p.height, p.round, hash);
        let check = self.pipeline.check_block(block).and_then(|h| {
            if h != hash {
                return Err(BlockFault::Hash.into());
            }
            self.check_last_commit(block)
        });
        let valid = match check {
            Ok(()) => true,
            Err(reason) => {
                warn!(height = p.height, round = p.round, %reason, "invalid block proposed");
                self.pipeline.metrics().invalid_proposals.inc();
                false
            }
        };
        if let Some(block) = p.block {
            self.blocks.insert(hash, block);
        }
        Ok(Some(DriverInput::Proposal(ProposalInput {
            height: p.height,
            round: p.round,
            value: hash,
            pol_round,
            proposer,
            valid,
        })))
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
