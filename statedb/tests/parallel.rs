//! parallel-exec against sequential execution on a real RocksDB: random blocks of transfers
//! (a hot recipient, bad nonces, overdrafts, self-transfers) and of entry writes with
//! repeated keys and failed signatures give the same codes, writes and app hash both ways, on
//! both write-batch paths; an app that declares too few keys gets the sequential result.

use proptest::prelude::*;
use std::collections::BTreeMap;
use tpslab_app::{App, BlockState, StateKey, TxCode, TxContext};
use tpslab_statedb::{
    execute_block, execute_block_with, ExecOptions, ExecOutcome, StateDb, StateDbOptions,
};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::tx::{encode_transfer, tx_hash, Transfer};
use tpslab_types::{Account, Address, AppKind, Hash, TypesResult};

const CHAIN: &str = "parallel-chain";
const SEED: &str = "parallel";
/// Accounts of the transfer blocks: enough that a block of 64-200 transfers splits into
/// several groups, few enough that senders repeat and balances run out.
const ACCOUNTS: u64 = 300;

fn fresh(app: AppKind, accounts: u64) -> (tempfile::TempDir, StateDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), &StateDbOptions::default()).unwrap();
    let genesis: BTreeMap<Address, Account> = (0..accounts)
        .map(|i| {
            let a = address_of(&account_key(SEED, i));
            (
                a,
                Account {
                    balance: 1_000,
                    nonce: 0,
                },
            )
        })
        .collect();
    db.init_genesis(app, CHAIN, 0, &genesis).unwrap();
    (dir, db)
}

/// The block executed on a fresh database with parallel-exec off and on.
fn both(app: AppKind, accounts: u64, txs: &[Vec<u8>], write_batch: bool) -> [ExecOutcome; 2] {
    [false, true].map(|parallel| {
        let (_dir, db) = fresh(app, accounts);
        let opts = ExecOptions {
            write_batch,
            parallel,
            ..ExecOptions::new(app)
        };
        let last = db.last_committed().unwrap();
        execute_block(&db, &opts, CHAIN, 1, &last.app_hash, txs).unwrap()
    })
}

fn same(o: &[ExecOutcome; 2]) -> Result<(), TestCaseError> {
    prop_assert_eq!(&o[0].tx_codes, &o[1].tx_codes);
    prop_assert_eq!(&o[0].write_set, &o[1].write_set);
    prop_assert_eq!(o[0].app_hash, o[1].app_hash);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn parallel_transfers_match_sequential(
        ops in prop::collection::vec((0u64..ACCOUNTS, 0u64..ACCOUNTS, 0u64..400, 0u8..10), 64..200),
        write_batch in any::<bool>(),
    ) {
        let mut nonces = [0u64; ACCOUNTS as usize];
        let txs: Vec<Vec<u8>> = ops.iter().map(|&(f, t, amount, quirk)| {
            // One in ten pays the hot account 0, so groups of every size occur.
            let t = if quirk == 9 { 0 } else { t };
            let n = &mut nonces[f as usize];
            // One in ten reuses or skips a nonce (BadNonce), the rest follow on.
            let nonce = match quirk {
                0 => n.saturating_sub(1),
                1 => *n + 1,
                _ => { *n += 1; *n - 1 }
            };
            encode_transfer(&account_key(SEED, f), Transfer {
                chain_id: CHAIN.into(),
                to: address_of(&account_key(SEED, t)),
                amount,
                nonce,
                fee: 1,
                payload: vec![],
            })
        }).collect();
        let o = both(AppKind::Transfer, ACCOUNTS, &txs, write_batch);
        prop_assert!(o[0].applied > 0);
        prop_assert_eq!(o[0].parallel_workers, 0);
        prop_assert!(o[1].parallel_workers >= 2, "the parallel path ran");
        same(&o)?;
    }

    #[test]
    fn parallel_entries_match_sequential(
        writes in prop::collection::vec((0u8..40, 0u8..20), 64..300),
        write_batch in any::<bool>(),
    ) {
        // `bad...` txs fail verification: refused by the workers as sequentially.
        let txs: Vec<Vec<u8>> = writes
            .iter()
            .map(|&(k, q)| if q == 0 { format!("bad{k}") } else { format!("k{k}") }.into_bytes())
            .collect();
        let outs = [false, true].map(|parallel| {
            let (_dir, db) = fresh(AppKind::KvStore, 0);
            let opts = ExecOptions { write_batch, parallel, ..ExecOptions::new(AppKind::KvStore) };
            let last = db.last_committed().unwrap();
            execute_block_with(&Tally { honest: true }, &db, &opts, CHAIN, 1, &last.app_hash, &txs)
                .unwrap()
        });
        prop_assert!(outs[1].parallel_workers >= 2, "the parallel path ran");
        same(&outs)?;
    }
}

/// A signed counter app: tx `k` adds one to entry `k` (and, when not `honest`, to entry
/// `total` too, which it does not declare); txs starting `bad` fail verification.
struct Tally {
    honest: bool,
}

impl App for Tally {
    type Tx<'a> = &'a [u8];
    const KIND: AppKind = AppKind::KvStore;
    const SIGNED: bool = true;

    fn decode<'a>(&self, raw: &'a [u8], _ctx: &TxContext<'_>) -> TypesResult<&'a [u8]> {
        Ok(raw)
    }

    fn hash(&self, tx: &&[u8]) -> Hash {
        tx_hash(tx)
    }

    fn verify(&self, txs: &[&&[u8]], _batch: bool) -> Vec<bool> {
        txs.iter().map(|t| !t.starts_with(b"bad")).collect()
    }

    fn conflict_keys(&self, tx: &&[u8]) -> Option<Vec<StateKey>> {
        Some(vec![StateKey::Entry(tx.to_vec())])
    }

    fn deliver<S: BlockState + ?Sized>(
        &self,
        tx: &&[u8],
        state: &mut S,
    ) -> Result<TxCode, S::Error> {
        let keys: &[&[u8]] = if self.honest { &[tx] } else { &[tx, b"total"] };
        for &key in keys {
            let n = state
                .entry(key)?
                .and_then(|v| v.try_into().ok())
                .map_or(0, u64::from_be_bytes);
            state.put_entry(key, &(n + 1).to_be_bytes());
        }
        Ok(TxCode::Ok)
    }
}

#[test]
fn an_app_declaring_too_few_keys_gets_the_sequential_result() {
    let txs: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("k{}", i % 50).into_bytes())
        .collect();
    let outs = [false, true].map(|parallel| {
        let (_dir, db) = fresh(AppKind::KvStore, 0);
        let opts = ExecOptions {
            parallel,
            ..ExecOptions::new(AppKind::KvStore)
        };
        let last = db.last_committed().unwrap();
        execute_block_with(
            &Tally { honest: false },
            &db,
            &opts,
            CHAIN,
            1,
            &last.app_hash,
            &txs,
        )
        .unwrap()
    });
    assert_eq!(outs[1].parallel_workers, 0, "fell back to sequential");
    assert_eq!(outs[0].write_set, outs[1].write_set);
    assert_eq!(outs[0].app_hash, outs[1].app_hash);
    assert_eq!(
        outs[1].write_set.kv.get(b"total".as_slice()),
        Some(&200u64.to_be_bytes().to_vec())
    );
}
