//! What a block wrote: the final value of each key it touched. Execution builds it, the app
//! hash is computed over it, and the database commits it in the block's one write batch
//! (write-batch on), or finds it already written tx by tx (off).

use std::collections::BTreeMap;
use tpslab_types::{Account, Address};

/// The final value of everything a block wrote, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSet {
    /// Accounts (transfer app).
    pub accounts: BTreeMap<Address, Account>,
    /// Key-value entries (kvstore app).
    pub kv: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Every entry is on disk already: execution put each applied tx's writes as it ran
    /// (write-batch off), so the block's commit writes only its record and meta.
    pub persisted: bool,
}
