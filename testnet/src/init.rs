//! `testnet init`: keys, one genesis, and a home per validator on ports from the project's
//! range.

use anyhow::{bail, Result};
use rand::rngs::OsRng;
use std::path::PathBuf;
use tpslab_api::config::Config;
use tpslab_api::genesis::{Genesis, GenesisAccounts, GenesisValidator};
use tpslab_api::home::{write_atomic, Home};
use tpslab_api::keyfile;
use tpslab_api::testnet_file::{TestnetFile, TestnetNode};
use tpslab_types::keys::SigningKey;

/// Options of `testnet init`.
#[derive(Clone, Debug)]
pub struct TestnetInit {
    /// Number of validators.
    pub validators: usize,
    /// Output directory.
    pub out: PathBuf,
    /// Chain id.
    pub chain_id: String,
    /// Funded accounts.
    pub accounts: u64,
    /// Their seed.
    pub seed: String,
    /// Their balance.
    pub balance: u64,
    /// Config applied to every node (addresses and peers are filled in).
    pub config: Config,
}

/// `testnet init`.
pub fn init(o: &TestnetInit) -> Result<TestnetFile> {
    if o.validators == 0 {
        bail!("--validators must be at least 1");
    }
    if o.out.join("testnet.json").exists() {
        bail!("{} already holds a testnet", o.out.display());
    }
    let keys: Vec<SigningKey> = (0..o.validators)
        .map(|_| SigningKey::generate(&mut OsRng))
        .collect();
    // Ports from the project's range, never the ephemeral one (see p2p/src/ports.rs).
    let ports = tpslab_p2p::ports::allocate(3 * o.validators)?;
    let mut nodes = Vec::new();
    for (i, p) in ports.chunks(3).enumerate() {
        nodes.push(TestnetNode {
            name: format!("node{i}"),
            home: o.out.join(format!("node{i}")),
            grpc_addr: format!("127.0.0.1:{}", p[0]),
            p2p_addr: format!("127.0.0.1:{}", p[1]),
            metrics_addr: format!("127.0.0.1:{}", p[2]),
        });
    }
    let genesis = Genesis {
        chain_id: o.chain_id.clone(),
        genesis_time_unix_nanos: tpslab_types::stages::now_unix_nanos(),
        validators: keys
            .iter()
            .zip(&nodes)
            .map(|(k, n)| GenesisValidator {
                name: n.name.clone(),
                pub_key: hex::encode(k.verifying_key().as_bytes()),
                power: 10,
            })
            .collect(),
        accounts: GenesisAccounts {
            seed: o.seed.clone(),
            count: o.accounts,
            balance: o.balance,
        },
    };
    let peers: Vec<String> = keys
        .iter()
        .zip(&nodes)
        .map(|(k, n)| {
            format!(
                "{}@{}",
                hex::encode(k.verifying_key().as_bytes()),
                n.p2p_addr
            )
        })
        .collect();
    for (i, (k, n)) in keys.iter().zip(&nodes).enumerate() {
        let home = Home(n.home.clone());
        std::fs::create_dir_all(&home.0)?;
        keyfile::save(k, &home.key())?;
        genesis.save(&home.genesis())?;
        let mut cfg = o.config.clone();
        cfg.moniker = n.name.clone();
        cfg.api.grpc_addr = n.grpc_addr.clone();
        cfg.api.metrics_addr = n.metrics_addr.clone();
        cfg.p2p.listen_addr = n.p2p_addr.clone();
        cfg.p2p.peers = peers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p.clone())
            .collect();
        std::fs::write(home.config(), cfg.to_toml())?;
    }
    let file = TestnetFile {
        chain_id: o.chain_id.clone(),
        nodes,
    };
    write_atomic(
        &o.out.join("testnet.json"),
        &serde_json::to_string_pretty(&file)?,
    )?;
    Ok(file)
}
