//! State DB behaviour on a real RocksDB in a temp dir: genesis, execution, atomic commits,
//! restart recovery, and app hash determinism (property test).

// Each test is one scenario read top to bottom; splitting it would scatter the story.
#![allow(clippy::too_many_lines)]

use proptest::prelude::*;
use std::collections::BTreeMap;
use tpslab_statedb::{execute_block, ExecOptions, StateDb, StateDbOptions, TxCode, WriteSet};
use tpslab_types::craft::{self, Shape};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::tx::{encode_transfer, Transfer};
use tpslab_types::{pb, Account, Address, AppKind, Hash};

const CHAIN: &str = "test-chain";
const SEED: &str = "seed";

fn genesis(n: u64, balance: u64) -> BTreeMap<Address, Account> {
    (0..n)
        .map(|i| {
            (
                address_of(&account_key(SEED, i)),
                Account { balance, nonce: 0 },
            )
        })
        .collect()
}

fn open(dir: &std::path::Path) -> StateDb {
    StateDb::open(
        dir,
        &StateDbOptions {
            sync_writes: false,
            ..Default::default()
        },
    )
    .unwrap()
}

fn transfer(from: u64, to: u64, amount: u64, nonce: u64) -> Vec<u8> {
    encode_transfer(
        &account_key(SEED, from),
        Transfer {
            chain_id: CHAIN.into(),
            to: address_of(&account_key(SEED, to)),
            amount,
            nonce,
            fee: 1,
            payload: vec![],
        },
    )
}

/// Executes and commits one block of txs, returning the new app hash.
fn run_block(db: &StateDb, txs: Vec<Vec<u8>>) -> (Hash, Vec<u32>) {
    run_app_block(db, AppKind::Transfer, txs)
}

fn run_app_block(db: &StateDb, app: AppKind, txs: Vec<Vec<u8>>) -> (Hash, Vec<u32>) {
    let last = db.last_committed().unwrap();
    let height = last.height + 1;
    let out = execute_block(
        db,
        &ExecOptions::new(app),
        CHAIN,
        height,
        &last.app_hash,
        &txs,
    )
    .unwrap();
    let header = pb::Header {
        chain_id: CHAIN.into(),
        height,
        time_unix_nanos: height,
        ..Default::default()
    };
    let block_hash = tpslab_types::block::block_hash(&header);
    let record = pb::BlockRecord {
        block: Some(pb::Block {
            header: Some(header),
            txs,
            last_commit: None,
        }),
        block_hash: block_hash.to_vec(),
        commit: None,
        result_app_hash: out.app_hash.to_vec(),
        tx_codes: out.tx_codes.clone(),
    };
    db.commit_block(&record, height, &out.write_set).unwrap();
    (out.app_hash, out.tx_codes)
}

#[test]
fn transfers_apply_and_failures_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.init_genesis(AppKind::Transfer, CHAIN, 0, &genesis(3, 100))
        .unwrap();
    let mut tampered = transfer(0, 1, 5, 1);
    let n = tampered.len();
    tampered[n - 1] ^= 1; // flips a signature bit
    let (_, codes) = run_block(
        &db,
        vec![
            transfer(0, 1, 10, 0),
            transfer(0, 1, 10, 0),  // nonce reused
            tampered,               // bad signature
            transfer(2, 1, 500, 0), // cannot pay
            vec![0xff, 0x01],       // garbage
        ],
    );
    assert_eq!(
        codes,
        vec![
            TxCode::Ok as u32,
            TxCode::BadNonce as u32,
            TxCode::BadSignature as u32,
            TxCode::InsufficientFunds as u32,
            TxCode::Malformed as u32
        ]
    );
    let a0 = db.get_account(&address_of(&account_key(SEED, 0))).unwrap();
    let a1 = db.get_account(&address_of(&account_key(SEED, 1))).unwrap();
    assert_eq!(
        a0,
        Account {
            balance: 89,
            nonce: 1
        }
    );
    assert_eq!(
        a1,
        Account {
            balance: 110,
            nonce: 0
        }
    );
}

#[test]
fn restart_recovers_height_app_hash_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let (hash, a1) = {
        let db = open(dir.path());
        db.init_genesis(AppKind::Transfer, CHAIN, 0, &genesis(2, 100))
            .unwrap();
        run_block(&db, vec![transfer(0, 1, 10, 0)]);
        let (h, _) = run_block(&db, vec![transfer(0, 1, 10, 1), transfer(1, 0, 3, 0)]);
        (
            h,
            db.get_account(&address_of(&account_key(SEED, 1))).unwrap(),
        )
    };
    let db = open(dir.path());
    // Genesis is not re-applied over existing state.
    let last = db
        .init_genesis(AppKind::Transfer, CHAIN, 0, &genesis(2, 100))
        .unwrap();
    assert_eq!(last.height, 2);
    assert_eq!(last.app_hash, hash);
    assert_eq!(
        db.get_account(&address_of(&account_key(SEED, 1))).unwrap(),
        a1
    );
    assert_eq!(db.block(2).unwrap().unwrap().tx_codes, vec![0, 0]);
    assert!(db
        .init_genesis(AppKind::Transfer, "other-chain", 0, &genesis(2, 100))
        .is_err());
}

#[test]
fn out_of_order_commit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.init_genesis(AppKind::Transfer, CHAIN, 0, &genesis(1, 1))
        .unwrap();
    let record = pb::BlockRecord {
        block: Some(pb::Block {
            header: Some(pb::Header {
                height: 5,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(db.commit_block(&record, 0, &WriteSet::default()).is_err());
    assert_eq!(db.last_committed().unwrap().height, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// The same tx sequence, cut into the same blocks, gives the same app hash on two fresh
    /// databases; a different sequence (almost surely) does not.
    #[test]
    fn same_txs_same_app_hash(
        ops in prop::collection::vec((0u64..6, 0u64..6, 0u64..150), 1..40),
        cut in 1usize..8,
    ) {
        let mut nonces = [0u64; 6];
        let txs: Vec<Vec<u8>> = ops.iter().map(|&(f, t, amt)| {
            // Some nonces are deliberately wrong so failing txs are part of the sequence too.
            let n = if amt % 7 == 0 { nonces[f as usize] + 1 } else { nonces[f as usize] };
            if amt % 7 != 0 { nonces[f as usize] += 1; }
            transfer(f, t, amt, n)
        }).collect();
        let hashes: Vec<Hash> = (0..2).map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let db = open(dir.path());
            db.init_genesis(AppKind::Transfer, CHAIN, 0, &genesis(6, 1_000)).unwrap();
            let mut h = Hash::ZERO;
            for chunk in txs.chunks(cut) {
                h = run_block(&db, chunk.to_vec()).0;
            }
            h
        }).collect();
        prop_assert_eq!(hashes[0], hashes[1]);
    }
}

#[test]
fn kvstore_writes_persist_and_the_app_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let (h1, codes) = {
        let db = open(dir.path());
        db.init_genesis(AppKind::KvStore, CHAIN, 0, &BTreeMap::new())
            .unwrap();
        let (h, codes) = run_app_block(
            &db,
            AppKind::KvStore,
            vec![
                b"a=1".to_vec(),
                b"b=2".to_vec(),
                b"a=3".to_vec(),
                b"=x".to_vec(),
            ],
        );
        assert_eq!(db.get_kv(b"a").unwrap().as_deref(), Some(&b"3"[..]));
        assert_eq!(db.get_kv(b"b").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(db.get_kv(b"c").unwrap(), None);
        (h, codes)
    };
    assert_eq!(codes, vec![0, 0, 0, TxCode::Malformed as u32]);
    // Same txs on a fresh store: same app hash.
    let other = tempfile::tempdir().unwrap();
    let db = open(other.path());
    db.init_genesis(AppKind::KvStore, CHAIN, 0, &BTreeMap::new())
        .unwrap();
    let (h2, _) = run_app_block(
        &db,
        AppKind::KvStore,
        vec![
            b"a=1".to_vec(),
            b"b=2".to_vec(),
            b"a=3".to_vec(),
            b"=x".to_vec(),
        ],
    );
    assert_eq!(h1, h2);
    // Reopening kvstore state as a transfer chain is refused with a clear error.
    let db = open(dir.path());
    let err = db
        .init_genesis(AppKind::Transfer, CHAIN, 0, &BTreeMap::new())
        .unwrap_err();
    assert!(err.to_string().contains("kvstore"), "{err}");
}

#[test]
fn execution_paths_agree_on_bad_signatures_and_nonces() {
    use tpslab_types::sigcache::SigCache;
    let mut txs = Vec::new();
    for i in 0..12u64 {
        let mut tx = tpslab_types::tx::sign_transfer(
            &account_key(SEED, i % 4),
            Transfer {
                chain_id: CHAIN.into(),
                to: address_of(&account_key(SEED, 5)),
                amount: 10,
                nonce: i / 4 + u64::from(i == 9),
                fee: 1,
                payload: vec![],
            },
        );
        if i % 5 == 2 {
            tx.amount = 11; // bad signature
        }
        txs.push(prost::Message::encode_to_vec(&tx));
    }
    // Independent transfers, so the block has 64+ signatures to verify and several groups:
    // with parallel-exec the crafted shapes below go through the workers' verification.
    for j in 0..80u64 {
        let tx = tpslab_types::tx::sign_transfer(
            &account_key(SEED, 30 + j),
            Transfer {
                chain_id: CHAIN.into(),
                to: address_of(&account_key(SEED, 1000 + j)),
                amount: 1,
                nonce: 0,
                fee: 1,
                payload: vec![],
            },
        );
        txs.push(prost::Message::encode_to_vec(&tx));
    }
    txs.push(vec![0xff, 0x01]); // malformed
                                // Crafted signatures (see types/src/craft.rs), one of each shape, from funded accounts.
    let crafted_at = txs.len();
    for (k, shape) in Shape::ALL.into_iter().enumerate() {
        let tx = craft::sign_transfer(
            &account_key(SEED, 10 + k as u64),
            Transfer {
                chain_id: CHAIN.into(),
                to: address_of(&account_key(SEED, 5)),
                amount: 10,
                nonce: 0,
                fee: 1,
                payload: vec![],
            },
            shape,
            k as u64,
        );
        txs.push(prost::Message::encode_to_vec(&tx));
    }
    // The cache holds only txs whose signature verified (as CheckTx fills it).
    let cache = SigCache::new(100);
    for raw in txs.iter().step_by(2) {
        let p = tpslab_types::ParsedTx::decode(raw);
        if let Ok(p) = p.as_ref().map(|p| (p, p.verify_signature())) {
            if p.1.is_ok() {
                cache.insert(p.0.hash);
            }
        }
    }
    let mut results = Vec::new();
    for (write_batch, parallel) in [(false, false), (true, false), (false, true), (true, true)] {
        for sig_batch in [false, true] {
            for cached in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let db = open(dir.path());
                db.init_genesis(AppKind::Transfer, CHAIN, 0, &genesis(110, 1_000))
                    .unwrap();
                let opts = ExecOptions {
                    app: AppKind::Transfer,
                    write_batch,
                    sig_batch,
                    sig_cache: cached.then_some(&cache),
                    buffer_pool: cached,
                    parallel,
                };
                let last = db.last_committed().unwrap();
                let out = execute_block(&db, &opts, CHAIN, 1, &last.app_hash, &txs).unwrap();
                let state: Vec<Account> = (0..6)
                    .map(|i| {
                        // Naive write-batch has written the state already; tuned writes at
                        // commit, so compare the write set over the committed state.
                        let a = address_of(&account_key(SEED, i));
                        out.write_set
                            .accounts
                            .get(&a)
                            .copied()
                            .unwrap_or_else(|| db.get_account(&a).unwrap())
                    })
                    .collect();
                // Uncached, the parallel path ran (workers verified the crafted shapes).
                assert_eq!(out.parallel_workers > 0, parallel && !cached);
                results.push((
                    (write_batch, sig_batch, cached, parallel),
                    out.tx_codes,
                    out.app_hash,
                    state,
                ));
            }
        }
    }
    let first = &results[0];
    assert!(first.1.contains(&(TxCode::BadSignature as u32)));
    assert!(first.1.contains(&(TxCode::BadNonce as u32)));
    assert!(first.1.contains(&(TxCode::Malformed as u32)));
    let crafted_codes: Vec<u32> = Shape::ALL
        .iter()
        .map(|s| match s {
            Shape::HighS => TxCode::BadSignature,
            Shape::SmallOrderKey => TxCode::Malformed,
            Shape::MixedOrderKey => TxCode::InsufficientFunds,
            _ => TxCode::Ok,
        } as u32)
        .collect();
    assert_eq!(
        &first.1[crafted_at..],
        &crafted_codes[..],
        "{:?}",
        Shape::ALL
    );
    for r in &results[1..] {
        assert_eq!(
            (&r.1, &r.2, &r.3),
            (&first.1, &first.2, &first.3),
            "{:?}",
            r.0
        );
    }
}
