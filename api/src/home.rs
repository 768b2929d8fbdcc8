//! The node's home directory: where each file lives, and `tpslab init`.

use crate::config::Config;
use crate::genesis::{Genesis, GenesisAccounts, GenesisValidator};
use crate::keyfile;
use anyhow::{bail, Context, Result};
use rand::rngs::OsRng;
use std::path::{Path, PathBuf};
use tpslab_types::keys::SigningKey;

/// Paths inside a home directory.
#[derive(Clone, Debug)]
pub struct Home(pub PathBuf);

impl Home {
    /// `config.toml`
    pub fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
    /// `genesis.json`
    pub fn genesis(&self) -> PathBuf {
        self.0.join("genesis.json")
    }
    /// `priv_validator_key.json`
    pub fn key(&self) -> PathBuf {
        self.0.join("priv_validator_key.json")
    }
    /// `data/`: the RocksDB state database.
    pub fn data(&self) -> PathBuf {
        self.0.join("data")
    }
    /// `cs.wal`: the consensus write-ahead log (what this validator signed).
    pub fn wal(&self) -> PathBuf {
        self.0.join("cs.wal")
    }
    /// `metrics.addr`: the bound metrics (HTTP) address of the running node.
    pub fn metrics_addr_file(&self) -> PathBuf {
        self.0.join("metrics.addr")
    }
    /// `grpc.addr`: the bound gRPC address of the running node.
    pub fn grpc_addr_file(&self) -> PathBuf {
        self.0.join("grpc.addr")
    }
}

/// Options of `tpslab init`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Chain id.
    pub chain_id: String,
    /// Funded accounts to derive.
    pub accounts: u64,
    /// Their key seed.
    pub seed: String,
    /// Balance of each.
    pub balance: u64,
    /// Config to write.
    pub config: Config,
    /// Overwrite an existing home.
    pub force: bool,
}

/// Creates a single-validator home: a fresh key, a genesis naming it, and `config.toml`.
pub fn init(home: &Home, opts: &InitOptions) -> Result<()> {
    if home.genesis().exists() && !opts.force {
        bail!(
            "{} already holds a node (use --force to overwrite)",
            home.0.display()
        );
    }
    std::fs::create_dir_all(&home.0)
        .with_context(|| format!("cannot create {}", home.0.display()))?;
    if opts.force && home.data().exists() {
        std::fs::remove_dir_all(home.data())
            .with_context(|| format!("cannot remove {}", home.data().display()))?;
    }
    let key = SigningKey::generate(&mut OsRng);
    keyfile::save(&key, &home.key())?;
    let genesis = Genesis {
        chain_id: opts.chain_id.clone(),
        genesis_time_unix_nanos: tpslab_types::stages::now_unix_nanos(),
        consensus: Default::default(),
        validators: vec![GenesisValidator {
            name: if opts.config.moniker.is_empty() {
                "node0".into()
            } else {
                opts.config.moniker.clone()
            },
            pub_key: hex::encode(key.verifying_key().as_bytes()),
            power: 10,
        }],
        accounts: GenesisAccounts {
            seed: opts.seed.clone(),
            count: opts.accounts,
            balance: opts.balance,
        },
    };
    genesis.save(&home.genesis())?;
    std::fs::write(home.config(), opts.config.to_toml())
        .with_context(|| format!("cannot write {}", home.config().display()))?;
    Ok(())
}

/// Writes `contents` to `path` atomically (temp file + rename), so a reader never sees a
/// half-written file.
pub fn write_atomic(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))
}
