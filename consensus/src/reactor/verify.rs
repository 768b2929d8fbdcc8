//! Checking what peers send before the driver sees it: proposal and vote signatures, and
//! whether a proposed block links to our chain.

use super::*;

impl Reactor {
    /// Verifies a proposal's signature and block; an invalid block is still a proposal (the
    /// driver prevotes nil on it), a bad signature is misbehaviour.
    pub(super) fn check_proposal(&mut self, p: pb::Proposal) -> Result<DriverInput, Invalid> {
        let proposer = self
            .vals
            .index_of(&p.proposer)
            .ok_or(Invalid::UnknownValidator)?;
        let hash = hash_field("proposal.block_hash", &p.block_hash)?;
        let pol_round = u32::try_from(p.pol_round).ok();
        let data = ProposalData {
            chain_id: self.pipeline.chain_id(),
            height: p.height,
            round: p.round,
            pol_round,
            block_hash: hash,
            timestamp_unix_nanos: p.timestamp_unix_nanos,
        };
        verify_proposal_signature(&data, &p.proposer, &p.signature)
            .map_err(|e| Invalid::Signature(e.to_string()))?;
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
        let validator = self
            .vals
            .index_of(&v.validator)
            .ok_or(Invalid::UnknownValidator)?;
        let vote_type = VoteType::try_from(v.vote_type)
            .ok()
            .filter(|t| *t != VoteType::Unknown)
            .ok_or(Invalid::UnknownVoteType)?;
        let value = if v.block_hash.is_empty() {
            None
        } else {
            Some(hash_field("vote.block_hash", &v.block_hash)?)
        };
        let data = VoteData {
            chain_id: self.pipeline.chain_id(),
            vote_type,
            height: v.height,
            round: v.round,
            block_hash: value,
            timestamp_unix_nanos: v.timestamp_unix_nanos,
        };
        verify_vote_signature(&data, &v.validator, &v.signature)
            .map_err(|e| Invalid::Signature(e.to_string()))?;
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
}

fn hash_field(field: &'static str, bytes: &[u8]) -> Result<Hash, Invalid> {
    Hash::from_slice(field, bytes).map_err(|e| Invalid::Malformed {
        field,
        reason: e.to_string(),
    })
}
