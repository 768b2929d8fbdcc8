//! No frame size can halt the chain: the largest block the config allows commits on a 4-node
//! kvstore testnet whose frame limit is exactly what the start check demands, and a validator
//! that was down catches up on those blocks by block sync; a frame limit too small for the
//! block limits is refused at start, naming the fields.

// Each test is one scenario against real node processes, read top to bottom; splitting it
// would scatter the story.
#![allow(clippy::too_many_lines)]

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use tpslab_api::proto::GetBlockRequest;
use tpslab_node::frame_check::FrameCheck;

// Over 4 MiB: more than tonic's default message limit, so GetBlock and the audit are
// checked on a block that needs the client's raised limit.
const BLOCK_TXS: usize = 4500;
const TX_BYTES: usize = 1048;
const BLOCK_BYTES: usize = BLOCK_TXS * TX_BYTES;
/// Five full blocks' worth, sent faster than blocks are cut, so some are full.
const TXS: usize = 5 * BLOCK_TXS;

fn kv_tx(i: usize) -> Vec<u8> {
    let mut tx = format!("key{i:08}=").into_bytes();
    tx.resize(TX_BYTES, b'v');
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_allowed_block_commits_and_syncs() {
    let mut cfg = tpslab_api::config::Config::default();
    cfg.consensus.max_block_txs = BLOCK_TXS;
    cfg.consensus.max_block_bytes = BLOCK_BYTES;
    let (proposal, sync) = cfg.largest_frames(CHAIN, 4);
    let need = proposal.max(sync);
    let dir = tempfile::tempdir().unwrap();
    let patch = format!(
        "app = \"kvstore\"\n[consensus]\nmax_block_txs = {BLOCK_TXS}\nmax_block_bytes = {BLOCK_BYTES}\n\
         [p2p]\nmax_frame_bytes = {need}\n[mempool]\nmax_tx_bytes = {TX_BYTES}\n"
    );
    let net = TestNet::up(dir.path().join("net"), 4, 10, &patch);
    let nodes = &net.file.nodes;
    // node3 misses the big blocks and must sync them.
    let n3 = &nodes[3].home;
    let pid = std::fs::read_to_string(n3.join("node.pid")).unwrap();
    Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&format!("/proc/{}", pid.trim())).exists() {
        assert!(Instant::now() < deadline, "node3 did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = height_of(&nodes[0].grpc_addr).await;

    // Txs streamed to node0.
    let mut c = tpslab_api::client::connect(&nodes[0].grpc_addr)
        .await
        .unwrap();
    let txs: Vec<Vec<u8>> = (0..TXS).map(kv_tx).collect();
    let mut accepted = 0;
    for (code, log) in stream_txs(&mut c, &txs).await {
        assert_eq!(code, 0, "{log}");
        accepted += 1;
    }
    assert_eq!(accepted, TXS);

    // Wait until all are committed, and find a full block among them.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut committed = 0;
    let mut full = None;
    let mut h = start + 1;
    while committed < TXS {
        assert!(
            Instant::now() < deadline,
            "{committed} of {} txs committed",
            TXS
        );
        match c.get_block(GetBlockRequest { height: h }).await {
            Ok(rec) => {
                let rec = rec.into_inner();
                let txs = rec.block.map_or(0, |b| b.txs.len());
                committed += txs;
                if txs == BLOCK_TXS {
                    full = Some(h);
                }
                h += 1;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let full = full.expect("a block at max_block_txs / max_block_bytes");
    let top = h - 1;

    // node3 comes back and syncs the full blocks through frames of exactly `need` bytes.
    let out = net.run(&["testnet", "up"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while height_of(&nodes[3].grpc_addr).await < top {
        assert!(
            Instant::now() < deadline,
            "node3 stuck at {} below {top}: {}",
            height_of(&nodes[3].grpc_addr).await,
            std::fs::read_to_string(n3.join("node.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut c3 = tpslab_api::client::connect(&nodes[3].grpc_addr)
        .await
        .unwrap();
    let rec = c3
        .get_block(GetBlockRequest { height: full })
        .await
        .unwrap()
        .into_inner();
    let bytes: usize = rec.block.unwrap().txs.iter().map(|t| t.len()).sum();
    assert_eq!(bytes, BLOCK_BYTES, "the synced block is a full one");
    net.check(&[]);
}

#[test]
fn a_frame_too_small_for_the_blocks_is_refused_at_start() {
    let _turn = testnet_turn();
    let dir = tempfile::tempdir().unwrap();
    testnet_init(dir.path(), 2);
    for i in 0..2 {
        let cfg = dir.path().join(format!("node{i}/config.toml"));
        let text = std::fs::read_to_string(&cfg).unwrap();
        let patch = "[consensus]\nmax_block_bytes = 8388608\n[p2p]\nmax_frame_bytes = 4194304\n";
        std::fs::write(&cfg, patch_toml(&text, patch)).unwrap();
    }
    let out = testnet_up_then_down(dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for f in [
        "p2p.max_frame_bytes",
        "consensus.max_block_bytes",
        "consensus.max_block_txs",
        "exited at start",
    ] {
        assert!(err.contains(f), "{f}: {err}");
    }
}
