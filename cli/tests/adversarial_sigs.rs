//! The attack that used to fork a tuned testnet: crafted ed25519 signatures (mixed-order and
//! small-order R, non-canonical R, S >= L, small-order and mixed-order keys) sent alone and
//! inside stream bursts of honest transfers to different validators. Every validator gives
//! each one the same verdict (the project's one rule: README "Signature rule"), the accepted
//! ones commit with the same code everywhere, heights advance on every node, and the safety
//! audit passes.

// Each test is one scenario against real node processes, read top to bottom; splitting it
// would scatter the story.
#![allow(clippy::too_many_lines)]

mod common;

use common::*;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tpslab_api::proto::node_client::NodeClient;
use tpslab_api::proto::{
    BroadcastTxRequest, GetBlockRequest, StatusRequest, SubscribeCommitsRequest,
};
use tpslab_types::craft::{self, Shape};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::tx::{tx_hash, Transfer};

type Client = NodeClient<tonic::transport::Channel>;

async fn client(addr: &str) -> Client {
    NodeClient::connect(format!("http://{addr}")).await.unwrap()
}

fn crafted(from: u64, shape: Shape, salt: u64) -> Vec<u8> {
    craft::sign_transfer(
        &account_key(SEED, from),
        Transfer {
            chain_id: CHAIN.into(),
            to: address_of(&account_key(SEED, 0)),
            amount: 3,
            nonce: 0,
            fee: 1,
            payload: salt.to_be_bytes().to_vec(),
        },
        shape,
        salt,
    )
    .encode_to_vec()
}

/// The CheckTx code the rule gives a fresh crafted tx from a funded account: accepted (0),
/// refused as invalid (3), or valid but from an unfunded address (9: a mixed-order key is a
/// different address from the account's own key).
fn expected_code(shape: Shape) -> u32 {
    match shape {
        _ if !shape.valid_under_rule() => 3,
        Shape::MixedOrderKey => 9,
        _ => 0,
    }
}

/// BroadcastTx's verdict as a code: 0, or the gRPC status it failed with.
async fn unary(c: &mut Client, tx: &[u8]) -> (u32, String) {
    match c
        .broadcast_tx(BroadcastTxRequest {
            tx: tx.to_vec(),
            id: 0,
        })
        .await
    {
        Ok(r) => (r.into_inner().code, String::new()),
        Err(s) => (s.code() as u32, s.message().to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_signatures_get_one_verdict_on_every_validator() {
    let dir = tempfile::tempdir().unwrap();
    // Tuned (sig-batch, sig-cache, crypto-pool, gossip-batch on): the configuration that forked.
    let net = TestNet::up(dir.path().join("net"), 4, 3000, "");
    let addrs: Vec<String> = net.file.nodes.iter().map(|n| n.grpc_addr.clone()).collect();
    let mut clients = Vec::new();
    for a in &addrs {
        clients.push(client(a).await);
    }
    let mut sub = clients[0]
        .subscribe_commits(SubscribeCommitsRequest {})
        .await
        .unwrap()
        .into_inner();

    let mut next_account = 1u64;
    let mut account = || {
        next_account += 1;
        next_account
    };
    // Accepted txs that must commit, and the shape of each crafted one.
    let mut want: HashSet<Vec<u8>> = HashSet::new();
    let mut crafted_shape: HashMap<Vec<u8>, Shape> = HashMap::new();

    // Alone: every shape, refused ones at every validator, accepted ones at one each.
    for (k, shape) in Shape::ALL.into_iter().enumerate() {
        let raw = crafted(account(), shape, k as u64);
        let targets: Vec<usize> = if shape.valid_under_rule() {
            vec![k % 4]
        } else {
            (0..4).collect()
        };
        for t in targets {
            let (code, log) = unary(&mut clients[t], &raw).await;
            assert_eq!(
                code,
                expected_code(shape),
                "{shape:?} alone at node{t}: {log}"
            );
        }
        if expected_code(shape) == 0 {
            want.insert(tx_hash(&raw).to_vec());
            crafted_shape.insert(tx_hash(&raw).to_vec(), shape);
        }
    }

    // Inside bursts of 31 honest transfers, at every position, to every validator; most of
    // them mixed-order R (the shape dalek's batch let through about one batch in eight).
    for round in 0..40u64 {
        let shape = match round % 5 {
            0 => Shape::HighS,
            1 => Shape::SmallOrderKey,
            2 => Shape::SmallOrderR,
            _ => Shape::MixedOrderR,
        };
        let target = (round % 4) as usize;
        let mut txs: Vec<Vec<u8>> = (0..31).map(|_| transfer(account(), 0, 5, 0)).collect();
        let pos = (round as usize * 7) % 32;
        let bad = crafted(account(), shape, 100 + round);
        txs.insert(pos, bad.clone());
        let codes = stream_txs(&mut clients[target], &txs).await;
        for (i, (code, _)) in codes.iter().enumerate() {
            let want_code = if i == pos { expected_code(shape) } else { 0 };
            assert_eq!(
                *code, want_code,
                "round {round}: {shape:?} at {pos}, tx {i}"
            );
            if *code == 0 {
                want.insert(tx_hash(&txs[i]).to_vec());
            }
        }
        if expected_code(shape) == 0 {
            crafted_shape.insert(tx_hash(&bad).to_vec(), shape);
        } else {
            // The same refused bytes get the same verdict at the other validators too.
            for (t, c) in clients.iter_mut().enumerate().filter(|(t, _)| *t != target) {
                let (code, log) = unary(c, &bad).await;
                assert_eq!(code, 3, "round {round}: {shape:?} at node{t}: {log}");
            }
        }
    }

    // Everything accepted commits, crafted ones included.
    let mut blocks_with_crafted = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want.is_empty() {
        let ev = tokio::time::timeout_at(deadline.into(), sub.next())
            .await
            .unwrap_or_else(|_| panic!("{} accepted txs not committed in 60 s", want.len()))
            .unwrap()
            .unwrap();
        for h in &ev.tx_hashes {
            want.remove(h);
            if crafted_shape.contains_key(h) {
                blocks_with_crafted.insert(ev.height);
            }
        }
    }
    assert!(!blocks_with_crafted.is_empty());

    // Each block holding a crafted tx is the same block with the same codes on every node,
    // and the crafted txs in it applied (code 0).
    for h in &blocks_with_crafted {
        let mut seen: Option<(Vec<u8>, Vec<u32>)> = None;
        for c in clients.iter_mut() {
            let deadline = Instant::now() + Duration::from_secs(30);
            let rec = loop {
                match c.get_block(GetBlockRequest { height: *h }).await {
                    Ok(r) => break r.into_inner(),
                    Err(_) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    Err(e) => panic!("block {h}: {e}"),
                }
            };
            let block = rec.block.clone().unwrap();
            for (tx, code) in block.txs.iter().zip(&rec.tx_codes) {
                if let Some(shape) = crafted_shape.get(&tx_hash(tx).to_vec()) {
                    assert_eq!(*code, 0, "{shape:?} in block {h}");
                }
            }
            match &seen {
                None => seen = Some((rec.block_hash, rec.tx_codes)),
                Some((bh, codes)) => {
                    assert_eq!(*bh, rec.block_hash, "block {h} differs between nodes");
                    assert_eq!(*codes, rec.tx_codes, "tx codes of block {h} differ");
                }
            }
        }
    }

    // The chain goes on at every node, and the audit agrees.
    let mut start = Vec::new();
    for c in clients.iter_mut() {
        start.push(
            c.status(StatusRequest {})
                .await
                .unwrap()
                .into_inner()
                .height,
        );
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // A transfer keeps blocks coming (empty blocks are not cut between txs).
            let _ = unary(c, &transfer(account(), 0, 1, 0)).await;
            let h = c
                .status(StatusRequest {})
                .await
                .unwrap()
                .into_inner()
                .height;
            if h >= start[i] + 3 {
                break;
            }
            assert!(Instant::now() < deadline, "node{i} stuck at height {h}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    net.check(&[]);
}
