//! The real `tpslab node` process: signed transfers over gRPC, commits seen through
//! SubscribeCommits, balances via GetAccount, then SIGKILL/restart and SIGTERM/restart.

mod common;

use common::*;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio_stream::StreamExt;
use tpslab_api::proto::{
    BroadcastTxRequest, GetBlockRequest, StatusRequest, SubscribeCommitsRequest,
};
use tpslab_types::tx::tx_hash;

const FAST_BLOCKS: &str = "[consensus]\nmax_block_txs = 16\nblock_interval_ms = 50\n";

/// Submits `per_sender` transfers from each of `senders` (unary and streaming), waits for all
/// to be committed, and returns the expected balance change per account.
async fn submit_and_wait(
    node: &TestNode,
    senders: std::ops::Range<u64>,
    first_nonce: u64,
    per_sender: u64,
) -> HashMap<u64, i128> {
    let mut client = node.client().await;
    let mut commits = client
        .subscribe_commits(SubscribeCommitsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut want = HashSet::new();
    let mut delta: HashMap<u64, i128> = HashMap::new();
    let mut streamed = Vec::new();
    for s in senders.clone() {
        for k in 0..per_sender {
            let to = (s + 1 + k) % 100;
            let amount = 10 + k;
            let raw = transfer(s, to, amount, first_nonce + k);
            want.insert(tx_hash(&raw).to_vec());
            *delta.entry(s).or_default() -= (amount + 1) as i128;
            *delta.entry(to).or_default() += amount as i128;
            if s % 2 == 0 {
                let r = client
                    .broadcast_tx(BroadcastTxRequest { tx: raw, id: 0 })
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(r.code, 0, "{}", r.log);
            } else {
                streamed.push(BroadcastTxRequest {
                    tx: raw,
                    id: s * 1000 + k,
                });
            }
        }
    }
    let n_streamed = streamed.len();
    let mut responses = client
        .broadcast_tx_stream(tokio_stream::iter(streamed))
        .await
        .unwrap()
        .into_inner();
    let mut got = 0;
    while let Some(r) = responses.next().await {
        let r = r.unwrap();
        assert_eq!(r.code, 0, "tx {} rejected: {}", r.id, r.log);
        got += 1;
    }
    assert_eq!(got, n_streamed);

    let wait = async {
        while !want.is_empty() {
            let ev = commits.next().await.expect("stream open").unwrap();
            for h in &ev.tx_hashes {
                want.remove(h);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("all txs committed in time");
    delta
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_commit_and_survive_sigkill_restart() {
    let mut node = TestNode::init(100, FAST_BLOCKS);
    node.start().await;
    let delta = submit_and_wait(&node, 0..10, 0, 5).await;
    for (acct, d) in &delta {
        let (bal, _) = node.balance_nonce(*acct).await;
        assert_eq!(bal as i128, BALANCE as i128 + d, "account {acct}");
    }
    assert_eq!(node.balance_nonce(3).await.1, 5);

    let before = node
        .client()
        .await
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(before.height >= 1);
    let mut balances = Vec::new();
    for i in 0..12 {
        balances.push(node.balance_nonce(i).await);
    }
    // Every committed block is served, with its commit and a result app hash.
    let mut c = node.client().await;
    let mut total_txs = 0;
    for h in 1..=before.height {
        let b = c
            .get_block(GetBlockRequest { height: h })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(b.block.as_ref().unwrap().header.as_ref().unwrap().height, h);
        assert_eq!(b.commit.as_ref().unwrap().signatures.len(), 1);
        assert!(b.tx_codes.iter().all(|c| *c == 0));
        total_txs += b.tx_codes.len();
    }
    assert_eq!(total_txs, 50);

    node.kill();
    node.start().await;
    let after = node
        .client()
        .await
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.height, before.height);
    assert_eq!(after.app_hash, before.app_hash);
    assert_eq!(after.last_block_hash, before.last_block_hash);
    for (i, want) in balances.iter().enumerate() {
        assert_eq!(
            node.balance_nonce(i as u64).await,
            *want,
            "account {i} after restart"
        );
    }

    // The chain goes on from there: nonces continue, the block chain links up.
    submit_and_wait(&node, 0..4, 5, 2).await;
    let next = c_status(&node).await;
    assert!(next.height > after.height);
    let b = node
        .client()
        .await
        .get_block(GetBlockRequest {
            height: after.height + 1,
        })
        .await
        .unwrap()
        .into_inner();
    let hdr = b.block.unwrap().header.unwrap();
    assert_eq!(hdr.prev_block_hash, after.last_block_hash);
    assert_eq!(hdr.app_hash, after.app_hash);
}

async fn c_status(node: &TestNode) -> tpslab_api::proto::StatusResponse {
    node.client()
        .await
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_keeps_state() {
    let mut node = TestNode::init(20, FAST_BLOCKS);
    node.start().await;
    submit_and_wait(&node, 0..5, 0, 3).await;
    let before = c_status(&node).await;
    let st = node.terminate();
    assert!(st.success(), "exit status {st}: {}", node.log());
    assert!(node.log().contains("shutting down"));
    node.start().await;
    let after = c_status(&node).await;
    assert_eq!(
        (after.height, after.app_hash),
        (before.height, before.app_hash)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_block_of_unknown_height_is_not_found() {
    let mut node = TestNode::init(5, FAST_BLOCKS);
    node.start().await;
    let err = node
        .client()
        .await
        .get_block(GetBlockRequest { height: 99 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}
