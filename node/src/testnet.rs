//! `tpslab testnet ...`: a local multi-validator network of separate `tpslab node` processes.
//!
//! `init` writes one home per validator (`DIR/node<i>`) sharing one genesis, with ports from
//! the project's range on 127.0.0.1 (tpslab_p2p::ports), and `DIR/testnet.json` listing them. `up` starts each node as its own
//! process group (it outlives the CLI), `down` stops them with SIGTERM, `status` shows each
//! node, and `check` audits safety across nodes.

use crate::client::connect;
use crate::config::Config;
use crate::genesis::{Genesis, GenesisAccounts, GenesisValidator};
use crate::home::{write_atomic, Home};
use crate::keyfile;
use crate::proto::{GetBlockRequest, StatusRequest};
use anyhow::{bail, Context, Result};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tpslab_types::keys::SigningKey;

/// `DIR/testnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestnetFile {
    /// Chain id.
    pub chain_id: String,
    /// The validators.
    pub nodes: Vec<TestnetNode>,
}

/// One validator of a testnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestnetNode {
    /// Name (`node<i>`).
    pub name: String,
    /// Its home directory.
    pub home: PathBuf,
    /// gRPC address.
    pub grpc_addr: String,
    /// p2p address.
    pub p2p_addr: String,
    /// Metrics (HTTP) address.
    pub metrics_addr: String,
}

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

/// Reads `<dir>/testnet.json`.
pub fn load(dir: &Path) -> Result<TestnetFile> {
    let p = dir.join("testnet.json");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "cannot read {} (made by `tpslab testnet init`)",
            p.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("invalid {}", p.display()))
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
        genesis_time_unix_nanos: tpslab_consensus::now_unix_nanos(),
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

fn pid_file(n: &TestnetNode) -> PathBuf {
    n.home.join("node.pid")
}

/// The process id of a running validator of the testnet.
pub fn node_pid(n: &TestnetNode) -> Option<u32> {
    read_pid(n).filter(|p| alive(*p))
}

fn read_pid(n: &TestnetNode) -> Option<u32> {
    std::fs::read_to_string(pid_file(n))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// Starts one node of the testnet (used by `up` and to restart a single node).
pub fn start_node(n: &TestnetNode, exe: &Path) -> Result<u32> {
    if let Some(pid) = read_pid(n).filter(|p| alive(*p)) {
        return Ok(pid);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(n.home.join("node.log"))?;
    let _ = std::fs::remove_file(Home(n.home.clone()).grpc_addr_file());
    use std::os::unix::process::CommandExt;
    let child = Command::new(exe)
        .arg("node")
        .arg("--home")
        .arg(&n.home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", n.name))?;
    std::fs::write(pid_file(n), child.id().to_string())?;
    Ok(child.id())
}

/// `testnet up`: starts every node and waits until each serves gRPC.
pub async fn up(dir: &Path, exe: &Path, timeout: Duration) -> Result<TestnetFile> {
    let t = load(dir)?;
    for n in &t.nodes {
        start_node(n, exe)?;
    }
    let deadline = Instant::now() + timeout;
    for n in &t.nodes {
        loop {
            if let Ok(mut c) = connect(&n.grpc_addr).await {
                if c.status(StatusRequest {}).await.is_ok() {
                    break;
                }
            }
            if read_pid(n).is_some_and(|p| !alive(p)) {
                let log = n.home.join("node.log");
                let cause = exit_cause(&log);
                if cause.contains("Address already in use") {
                    return Err(PortTaken {
                        node: n.name.clone(),
                        cause,
                    }
                    .into());
                }
                bail!(
                    "{} exited at start: {cause} (log: {})",
                    n.name,
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!("{} did not become healthy in {timeout:?}", n.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(t)
}

/// A node could not start because one of its ports was taken by another socket; the caller
/// may retry on fresh ports (`testnet init` again).
#[derive(Debug, thiserror::Error)]
#[error("{node} could not bind its port: {cause}")]
pub struct PortTaken {
    /// The node.
    pub node: String,
    /// The node's own error, naming the address.
    pub cause: String,
}

/// The error a node printed last before exiting (its `Error:` line and causes, on one line).
fn exit_cause(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let Some(at) = text.rfind("Error: ") else {
        return "no error in its log".into();
    };
    let mut parts: Vec<&str> = Vec::new();
    for l in text[at + "Error: ".len()..].lines().map(str::trim) {
        if l.starts_with("Stack backtrace") {
            break;
        }
        let l = l
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == ':')
            .trim();
        // Skip a cause already spelled out at the end of the line before (io errors often are).
        if l.is_empty() || l == "Caused by:" || parts.last().is_some_and(|p| p.ends_with(l)) {
            continue;
        }
        parts.push(l);
    }
    parts.join(": ")
}

/// Stops one node with SIGTERM (SIGKILL after 20 s).
pub fn stop_node(n: &TestnetNode) -> Result<()> {
    let Some(pid) = read_pid(n) else {
        return Ok(());
    };
    if alive(pid) {
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()?;
        }
    }
    let _ = std::fs::remove_file(pid_file(n));
    Ok(())
}

/// `testnet down`.
pub fn down(dir: &Path) -> Result<()> {
    for n in &load(dir)?.nodes {
        stop_node(n)?;
    }
    Ok(())
}

/// One line of `testnet status`.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    /// Name.
    pub name: String,
    /// Height, or None if unreachable.
    pub height: Option<u64>,
    /// Consensus round.
    pub round: u32,
    /// Connected peers.
    pub peers: u64,
    /// Pending txs.
    pub mempool_txs: u64,
}

/// `testnet status`.
pub async fn status(dir: &Path) -> Result<Vec<NodeStatus>> {
    let t = load(dir)?;
    let mut out = Vec::new();
    for n in &t.nodes {
        let s = match connect(&n.grpc_addr).await {
            Ok(mut c) => c
                .status(StatusRequest {})
                .await
                .ok()
                .map(|r| r.into_inner()),
            Err(_) => None,
        };
        out.push(NodeStatus {
            name: n.name.clone(),
            height: s.as_ref().map(|s| s.height),
            round: s.as_ref().map_or(0, |s| s.round),
            peers: s.as_ref().map_or(0, |s| s.peers),
            mempool_txs: s.as_ref().map_or(0, |s| s.mempool_txs),
        });
    }
    Ok(out)
}

/// `testnet check`: compares block hash and app hash at every height all reachable nodes
/// have. Returns the common height on success; the first divergence is an error.
pub async fn check(dir: &Path) -> Result<u64> {
    let t = load(dir)?;
    let mut clients = Vec::new();
    for n in &t.nodes {
        if let Ok(mut c) = connect(&n.grpc_addr).await {
            if let Ok(s) = c.status(StatusRequest {}).await {
                clients.push((n.name.clone(), c, s.into_inner().height));
            }
        }
    }
    if clients.len() < 2 {
        bail!("fewer than two nodes reachable; nothing to compare");
    }
    let common = clients.iter().map(|c| c.2).min().unwrap_or(0);
    for h in 1..=common {
        let mut first: Option<(String, Vec<u8>, Vec<u8>)> = None;
        for (name, c, _) in clients.iter_mut() {
            let b = c
                .get_block(GetBlockRequest { height: h })
                .await
                .with_context(|| format!("{name}: block {h}"))?
                .into_inner();
            match &first {
                None => first = Some((name.clone(), b.block_hash, b.result_app_hash)),
                Some((n0, bh, ah)) => {
                    if *bh != b.block_hash || *ah != b.result_app_hash {
                        bail!(
                            "divergence at height {h}: {n0} has block {} app {}, {name} has block {} app {}",
                            hex::encode(bh),
                            hex::encode(ah),
                            hex::encode(&b.block_hash),
                            hex::encode(&b.result_app_hash)
                        );
                    }
                }
            }
        }
    }
    Ok(common)
}
