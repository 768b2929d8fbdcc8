//! The RocksDB-backed store: open, genesis, reads, and atomic block commits.

use crate::app_hash::genesis_app_hash;
use crate::cache::AccountCache;
use crate::error::{db_err, StateError, StateResult};
use crate::write_set::WriteSet;
use parking_lot::RwLock;
use prost::Message;
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tpslab_types::ports::Committed;
use tpslab_types::{pb, Account, Address, AppKind, Hash, StateView};

const CF_STATE: &str = "state";
const CF_KV: &str = "kv";
const CF_BLOCKS: &str = "blocks";
const CF_META: &str = "meta";
/// The Raft engine's log and hard state (a BFT chain leaves it empty).
pub(crate) const CF_RAFT: &str = "raft";
const META_LAST: &[u8] = b"last";
const META_CHAIN_ID: &[u8] = b"chain_id";
const META_APP: &[u8] = b"app";

/// How the store is opened.
#[derive(Clone, Debug)]
pub struct StateDbOptions {
    /// fsync the RocksDB WAL on every block commit (durable against power loss, not only
    /// against a process crash).
    pub sync_writes: bool,
    /// read-cache toggle: keep committed accounts in memory (naive: every account access is
    /// a RocksDB read).
    pub read_cache: bool,
    /// sharded-state toggle: the read cache behind many locks chosen by address (naive: one
    /// global RwLock). No effect without `read_cache`.
    pub sharded_state: bool,
    /// Memtable size of the account state, bytes ([`STATE_WRITE_BUFFER`] by default).
    pub state_write_buffer: usize,
}

/// The account state's memtable: 4 MiB, not RocksDB's 64 MiB. Accounts are rewritten block
/// after block, so a big memtable is a deep skip list of stale versions that every insert
/// walks with cache misses (~7 % of a validator's CPU at transfer capacity), while a small one
/// flushes often and each flush keeps only the newest version of each account.
/// `cargo bench -p tpslab-statedb --bench memtable`: 1,000-transfer blocks on a filled
/// memtable cost 6.8-7.2 ms of process CPU each with 64 MiB, 3.1-4.4 ms with 4 MiB (flushes
/// and compactions included; 8 MiB: 3.9-4.8, 16 MiB: 4.8).
pub const STATE_WRITE_BUFFER: usize = 4 << 20;

impl Default for StateDbOptions {
    fn default() -> Self {
        StateDbOptions {
            sync_writes: true,
            read_cache: true,
            sharded_state: true,
            state_write_buffer: STATE_WRITE_BUFFER,
        }
    }
}

/// The last committed block as `meta.last` stores it: 80 bytes, big-endian numbers.
trait MetaLast: Sized {
    fn encode(&self) -> Vec<u8>;
    fn decode(b: &[u8]) -> StateResult<Self>;
}

impl MetaLast for Committed {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.app_hash.0);
        out.extend_from_slice(&self.block_hash.0);
        out.extend_from_slice(&self.time_unix_nanos.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> StateResult<Committed> {
        let corrupt = || StateError::Corrupt {
            what: "meta.last",
            reason: format!("expected 80 bytes, got {}", b.len()),
        };
        if b.len() != 80 {
            return Err(corrupt());
        }
        let u64_at = |i: usize| -> StateResult<u64> {
            Ok(u64::from_be_bytes(
                b[i..i + 8].try_into().map_err(|_| corrupt())?,
            ))
        };
        let hash_at = |i: usize| -> StateResult<Hash> {
            Ok(Hash(b[i..i + 32].try_into().map_err(|_| corrupt())?))
        };
        Ok(Committed {
            height: u64_at(0)?,
            app_hash: hash_at(8)?,
            block_hash: hash_at(40)?,
            time_unix_nanos: u64_at(72)?,
        })
    }
}

/// A cheap-to-clone handle to the state database.
#[derive(Clone)]
pub struct StateDb {
    inner: Arc<Inner>,
}

struct Inner {
    db: DB,
    write_opts: WriteOptions,
    last: RwLock<Option<Committed>>,
    cache: Option<AccountCache>,
}

impl StateDb {
    /// Opens (creating if missing) the database at `path`.
    pub fn open(path: &Path, opts: &StateDbOptions) -> StateResult<StateDb> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        let cfs = [CF_STATE, CF_KV, CF_BLOCKS, CF_META, CF_RAFT]
            .into_iter()
            .map(|name| {
                let mut cf_opts = Options::default();
                if name == CF_STATE {
                    cf_opts.set_write_buffer_size(opts.state_write_buffer);
                }
                ColumnFamilyDescriptor::new(name, cf_opts)
            });
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(db_err("open"))?;
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(opts.sync_writes);
        let last = match db
            .get_cf(cf(&db, CF_META)?, META_LAST)
            .map_err(db_err("read meta"))?
        {
            Some(b) => Some(Committed::decode(&b)?),
            None => None,
        };
        Ok(StateDb {
            inner: Arc::new(Inner {
                db,
                write_opts,
                last: RwLock::new(last),
                cache: opts
                    .read_cache
                    .then(|| AccountCache::new(opts.sharded_state)),
            }),
        })
    }

    /// Writes the genesis state unless the database already holds one; either way checks the
    /// chain id and the app, and returns the last committed block (height 0 right after
    /// genesis).
    pub fn init_genesis(
        &self,
        app: AppKind,
        chain_id: &str,
        genesis_time_unix_nanos: u64,
        accounts: &BTreeMap<Address, Account>,
    ) -> StateResult<Committed> {
        let db = &self.inner.db;
        if let Some(found) = db
            .get_cf(self.cf(CF_META)?, META_CHAIN_ID)
            .map_err(db_err("read chain id"))?
        {
            let found = String::from_utf8_lossy(&found).into_owned();
            if found != chain_id {
                return Err(StateError::WrongChain {
                    expected: chain_id.to_string(),
                    found,
                });
            }
            // Databases from before the kvstore app hold transfer state and no app key.
            let found = db
                .get_cf(self.cf(CF_META)?, META_APP)
                .map_err(db_err("read app"))?
                .map_or_else(
                    || AppKind::Transfer.as_str().to_string(),
                    |b| String::from_utf8_lossy(&b).into_owned(),
                );
            if found != app.as_str() {
                return Err(StateError::WrongApp {
                    expected: app.to_string(),
                    found,
                });
            }
            return self.last_committed();
        }
        let committed = Committed {
            height: 0,
            app_hash: genesis_app_hash(accounts),
            block_hash: Hash::ZERO,
            time_unix_nanos: genesis_time_unix_nanos,
        };
        let mut batch = WriteBatch::default();
        let state = self.cf(CF_STATE)?;
        for (addr, acc) in accounts {
            batch.put_cf(state, addr.0, acc.encode());
        }
        let meta = self.cf(CF_META)?;
        batch.put_cf(meta, META_CHAIN_ID, chain_id.as_bytes());
        batch.put_cf(meta, META_APP, app.as_str().as_bytes());
        batch.put_cf(meta, META_LAST, committed.encode());
        db.write_opt(batch, &self.inner.write_opts)
            .map_err(db_err("write genesis"))?;
        *self.inner.last.write() = Some(committed);
        Ok(committed)
    }

    /// The last committed block.
    pub fn last_committed(&self) -> StateResult<Committed> {
        (*self.inner.last.read()).ok_or(StateError::NotInitialised)
    }

    /// Reads an account from the committed state (default if absent).
    pub fn get_account(&self, addr: &Address) -> StateResult<Account> {
        let Some(cache) = &self.inner.cache else {
            return self.read_account(addr);
        };
        match cache.get(addr) {
            Ok(acc) => Ok(acc),
            Err(epoch) => {
                let acc = self.read_account(addr)?;
                cache.fill(epoch, *addr, acc);
                Ok(acc)
            }
        }
    }

    fn read_account(&self, addr: &Address) -> StateResult<Account> {
        let v = self
            .inner
            .db
            .get_pinned_cf(self.cf(CF_STATE)?, addr.0)
            .map_err(db_err("read account"))?;
        match v {
            Some(b) => Account::decode(&b).map_err(|e| StateError::Corrupt {
                what: "account",
                reason: e.to_string(),
            }),
            None => Ok(Account::default()),
        }
    }

    /// The write-batch toggle's naive path: puts one tx's writes right away in their own
    /// synced write (RocksDB WAL fsync), as an app persisting each tx's changes as it goes
    /// would.
    pub(crate) fn put_synced(
        &self,
        accounts: &[(Address, Account)],
        entries: &[(Vec<u8>, Vec<u8>)],
    ) -> StateResult<()> {
        let mut batch = WriteBatch::default();
        let state = self.cf(CF_STATE)?;
        for (addr, acc) in accounts {
            batch.put_cf(state, addr.0, acc.encode());
        }
        let kv = self.cf(CF_KV)?;
        for (k, v) in entries {
            batch.put_cf(kv, k, v);
        }
        self.inner
            .db
            .write_opt(batch, &self.inner.write_opts)
            .map_err(db_err("put tx writes"))?;
        if let Some(c) = &self.inner.cache {
            c.written(accounts.iter().map(|(a, acc)| (a, *acc)));
        }
        Ok(())
    }

    /// Time spent waiting for the state cache locks, seconds (0 without the read-cache toggle).
    pub fn lock_wait_seconds(&self) -> f64 {
        self.inner
            .cache
            .as_ref()
            .map_or(0.0, |c| c.lock_wait_seconds())
    }

    /// Reads a kvstore entry from the committed state.
    pub fn get_kv(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.inner
            .db
            .get_cf(self.cf(CF_KV)?, key)
            .map_err(db_err("read kv"))
    }

    /// The committed block at `height`, if any.
    pub fn block(&self, height: u64) -> StateResult<Option<pb::BlockRecord>> {
        let v = self
            .inner
            .db
            .get_pinned_cf(self.cf(CF_BLOCKS)?, height.to_be_bytes())
            .map_err(db_err("read block"))?;
        match v {
            Some(b) => pb::BlockRecord::decode(&*b)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    what: "block record",
                    reason: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    /// Atomically writes a block's state changes, its record and the new meta, then makes it
    /// the last committed block.
    pub fn commit_block(
        &self,
        record: &pb::BlockRecord,
        time_unix_nanos: u64,
        write_set: &WriteSet,
    ) -> StateResult<Committed> {
        let last = self.last_committed()?;
        let height = record
            .block
            .as_ref()
            .and_then(|b| b.header.as_ref())
            .map_or(0, |h| h.height);
        if height != last.height + 1 {
            return Err(StateError::HeightMismatch {
                expected: last.height + 1,
                got: height,
            });
        }
        let corrupt = |what, e: tpslab_types::TypesError| StateError::Corrupt {
            what,
            reason: e.to_string(),
        };
        let committed = Committed {
            height,
            app_hash: Hash::from_slice("result_app_hash", &record.result_app_hash)
                .map_err(|e| corrupt("record.result_app_hash", e))?,
            block_hash: Hash::from_slice("block_hash", &record.block_hash)
                .map_err(|e| corrupt("record.block_hash", e))?,
            time_unix_nanos,
        };
        let mut batch = WriteBatch::default();
        // Written tx by tx during execution already (write-batch off): not again.
        let state_writes = !write_set.persisted;
        if state_writes {
            let state = self.cf(CF_STATE)?;
            for (addr, acc) in &write_set.accounts {
                batch.put_cf(state, addr.0, acc.encode());
            }
            let kv = self.cf(CF_KV)?;
            for (k, v) in &write_set.kv {
                batch.put_cf(kv, k, v);
            }
        }
        batch.put_cf(
            self.cf(CF_BLOCKS)?,
            height.to_be_bytes(),
            record.encode_to_vec(),
        );
        batch.put_cf(self.cf(CF_META)?, META_LAST, committed.encode());
        let n = if state_writes {
            write_set.accounts.len() + write_set.kv.len()
        } else {
            0
        };
        tpslab_probe_points::write_batch(height, n as u64, || {
            self.inner.db.write_opt(batch, &self.inner.write_opts)
        })
        .map_err(db_err("commit block"))?;
        if let Some(c) = self.inner.cache.as_ref().filter(|_| state_writes) {
            c.written(write_set.accounts.iter().map(|(a, acc)| (a, *acc)));
        }
        *self.inner.last.write() = Some(committed);
        Ok(committed)
    }

    pub(crate) fn cf(&self, name: &'static str) -> StateResult<&ColumnFamily> {
        cf(&self.inner.db, name)
    }

    /// The database and the write options every write uses (synced unless configured off).
    pub(crate) fn raw(&self) -> (&DB, &WriteOptions) {
        (&self.inner.db, &self.inner.write_opts)
    }
}

fn cf<'a>(db: &'a DB, name: &'static str) -> StateResult<&'a ColumnFamily> {
    db.cf_handle(name).ok_or(StateError::Corrupt {
        what: "column family",
        reason: format!("{name} missing"),
    })
}

impl StateView for StateDb {
    type Error = StateError;
    fn account(&self, addr: &Address) -> StateResult<Account> {
        self.get_account(addr)
    }
}
