//! A third app, written in this one file against the `App` trait alone, runs on the real
//! state database: execution sees its own block's earlier writes, a failing tx leaves nothing
//! behind even when it wrote before failing, and the naive write-batch path persists each
//! applied tx as it goes.

use std::collections::BTreeMap;
use tpslab_app::{App, BlockState, TxCode, TxContext};
use tpslab_statedb::{execute_block_with, ExecOptions, StateDb, StateDbOptions};
use tpslab_types::tx::tx_hash;
use tpslab_types::{pb, AppKind, Hash, TypesError, TypesResult};

/// `key+N` adds N to the counter under `key` (big-endian u64, 0 if absent).
struct Counter;

struct Add<'a> {
    raw: &'a [u8],
    key: &'a [u8],
    by: u64,
}

impl App for Counter {
    type Tx<'a> = Add<'a>;
    const KIND: AppKind = AppKind::KvStore;
    const SIGNED: bool = false;

    fn decode<'a>(&self, raw: &'a [u8], _ctx: &TxContext<'_>) -> TypesResult<Add<'a>> {
        let bad = || TypesError::Malformed {
            what: "counter tx",
            reason: "expected key+N".into(),
        };
        let i = raw.iter().position(|&b| b == b'+').ok_or_else(bad)?;
        let by = std::str::from_utf8(&raw[i + 1..])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        Ok(Add {
            raw,
            key: &raw[..i],
            by,
        })
    }

    fn hash(&self, tx: &Add<'_>) -> Hash {
        tx_hash(tx.raw)
    }

    fn verify(&self, txs: &[&Add<'_>], _batch: bool) -> Vec<bool> {
        vec![true; txs.len()]
    }

    fn deliver<S: BlockState + ?Sized>(
        &self,
        tx: &Add<'_>,
        state: &mut S,
    ) -> Result<TxCode, S::Error> {
        let old = state
            .entry(tx.key)?
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_be_bytes);
        // Writes before it knows whether it fails: the executor must drop this.
        state.put_entry(tx.key, &old.wrapping_add(tx.by).to_be_bytes());
        Ok(match old.checked_add(tx.by) {
            Some(_) => TxCode::Ok,
            None => TxCode::Overflow,
        })
    }
}

const CHAIN: &str = "counter-chain";

fn counter(db: &StateDb, key: &[u8]) -> Option<u64> {
    let v = db.get_kv(key).unwrap()?;
    Some(u64::from_be_bytes(v.try_into().unwrap()))
}

/// Executes and commits one block; returns its tx codes.
fn run(db: &StateDb, opts: &ExecOptions<'_>, txs: &[&str]) -> Vec<u32> {
    let last = db.last_committed().unwrap();
    let height = last.height + 1;
    let txs: Vec<Vec<u8>> = txs.iter().map(|t| t.as_bytes().to_vec()).collect();
    let out = execute_block_with(&Counter, db, opts, CHAIN, height, &last.app_hash, &txs).unwrap();
    let header = pb::Header {
        chain_id: CHAIN.into(),
        height,
        ..Default::default()
    };
    let record = pb::BlockRecord {
        block_hash: tpslab_types::block::block_hash(&header).to_vec(),
        block: Some(pb::Block {
            header: Some(header),
            txs,
            last_commit: None,
        }),
        commit: None,
        result_app_hash: out.app_hash.to_vec(),
        tx_codes: out.tx_codes.clone(),
    };
    db.commit_block(&record, height, &out.write_set).unwrap();
    out.tx_codes
}

#[test]
fn a_third_app_runs_on_the_state_database() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StateDbOptions {
        sync_writes: false,
        ..Default::default()
    };
    let db = StateDb::open(dir.path(), &opts).unwrap();
    db.init_genesis(AppKind::KvStore, CHAIN, 0, &BTreeMap::new())
        .unwrap();
    let exec = ExecOptions::new(AppKind::KvStore);
    let over = format!("a+{}", u64::MAX);
    let codes = run(&db, &exec, &["a+1", "a+2", "b+5", &over, "nonsense"]);
    let (ok, overflow, malformed) = (
        TxCode::Ok as u32,
        TxCode::Overflow as u32,
        TxCode::Malformed as u32,
    );
    assert_eq!(codes, vec![ok, ok, ok, overflow, malformed]);
    // The second tx saw the first's write; the overflowing one's write was dropped.
    assert_eq!(counter(&db, b"a"), Some(3));
    assert_eq!(counter(&db, b"b"), Some(5));
    // Next block reads the committed state.
    assert_eq!(run(&db, &exec, &["a+10"]), vec![ok]);
    assert_eq!(counter(&db, b"a"), Some(13));
}

#[test]
fn the_naive_write_batch_path_persists_each_applied_tx_of_any_app() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), &StateDbOptions::default()).unwrap();
    db.init_genesis(AppKind::KvStore, CHAIN, 0, &BTreeMap::new())
        .unwrap();
    let naive = ExecOptions {
        write_batch: false,
        ..ExecOptions::new(AppKind::KvStore)
    };
    let last = db.last_committed().unwrap();
    let over = format!("z+{}", u64::MAX);
    let txs: Vec<Vec<u8>> = ["x+4", "z+1", &over]
        .iter()
        .map(|t| t.as_bytes().to_vec())
        .collect();
    // Executed, not yet committed: the applied txs are already on disk, the failed one not.
    let out = execute_block_with(&Counter, &db, &naive, CHAIN, 1, &last.app_hash, &txs).unwrap();
    assert_eq!(out.applied, 2);
    assert_eq!(counter(&db, b"x"), Some(4));
    assert_eq!(counter(&db, b"z"), Some(1));
    // Same block with the tuned path: same app hash.
    let dir2 = tempfile::tempdir().unwrap();
    let db2 = StateDb::open(dir2.path(), &StateDbOptions::default()).unwrap();
    db2.init_genesis(AppKind::KvStore, CHAIN, 0, &BTreeMap::new())
        .unwrap();
    let tuned = ExecOptions::new(AppKind::KvStore);
    let out2 = execute_block_with(&Counter, &db2, &tuned, CHAIN, 1, &last.app_hash, &txs).unwrap();
    assert_eq!(out.app_hash, out2.app_hash);
    assert_eq!(counter(&db2, b"x"), None);
    // The naive block's commit writes only its record and meta: each key was written once,
    // by its tx. The tuned one writes everything at commit.
    assert!(out.write_set.persisted && !out2.write_set.persisted);
}
