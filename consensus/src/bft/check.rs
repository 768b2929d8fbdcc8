//! The checks of a peer's proposal and vote that need only the chain id and the validator
//! set: known signer, well-formed fields, signature under the one signature rule. Pure
//! functions, so fuzz targets and tests call them without a running node.

use super::validators::ValidatorSet;
use super::votes::SignedVote;
use crate::invalid::Invalid;
use tpslab_types::pb::{self, VoteType};
use tpslab_types::vote::{
    verify_proposal_signature, verify_vote_signature, ProposalData, VoteData,
};
use tpslab_types::Hash;

/// A proposal whose signature verified: who proposed, which block, and its POL round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedProposal {
    /// The proposer's index in the validator set.
    pub proposer: usize,
    /// The proposed block's hash.
    pub block_hash: Hash,
    /// The round of the polka it re-proposes, if any.
    pub pol_round: Option<u32>,
}

/// Checks a proposal's signer and signature (not its block: that needs our chain).
pub fn check_proposal_signature(
    chain_id: &str,
    vals: &ValidatorSet,
    p: &pb::Proposal,
) -> Result<CheckedProposal, Invalid> {
    let proposer = vals
        .index_of(&p.proposer)
        .ok_or(Invalid::UnknownValidator)?;
    let block_hash = hash_field("proposal.block_hash", &p.block_hash)?;
    let pol_round = u32::try_from(p.pol_round).ok();
    let data = ProposalData {
        chain_id,
        height: p.height,
        round: p.round,
        pol_round,
        block_hash,
        timestamp_unix_nanos: p.timestamp_unix_nanos,
    };
    verify_proposal_signature(&data, &p.proposer, &p.signature)
        .map_err(|e| Invalid::Signature(e.to_string()))?;
    Ok(CheckedProposal {
        proposer,
        block_hash,
        pol_round,
    })
}

/// Checks a vote's signer, type, hash and signature.
pub fn check_vote(
    chain_id: &str,
    vals: &ValidatorSet,
    v: &pb::Vote,
) -> Result<SignedVote, Invalid> {
    let validator = vals
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
        chain_id,
        vote_type,
        height: v.height,
        round: v.round,
        block_hash: value,
        timestamp_unix_nanos: v.timestamp_unix_nanos,
    };
    verify_vote_signature(&data, &v.validator, &v.signature)
        .map_err(|e| Invalid::Signature(e.to_string()))?;
    Ok(SignedVote {
        vote_type,
        height: v.height,
        round: v.round,
        value,
        validator,
        timestamp_unix_nanos: v.timestamp_unix_nanos,
        signature: v.signature.clone(),
    })
}

fn hash_field(field: &'static str, bytes: &[u8]) -> Result<Hash, Invalid> {
    Hash::from_slice(field, bytes).map_err(|e| Invalid::Malformed {
        field,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bft::Validator;
    use tpslab_types::keys::account_key;

    fn set() -> (ValidatorSet, tpslab_types::keys::SigningKey) {
        let key = account_key("v", 0);
        let other = account_key("v", 1);
        let vals = ValidatorSet::new(
            [&key, &other]
                .iter()
                .map(|k| Validator {
                    pubkey: k.verifying_key().to_bytes(),
                    power: 10,
                })
                .collect(),
        );
        (vals, key)
    }

    fn vote(key: &tpslab_types::keys::SigningKey) -> pb::Vote {
        VoteData {
            chain_id: "c",
            vote_type: VoteType::Prevote,
            height: 3,
            round: 1,
            block_hash: Some(Hash([7; 32])),
            timestamp_unix_nanos: 5,
        }
        .sign(key)
    }

    #[test]
    fn each_fault_of_a_vote_has_its_own_reason() {
        let (vals, key) = set();
        let good = vote(&key);
        let v = check_vote("c", &vals, &good).unwrap();
        assert_eq!((v.height, v.round, v.validator), (3, 1, 0));
        let outsider = vote(&account_key("x", 0));
        assert_eq!(
            check_vote("c", &vals, &outsider),
            Err(Invalid::UnknownValidator)
        );
        let mut bad_type = good.clone();
        bad_type.vote_type = 99;
        assert_eq!(
            check_vote("c", &vals, &bad_type),
            Err(Invalid::UnknownVoteType)
        );
        let mut short_hash = good.clone();
        short_hash.block_hash = vec![1; 5];
        assert!(matches!(
            check_vote("c", &vals, &short_hash),
            Err(Invalid::Malformed { .. })
        ));
        let mut forged = good.clone();
        forged.round = 2;
        assert!(matches!(
            check_vote("c", &vals, &forged),
            Err(Invalid::Signature(_))
        ));
        assert!(matches!(
            check_vote("other-chain", &vals, &good),
            Err(Invalid::Signature(_))
        ));
    }
}
