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
