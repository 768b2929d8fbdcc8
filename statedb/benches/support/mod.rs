//! What the state db benches share: addresses, a funded transfer chain on a temp RocksDB,
//! and block records to commit.

use std::collections::BTreeMap;
use tempfile::TempDir;
use tpslab_statedb::{StateDb, StateDbOptions};
use tpslab_types::{pb, Account, Address, AppKind};

pub const CHAIN: &str = "bench-chain";

/// Account `i`'s address, spread like hash outputs (the cache's shard comes from the first
/// bytes).
pub fn addr(i: u32) -> Address {
    let h = i.wrapping_mul(2_654_435_761).to_le_bytes();
    let mut a = [0u8; 20];
    a[..4].copy_from_slice(&h);
    a[4..8].copy_from_slice(&i.to_le_bytes());
    Address(a)
}

/// A transfer chain at genesis with `accounts` funded accounts, WAL not synced.
pub fn funded_db(accounts: u32, opts: StateDbOptions) -> (TempDir, StateDb) {
    let dir = tempfile::tempdir().unwrap();
    let opts = StateDbOptions {
        sync_writes: false,
        ..opts
    };
    let db = StateDb::open(dir.path(), &opts).unwrap();
    let genesis: BTreeMap<Address, Account> = (0..accounts)
        .map(|i| {
            let acc = Account {
                balance: 1_000,
                nonce: 0,
            };
            (addr(i), acc)
        })
        .collect();
    db.init_genesis(AppKind::Transfer, CHAIN, 0, &genesis)
        .unwrap();
    (dir, db)
}

/// The record of block `height` carrying `txs`.
pub fn record(height: u64, txs: &[Vec<u8>]) -> pb::BlockRecord {
    pb::BlockRecord {
        block: Some(pb::Block {
            header: Some(pb::Header {
                chain_id: CHAIN.into(),
                height,
                ..Default::default()
            }),
            txs: txs.to_vec(),
            last_commit: None,
        }),
        block_hash: vec![height as u8; 32],
        commit: None,
        result_app_hash: vec![1; 32],
        tx_codes: vec![],
    }
}
