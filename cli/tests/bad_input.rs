//! Every kind of bad input to a real node gets a precise gRPC status and message, nothing is
//! lost that was accepted, and the node keeps serving.

// Each test is one scenario against real node processes, read top to bottom; splitting it
// would scatter the story.
#![allow(clippy::too_many_lines)]

mod common;

use common::*;
use std::process::Command;
use tokio_stream::StreamExt;
use tonic::Code;
use tpslab_api::proto::{BroadcastTxRequest, GetAccountRequest, StatusRequest};
use tpslab_types::keys::account_key;
use tpslab_types::tx::{sign_transfer, Transfer};
use tpslab_types::Address;

/// Blocks are never cut during these tests (huge block, long interval), so the mempool holds
/// exactly what was accepted.
const NO_BLOCKS: &str = "[consensus]\nmax_block_txs = 100000\nblock_interval_ms = 3600000\n\
                         [mempool]\nmax_txs = 5\nmax_tx_bytes = 1024\n";

async fn submit(node: &TestNode, tx: Vec<u8>) -> Result<(), tonic::Status> {
    node.client()
        .await
        .broadcast_tx(BroadcastTxRequest { tx, id: 0 })
        .await
        .map(|_| ())
}

fn assert_status(r: Result<(), tonic::Status>, code: Code, needle: &str) {
    let s = r.expect_err("should be rejected");
    assert_eq!(s.code(), code, "message: {}", s.message());
    assert!(
        s.message().contains(needle),
        "{:?} lacks {needle:?}",
        s.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_input_gets_its_status() {
    let mut node = TestNode::init(10, NO_BLOCKS);
    node.start().await;

    assert_status(
        submit(&node, b"\xff\xfe garbage".to_vec()).await,
        Code::InvalidArgument,
        "malformed tx",
    );
    assert_status(
        submit(&node, transfer_on("other-chain", 0, 1, 5, 0)).await,
        Code::InvalidArgument,
        "wrong chain id: expected \"test-chain\", got \"other-chain\"",
    );
    let mut forged = sign_transfer(
        &account_key(SEED, 0),
        Transfer {
            chain_id: CHAIN.into(),
            to: Address([1; 20]),
            amount: 5,
            nonce: 0,
            fee: 1,
            payload: vec![],
        },
    );
    forged.amount = 500; // signed for 5
    assert_status(
        submit(&node, prost::Message::encode_to_vec(&forged)).await,
        Code::InvalidArgument,
        "invalid signature",
    );
    let mut big = transfer(0, 1, 5, 0);
    big.extend(std::iter::repeat_n(0u8, 2000)); // trailing bytes: also oversize
    assert_status(
        submit(&node, big).await,
        Code::InvalidArgument,
        "tx too large",
    );

    submit(&node, transfer(0, 1, 5, 0)).await.unwrap();
    assert_status(
        submit(&node, transfer(0, 1, 5, 0)).await,
        Code::AlreadyExists,
        "already in mempool",
    );
    assert_status(
        submit(&node, transfer(0, 1, 6, 0)).await,
        Code::FailedPrecondition,
        "nonce too low: account expects 1, tx has 0",
    );
    assert_status(
        submit(&node, transfer(0, 1, 6, 3)).await,
        Code::FailedPrecondition,
        "nonce too high: account expects 1, tx has 3",
    );
    assert_status(
        submit(&node, transfer(2, 1, BALANCE, 0)).await,
        Code::FailedPrecondition,
        "insufficient funds",
    );
    // Fill the mempool (5 txs), then one more.
    for s in 3..7 {
        submit(&node, transfer(s, 1, 1, 0)).await.unwrap();
    }
    assert_status(
        submit(&node, transfer(7, 1, 1, 0)).await,
        Code::ResourceExhausted,
        "mempool is full",
    );

    // Wrong-length address on a query.
    let e = node
        .client()
        .await
        .get_account(GetAccountRequest {
            address: vec![1, 2, 3],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Still serving, and holding exactly the accepted txs.
    let st = node
        .client()
        .await
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.mempool_txs, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reports_rejections_per_tx_without_closing() {
    let mut node = TestNode::init(10, NO_BLOCKS);
    node.start().await;
    let reqs = vec![
        BroadcastTxRequest {
            tx: b"junk".to_vec(),
            id: 1,
        },
        BroadcastTxRequest {
            tx: transfer(0, 1, 5, 0),
            id: 2,
        },
        BroadcastTxRequest {
            tx: transfer(0, 1, 5, 0),
            id: 3,
        },
        BroadcastTxRequest {
            tx: transfer(1, 2, 5, 0),
            id: 4,
        },
    ];
    let mut out = node
        .client()
        .await
        .broadcast_tx_stream(tokio_stream::iter(reqs))
        .await
        .unwrap()
        .into_inner();
    let mut codes = Vec::new();
    while let Some(r) = out.next().await {
        let r = r.unwrap();
        codes.push((r.id, Code::from(r.code as i32)));
    }
    assert_eq!(
        codes,
        vec![
            (1, Code::InvalidArgument),
            (2, Code::Ok),
            (3, Code::AlreadyExists),
            (4, Code::Ok)
        ]
    );
}

#[test]
fn invalid_config_is_refused_with_the_field_named() {
    for (patch, needle) in [
        ("[mempool]\nmax_txs = \"many\"\n", "max_txs"),
        (
            "[consensus]\nmax_block_txs = 0\n",
            "consensus.max_block_txs",
        ),
        ("[consensus]\nblock_interval = 5\n", "block_interval"),
        ("[api]\ngrpc_addr = \"localhost\"\n", "api.grpc_addr"),
        (
            "[byzantine]\nbehaviour = \"lie\"\n",
            "unknown variant `lie`",
        ),
        (
            "[byzantine]\nbehaviour = \"silent\"\nforgeries = []\n",
            "byzantine.forgeries",
        ),
        // Valid, but a test-only mode: refused without the flag.
        (
            "[byzantine]\nbehaviour = \"equivocate\"\n",
            "refusing to start without --allow-byzantine",
        ),
    ] {
        let node = TestNode::init(1, "");
        // Each case is the whole file, so it tests exactly one problem.
        std::fs::write(node.home().join("config.toml"), patch).unwrap();
        let out = Command::new(bin())
            .args(["node", "--home"])
            .arg(node.home())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{patch:?}: {err}");
        assert!(err.contains("config.toml"), "{err}");
    }
    // With the flag, a single validator still refuses: it has no one to lie to.
    let node = TestNode::init(1, "[byzantine]\nbehaviour = \"silent\"\n");
    let out = Command::new(bin())
        .args(["node", "--allow-byzantine", "--home"])
        .arg(node.home())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a multi-validator chain"), "{err}");
}
