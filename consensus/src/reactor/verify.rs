//! Checking what peers send before the driver sees it: proposal and vote signatures, and
//! whether a proposed block links to our chain.

use super::*;

impl Reactor {
    /// Verifies a proposal's signature and block; an invalid block is still a proposal (the
    /// driver prevotes nil on it), a bad signature is misbehaviour.
    pub(super) fn check_proposal(&mut self, p: pb::Proposal) -> Result<DriverInput, Invalid> {
        let CheckedProposal {
            proposer,
            block_hash: hash,
            pol_round,
        } = check_proposal_signature(self.pipeline.chain_id(), &self.vals, &p)?;
        self.proposals_seen
            .entry(p.round)
            .or_insert_with(|| p.clone());
        let block = p.block.ok_or(Invalid::Missing("block"))?;
        let check = self.pipeline.check_block(&block).and_then(|h| {
            if h != hash {
                return Err(BlockFault::Hash.into());
            }
            self.check_last_commit(&block)
        });
        let valid = match check {
            Ok(()) => true,
            Err(reason) => {
                warn!(height = p.height, round = p.round, %reason, "invalid block proposed");
                false
            }
        };
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

    pub(super) fn check_vote(&self, v: &pb::Vote) -> Result<DriverInput, Invalid> {
        check_vote(self.pipeline.chain_id(), &self.vals, v).map(DriverInput::Vote)
    }
}
