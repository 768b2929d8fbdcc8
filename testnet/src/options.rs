//! What `testnet init` is asked for, and what each validator's config is made of (shared by
//! the local homes and the host bundles).

use anyhow::Result;
use std::path::PathBuf;
use tpslab_api::config::{ByzantineSection, Config};
use tpslab_api::testnet_file::TestnetNode;
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
    /// Validators on other hosts, one per entry (`--hosts`): fixed ports, an admin token
    /// each, and deployment bundles ([`crate::bundle`]). None: every validator on 127.0.0.1.
    pub hosts: Option<Vec<String>>,
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

/// A validator's config: the template with its name, addresses, peers and links. `bind`
/// gives the address it binds for one it is reached at (they differ on a remote host).
fn node_config(
    o: &TestnetInit,
    n: &TestnetNode,
    peers: Vec<String>,
    links: std::collections::BTreeMap<String, String>,
    bind: impl Fn(&str) -> String,
) -> Config {
    let mut cfg = o.config.clone();
    cfg.moniker = n.name.clone();
    cfg.api.grpc_addr = bind(&n.grpc_addr);
    cfg.api.metrics_addr = bind(&n.metrics_addr);
    cfg.api.admin_token = n.admin_token.clone();
    cfg.p2p.listen_addr = bind(&n.p2p_addr);
    cfg.p2p.peers = peers;
    cfg.p2p.links = links;
    cfg.byzantine = n.byzantine.map(|behaviour| ByzantineSection {
        behaviour,
        forgeries: Forgery::ALL.to_vec(),
    });
    cfg
}

/// Every validator's config: peers are every other validator (`PUBKEY@p2p_addr`), links as
/// `--link` asks. `bind(node, addr)` gives the address a node binds for one it is reached at.
pub(crate) fn configs(
    o: &TestnetInit,
    nodes: &[TestnetNode],
    keys: &[SigningKey],
    bind: impl Fn(&TestnetNode, &str) -> String,
) -> Vec<Config> {
    let peers: Vec<String> = keys
        .iter()
        .zip(nodes)
        .map(|(k, n)| {
            format!(
                "{}@{}",
                hex::encode(k.verifying_key().as_bytes()),
                n.p2p_addr
            )
        })
        .collect();
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let others = peers.iter().enumerate().filter(|(j, _)| *j != i);
            let links = links_from(&o.links, n, keys.iter().zip(nodes));
            let peers = others.map(|(_, p)| p.clone()).collect();
            node_config(o, n, peers, links, |a| bind(n, a))
        })
        .collect()
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
