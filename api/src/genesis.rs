//! `genesis.json`: chain id, validators and the funded accounts.
//!
//! Accounts are given as a seed and a count rather than a list of keys: account `i` is
//! [`tpslab_types::keys::account_key`]`(seed, i)`, so a load generator holding the same genesis
//! can sign for every funded account without a key file.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::{Account, Address};

/// The genesis file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Chain id every tx and vote carries.
    pub chain_id: String,
    /// Time of height 0, Unix nanoseconds.
    pub genesis_time_unix_nanos: u64,
    /// The consensus engine (`bft` when absent).
    #[serde(default)]
    pub consensus: tpslab_types::EngineKind,
    /// The validator set.
    pub validators: Vec<GenesisValidator>,
    /// Funded test accounts.
    pub accounts: GenesisAccounts,
}

/// One validator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// A human name.
    pub name: String,
    /// ed25519 public key, hex.
    pub pub_key: String,
    /// Voting power.
    pub power: u64,
}

/// `count` accounts derived from `seed`, each with `balance`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccounts {
    /// Key derivation seed.
    pub seed: String,
    /// Number of accounts.
    pub count: u64,
    /// Initial balance of each.
    pub balance: u64,
}

impl Genesis {
    /// Reads and checks a genesis file.
    pub fn load(path: &Path) -> Result<Genesis> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read genesis {}", path.display()))?;
        let g: Genesis = serde_json::from_str(&text)
            .with_context(|| format!("invalid genesis file {}", path.display()))?;
        g.validate()
            .with_context(|| format!("invalid genesis file {}", path.display()))?;
        Ok(g)
    }

    fn validate(&self) -> Result<()> {
        if self.chain_id.is_empty() {
            bail!("field `chain_id` must not be empty");
        }
        if self.validators.is_empty() {
            bail!("field `validators` must list at least one validator");
        }
        for (i, v) in self.validators.iter().enumerate() {
            let pk = hex::decode(&v.pub_key)
                .ok()
                .filter(|b| b.len() == 32)
                .with_context(|| format!("field `validators[{i}].pub_key` must be 64 hex chars"))?;
            let pk: [u8; 32] = pk.try_into().unwrap_or([0; 32]);
            let on_curve = ed25519_dalek::VerifyingKey::from_bytes(&pk).is_ok();
            if !on_curve || tpslab_types::sig::check_public_key(&pk).is_err() {
                bail!(
                    "field `validators[{i}].pub_key` is not an acceptable ed25519 key \
                     (a canonical encoding of a curve point not of small order)"
                );
            }
            if v.power == 0 {
                bail!("field `validators[{i}].power` must be greater than 0");
            }
        }
        Ok(())
    }

    /// Writes the file (pretty JSON).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The funded accounts, keyed by address.
    pub fn account_map(&self) -> BTreeMap<Address, Account> {
        (0..self.accounts.count)
            .map(|i| {
                (
                    address_of(&account_key(&self.accounts.seed, i)),
                    Account {
                        balance: self.accounts.balance,
                        nonce: 0,
                    },
                )
            })
            .collect()
    }
}
