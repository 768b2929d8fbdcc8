//! parallel-exec: a block's txs that share no state run on different threads, each worker
//! verifying its own txs' signatures (those not in the sig cache) before delivering them.
//!
//! Each tx declares the state it may touch ([`App::conflict_keys`]); txs sharing a key are
//! joined into one group (union-find over the keys), and groups are dealt to one worker per
//! core, largest first. A worker runs its txs in block order against the committed state
//! plus its own earlier writes: since no other worker touches its keys, every tx sees exactly
//! the state it would see one after another, so its code and writes are the sequential ones.
//! The caller then replays the recorded writes in block order (app hash fold, write set, the
//! naive path's synced puts), which stays sequential, so the block's outcome is identical.
//!
//! A tx reaching outside its declared keys (a wrong `conflict_keys`) voids the whole parallel
//! run and the block executes sequentially: a wrong declaration costs time, never a verdict.

use crate::db::StateDb;
use crate::error::{StateError, StateResult};
use std::cell::Cell;
use std::collections::HashMap;
use tpslab_app::{App, BlockState, StateKey, TxCode};
use tpslab_types::{Account, Address};

/// Below this many executable txs a block runs sequentially: spawning workers and grouping
/// cost more than the work.
pub const MIN_PARALLEL_TXS: usize = 64;

/// A worker's tx: its index in the block, the tx, whether it needs verifying, its keys.
type Work<'r, 't, A> = (usize, &'r <A as App>::Tx<'t>, bool, &'r [StateKey]);

/// A worker's txs (block index, what it did), or None if one strayed outside its keys.
type WorkerResult = StateResult<Option<Vec<(usize, TxOut)>>>;

/// What one tx did, recorded by a worker for the sequential replay.
#[derive(Debug, Default)]
pub(crate) struct TxOut {
    /// Its signature verified (or needed no check); false: refused, nothing delivered.
    pub verified: bool,
    pub code: Option<TxCode>,
    pub accounts: Vec<(Address, Account)>,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Runs `app.deliver` for every tx given (index in the block, tx, whether its signature
/// still needs verifying: batched per worker with `sig_batch`) on up to `threads`
/// workers; `outs[i]` is tx i's result, with the number of workers that ran. None: not worth
/// it (few txs, one group, one thread) or a tx reached outside its declared keys; the caller
/// then executes sequentially.
pub(crate) fn deliver_all<A: App>(
    app: &A,
    db: &StateDb,
    txs: &[(usize, &A::Tx<'_>, bool)],
    block_len: usize,
    threads: usize,
    sig_batch: bool,
) -> StateResult<Option<(Vec<TxOut>, usize)>> {
    if txs.len() < MIN_PARALLEL_TXS || threads < 2 {
        return Ok(None);
    }
    let Some(keys) = txs
        .iter()
        .map(|(_, tx, _)| app.conflict_keys(tx))
        .collect::<Option<Vec<Vec<StateKey>>>>()
    else {
        return Ok(None);
    };
    let buckets: Vec<Vec<usize>> = deal(&groups(&keys), threads)
        .into_iter()
        .filter(|b| !b.is_empty())
        .collect();
    if buckets.len() < 2 {
        return Ok(None);
    }
    let results: Vec<WorkerResult> = std::thread::scope(|s| {
        let handles: Vec<_> = buckets
            .iter()
            .map(|bucket| {
                let work: Vec<Work<'_, '_, A>> = bucket
                    .iter()
                    .map(|&j| (txs[j].0, txs[j].1, txs[j].2, keys[j].as_slice()))
                    .collect();
                s.spawn(move || run_worker(app, db, &work, sig_batch))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(worker_panicked())))
            .collect()
    });
    let mut outs: Vec<TxOut> = (0..block_len).map(|_| TxOut::default()).collect();
    for r in results {
        let Some(done) = r? else { return Ok(None) };
        for (i, out) in done {
            outs[i] = out;
        }
    }
    Ok(Some((outs, buckets.len())))
}

fn worker_panicked() -> StateError {
    StateError::Parallel("a worker thread panicked".into())
}

/// Groups of tx positions (in `keys`) that share a key, each in block order.
fn groups(keys: &[Vec<StateKey>]) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..keys.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: HashMap<&StateKey, usize> = HashMap::new();
    for (i, ks) in keys.iter().enumerate() {
        for k in ks {
            match owner.get(k) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    owner.insert(k, i);
                }
            }
        }
    }
    let mut by_root: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..keys.len() {
        let r = root(&mut parent, i);
        by_root.entry(r).or_default().push(i);
    }
    let mut out: Vec<Vec<usize>> = by_root.into_values().collect();
    // Deterministic order whatever the map's: by first tx.
    out.sort_unstable_by_key(|g| g[0]);
    out
}

/// Deals groups to `n` buckets, largest group first to the emptiest bucket; each bucket's
/// txs in block order.
fn deal(groups: &[Vec<usize>], n: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<&Vec<usize>> = groups.iter().collect();
    order.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); n];
    for g in order {
        if let Some(b) = buckets.iter_mut().min_by_key(|b| b.len()) {
            b.extend_from_slice(g);
        }
    }
    for b in &mut buckets {
        b.sort_unstable();
    }
    buckets
}

/// One worker: its txs in block order, each against the committed state plus the worker's
/// earlier writes. None if a tx touched a key it did not declare.
fn run_worker<A: App>(
    app: &A,
    db: &StateDb,
    work: &[Work<'_, '_, A>],
    sig_batch: bool,
) -> WorkerResult {
    let need: Vec<&A::Tx<'_>> = work.iter().filter(|w| w.2).map(|w| w.1).collect();
    let mut verdicts = app.verify(&need, sig_batch).into_iter();
    let mut w = Worker {
        db,
        accounts: HashMap::new(),
        kv: HashMap::new(),
        tx_accounts: Vec::new(),
        tx_entries: Vec::new(),
        allowed: &[],
        strayed: Cell::new(false),
    };
    let mut out = Vec::with_capacity(work.len());
    for &(i, tx, needs_check, keys) in work {
        if needs_check && !verdicts.next().unwrap_or(false) {
            out.push((i, TxOut::default()));
            continue;
        }
        w.allowed = keys;
        let code = app.deliver(tx, &mut w)?;
        if w.strayed.get() {
            return Ok(None);
        }
        let accounts = std::mem::take(&mut w.tx_accounts);
        let entries = std::mem::take(&mut w.tx_entries);
        let (accounts, entries) = if code == TxCode::Ok {
            w.accounts.extend(accounts.iter().copied());
            w.kv.extend(entries.iter().cloned());
            (accounts, entries)
        } else {
            (Vec::new(), Vec::new())
        };
        out.push((
            i,
            TxOut {
                verified: true,
                code: Some(code),
                accounts,
                entries,
            },
        ));
    }
    Ok(Some(out))
}

/// A worker's view of state: the current tx's writes, the worker's earlier txs' writes,
/// then the committed state; every access checked against the tx's declared keys.
struct Worker<'a> {
    db: &'a StateDb,
    accounts: HashMap<Address, Account>,
    kv: HashMap<Vec<u8>, Vec<u8>>,
    tx_accounts: Vec<(Address, Account)>,
    tx_entries: Vec<(Vec<u8>, Vec<u8>)>,
    allowed: &'a [StateKey],
    strayed: Cell<bool>,
}

impl Worker<'_> {
    fn check_account(&self, addr: &Address) {
        let ok = self
            .allowed
            .iter()
            .any(|k| matches!(k, StateKey::Account(a) if a == addr));
        if !ok {
            self.strayed.set(true);
        }
    }

    fn check_entry(&self, key: &[u8]) {
        let ok = self
            .allowed
            .iter()
            .any(|k| matches!(k, StateKey::Entry(e) if e.as_slice() == key));
        if !ok {
            self.strayed.set(true);
        }
    }
}

impl BlockState for Worker<'_> {
    type Error = StateError;

    fn account(&self, addr: &Address) -> StateResult<Account> {
        self.check_account(addr);
        if let Some((_, acc)) = self.tx_accounts.iter().rev().find(|(a, _)| a == addr) {
            return Ok(*acc);
        }
        match self.accounts.get(addr) {
            Some(acc) => Ok(*acc),
            None => self.db.get_account(addr),
        }
    }

    fn put_account(&mut self, addr: Address, account: Account) {
        self.check_account(&addr);
        self.tx_accounts.push((addr, account));
    }

    fn entry(&self, key: &[u8]) -> StateResult<Option<Vec<u8>>> {
        self.check_entry(key);
        if let Some((_, v)) = self.tx_entries.iter().rev().find(|(k, _)| k == key) {
            return Ok(Some(v.clone()));
        }
        match self.kv.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None => self.db.get_kv(key),
        }
    }

    fn put_entry(&mut self, key: &[u8], value: &[u8]) {
        self.check_entry(key);
        self.tx_entries.push((key.to_vec(), value.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(i: u8) -> StateKey {
        StateKey::Account(Address([i; 20]))
    }

    #[test]
    fn txs_sharing_a_key_land_in_one_group_in_block_order() {
        // 0: a-b, 1: c-d, 2: b-e (joins 0), 3: f, 4: e-c (joins 0 and 1).
        let keys = vec![
            vec![acc(1), acc(2)],
            vec![acc(3), acc(4)],
            vec![acc(2), acc(5)],
            vec![acc(6)],
            vec![acc(5), acc(3)],
        ];
        assert_eq!(groups(&keys), vec![vec![0, 1, 2, 4], vec![3]]);
        let apart = vec![vec![acc(1)], vec![acc(2)], vec![acc(3)], vec![acc(4)]];
        let b = deal(&groups(&apart), 2);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
        assert!(b.iter().all(|x| x.windows(2).all(|w| w[0] < w[1])));
    }
}
