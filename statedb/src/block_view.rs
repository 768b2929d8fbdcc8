//! The state as one tx of a block sees it ([`BlockState`]): its own writes so far, then the
//! block's earlier writes, then the committed state. A tx's writes are staged until it ends,
//! so a failing tx leaves nothing behind whatever the app wrote before failing.

use crate::db::StateDb;
use crate::error::{StateError, StateResult};
use crate::write_set::WriteSet;
use tpslab_app::BlockState;
use tpslab_types::{Account, Address};

pub(crate) struct BlockView<'a> {
    db: &'a StateDb,
    block: &'a mut WriteSet,
    /// The current tx's writes, in order (reused across txs: no allocation per tx).
    tx_accounts: Vec<(Address, Account)>,
    tx_entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl<'a> BlockView<'a> {
    pub(crate) fn new(db: &'a StateDb, block: &'a mut WriteSet) -> BlockView<'a> {
        BlockView {
            db,
            block,
            tx_accounts: Vec::new(),
            tx_entries: Vec::new(),
        }
    }

    /// Ends the current tx: its writes join the block if it `applied`, else are dropped.
    /// `synced` is the write-batch toggle's naive path: an applied tx's writes also go to
    /// RocksDB at once, in their own synced write.
    pub(crate) fn end_tx(&mut self, applied: bool, synced: bool) -> StateResult<()> {
        if applied {
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
