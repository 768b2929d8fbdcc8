//! `tpslab load` against real nodes: the committed count it reports equals what the chain
//! contains (cross-checked block by block with GetBlock), and a full mempool shows up as
//! rejections by reason.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use tpslab_node::proto::{GetBlockRequest, StatusRequest};

fn load(args: &[&str], json: &Path) -> serde_json::Value {
    let out = Command::new(bin())
        .arg("load")
        .args(args)
        .arg("--json")
        .arg(json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("committed TPS"), "{table}");
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// Sum of txs in every block of the chain at `addr`.
async fn txs_on_chain(addr: &str) -> u64 {
    let mut c = tpslab_node::client::connect(addr).await.unwrap();
    let h = c
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .height;
    let mut n = 0;
    for height in 1..=h {
        let b = c
            .get_block(GetBlockRequest { height })
            .await
            .unwrap()
            .into_inner();
        n += b.block.unwrap().txs.len() as u64;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_counts_match_the_chain() {
    let mut node = TestNode::init(500, "[consensus]\nblock_interval_ms = 100\n");
    node.start().await;
    let json = node.home().join("report.json");
    let genesis = node.home().join("genesis.json");
    let r = load(
        &[
            "--target",
            &node.addr,
            "--genesis",
            genesis.to_str().unwrap(),
            "--rate",
            "100",
            "--duration",
            "2s",
            "--warmup",
            "1s",
            "--drain",
            "60s",
        ],
        &json,
    );
    assert_eq!(r["sent"], 200);
    assert_eq!(r["accepted"], 200);
    assert_eq!(r["committed"], 200, "{r}");
    let on_chain = txs_on_chain(&node.addr).await;
    assert_eq!(r["committed_including_warmup"].as_u64().unwrap(), on_chain);
    assert_eq!(on_chain, 300);
    assert!(r["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mempool_is_reported_by_reason() {
    let mut node = TestNode::init(
        500,
        "[consensus]\nmax_block_txs = 100000\nblock_interval_ms = 3600000\n[mempool]\nmax_txs = 20\n",
    );
    node.start().await;
    let json = node.home().join("report.json");
    let genesis = node.home().join("genesis.json");
    let r = load(
        &[
            "--target",
            &node.addr,
            "--genesis",
            genesis.to_str().unwrap(),
            "--rate",
            "100",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--drain",
            "1s",
        ],
        &json,
    );
    assert_eq!(r["sent"], 100);
    assert_eq!(r["accepted"], 20);
    assert_eq!(r["rejected"]["mempool is full"], 80, "{r}");
    assert_eq!(r["committed"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testnet_counts_match_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let net = TestNet::up(dir.clone(), 4, 300, "");
    let json = tmp.path().join("report.json");
    let r = load(
        &[
            "--testnet",
            dir.to_str().unwrap(),
            "--rate",
            "50",
            "--duration",
            "2s",
            "--warmup",
            "1s",
            "--drain",
            "60s",
        ],
        &json,
    );
    assert_eq!(r["committed"], 100, "{r}");
    let want = r["committed_including_warmup"].as_u64().unwrap();
    assert_eq!(want, 150);
    // Every validator's chain holds exactly the generated txs (commits reach all of them).
    for n in &net.file.nodes {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let got = txs_on_chain(&n.grpc_addr).await;
            if got == want {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {got} txs, want {want}",
                n.name
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    let check = net.run(&["testnet", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
