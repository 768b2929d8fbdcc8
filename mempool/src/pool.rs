//! The pending-tx pool: per-sender nonce-ordered queues (transfer app) or one arrival-order
//! queue (kvstore app), under one mutex.

use crate::config::MempoolConfig;
use crate::error::{CheckTxError, RejectReason};
use crate::metrics::MempoolMetrics;
use crate::seen::SeenCache;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;
use tpslab_types::app::parse_kv;
use tpslab_types::sigcache::SigCache;
use tpslab_types::stages::{Stage, StageLatencies};
use tpslab_types::tx::{tx_hash, verify_signatures, ParsedTx};
use tpslab_types::{Address, App, Hash, StateView};

/// A pending tx.
struct Entry {
    raw: Arc<[u8]>,
    nonce: u64,
    cost: u64,
    /// When it was admitted, for the `mempool` stage latency.
    admitted: Instant,
    /// Whether it has been reaped into a proposal before (a failed round reaps it again; only
    /// the first time counts as its wait).
    proposed: bool,
}

/// One sender's pending txs, contiguous nonces from the committed nonce up.
struct SenderQueue {
    /// Arrival order of the queue's first tx; reaping visits senders in this order.
    first_seq: u64,
    /// Nonce the sender's next tx must carry.
    next_nonce: u64,
    /// Committed balance minus the cost of the pending txs.
    available: u64,
    txs: VecDeque<Hash>,
}

struct Inner {
    txs: HashMap<Hash, Entry>,
    senders: HashMap<Address, SenderQueue>,
    /// kvstore txs in arrival order (they have no sender or nonce).
    fifo: VecDeque<Hash>,
    bytes: usize,
    seq: u64,
    seen: SeenCache,
}

/// What [`Mempool::update`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Committed txs removed.
    pub removed: usize,
    /// Pending txs dropped because the new state made them invalid.
    pub evicted: usize,
    /// Txs still pending.
    pub remaining: usize,
}

/// The mempool. Share it behind an `Arc`.
pub struct Mempool<S> {
    cfg: MempoolConfig,
    state: S,
    inner: Mutex<Inner>,
    /// Wakes the block producer once `wake_at` txs are pending.
    notify: Notify,
    wake_at: AtomicUsize,
    metrics: MempoolMetrics,
    /// sig-cache toggle: where verified tx hashes are recorded for block execution.
    sig_cache: Option<Arc<SigCache>>,
    /// The node's stage latencies; the pool times the `mempool` stage.
    stages: Arc<StageLatencies>,
}

impl<S: StateView> Mempool<S> {
    /// An empty mempool checking against `state`.
    pub fn new(cfg: MempoolConfig, state: S) -> Self {
        let seen = SeenCache::new(cfg.cache_size);
        Mempool {
            cfg,
            state,
            inner: Mutex::new(Inner {
                txs: HashMap::new(),
                senders: HashMap::new(),
                fifo: VecDeque::new(),
                bytes: 0,
                seq: 0,
                seen,
            }),
            notify: Notify::new(),
            wake_at: AtomicUsize::new(usize::MAX),
            metrics: MempoolMetrics::default(),
            sig_cache: None,
            stages: Arc::default(),
        }
    }

    /// Records every verified tx in `cache` (the sig-cache toggle).
    pub fn with_sig_cache(mut self, cache: Arc<SigCache>) -> Self {
        self.sig_cache = Some(cache);
        self
    }

    /// Takes the pool lock, counting the time spent waiting for it (uncontended: ~50 ns of
    /// clock reads; contended: the wait shows in `mempool_lock_wait_seconds`).
    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        if let Some(g) = self.inner.try_lock() {
            return g;
        }
        let t = std::time::Instant::now();
        let g = self.inner.lock();
        self.metrics.lock_wait.inc_by(t.elapsed().as_secs_f64());
        g
    }

    /// Times the `mempool` stage (admission to first reap) into the node's `stages`.
    pub fn with_stages(mut self, stages: Arc<StageLatencies>) -> Self {
        self.stages = stages;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &MempoolConfig {
        &self.cfg
    }

    /// The mempool's metrics.
    pub fn metrics(&self) -> &MempoolMetrics {
        &self.metrics
    }

    /// Admits `raw` if it is a valid tx that fits; returns its hash.
    pub fn check_tx(&self, raw: &[u8]) -> Result<Hash, CheckTxError> {
        let r = self.check_tx_inner(raw);
        self.count(&r);
        r
    }

    fn count(&self, r: &Result<Hash, CheckTxError>) {
        match r {
            Ok(hash) => tracing::debug!(tx = %hash, size = self.metrics.size.get(), "tx accepted"),
            Err(e) => {
                self.metrics.failed_txs.inc();
                if e.reason() == RejectReason::Duplicate {
                    self.metrics.already_received_txs.inc();
                }
                tracing::debug!(error = %e, "tx rejected");
            }
        }
    }

    /// Admits several txs, in order, as [`Mempool::check_tx`] would one by one; with the
    /// sig-batch toggle their signatures are verified in one batch.
    pub fn check_txs(&self, raws: &[&[u8]]) -> Vec<Result<Hash, CheckTxError>> {
        // Under a stable symbol, so the eBPF funclatency uprobes can time CheckTx batches.
        tpslab_probe_points::check_txs(raws.len() as u64, 0, || self.check_batch(raws))
    }

    fn check_batch(&self, raws: &[&[u8]]) -> Vec<Result<Hash, CheckTxError>> {
        if self.cfg.app == App::KvStore || !self.cfg.sig_batch || raws.len() < 2 {
            return raws.iter().map(|r| self.check_tx(r)).collect();
        }
        // Earlier txs of the batch count as pending for the nonce and balance prechecks of
        // later ones from the same sender, as they would one by one.
        let mut overlay = Ahead::default();
        let pre: Vec<Result<ParsedTx, CheckTxError>> = raws
            .iter()
            .map(|r| self.precheck(r, Some(&mut overlay)))
            .collect();
        let mut out: Vec<Option<Result<Hash, CheckTxError>>> = pre
            .iter()
            .map(|p| p.as_ref().err().map(|e| Err(e.clone())))
            .collect();
        // Verify only what the pool has room for, in rounds: take candidates in order while
        // they fit, verify them in one batch, admit the good ones, and go on with the room
        // that is really left. A flood at a full pool is refused without one verification,
        // and each tx gets the verdict it would get one by one.
        let cand: Vec<usize> = (0..pre.len()).filter(|&i| pre[i].is_ok()).collect();
        let mut k = 0;
        while k < cand.len() {
            let (mut room_txs, mut room_bytes) = self.room();
            let mut pick = Vec::new();
            while let Some(&i) = cand.get(k) {
                let size = raws[i].len();
                if room_txs == 0 || size > room_bytes {
                    break;
                }
                room_txs -= 1;
                room_bytes -= size;
                pick.push(i);
                k += 1;
            }
            if pick.is_empty() {
                out[cand[k]] = Some(Err(self.full_error()));
                k += 1;
                continue;
            }
            let refs: Vec<&ParsedTx> = pick.iter().filter_map(|&i| pre[i].as_ref().ok()).collect();
            let verified = verify_signatures(&refs, true);
            for (&i, (ok, tx)) in pick.iter().zip(verified.into_iter().zip(refs)) {
                out[i] = Some(if ok {
                    self.admit(raws[i], tx)
                } else {
                    Err(CheckTxError::Invalid(
                        tpslab_types::TypesError::BadSignature,
                    ))
                });
            }
        }
        let out: Vec<Result<Hash, CheckTxError>> = out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(self.full_error())))
            .collect();
        for r in &out {
            self.count(r);
        }
        out
    }

    /// Everything refusable before the signature, cheapest first: size, decoding, chain id,
    /// duplicate, a full pool, and the sender's nonce and balance (read from its pending
    /// queue, or one state read). A verification costs ~50 us; none of these costs more than
    /// a lookup, so a flood of txs that cannot be admitted spends no verification at all.
    /// `insert` checks room, nonce and balance again under the lock (they may have changed).
    /// `overlay` (batches): what the earlier txs of the batch that passed will have done to
    /// the pool by the time this one is admitted.
    fn precheck(
        &self,
        raw: &[u8],
        mut overlay: Option<&mut Ahead>,
    ) -> Result<ParsedTx, CheckTxError> {
        if raw.len() > self.cfg.max_tx_bytes {
            return Err(CheckTxError::TooLarge {
                size: raw.len(),
                max: self.cfg.max_tx_bytes,
            });
        }
        let tx = ParsedTx::decode_with(raw, self.cfg.buffer_pool)?;
        tx.check_chain_id(&self.cfg.chain_id)?;
        let pending = {
            let g = self.lock();
            let earlier = overlay
                .as_ref()
                .is_some_and(|o| o.hashes.contains(&tx.hash));
            if earlier || g.seen.contains(&tx.hash) {
                return Err(CheckTxError::Duplicate { hash: tx.hash });
            }
            self.check_room(&g, raw.len())?;
            g.senders
                .get(&tx.sender)
                .map(|q| (q.next_nonce, q.available))
        };
        let ahead = overlay
            .as_ref()
            .and_then(|o| o.senders.get(&tx.sender).copied());
        let (next_nonce, available) = match ahead.or(pending) {
            Some(p) => p,
            None => self.committed(&tx.sender)?,
        };
        check_nonce_and_funds(&tx, next_nonce, available)?;
        if let Some(o) = overlay.as_mut() {
            let cost = tx.cost().unwrap_or(u64::MAX);
            o.senders
                .insert(tx.sender, (next_nonce + 1, available - cost));
            o.hashes.insert(tx.hash);
        }
        Ok(tx)
    }

    /// A sender's committed nonce and balance, from the state.
    fn committed(&self, sender: &Address) -> Result<(u64, u64), CheckTxError> {
        let acc = self
            .state
            .account(sender)
            .map_err(|e| CheckTxError::State(e.to_string()))?;
        Ok((acc.nonce, acc.balance))
    }

    /// Free room in txs and bytes.
    fn room(&self) -> (usize, usize) {
        let g = self.lock();
        (
            self.cfg.max_txs.saturating_sub(g.txs.len()),
            self.cfg.max_bytes.saturating_sub(g.bytes),
        )
    }

    fn full_error(&self) -> CheckTxError {
        let g = self.lock();
        CheckTxError::Full {
            txs: g.txs.len(),
            bytes: g.bytes,
            max_txs: self.cfg.max_txs,
            max_bytes: self.cfg.max_bytes,
        }
    }

    /// After the signature verified: record it, insert, wake the producer.
    fn admit(&self, raw: &[u8], tx: &ParsedTx) -> Result<Hash, CheckTxError> {
        if let Some(c) = &self.sig_cache {
            c.insert(tx.hash);
        }
        let len = self.insert(raw, tx)?;
        if len >= self.wake_at.load(Ordering::Relaxed) {
            self.notify.notify_one();
        }
        Ok(tx.hash)
    }

    fn check_tx_inner(&self, raw: &[u8]) -> Result<Hash, CheckTxError> {
        if self.cfg.app == App::KvStore {
            return self.check_kv(raw);
        }
        let tx = self.precheck(raw, None)?;
        tx.verify_signature()?;
        self.admit(raw, &tx)
    }

    /// Admission of a kvstore tx: well-formed, new, and room for it.
    fn check_kv(&self, raw: &[u8]) -> Result<Hash, CheckTxError> {
        parse_kv(raw)?;
        let hash = tx_hash(raw);
        let len = {
            let mut g = self.lock();
            let inner = &mut *g;
            if inner.seen.contains(&hash) {
                return Err(CheckTxError::Duplicate { hash });
            }
            self.check_room(inner, raw.len())?;
            inner.fifo.push_back(hash);
            inner.txs.insert(
                hash,
                Entry {
                    raw: Arc::from(raw),
                    nonce: 0,
                    cost: 0,
                    admitted: Instant::now(),
                    proposed: false,
                },
            );
            inner.bytes += raw.len();
            inner.seen.insert(hash);
            self.metrics.size.set(inner.txs.len() as i64);
            inner.txs.len()
        };
        if len >= self.wake_at.load(Ordering::Relaxed) {
            self.notify.notify_one();
        }
        Ok(hash)
    }

    fn check_room(&self, inner: &Inner, size: usize) -> Result<(), CheckTxError> {
        if inner.txs.len() >= self.cfg.max_txs || inner.bytes + size > self.cfg.max_bytes {
            return Err(CheckTxError::Full {
                txs: inner.txs.len(),
                bytes: inner.bytes,
                max_txs: self.cfg.max_txs,
                max_bytes: self.cfg.max_bytes,
            });
        }
        Ok(())
    }

    /// The stateful part of admission, under the lock. Returns the new pool size.
    fn insert(&self, raw: &[u8], tx: &ParsedTx) -> Result<usize, CheckTxError> {
        let mut g = self.lock();
        let inner = &mut *g;
        if inner.seen.contains(&tx.hash) {
            return Err(CheckTxError::Duplicate { hash: tx.hash });
        }
        self.check_room(inner, raw.len())?;
        let cost = tx.cost().unwrap_or(u64::MAX);
        let (next_nonce, available) = match inner.senders.get(&tx.sender) {
            Some(q) => (q.next_nonce, q.available),
            None => self.committed(&tx.sender)?,
        };
        check_nonce_and_funds(tx, next_nonce, available)?;
        let nonce = tx.tx.nonce;
        inner.seq += 1;
        let seq = inner.seq;
        let q = inner.senders.entry(tx.sender).or_insert(SenderQueue {
            first_seq: seq,
            next_nonce,
            available,
            txs: VecDeque::new(),
        });
        q.next_nonce += 1;
        q.available -= cost;
        q.txs.push_back(tx.hash);
        inner.txs.insert(
            tx.hash,
            Entry {
                raw: Arc::from(raw),
                nonce,
                cost,
                admitted: Instant::now(),
                proposed: false,
            },
        );
        inner.bytes += raw.len();
        inner.seen.insert(tx.hash);
        self.metrics.size.set(inner.txs.len() as i64);
        Ok(inner.txs.len())
    }

    /// Up to `max_txs` txs and `max_bytes` bytes for a proposal, in a fair deterministic order:
    /// round-robin over senders (in the order they first arrived), each sender's txs in nonce
    /// order; kvstore txs in arrival order. Reaped txs stay pending until [`Mempool::update`]
    /// sees them committed.
    pub fn reap(&self, max_txs: usize, max_bytes: usize) -> Vec<Arc<[u8]>> {
        let mut g = self.lock();
        let now = Instant::now();
        let mut waits = Vec::new();
        let Inner {
            txs, senders, fifo, ..
        } = &mut *g;
        let mut out = Vec::with_capacity(max_txs.min(txs.len()));
        let mut bytes = 0usize;
        // Takes `h` if it fits; false once the proposal is full.
        let mut take = |h: &Hash| -> bool {
            let Some(e) = txs.get_mut(h) else { return true };
            if out.len() >= max_txs || bytes + e.raw.len() > max_bytes {
                return false;
            }
            if !e.proposed {
                e.proposed = true;
                waits.push(now.saturating_duration_since(e.admitted));
            }
            bytes += e.raw.len();
            out.push(e.raw.clone());
            true
        };
        if self.cfg.app == App::KvStore {
            for h in fifo.iter() {
                if !take(h) {
                    break;
                }
            }
        } else {
            let mut queues: Vec<&SenderQueue> = senders.values().collect();
            queues.sort_unstable_by_key(|q| q.first_seq);
            'rounds: for round in 0.. {
                let mut any = false;
                for q in &queues {
                    let Some(h) = q.txs.get(round) else { continue };
                    any = true;
                    if !take(h) {
                        break 'rounds;
                    }
                }
                if !any {
                    break;
                }
            }
        }
        drop(g);
        self.stages.record_all(Stage::Mempool, waits);
        out
    }

    /// After a block commit: removes the committed txs, then rechecks the remaining senders
    /// against the new state (nonce continuity and balance), dropping what became invalid.
    /// Every sender is rechecked (the naive path) unless the recheck-incremental toggle is on
    /// and `touched` lists the accounts the block wrote: a sender the block did not write has
    /// the same committed nonce and balance as before, so its queue is still valid.
    pub fn update(&self, committed: &[Hash], touched: Option<&HashSet<Address>>) -> UpdateStats {
        let touched = touched.filter(|_| self.cfg.recheck_incremental);
        let mut g = self.lock();
        let inner = &mut *g;
        let mut stats = UpdateStats::default();
        for h in committed {
            if let Some(e) = inner.txs.remove(h) {
                inner.bytes -= e.raw.len();
                stats.removed += 1;
            }
            // Committed txs stay in `seen`, so a resubmission is reported as a duplicate.
            inner.seen.insert(*h);
        }
        let Inner {
            txs,
            senders,
            fifo,
            bytes,
            seen,
            ..
        } = inner;
        fifo.retain(|h| txs.contains_key(h));
        senders.retain(|addr, q| {
            let before = q.txs.len();
            q.txs.retain(|h| txs.contains_key(h));
            // Untouched and nothing of it committed: its state read would change nothing.
            if before == q.txs.len() && touched.is_some_and(|t| !t.contains(addr)) {
                return true;
            }
            let acc = match self.state.account(addr) {
                Ok(a) => a,
                // Keep the queue as it is; the next update rechecks it again.
                Err(_) => return !q.txs.is_empty(),
            };
            q.next_nonce = acc.nonce;
            q.available = acc.balance;
            let mut keep = VecDeque::with_capacity(q.txs.len());
            for h in q.txs.drain(..) {
                let Some(e) = txs.get(&h) else { continue };
                let valid = e.nonce == q.next_nonce && e.cost <= q.available;
                if valid {
                    q.next_nonce += 1;
                    q.available -= e.cost;
                    keep.push_back(h);
                } else if let Some(e) = txs.remove(&h) {
                    *bytes -= e.raw.len();
                    seen.remove(&h);
                    stats.evicted += 1;
                }
            }
            q.txs = keep;
            !q.txs.is_empty()
        });
        stats.remaining = txs.len();
        self.metrics.size.set(txs.len() as i64);
        stats
    }

    /// Number of pending txs.
    pub fn size(&self) -> usize {
        self.lock().txs.len()
    }

    /// Total bytes of pending txs.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Waits until at least `n` txs are pending (or a spurious wake-up; callers re-check).
    pub async fn wait_for_txs(&self, n: usize) {
        self.wake_at.store(n.max(1), Ordering::Relaxed);
        if self.size() >= n {
            return;
        }
        self.notify.notified().await;
    }
}

/// The earlier txs of a CheckTx batch that passed the prechecks: their senders' next nonce
/// and available balance, and their hashes (a later copy is a duplicate).
#[derive(Default)]
struct Ahead {
    senders: HashMap<Address, (u64, u64)>,
    hashes: HashSet<Hash>,
}

/// Strict nonces (exactly the sender's next one) and enough funds for amount + fee.
fn check_nonce_and_funds(
    tx: &ParsedTx,
    next_nonce: u64,
    available: u64,
) -> Result<(), CheckTxError> {
    let nonce = tx.tx.nonce;
    if nonce < next_nonce {
        return Err(CheckTxError::NonceTooLow {
            expected: next_nonce,
            got: nonce,
        });
    }
    if nonce > next_nonce {
        return Err(CheckTxError::NonceTooHigh {
            expected: next_nonce,
            got: nonce,
        });
    }
    match tx.cost() {
        Some(cost) if cost <= available => Ok(()),
        cost => Err(CheckTxError::InsufficientFunds {
            available,
            cost: cost.unwrap_or(u64::MAX),
        }),
    }
}
