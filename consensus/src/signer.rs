//! The validator's signer: signs proposals and votes, refusing to sign anything conflicting
//! with what the WAL says it already signed (the double-sign guard that survives restarts).

use crate::wal::{step, Wal, WalEntry, WalError};
use ed25519_dalek::Signer as _;
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;
use tpslab_types::keys::SigningKey;
use tpslab_types::pb::{self, VoteType};
use tpslab_types::vote::{ProposalData, VoteData};
use tpslab_types::Hash;

/// Why a signature was refused.
#[derive(Debug, Error)]
pub enum SignError {
    /// Signing would contradict an earlier signature for the same step.
    #[error("refusing to double-sign at height {height} round {round} step {step}: already signed {signed}, asked for {asked}")]
    DoubleSign {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// WAL step number.
        step: u32,
        /// Hex of what was signed ("nil" for nil).
        signed: String,
        /// Hex of what was asked ("nil" for nil).
        asked: String,
    },
    /// The height is below one already signed at.
    #[error("refusing to sign at height {height}: already signed at height {last}")]
    Stale {
        /// Asked height.
        height: u64,
        /// Highest signed height.
        last: u64,
    },
    /// The WAL could not be written; nothing was signed.
    #[error(transparent)]
    Wal(#[from] WalError),
}

/// Signs for one validator, persisting before returning each signature.
pub struct PrivValidator {
    key: SigningKey,
    chain_id: String,
    wal: Wal,
    signed: BTreeMap<(u64, u32, u32), WalEntry>,
}

fn show(v: &[u8]) -> String {
    if v.is_empty() {
        "nil".into()
    } else {
        v.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }
}

impl PrivValidator {
    /// Opens the signer with its WAL at `wal_path`, restoring what was signed before.
    pub fn open(key: SigningKey, chain_id: String, wal_path: &Path) -> Result<Self, SignError> {
        let (wal, entries) = Wal::open(wal_path)?;
        let signed = entries
            .into_iter()
            .map(|e| ((e.height, e.round, e.step), e))
            .collect();
        Ok(PrivValidator {
            key,
            chain_id,
            wal,
            signed,
        })
    }

    /// The public key.
    pub fn pubkey(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Checks the guard; returns an earlier identical signature if there is one.
    fn guard(
        &self,
        height: u64,
        round: u32,
        st: u32,
        value: &[u8],
        pol: i64,
    ) -> Result<Option<WalEntry>, SignError> {
        if let Some((&(last, _, _), _)) = self.signed.iter().next_back() {
            if height < last {
                return Err(SignError::Stale { height, last });
            }
        }
        match self.signed.get(&(height, round, st)) {
            Some(e) if e.value == value && e.pol_round == pol => Ok(Some(e.clone())),
            Some(e) => Err(SignError::DoubleSign {
                height,
                round,
                step: st,
                signed: show(&e.value),
                asked: show(value),
            }),
            None => Ok(None),
        }
    }

    fn record(&mut self, e: WalEntry) -> Result<WalEntry, SignError> {
        self.wal.append(&e)?;
        self.signed.insert((e.height, e.round, e.step), e.clone());
        Ok(e)
    }

    /// Signs a vote (or returns the identical one signed before).
    pub fn sign_vote(
        &mut self,
        vote_type: VoteType,
        height: u64,
        round: u32,
        value: Option<Hash>,
        now_unix_nanos: u64,
    ) -> Result<pb::Vote, SignError> {
        let st = if vote_type == VoteType::Prevote {
            step::PREVOTE
        } else {
            step::PRECOMMIT
        };
        let v = value.map(|h| h.to_vec()).unwrap_or_default();
        let entry = match self.guard(height, round, st, &v, 0)? {
            Some(e) => e,
            None => {
                let data = VoteData {
                    chain_id: &self.chain_id,
                    vote_type,
                    height,
                    round,
                    block_hash: value,
                    timestamp_unix_nanos: now_unix_nanos,
                };
                let vote = data.sign(&self.key);
                self.record(WalEntry {
                    height,
                    round,
                    step: st,
                    value: v,
                    pol_round: 0,
                    timestamp_unix_nanos: now_unix_nanos,
                    signature: vote.signature,
                })?
            }
        };
        Ok(pb::Vote {
            vote_type: vote_type as i32,
            height,
            round,
            block_hash: entry.value,
            timestamp_unix_nanos: entry.timestamp_unix_nanos,
            validator: self.pubkey().to_vec(),
            signature: entry.signature,
        })
    }

    /// Signs a proposal of `block_hash`; returns (timestamp, signature).
    pub fn sign_proposal(
        &mut self,
        height: u64,
        round: u32,
        pol_round: Option<u32>,
        block_hash: Hash,
        now_unix_nanos: u64,
    ) -> Result<(u64, Vec<u8>), SignError> {
        let pol = pol_round.map_or(-1, i64::from);
        let entry = match self.guard(height, round, step::PROPOSAL, &block_hash.0, pol)? {
            Some(e) => e,
            None => {
                let data = ProposalData {
                    chain_id: &self.chain_id,
                    height,
                    round,
                    pol_round,
                    block_hash,
                    timestamp_unix_nanos: now_unix_nanos,
                };
                let sig = self.key.sign(&data.sign_bytes()).to_bytes().to_vec();
                self.record(WalEntry {
                    height,
                    round,
                    step: step::PROPOSAL,
                    value: block_hash.to_vec(),
                    pol_round: pol,
                    timestamp_unix_nanos: now_unix_nanos,
                    signature: sig,
                })?
            }
        };
        Ok((entry.timestamp_unix_nanos, entry.signature))
    }

    /// What this validator signed at `height` (from the WAL, so also before a restart).
    pub fn signed_at(&self, height: u64) -> Vec<WalEntry> {
        self.signed
            .range((height, 0, 0)..(height + 1, 0, 0))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Forgets (and drops from the WAL) everything below `height`, once it is committed.
    pub fn prune_below(&mut self, height: u64) -> Result<(), SignError> {
        let keep = self.signed.split_off(&(height, 0, 0));
        self.signed = keep;
        let entries: Vec<WalEntry> = self.signed.values().cloned().collect();
        self.wal.rewrite(&entries)?;
        Ok(())
    }
}
