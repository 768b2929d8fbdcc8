//! Commits: building one from the deciding precommits, and verifying one received from a peer
//! (every signature valid, distinct known validators, more than 2/3 of the power).

use super::validators::ValidatorSet;
use super::votes::SignedVote;
use crate::invalid::CommitFault;
use std::collections::HashSet;
use tpslab_types::pb;
use tpslab_types::vote::{commit_sig_data, verify_vote_signature};
use tpslab_types::Hash;

/// The commit made of `precommits` for block `value` in `round`.
pub fn build_commit(
    vals: &ValidatorSet,
    height: u64,
    round: u32,
    value: &Hash,
    precommits: &[SignedVote],
) -> pb::Commit {
    pb::Commit {
        height,
        round,
        block_hash: value.to_vec(),
        signatures: precommits
            .iter()
            .filter_map(|v| {
                Some(pb::CommitSig {
                    validator: vals.get(v.validator)?.pubkey.to_vec(),
                    timestamp_unix_nanos: v.timestamp_unix_nanos,
                    signature: v.signature.clone(),
                })
            })
            .collect(),
    }
}

/// Checks that `commit` finalises block `expected_hash` at `height`.
pub fn verify_commit(
    chain_id: &str,
    vals: &ValidatorSet,
    height: u64,
    expected_hash: &Hash,
    commit: &pb::Commit,
) -> Result<(), CommitFault> {
    if commit.height != height {
        return Err(CommitFault::WrongHeight {
            got: commit.height,
            expected: height,
        });
    }
    if commit.block_hash != expected_hash.0 {
        return Err(CommitFault::OtherBlock);
    }
    let mut seen = HashSet::new();
    let mut power = 0u64;
    for sig in &commit.signatures {
        let idx = vals
            .index_of(&sig.validator)
            .ok_or(CommitFault::UnknownSigner)?;
        if !seen.insert(idx) {
            return Err(CommitFault::SignedTwice(idx));
        }
        let bad = |reason: String| CommitFault::Signature {
            validator: idx,
            reason,
        };
        let data = commit_sig_data(chain_id, commit, sig).map_err(|e| bad(e.to_string()))?;
        verify_vote_signature(&data, &sig.validator, &sig.signature)
            .map_err(|e| bad(e.to_string()))?;
        power += vals.power(idx);
    }
    if !vals.is_quorum(power) {
        return Err(CommitFault::NoQuorum {
            power,
            total: vals.total_power(),
        });
    }
    Ok(())
}
