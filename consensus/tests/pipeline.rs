//! The block pipeline end to end on real RocksDB: two fresh nodes fed the same txs produce
//! the same blocks' contents and app hashes; blocks chain up and carry the previous commit.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use tpslab_consensus::{BlockLimits, BlockPipeline, PipelineParts};
use tpslab_mempool::{Mempool, MempoolConfig};
use tpslab_statedb::{StateDb, StateDbOptions};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::ports::ExecParams;
use tpslab_types::sigcache::SigCache;
use tpslab_types::tuning::CATALOGUE;
use tpslab_types::tx::{encode_transfer, Transfer};
use tpslab_types::vote::{commit_sig_data, verify_vote_signature};
use tpslab_types::{Account, AppKind, Hash, Tuning};

const CHAIN: &str = "c";

fn node(dir: &std::path::Path, max_txs: usize) -> TestNode {
    node_tuned(dir, max_txs, Tuning::tuned())
}

fn node_tuned(dir: &std::path::Path, max_txs: usize, tuning: Tuning) -> TestNode {
    let db = StateDb::open(
        dir,
        &StateDbOptions {
            sync_writes: false,
            read_cache: tuning.read_cache,
            sharded_state: tuning.sharded_state,
            ..Default::default()
        },
    )
    .unwrap();
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
    db.init_genesis(AppKind::Transfer, CHAIN, 0, &genesis)
        .unwrap();
    let sig_cache = Arc::new(SigCache::new(10_000));
    let mempool = Arc::new(
        Mempool::new(
            MempoolConfig {
                chain_id: CHAIN.into(),
                sig_batch: tuning.sig_batch,
                buffer_pool: tuning.buffer_pool,
                ..Default::default()
            },
            db.clone(),
        )
        .with_sig_cache(sig_cache.clone()),
    );
    let pipeline = BlockPipeline::new(PipelineParts {
        exec: ExecParams::new(CHAIN, AppKind::Transfer, &tuning, Some(sig_cache)),
        key: account_key("validator", 0),
        ledger: Arc::new(db.clone()),
        pool: mempool.clone(),
        limits: BlockLimits {
            max_txs,
            max_bytes: 1 << 20,
        },
        last_commit: None,
        metrics: Default::default(),
        stages: Default::default(),
    });
    TestNode {
        pipeline,
        db,
        mempool,
    }
}

/// A pipeline with the state db and mempool behind its ports, for the test to inspect.
struct TestNode {
    pipeline: BlockPipeline,
    db: StateDb,
    mempool: Arc<Mempool<StateDb>>,
}

impl TestNode {
    fn db(&self) -> &StateDb {
        &self.db
    }
    fn mempool(&self) -> &Mempool<StateDb> {
        &self.mempool
    }
}

impl std::ops::Deref for TestNode {
    type Target = BlockPipeline;
    fn deref(&self) -> &BlockPipeline {
        &self.pipeline
    }
}

impl std::ops::DerefMut for TestNode {
    fn deref_mut(&mut self) -> &mut BlockPipeline {
        &mut self.pipeline
    }
}

/// Feeds `txs` to a fresh node and produces blocks until its mempool is empty; returns the
/// app hash and the tx list of every block.
fn run(txs: &[Vec<u8>], max_txs: usize) -> Vec<(Hash, Vec<Vec<u8>>)> {
    let dir = tempfile::tempdir().unwrap();
    let mut p = node(dir.path(), max_txs);
    for t in txs {
        let _ = p.mempool().check_tx(t); // some are invalid on purpose
    }
    let mut out = Vec::new();
    while p.mempool().size() > 0 {
        let ev = p.produce().unwrap();
        let rec = p.db().block(ev.height).unwrap().unwrap();
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
        p.mempool()
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
    let b2 = p.db().block(2).unwrap().unwrap();
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
    assert_eq!(p.mempool().size(), 0);
}

/// The chain a node makes from `txs` (fed in chunks of 7 through `check_txs`, so sig-batch
/// batches), with the final balances of the test accounts.
/// Per block: app hash, txs, tx codes.
type Chain = Vec<(Hash, Vec<Vec<u8>>, Vec<u32>)>;

fn chain_under(tuning: Tuning, txs: &[Vec<u8>]) -> (Chain, Vec<Account>) {
    let dir = tempfile::tempdir().unwrap();
    let mut p = node_tuned(dir.path(), 5, tuning);
    let mut out = Vec::new();
    for chunk in txs.chunks(7) {
        let raws: Vec<&[u8]> = chunk.iter().map(|t| t.as_slice()).collect();
        let _ = p.mempool().check_txs(&raws); // some are invalid on purpose
                                              // Produce while feeding, so recheck runs with txs pending.
        if p.mempool().size() > 8 {
            let ev = p.produce().unwrap();
            let rec = p.db().block(ev.height).unwrap().unwrap();
            out.push((ev.app_hash, rec.block.unwrap().txs, rec.tx_codes));
        }
    }
    while p.mempool().size() > 0 {
        let ev = p.produce().unwrap();
        let rec = p.db().block(ev.height).unwrap().unwrap();
        out.push((ev.app_hash, rec.block.unwrap().txs, rec.tx_codes));
    }
    let balances = (0..8)
        .map(|i| {
            p.db()
                .get_account(&address_of(&account_key("s", i)))
                .unwrap()
        })
        .collect();
    (out, balances)
}

#[test]
fn every_tuning_commits_the_same_chain() {
    // A seeded mix: valid transfers, skipped nonces, overspends, bad signatures, duplicates.
    let mut rng_state = 42u64;
    let mut next = || {
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rng_state >> 33
    };
    let mut nonces = [0u64; 8];
    let mut txs = Vec::new();
    for _ in 0..120 {
        let (f, t, amount) = (next() % 8, next() % 8, next() % 200);
        let skip = next() % 10 == 0;
        let n = nonces[f as usize] + u64::from(skip);
        if !skip {
            nonces[f as usize] += 1;
        }
        let mut tx = tpslab_types::tx::sign_transfer(
            &account_key("s", f),
            Transfer {
                chain_id: CHAIN.into(),
                to: address_of(&account_key("s", t)),
                amount,
                nonce: n,
                fee: 1,
                payload: vec![],
            },
        );
        if next() % 15 == 0 {
            tx.fee = 2; // breaks the signature
        }
        let raw = prost::Message::encode_to_vec(&tx);
        if next() % 12 == 0 {
            txs.push(raw.clone()); // duplicate
        }
        txs.push(raw);
    }
    let reference = chain_under(Tuning::baseline(), &txs);
    assert!(reference.0.len() > 5, "the run should make several blocks");
    let committed: usize = reference.0.iter().map(|b| b.1.len()).sum();
    assert!(committed > 50, "{committed} txs committed");
    let mut variants = vec![("tuned".to_string(), Tuning::tuned())];
    for t in CATALOGUE {
        let mut only = Tuning::baseline();
        only.set(t.name, true).unwrap();
        variants.push((format!("only {}", t.name), only));
        let mut minus = Tuning::tuned();
        minus.set(t.name, false).unwrap();
        variants.push((format!("tuned minus {}", t.name), minus));
    }
    for (name, tuning) in variants {
        let got = chain_under(tuning, &txs);
        assert_eq!(
            got.0, reference.0,
            "{name}: blocks, codes or app hashes differ"
        );
        assert_eq!(got.1, reference.1, "{name}: final balances differ");
    }
}

/// A block-sync request's `max_bytes` (a peer's word) can shrink a response, never grow it
/// past our frame budget; one that fits no record gets an empty response, not an oversize
/// frame.
#[test]
fn sync_responses_fit_both_sides_budgets_whatever_a_peer_asks() {
    use prost::Message;
    use tpslab_consensus::sync::{records_budget, serve};
    let dir = tempfile::tempdir().unwrap();
    let mut p = node(dir.path(), 2);
    for i in 0..8u64 {
        let _ = p.mempool().check_tx(&encode_transfer(
            &account_key("s", i % 4),
            Transfer {
                chain_id: CHAIN.into(),
                to: address_of(&account_key("s", 5)),
                amount: 1,
                nonce: i / 4,
                fee: 1,
                payload: vec![0; 200],
            },
        ));
    }
    while p.mempool().size() > 0 {
        p.produce().unwrap();
    }
    let top = p.db().last_committed().unwrap().height;
    assert!(top >= 4);
    let one = p.db().block(1).unwrap().unwrap().encoded_len();
    let own = records_budget(64 << 10);
    let req = |max_bytes: u64| tpslab_types::pb::SyncRequest {
        from_height: 1,
        to_height: u64::MAX,
        max_bytes,
    };
    // 0 = ours; huge = still ours.
    assert_eq!(serve(p.db(), &req(0), own).blocks.len() as u64, top);
    assert_eq!(serve(p.db(), &req(u64::MAX), own).blocks.len() as u64, top);
    // Smaller than one record: nothing, rather than a frame the peer would refuse.
    assert!(serve(p.db(), &req(1), own).blocks.is_empty());
    assert!(serve(p.db(), &req(0), one / 2).blocks.is_empty());
    // Room for exactly the first two records (with their overhead in the response): two.
    let cost = |h: u64| {
        let l = p.db().block(h).unwrap().unwrap().encoded_len();
        l + 1 + prost::length_delimiter_len(l)
    };
    let two = (cost(1) + cost(2)) as u64;
    assert_eq!(serve(p.db(), &req(two), own).blocks.len(), 2);
    assert_eq!(serve(p.db(), &req(two - 1), own).blocks.len(), 1);
}

/// A proposed block over the byte limit is refused by `check_block` (as one over the tx
/// count is), whoever built it.
#[test]
fn check_block_refuses_blocks_over_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = node(dir.path(), 10);
    for i in 0..4u64 {
        p.mempool()
            .check_tx(&encode_transfer(
                &account_key("s", i),
                Transfer {
                    chain_id: CHAIN.into(),
                    to: address_of(&account_key("s", 5)),
                    amount: 1,
                    nonce: 0,
                    fee: 1,
                    payload: vec![0; 300],
                },
            ))
            .unwrap();
    }
    let (block, _) = p.build_block().unwrap();
    assert!(p.check_block(&block).is_ok());
    let bytes: usize = block.txs.iter().map(|t| t.len()).sum();
    let limits = p.limits();
    p.set_limits(BlockLimits {
        max_bytes: bytes - 1,
        ..limits
    });
    let e = p.check_block(&block).unwrap_err().to_string();
    assert!(e.contains("over max_block_bytes"), "{e}");
    p.set_limits(BlockLimits {
        max_bytes: 1 << 20,
        max_txs: 3,
    });
    let e = p.check_block(&block).unwrap_err().to_string();
    assert!(e.contains("over max_block_txs"), "{e}");
}

/// Block sync from a lying peer: records that do not verify are refused with their height and
/// a typed reason, nothing after the first bad one is applied, and the good prefix commits
/// with the same app hash as on the node that made it.
#[test]
fn block_sync_refuses_a_bad_record_with_its_reason() {
    use tpslab_consensus::bft::{Validator, ValidatorSet};
    use tpslab_consensus::sync::apply;
    use tpslab_consensus::{BlockFault, Invalid};
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = node(da.path(), 10);
    for _ in 0..3 {
        a.produce().unwrap();
    }
    let records: Vec<_> = (1..=3).map(|h| a.db().block(h).unwrap().unwrap()).collect();
    let vals = ValidatorSet::new(vec![Validator {
        pubkey: account_key("validator", 0).verifying_key().to_bytes(),
        power: 10,
    }]);
    let mut b = node(db.path(), 10);

    let mut lying = records.clone();
    lying[1].block_hash = vec![9; 32];
    let (events, refused) = apply(&mut b, &vals, lying).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(refused, Some((2, Invalid::Block(BlockFault::Hash))));
    assert_eq!(b.db().last_committed().unwrap().height, 1);

    let mut no_commit = records.clone();
    no_commit[1].commit = None;
    let (events, refused) = apply(&mut b, &vals, no_commit).unwrap();
    assert!(events.is_empty());
    assert_eq!(refused, Some((2, Invalid::Missing("commit"))));

    let stranger = ValidatorSet::new(vec![Validator {
        pubkey: account_key("someone", 0).verifying_key().to_bytes(),
        power: 10,
    }]);
    let (_, refused) = apply(&mut b, &stranger, records[1..].to_vec()).unwrap();
    assert!(
        matches!(refused, Some((2, Invalid::Commit(_)))),
        "{refused:?}"
    );

    let (events, refused) = apply(&mut b, &vals, records).unwrap();
    assert_eq!((events.len(), refused), (2, None));
    assert_eq!(
        b.db().last_committed().unwrap().app_hash,
        a.db().last_committed().unwrap().app_hash
    );
}
