//! Consensus votes: canonical sign-bytes, signing and verification, and commit signatures
//! (a commit signature is a precommit for the committed block).

use crate::hash::Hash;
use crate::pb::{self, VoteType};
use crate::TypesResult;
use ed25519_dalek::{Signer, SigningKey};

/// Domain separator of vote sign-bytes.
const VOTE_DOMAIN: &[u8] = b"tpslab/vote/v1\0";

/// What a vote says, without validator and signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteData<'a> {
    /// Chain the vote is for.
    pub chain_id: &'a str,
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// Height voted on.
    pub height: u64,
    /// Round voted in.
    pub round: u32,
    /// Block voted for; `None` is a nil vote.
    pub block_hash: Option<Hash>,
    /// Voter's clock, Unix nanoseconds.
    pub timestamp_unix_nanos: u64,
}

impl VoteData<'_> {
    /// `domain || u32 BE len(chain_id) || chain_id || type(1) || height BE || round BE ||
    /// has_block(1) || block_hash(32, zero if nil) || timestamp BE`.
    pub fn sign_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(VOTE_DOMAIN.len() + 90 + self.chain_id.len());
        out.extend_from_slice(VOTE_DOMAIN);
        out.extend_from_slice(&(self.chain_id.len() as u32).to_be_bytes());
        out.extend_from_slice(self.chain_id.as_bytes());
        out.push(self.vote_type as i32 as u8);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.round.to_be_bytes());
        out.push(u8::from(self.block_hash.is_some()));
        out.extend_from_slice(&self.block_hash.unwrap_or(Hash::ZERO).0);
        out.extend_from_slice(&self.timestamp_unix_nanos.to_be_bytes());
        out
    }

    /// Signs the vote with a validator key.
    pub fn sign(&self, key: &SigningKey) -> pb::Vote {
        pb::Vote {
            vote_type: self.vote_type as i32,
            height: self.height,
            round: self.round,
            block_hash: self.block_hash.map(|h| h.to_vec()).unwrap_or_default(),
            timestamp_unix_nanos: self.timestamp_unix_nanos,
            validator: key.verifying_key().to_bytes().to_vec(),
            signature: key.sign(&self.sign_bytes()).to_bytes().to_vec(),
        }
    }
}

/// Verifies `signature` by `validator` (32-byte public key) over `data`.
pub fn verify_vote_signature(
    data: &VoteData<'_>,
    validator: &[u8],
    signature: &[u8],
) -> TypesResult<()> {
    verify_ed25519(
        ("vote.validator", validator),
        ("vote.signature", signature),
        &data.sign_bytes(),
    )
}

/// Checks key and signature lengths (naming the fields) and verifies under the project's
/// one rule ([`crate::sig`]).
fn verify_ed25519(
    key: (&'static str, &[u8]),
    signature: (&'static str, &[u8]),
    msg: &[u8],
) -> TypesResult<()> {
    crate::sig::verify_fields(key, signature, msg, crate::sig::SigPath::Vote)
}

/// The precommit a commit signature stands for.
pub fn commit_sig_data<'a>(
    chain_id: &'a str,
    commit: &pb::Commit,
    sig: &pb::CommitSig,
) -> TypesResult<VoteData<'a>> {
    Ok(VoteData {
        chain_id,
        vote_type: VoteType::Precommit,
        height: commit.height,
        round: commit.round,
        block_hash: Some(Hash::from_slice("commit.block_hash", &commit.block_hash)?),
        timestamp_unix_nanos: sig.timestamp_unix_nanos,
    })
}

/// Turns a signed precommit into the signature a commit carries.
pub fn commit_sig_from_vote(vote: &pb::Vote) -> pb::CommitSig {
    pb::CommitSig {
        validator: vote.validator.clone(),
        timestamp_unix_nanos: vote.timestamp_unix_nanos,
        signature: vote.signature.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::account_key;

    #[test]
    fn commit_signature_verifies_as_precommit() {
        let key = account_key("v", 0);
        let data = VoteData {
            chain_id: "c",
            vote_type: VoteType::Precommit,
            height: 5,
            round: 1,
            block_hash: Some(Hash::digest(b"block")),
            timestamp_unix_nanos: 42,
        };
        let vote = data.sign(&key);
        let commit = pb::Commit {
            height: 5,
            round: 1,
            block_hash: Hash::digest(b"block").to_vec(),
            signatures: vec![commit_sig_from_vote(&vote)],
        };
        let sig = &commit.signatures[0];
        let d = commit_sig_data("c", &commit, sig).unwrap();
        verify_vote_signature(&d, &sig.validator, &sig.signature).unwrap();
        let other_chain = commit_sig_data("d", &commit, sig).unwrap();
        assert_eq!(
            verify_vote_signature(&other_chain, &sig.validator, &sig.signature),
            Err(crate::TypesError::BadSignature)
        );
    }

    #[test]
    fn nil_and_block_votes_differ() {
        let mut d = VoteData {
            chain_id: "c",
            vote_type: VoteType::Prevote,
            height: 1,
            round: 0,
            block_hash: None,
            timestamp_unix_nanos: 0,
        };
        let nil = d.sign_bytes();
        d.block_hash = Some(Hash::ZERO);
        assert_ne!(nil, d.sign_bytes());
    }
}

/// Domain separator of proposal sign-bytes.
const PROPOSAL_DOMAIN: &[u8] = b"tpslab/proposal/v1\0";

/// What a proposal signature covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProposalData<'a> {
    /// Chain id.
    pub chain_id: &'a str,
    /// Height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// Proof-of-lock round, None for -1.
    pub pol_round: Option<u32>,
    /// Hash of the proposed block.
    pub block_hash: Hash,
    /// Proposer's clock.
    pub timestamp_unix_nanos: u64,
}

impl ProposalData<'_> {
    /// `domain || u32 BE len(chain_id) || chain_id || height BE || round BE ||
    /// pol_round as i64 BE (-1 = none) || block_hash || timestamp BE`.
    pub fn sign_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PROPOSAL_DOMAIN.len() + 64 + self.chain_id.len());
        out.extend_from_slice(PROPOSAL_DOMAIN);
        out.extend_from_slice(&(self.chain_id.len() as u32).to_be_bytes());
        out.extend_from_slice(self.chain_id.as_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.round.to_be_bytes());
        out.extend_from_slice(&self.pol_round.map_or(-1i64, i64::from).to_be_bytes());
        out.extend_from_slice(&self.block_hash.0);
        out.extend_from_slice(&self.timestamp_unix_nanos.to_be_bytes());
        out
    }
}

/// Verifies `signature` by `signer` (32-byte public key) over the proposal data.
pub fn verify_proposal_signature(
    data: &ProposalData<'_>,
    signer: &[u8],
    signature: &[u8],
) -> TypesResult<()> {
    verify_ed25519(
        ("proposal.proposer", signer),
        ("proposal.signature", signature),
        &data.sign_bytes(),
    )
}
