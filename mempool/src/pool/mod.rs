//! The pending-tx pool: per-sender nonce-ordered queues (apps whose txs have a sender lane,
//! like transfer) or one arrival-order queue (apps without, like kvstore), under one mutex.
//! Admission is in `admit.rs`.

mod admit;
mod side;

use crate::config::MempoolConfig;
use crate::error::{CheckTxError, RejectReason};
use crate::metrics::MempoolMetrics;
use crate::seen::SeenCache;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;
use tpslab_app::LaneState;
use tpslab_types::sigcache::SigCache;
use tpslab_types::stages::{Stage, StageLatencies};
use tpslab_types::{Address, Hash, StateView};

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
    /// Arrival number: a `fifo` entry stands for this tx only while the numbers match.
    seq: u64,
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

impl SenderQueue {
    /// The lane's state after its pending txs.
    fn state(&self) -> LaneState {
        LaneState {
            next_nonce: self.next_nonce,
            available: self.available,
        }
    }
}

struct Inner {
    txs: HashMap<Hash, Entry>,
    senders: HashMap<Address, SenderQueue>,
    /// kvstore txs in arrival order (they have no sender or nonce), with their arrival
    /// numbers. Committed ones leave lazily (see [`Mempool::update`]): an entry whose tx is
    /// gone, or was admitted again since, is stale and skipped.
    fifo: VecDeque<(u64, Hash)>,
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
pub struct Mempool<S: StateView> {
    cfg: MempoolConfig,
    /// The chain's app: decoding, stateless checks, lanes and signatures.
    app: Box<dyn admit::Admission<S>>,
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
    /// Gossiped txs refused for want of room, for rebuilding compact proposals.
    side: Mutex<side::SidePool>,
}

impl<S: StateView> Mempool<S> {
    /// An empty mempool checking against `state`, for the app `cfg.app` names.
    pub fn new(cfg: MempoolConfig, state: S) -> Self {
        let app = tpslab_app::visit(cfg.app, admit::ForApp(PhantomData));
        Mempool::with_admission(cfg, state, app)
    }

    /// An empty mempool admitting `app`'s txs (`cfg.app` is ignored): for apps outside the
    /// registry, such as a test's.
    pub fn for_app<A: tpslab_app::App>(app: A, cfg: MempoolConfig, state: S) -> Self {
        Mempool::with_admission(cfg, state, Box::new(app))
    }

    fn with_admission(cfg: MempoolConfig, state: S, app: Box<dyn admit::Admission<S>>) -> Self {
        let seen = SeenCache::new(cfg.cache_size);
        let metrics = MempoolMetrics::default();
        metrics.capacity_txs.set(cfg.max_txs as i64);
        metrics.capacity_bytes.set(cfg.max_bytes as i64);
        Mempool {
            app,
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
            metrics,
            sig_cache: None,
            stages: Arc::default(),
            // As many txs as the pool and half its bytes: a proposal reaps the proposer's
            // oldest txs, which a full peer refused seconds before (at 50k tx/s offered, a
            // quarter of the pool held too little and 26 % of block txs were still fetched;
            // this size fetched none, peak RSS unchanged at 520-590 MiB).
            side: Mutex::new(side::SidePool::new(cfg.max_txs, cfg.max_bytes / 2)),
            cfg,
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

    /// Up to `max_txs` txs and `max_bytes` bytes for a proposal, in a fair deterministic order:
    /// round-robin over senders (in the order they first arrived), each sender's txs in nonce
    /// order; txs without a lane in arrival order. Reaped txs stay pending until [`Mempool::update`]
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
        // Takes `h` (if `seq` is its arrival number, when given) if it fits; false once the
        // proposal is full.
        let mut take = |h: &Hash, seq: Option<u64>| -> bool {
            let Some(e) = txs.get_mut(h).filter(|e| seq.is_none_or(|s| s == e.seq)) else {
                return true;
            };
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
        // An app's txs are all in lanes or all in the fifo.
        let fifo_full = fifo.iter().any(|(s, h)| !take(h, Some(*s)));
        if !fifo_full {
            let mut queues: Vec<&SenderQueue> = senders.values().collect();
            queues.sort_unstable_by_key(|q| q.first_seq);
            'rounds: for round in 0.. {
                let mut any = false;
                for q in &queues {
                    let Some(h) = q.txs.get(round) else { continue };
                    any = true;
                    if !take(h, None) {
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
    /// Every sender is rechecked (the naive path) unless `touched` lists the accounts the
    /// block wrote (the recheck-incremental toggle: the block pipeline asks execution for them
    /// only when it is on): a sender the block did not write has the same committed nonce and
    /// balance as before, so its queue is still valid.
    pub fn update(&self, committed: &[Hash], touched: Option<&HashSet<Address>>) -> UpdateStats {
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
        // Proposals reap the oldest txs, so most committed ones are at the front; the rest
        // (a peer's proposal orders txs as they reached it) stay as stale entries that reap
        // skips, until they outnumber the pending txs. Removing each from the middle at once
        // cost a lookup per pending tx per block (~5 % of a validator's CPU at 25k tx/s).
        let live = |(s, h): &(u64, Hash)| txs.get(h).is_some_and(|e| e.seq == *s);
        while fifo.front().is_some_and(|x| !live(x)) {
            fifo.pop_front();
        }
        if fifo.len() > 2 * txs.len() + 1024 {
            fifo.retain(live);
        }
        senders.retain(|addr, q| {
            let before = q.txs.len();
            q.txs.retain(|h| txs.contains_key(h));
            // Untouched and nothing of it committed: its state read would change nothing.
            if before == q.txs.len() && touched.is_some_and(|t| !t.contains(addr)) {
                return true;
            }
            let st = match self.app.lane_state(&self.state, addr) {
                Ok(st) => st,
                // Keep the queue as it is; the next update rechecks it again.
                Err(_) => return !q.txs.is_empty(),
            };
            q.next_nonce = st.next_nonce;
            q.available = st.available;
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

    /// The pending txs with these hashes, in order (None where not pending), under one lock:
    /// a compact block's txs looked up by the peers rebuilding it.
    pub fn lookup(&self, hashes: &[Hash]) -> Vec<Option<Arc<[u8]>>> {
        let mut out: Vec<Option<Arc<[u8]>>> = {
            let g = self.lock();
            hashes
                .iter()
                .map(|h| g.txs.get(h).map(|e| e.raw.clone()))
                .collect()
        };
        if out.iter().any(Option::is_none) {
            let side = self.side.lock();
            for (slot, h) in out.iter_mut().zip(hashes) {
                if slot.is_none() {
                    *slot = side.get(h);
                }
            }
        }
        out
    }

    /// Keeps gossiped txs the pool refused for want of room ([`CheckTxError::Full`]) aside,
    /// so a compact proposal carrying them needs no fetch; only [`Mempool::lookup`] sees them.
    pub fn keep_refused(&self, raws: &[&[u8]], results: &[Result<Hash, CheckTxError>]) {
        let full: Vec<&[u8]> = raws
            .iter()
            .zip(results)
            .filter(|(_, r)| matches!(r, Err(e) if e.reason() == RejectReason::MempoolFull))
            .map(|(raw, _)| *raw)
            .collect();
        if full.is_empty() {
            return;
        }
        let hashed: Vec<(Hash, &[u8])> = full
            .iter()
            .map(|r| (tpslab_types::tx::tx_hash(r), *r))
            .collect();
        let mut side = self.side.lock();
        for (h, raw) in hashed {
            side.keep(h, raw);
        }
        self.metrics.side_pool.set(side.len() as i64);
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
