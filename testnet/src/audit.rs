//! `testnet status` and `testnet check`: what each node reports, and the safety audit across
//! nodes (same block and app hash at every common height).

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use tpslab_api::client::connect;
use tpslab_api::proto::{GetBlockRequest, StatusRequest};
use tpslab_api::testnet_file::load;
use tpslab_types::pb::{BlockRecord, VoteType};
use tpslab_types::vote::{verify_vote_signature, VoteData};
use tpslab_types::Hash;

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
    /// The misbehaviour testnet.json gives it, if any.
    pub byzantine: Option<tpslab_types::byzantine::Behaviour>,
    /// On a Raft chain: role, term, the leader's node name, commit index.
    pub raft: Option<RaftView>,
}

/// A Raft node's state, as `testnet status` shows it.
#[derive(Clone, Debug)]
pub struct RaftView {
    /// follower, candidate, pre-candidate or leader.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// Name of the leader it follows, if it knows one.
    pub leader: Option<String>,
    /// Highest committed log index.
    pub commit_index: u64,
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
            byzantine: n.byzantine,
            raft: s.as_ref().and_then(|s| s.raft.as_ref()).map(|r| RaftView {
                role: r.role.clone(),
                term: r.term,
                // Raft ids are genesis order + 1, and testnet.json lists nodes in that order.
                leader: (r.leader as usize)
                    .checked_sub(1)
                    .and_then(|i| t.nodes.get(i))
                    .map(|n| n.name.clone()),
                commit_index: r.commit_index,
            }),
        });
    }
    Ok(out)
}

/// Waits (up to `timeout`) until every honest node has reached the height the furthest one
/// has now (a restarted or cut-off node catches up by block sync); returns whether they did.
pub async fn settle(dir: &Path, timeout: std::time::Duration) -> Result<bool> {
    let deadline = std::time::Instant::now() + timeout;
    let nodes = load(dir)?.honest().count();
    let mut target = None;
    loop {
        let heights: Vec<u64> = status(dir)
            .await?
            .iter()
            .filter(|s| s.byzantine.is_none())
            .filter_map(|s| s.height)
            .collect();
        let top = *target.get_or_insert(heights.iter().copied().max().unwrap_or(0));
        if heights.len() == nodes && heights.iter().all(|&h| h >= top) {
            return Ok(true);
        }
        if std::time::Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Which nodes `testnet check` compares.
#[derive(Clone, Debug, Default)]
pub struct CheckScope {
    /// Leave out the nodes the manifest marks byzantine (`testnet init --byzantine`).
    pub honest_only: bool,
    /// Leave out these nodes by name.
    pub skip: Vec<String>,
}

/// `testnet check`: compares block hash and app hash at every height all reachable nodes in
/// `scope` have. Returns the common height on success; the first divergence is an error,
/// and when two nodes committed different blocks at one height it names the validators
/// whose verified precommits are in both commits (at least f+1 of them lied).
pub async fn check(dir: &Path, scope: &CheckScope) -> Result<u64> {
    let t = load(dir)?;
    let mut clients = Vec::new();
    let mut names = HashMap::new();
    for n in &t.nodes {
        let Ok(mut c) = connect(&n.grpc_addr).await else {
            continue;
        };
        let Ok(s) = c.status(StatusRequest {}).await else {
            continue;
        };
        let s = s.into_inner();
        names.insert(s.validator.clone(), n.name.clone());
        let left_out = (scope.honest_only && n.byzantine.is_some()) || scope.skip.contains(&n.name);
        if !left_out {
            clients.push((n.name.clone(), c, s.height));
        }
    }
    if clients.len() < 2 {
        bail!("fewer than two nodes reachable; nothing to compare");
    }
    let common = clients.iter().map(|c| c.2).min().unwrap_or(0);
    for h in 1..=common {
        let mut first: Option<(String, BlockRecord)> = None;
        for (name, c, _) in clients.iter_mut() {
            let b = c
                .get_block(GetBlockRequest { height: h })
                .await
                .with_context(|| format!("{name}: block {h}"))?
                .into_inner();
            let Some((n0, b0)) = &first else {
                first = Some((name.clone(), b));
                continue;
            };
            if b0.block_hash != b.block_hash || b0.result_app_hash != b.result_app_hash {
                let mut msg = format!(
                    "divergence at height {h}: {n0} has block {} app {}, {name} has block {} app {}",
                    hex::encode(&b0.block_hash),
                    hex::encode(&b0.result_app_hash),
                    hex::encode(&b.block_hash),
                    hex::encode(&b.result_app_hash)
                );
                if b0.block_hash != b.block_hash {
                    let both = signed_both(&t.chain_id, h, b0, &b);
                    let mut named: Vec<String> = both
                        .iter()
                        .map(|k| names.get(k).cloned().unwrap_or_else(|| hex::encode(k)))
                        .collect();
                    named.sort();
                    msg.push_str(&format!(
                        "; conflicting commits: validators whose verified precommits are in both: {}",
                        if named.is_empty() { "none".to_string() } else { named.join(", ") }
                    ));
                }
                bail!(msg);
            }
        }
    }
    Ok(common)
}

/// Public keys whose precommit signatures verify in the commits of both `a` and `b` (two
/// different blocks at `height`): each of them signed for two conflicting blocks.
fn signed_both(chain_id: &str, height: u64, a: &BlockRecord, b: &BlockRecord) -> Vec<Vec<u8>> {
    let signers = |r: &BlockRecord| -> Vec<Vec<u8>> {
        let Some(c) = &r.commit else {
            return Vec::new();
        };
        let Ok(hash) = Hash::from_slice("commit.block_hash", &c.block_hash) else {
            return Vec::new();
        };
        c.signatures
            .iter()
            .filter(|s| {
                let data = VoteData {
                    chain_id,
                    vote_type: VoteType::Precommit,
                    height,
                    round: c.round,
                    block_hash: Some(hash),
                    timestamp_unix_nanos: s.timestamp_unix_nanos,
                };
                verify_vote_signature(&data, &s.validator, &s.signature).is_ok()
            })
            .map(|s| s.validator.clone())
            .collect()
    };
    let in_b = signers(b);
    let mut both: Vec<Vec<u8>> = signers(a)
        .into_iter()
        .filter(|k| in_b.contains(k))
        .collect();
    both.sort();
    both.dedup();
    both
}
