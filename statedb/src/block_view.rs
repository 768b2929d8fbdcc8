//! The state as one tx of a block sees it ([`BlockState`]): its own writes so far, then the
//! block's earlier writes, then the committed state. A tx's writes are staged until it ends,
//! so a failing tx leaves nothing behind whatever the app wrote before failing. Each applied
//! tx's final writes fold into the app hash as it ends.

use crate::app_hash::fold_tx;
use crate::db::StateDb;
use crate::error::{StateError, StateResult};
use crate::write_set::WriteSet;
use tpslab_app::BlockState;
use tpslab_types::{Account, Address, Hash};

pub(crate) struct BlockView<'a> {
    db: &'a StateDb,
    block: &'a mut WriteSet,
    /// The current tx's writes, in order (reused across txs: no allocation per tx).
    tx_accounts: Vec<(Address, Account)>,
    tx_entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// The app hash after the last applied tx.
    app_hash: Hash,
}

impl<'a> BlockView<'a> {
    /// A view for a block executing on top of the committed state whose app hash is `app_hash`.
    pub(crate) fn new(db: &'a StateDb, block: &'a mut WriteSet, app_hash: Hash) -> BlockView<'a> {
        BlockView {
            db,
            block,
            tx_accounts: Vec::new(),
            tx_entries: Vec::new(),
            app_hash,
        }
    }

    /// The app hash after the txs ended so far.
    pub(crate) fn app_hash(&self) -> Hash {
        self.app_hash
    }

    /// Stages writes a parallel worker recorded for the current tx, as if it had made them
    /// here (see `parallel.rs`).
    pub(crate) fn stage(
        &mut self,
        accounts: Vec<(Address, Account)>,
        entries: Vec<(Vec<u8>, Vec<u8>)>,
    ) {
        self.tx_accounts = accounts;
        self.tx_entries = entries;
    }

    /// Ends the current tx: its writes join the block if it `applied`, else are dropped.
    /// `synced` is the write-batch toggle's naive path: an applied tx's writes also go to
    /// RocksDB at once, in their own synced write.
    pub(crate) fn end_tx(&mut self, applied: bool, synced: bool) -> StateResult<()> {
        if applied {
            last_write_per_key(&mut self.tx_accounts);
            last_write_per_key(&mut self.tx_entries);
            self.app_hash = fold_tx(&self.app_hash, &self.tx_accounts, &self.tx_entries);
            if synced {
                self.db.put_synced(&self.tx_accounts, &self.tx_entries)?;
            }
            self.block.accounts.extend(self.tx_accounts.drain(..));
            self.block.kv.extend(self.tx_entries.drain(..));
        } else {
            self.tx_accounts.clear();
            self.tx_entries.clear();
        }
        Ok(())
    }
}

/// Sorts a tx's writes by key and keeps only the last write of each key.
fn last_write_per_key<K: Ord, V>(writes: &mut Vec<(K, V)>) {
    if writes.len() < 2 {
        return;
    }
    // Reversed, a stable sort puts each key's last write first; dedup keeps the first.
    writes.reverse();
    writes.sort_by(|a, b| a.0.cmp(&b.0));
    writes.dedup_by(|later, first| later.0 == first.0);
}

impl BlockState for BlockView<'_> {
    type Error = StateError;

    fn account(&self, addr: &Address) -> StateResult<Account> {
        if let Some((_, acc)) = self.tx_accounts.iter().rev().find(|(a, _)| a == addr) {
            return Ok(*acc);
        }
        match self.block.accounts.get(addr) {
            Some(acc) => Ok(*acc),
            None => self.db.get_account(addr),
        }
    }

    fn put_account(&mut self, addr: Address, account: Account) {
        self.tx_accounts.push((addr, account));
    }

    fn entry(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        if let Some((_, v)) = self.tx_entries.iter().rev().find(|(k, _)| k == key) {
            return Ok(Some(v.clone()));
        }
        match self.block.kv.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None => self.db.get_kv(key),
        }
    }

    fn put_entry(&mut self, key: &[u8], value: &[u8]) {
        self.tx_entries.push((key.to_vec(), value.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::last_write_per_key;

    #[test]
    fn the_last_write_of_each_key_wins_and_keys_sort() {
        let mut w = vec![(3, "a"), (1, "b"), (3, "c"), (2, "d"), (1, "e")];
        last_write_per_key(&mut w);
        assert_eq!(w, vec![(1, "e"), (2, "d"), (3, "c")]);
    }
}
