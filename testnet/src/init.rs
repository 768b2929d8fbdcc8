//! `testnet init`: keys, one genesis, and a home per validator: on 127.0.0.1 on ports from
//! the project's range, or on other hosts with their bundles (`--hosts`).

use crate::options::{configs, TestnetInit};
use anyhow::{bail, Result};
use rand::rngs::OsRng;
use tpslab_api::config::Config;
use tpslab_api::genesis::{Genesis, GenesisAccounts, GenesisValidator};
use tpslab_api::home::{write_atomic, Home};
use tpslab_api::keyfile;
use tpslab_api::testnet_file::{TestnetFile, TestnetNode};
use tpslab_types::keys::SigningKey;

/// One validator's home: key, genesis and config.
fn write_home(key: &SigningKey, n: &TestnetNode, genesis: &Genesis, cfg: &Config) -> Result<()> {
    let home = Home(n.home.clone());
    std::fs::create_dir_all(&home.0)?;
    keyfile::save(key, &home.key())?;
    genesis.save(&home.genesis())?;
    write_atomic(&home.config(), &cfg.to_toml())?;
    Ok(())
}

/// A testnet has validators, and its options name only them.
fn check_options(o: &TestnetInit) -> Result<()> {
    if o.validators == 0 {
        bail!("--validators must be at least 1");
    }
    check_byzantine(o)?;
    if let Some(h) = o.hosts.as_ref().filter(|h| h.len() != o.validators) {
        bail!(
            "--hosts names {} hosts for {} validators (one validator per entry; name a host twice for two)",
            h.len(),
            o.validators
        );
    }
    if o.hosts.is_some() && (!o.byzantine.is_empty() || o.fault_injection) {
        bail!("--byzantine and --fault-injection are for local testnets, not --hosts");
    }
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
    let nodes = match &o.hosts {
        None => local_nodes(o)?,
        Some(hosts) => {
            // Keys, admin tokens and Secrets: the directory is the operator's alone.
            std::fs::create_dir_all(&o.out)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&o.out, std::fs::Permissions::from_mode(0o700))?;
            remote_nodes(o, hosts)?
        }
    };
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
    let configs = configs(o, &nodes, &keys, bind_addr);
    for ((k, n), cfg) in keys.iter().zip(&nodes).zip(&configs) {
        write_home(k, n, &genesis, cfg)?;
    }
    let file = TestnetFile {
        chain_id: o.chain_id.clone(),
        nodes,
        links: o.links.describe(),
    };
    if o.hosts.is_some() {
        crate::bundle::write(o, &file, &keys, &genesis)?;
    }
    file.save(&o.out)?;
    Ok(file)
}

/// Validators on 127.0.0.1, on ports from the project's range (never the ephemeral one: see
/// p2p/src/ports.rs).
fn local_nodes(o: &TestnetInit) -> Result<Vec<TestnetNode>> {
    let ports = tpslab_p2p::ports::allocate(3 * o.validators)?;
    Ok(ports
        .chunks(3)
        .enumerate()
        .map(|(i, p)| TestnetNode {
            grpc_addr: format!("127.0.0.1:{}", p[0]),
            p2p_addr: format!("127.0.0.1:{}", p[1]),
            metrics_addr: format!("127.0.0.1:{}", p[2]),
            ..node(o, i)
        })
        .collect())
}

/// Validators on the given hosts, on fixed ports, each with an admin token.
fn remote_nodes(o: &TestnetInit, hosts: &[String]) -> Result<Vec<TestnetNode>> {
    let plan = crate::hosts::plan(hosts)?;
    Ok(plan
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut token = [0u8; 32];
            rand::RngCore::fill_bytes(&mut OsRng, &mut token);
            TestnetNode {
                grpc_addr: p.addr(p.grpc),
                p2p_addr: p.addr(p.p2p),
                metrics_addr: p.addr(p.metrics),
                host: Some(p.host.clone()),
                admin_token: Some(hex::encode(token)),
                home: crate::hosts::host_dir(&o.out, &p.host).join(format!("node{i}")),
                ..node(o, i)
            }
        })
        .collect())
}

/// Node `i` before its addresses are known.
fn node(o: &TestnetInit, i: usize) -> TestnetNode {
    let name = format!("node{i}");
    TestnetNode {
        home: o.out.join(&name),
        byzantine: o
            .byzantine
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b),
        fault_injection: o.fault_injection,
        name,
        ..Default::default()
    }
}

/// The address a node binds for `addr`, one of its own: the same on 127.0.0.1; on a remote
/// host, see [`crate::hosts::bind`].
fn bind_addr(n: &TestnetNode, addr: &str) -> String {
    let port = addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
    match (&n.host, port) {
        (Some(host), Some(port)) => crate::hosts::bind(host, port),
        _ => addr.to_string(),
    }
}
