//! The block pipeline end to end on real RocksDB: two fresh nodes fed the same txs produce
//! the same blocks' contents and app hashes; blocks chain up and carry the previous commit.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use tpslab_consensus::{BlockLimits, BlockPipeline};
use tpslab_mempool::{Mempool, MempoolConfig};
use tpslab_statedb::{StateDb, StateDbOptions};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::tx::{encode_transfer, Transfer};
use tpslab_types::vote::{commit_sig_data, verify_vote_signature};
use tpslab_types::{Account, App, Hash};

const CHAIN: &str = "c";

fn node(dir: &std::path::Path, max_txs: usize) -> BlockPipeline {
    let db = StateDb::open(dir, &StateDbOptions { sync_writes: false }).unwrap();
    let genesis: BTreeMap<_, _> = (0..8)
        .map(|i| {
            (
                address_of(&account_key("s", i)),
                Account {
                    balance: 500,
                    nonce: 0,
                },
            )
        })
        .collect();
    db.init_genesis(App::Transfer, CHAIN, 0, &genesis).unwrap();
    let mempool = Arc::new(Mempool::new(
        MempoolConfig {
            chain_id: CHAIN.into(),
            ..Default::default()
        },
        db.clone(),
    ));
    BlockPipeline {
        app: App::Transfer,
        chain_id: CHAIN.into(),
        key: account_key("validator", 0),
        db,
        mempool,
        limits: BlockLimits {
            max_txs,
            max_bytes: 1 << 20,
        },
        last_commit: None,
        metrics: Default::default(),
    }
}

/// Feeds `txs` to a fresh node and produces blocks until its mempool is empty; returns the
/// app hash and the tx list of every block.
fn run(txs: &[Vec<u8>], max_txs: usize) -> Vec<(Hash, Vec<Vec<u8>>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut p = node(dir.path(), max_txs);
    for t in txs {
        let _ = p.mempool.check_tx(t); // some are invalid on purpose
    }
    let mut out = Vec::new();
    while p.mempool.size() > 0 {
        let ev = p.produce().unwrap();
        let rec = p.db.block(ev.height).unwrap().unwrap();
        out.push((ev.app_hash, rec.block.unwrap().txs));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn same_txs_give_same_blocks_and_app_hashes_on_two_fresh_nodes(
        ops in prop::collection::vec((0u64..8, 0u64..8, 0u64..300, any::<bool>()), 1..60),
        max_txs in 1usize..12,
    ) {
        let mut nonces = [0u64; 8];
        let txs: Vec<Vec<u8>> = ops.iter().map(|&(f, t, amount, skip)| {
            let n = nonces[f as usize] + u64::from(skip); // a skipped nonce is rejected
            if !skip { nonces[f as usize] += 1; }
            encode_transfer(&account_key("s", f), Transfer {
                chain_id: CHAIN.into(),
                to: address_of(&account_key("s", t)),
                amount, nonce: n, fee: 1, payload: vec![],
            })
        }).collect();
        let a = run(&txs, max_txs);
        let b = run(&txs, max_txs);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn blocks_chain_and_carry_a_verifiable_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = node(dir.path(), 2);
    for n in 0..4 {
        p.mempool
            .check_tx(&encode_transfer(
                &account_key("s", 0),
                Transfer {
                    chain_id: CHAIN.into(),
                    to: address_of(&account_key("s", 1)),
                    amount: 1,
                    nonce: n,
                    fee: 0,
                    payload: vec![],
                },
            ))
            .unwrap();
    }
    let first = p.produce().unwrap();
    let second = p.produce().unwrap();
    assert_eq!((first.height, second.height), (1, 2));
    let b2 = p.db.block(2).unwrap().unwrap();
    let block = b2.block.unwrap();
    let header = block.header.unwrap();
    assert_eq!(header.prev_block_hash, first.block_hash.to_vec());
    assert_eq!(header.app_hash, first.app_hash.to_vec());
    let lc = block.last_commit.unwrap();
    assert_eq!(lc.block_hash, first.block_hash.to_vec());
    let sig = &lc.signatures[0];
    verify_vote_signature(
        &commit_sig_data(CHAIN, &lc, sig).unwrap(),
        &sig.validator,
        &sig.signature,
    )
    .unwrap();
    assert_eq!(p.mempool.size(), 0);
}
