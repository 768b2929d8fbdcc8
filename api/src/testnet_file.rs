//! `testnet.json`: the validators of a local testnet and their addresses, written by
//! `tpslab testnet init` and read by everything that drives the testnet.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `DIR/testnet.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestnetFile {
    /// Chain id.
    pub chain_id: String,
    /// The validators.
    pub nodes: Vec<TestnetNode>,
    /// The emulated links between them, in words (absent: real links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<String>,
}

/// One validator of a testnet.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    /// Test only: the misbehaviour `testnet init --byzantine` gave this node. It is started
    /// with `--allow-byzantine`, kept out of the load, and left out of honest-only audits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byzantine: Option<tpslab_types::byzantine::Behaviour>,
    /// Test only: started with `--allow-fault-injection` (`testnet init --fault-injection`),
    /// so `load --perturb disconnect:...` can isolate it from its peers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fault_injection: bool,
    /// The CPUs it runs on (`testnet up --cpus`), as a list for `tpslab node --cpus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// The host it runs on (`testnet init --hosts`): started and stopped there by its
    /// service manager, not by `testnet up`; `home` is then the bundle copied to that host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its `[api] admin_token`, for `testnet down` on a remote node (the admin RPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
}

impl TestnetFile {
    /// Writes it back to `<dir>/testnet.json` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::home::write_atomic(
            &dir.join("testnet.json"),
            &serde_json::to_string_pretty(self)?,
        )
    }

    /// The hosts its validators run on, when they run on other hosts (`init --hosts`).
    pub fn hosts(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter_map(|n| n.host.as_deref())
            .collect()
    }

    /// The nodes not marked byzantine.
    pub fn honest(&self) -> impl Iterator<Item = &TestnetNode> {
        self.nodes.iter().filter(|n| n.byzantine.is_none())
    }
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
