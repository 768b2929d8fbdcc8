//! `testnet init`: keys, one genesis, and a home per validator on ports from the project's
//! range.

use anyhow::{bail, Result};
use rand::rngs::OsRng;
use std::path::PathBuf;
use tpslab_api::config::{ByzantineSection, Config};
use tpslab_api::genesis::{Genesis, GenesisAccounts, GenesisValidator};
use tpslab_api::home::{write_atomic, Home};
use tpslab_api::keyfile;
use tpslab_api::testnet_file::{TestnetFile, TestnetNode};
use tpslab_types::byzantine::{Behaviour, Forgery};
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
    /// Test only: nodes (by name) made byzantine, and how.
    pub byzantine: Vec<(String, Behaviour)>,
    /// Test only: start every node with the fault-injection endpoint.
    pub fault_injection: bool,
    /// The chain's consensus engine.
    pub consensus: tpslab_types::EngineKind,
    /// Emulated links between the validators (real ones by default).
    pub links: crate::links::Links,
}

/// Parses `node3=equivocate,node2=silent` (for `testnet init --byzantine`).
pub fn parse_byzantine(s: &str) -> Result<Vec<(String, Behaviour)>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (name, b) = p
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--byzantine wants NODE=BEHAVIOUR, got {p:?}"))?;
            Ok((name.trim().to_string(), b.trim().parse()?))
        })
        .collect()
}

/// One validator's home: key, genesis, and config with its addresses and peers.
fn write_home(
    o: &TestnetInit,
    key: &SigningKey,
    n: &TestnetNode,
    genesis: &Genesis,
    peers: Vec<String>,
    links: std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let home = Home(n.home.clone());
    std::fs::create_dir_all(&home.0)?;
    keyfile::save(key, &home.key())?;
    genesis.save(&home.genesis())?;
    let mut cfg = o.config.clone();
    cfg.moniker = n.name.clone();
    cfg.api.grpc_addr = n.grpc_addr.clone();
    cfg.api.metrics_addr = n.metrics_addr.clone();
    cfg.p2p.listen_addr = n.p2p_addr.clone();
    cfg.p2p.peers = peers;
    cfg.p2p.links = links;
    cfg.byzantine = n.byzantine.map(|behaviour| ByzantineSection {
        behaviour,
        forgeries: Forgery::ALL.to_vec(),
    });
    std::fs::write(home.config(), cfg.to_toml())?;
    Ok(())
}

/// The emulated links from node `n` to each other node, by public key hex, as its config
/// holds them: each node shapes what it sends.
fn links_from<'a>(
    links: &crate::links::Links,
    n: &TestnetNode,
    all: impl Iterator<Item = (&'a SigningKey, &'a TestnetNode)>,
) -> std::collections::BTreeMap<String, String> {
    all.filter(|(_, m)| m.name != n.name)
        .filter_map(|(pk, m)| {
            let spec = links.between(&n.name, &m.name)?;
            Some((hex::encode(pk.verifying_key().as_bytes()), spec.to_string()))
        })
        .collect()
}

/// A testnet has validators, and its options name only them.
fn check_options(o: &TestnetInit) -> Result<()> {
    if o.validators == 0 {
        bail!("--validators must be at least 1");
    }
    check_byzantine(o)?;
    let names: Vec<String> = (0..o.validators).map(|i| format!("node{i}")).collect();
    o.links.check_nodes(&names)
}

/// `--byzantine` may only name nodes of this testnet, and needs someone to lie to.
fn check_byzantine(o: &TestnetInit) -> Result<()> {
    for (name, _) in &o.byzantine {
        let known = name
            .strip_prefix("node")
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| i < o.validators && *name == format!("node{i}"));
        if !known {
            bail!(
                "--byzantine names {name}, not a node of this testnet (node0..node{})",
                o.validators - 1
            );
        }
    }
    if o.consensus == tpslab_types::EngineKind::Raft && !o.byzantine.is_empty() {
        bail!("--byzantine needs --consensus bft: Raft trusts every node, a lying one is outside its model");
    }
    if o.validators < 2 && !o.byzantine.is_empty() {
        bail!("--byzantine needs at least two validators");
    }
    Ok(())
}

/// `testnet init`.
pub fn init(o: &TestnetInit) -> Result<TestnetFile> {
    check_options(o)?;
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
            byzantine: o
                .byzantine
                .iter()
                .find(|(n, _)| *n == format!("node{i}"))
                .map(|(_, b)| *b),
            fault_injection: o.fault_injection,
            cpus: None,
        });
    }
    let genesis = Genesis {
        chain_id: o.chain_id.clone(),
        genesis_time_unix_nanos: tpslab_types::stages::now_unix_nanos(),
        consensus: o.consensus,
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
        let others = peers.iter().enumerate().filter(|(j, _)| *j != i);
        let links = links_from(&o.links, n, keys.iter().zip(&nodes));
        write_home(
            o,
            k,
            n,
            &genesis,
            others.map(|(_, p)| p.clone()).collect(),
            links,
        )?;
    }
    let file = TestnetFile {
        chain_id: o.chain_id.clone(),
        nodes,
        links: o.links.describe(),
    };
    write_atomic(
        &o.out.join("testnet.json"),
        &serde_json::to_string_pretty(&file)?,
    )?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(validators: usize, byzantine: &str) -> Result<TestnetInit> {
        Ok(TestnetInit {
            validators,
            out: PathBuf::from("/nonexistent/tpslab-test"),
            chain_id: "c".into(),
            accounts: 1,
            seed: "s".into(),
            balance: 1,
            config: Config::default(),
            byzantine: parse_byzantine(byzantine)?,
            fault_injection: false,
            consensus: Default::default(),
            links: Default::default(),
        })
    }

    #[test]
    fn byzantine_nodes_must_be_named_right_and_exist() {
        assert_eq!(
            parse_byzantine("node3=silent, node1=garbage").unwrap(),
            vec![
                ("node3".to_string(), Behaviour::Silent),
                ("node1".to_string(), Behaviour::Garbage)
            ]
        );
        for (n, spec, needle) in [
            (4, "node3", "NODE=BEHAVIOUR"),
            (4, "node3=lie", "unknown behaviour"),
            (4, "node4=silent", "not a node of this testnet"),
            (4, "node03=silent", "not a node of this testnet"),
            (4, "validator1=silent", "not a node of this testnet"),
            (1, "node0=silent", "at least two validators"),
        ] {
            let e = opts(n, spec)
                .and_then(|o| init(&o))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }
}
