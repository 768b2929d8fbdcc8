//! `testnet status` and `testnet check`: what each node reports, and the safety audit across
//! nodes (same block and app hash at every common height).

use anyhow::{bail, Context, Result};
use std::path::Path;
use tpslab_api::client::connect;
use tpslab_api::proto::{GetBlockRequest, StatusRequest};
use tpslab_api::testnet_file::load;

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
