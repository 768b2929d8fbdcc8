//! A [`Ledger`] and a [`TxPool`] held in memory, with no state machine: for driving an
//! engine where RocksDB and the mempool would only be in the way (fuzzing block sync, seeding
//! the fuzz corpora, in-process engine tests). The "app hash" after a block is
//! SHA-256(previous app hash || block hash), so two ledgers agree exactly when they committed
//! the same blocks.

use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;
use tpslab_types::pb;
use tpslab_types::ports::{
    Applied, Committed, ExecParams, Ledger, LedgerError, PoolFuture, TxPool,
};
use tpslab_types::tx::tx_hash;
use tpslab_types::{Address, Hash};

/// Committed blocks in memory.
#[derive(Default)]
pub struct MemLedger {
    inner: Mutex<(Committed, Vec<pb::BlockRecord>)>,
}

impl MemLedger {
    /// A chain at genesis (height 0, app hash zero) at `genesis_time_unix_nanos`.
    pub fn new(genesis_time_unix_nanos: u64) -> MemLedger {
        let genesis = Committed {
            time_unix_nanos: genesis_time_unix_nanos,
            ..Committed::default()
        };
        MemLedger {
            inner: Mutex::new((genesis, Vec::new())),
        }
    }
}

impl Ledger for MemLedger {
    fn last_committed(&self) -> Result<Committed, LedgerError> {
        Ok(self.inner.lock().0)
    }

    fn block(&self, height: u64) -> Result<Option<pb::BlockRecord>, LedgerError> {
        let g = self.inner.lock();
        let i = height.checked_sub(1).and_then(|i| usize::try_from(i).ok());
        Ok(i.and_then(|i| g.1.get(i).cloned()))
    }

    fn apply_block(
        &self,
        block: pb::Block,
        hash: Hash,
        commit: pb::Commit,
        _params: &ExecParams,
    ) -> Result<Applied, LedgerError> {
        let mut g = self.inner.lock();
        let (last, records) = &mut *g;
        let app_hash = Hash::digest_parts(&[&last.app_hash.0, &hash.0]);
        *last = Committed {
            height: last.height + 1,
            app_hash,
            block_hash: hash,
            time_unix_nanos: block.header.as_ref().map_or(0, |h| h.time_unix_nanos),
        };
        records.push(pb::BlockRecord {
            tx_codes: vec![0; block.txs.len()],
            block: Some(block),
            block_hash: hash.to_vec(),
            commit: Some(commit),
            result_app_hash: app_hash.to_vec(),
        });
        Ok(Applied {
            app_hash,
            touched: None,
        })
    }
}

/// Pending txs in arrival order, no checks.
#[derive(Default)]
pub struct MemPool {
    txs: Mutex<Vec<Arc<[u8]>>>,
}

impl MemPool {
    /// Adds txs to propose.
    pub fn add(&self, txs: impl IntoIterator<Item = Vec<u8>>) {
        self.txs.lock().extend(txs.into_iter().map(Arc::from));
    }
}

impl TxPool for MemPool {
    fn reap(&self, max_txs: usize, max_bytes: usize) -> Vec<Arc<[u8]>> {
        let mut bytes = 0;
        self.txs
            .lock()
            .iter()
            .take(max_txs)
            .take_while(|t| {
                bytes += t.len();
                bytes <= max_bytes
            })
            .cloned()
            .collect()
    }

    fn committed(&self, hashes: &[Hash], _touched: Option<&HashSet<Address>>) {
        let gone: HashSet<&Hash> = hashes.iter().collect();
        self.txs.lock().retain(|t| !gone.contains(&tx_hash(t)));
    }

    fn size(&self) -> usize {
        self.txs.lock().len()
    }

    fn bytes(&self) -> usize {
        self.txs.lock().iter().map(|t| t.len()).sum()
    }

    fn lookup(&self, hashes: &[Hash]) -> Vec<Option<Arc<[u8]>>> {
        let txs = self.txs.lock();
        let by_hash: std::collections::HashMap<Hash, &Arc<[u8]>> =
            txs.iter().map(|t| (tx_hash(t), t)).collect();
        hashes
            .iter()
            .map(|h| by_hash.get(h).map(|t| Arc::clone(t)))
            .collect()
    }

    fn wait_for_txs(&self, _n: usize) -> PoolFuture<'_> {
        Box::pin(std::future::ready(()))
    }
}
