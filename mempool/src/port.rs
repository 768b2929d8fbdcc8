//! The mempool as consensus's [`TxPool`].

use crate::pool::Mempool;
use std::collections::HashSet;
use std::sync::Arc;
use tpslab_types::ports::{PoolFuture, TxPool};
use tpslab_types::{Address, Hash, StateView};

impl<S: StateView + Send + Sync> TxPool for Mempool<S> {
    fn reap(&self, max_txs: usize, max_bytes: usize) -> Vec<Arc<[u8]>> {
        Mempool::reap(self, max_txs, max_bytes)
    }

    fn committed(&self, hashes: &[Hash], touched: Option<&HashSet<Address>>) {
        self.update(hashes, touched);
    }

    fn size(&self) -> usize {
        Mempool::size(self)
    }

    fn bytes(&self) -> usize {
        Mempool::bytes(self)
    }

    fn lookup(&self, hashes: &[Hash]) -> Vec<Option<Arc<[u8]>>> {
        Mempool::lookup(self, hashes)
    }

    fn wait_for_txs(&self, n: usize) -> PoolFuture<'_> {
        Box::pin(Mempool::wait_for_txs(self, n))
    }
}
