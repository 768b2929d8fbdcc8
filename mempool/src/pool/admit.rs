//! Admission (CheckTx), written once for every app: the cheap checks first (size, decode and
//! the app's stateless checks, duplicate, room, the sender lane's nonce and funds), then
//! signature verification, alone or batched, then insertion under the pool lock. A batch gets
//! exactly the verdicts its txs would get one by one.

use super::{Entry, Inner, Mempool, SenderQueue};
use crate::error::{CheckTxError, RejectReason};
use std::collections::{HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tpslab_app::{App, AppVisitor, Lane, LaneState, TxContext};
use tpslab_types::{Address, Hash, StateView, TypesError};

/// The chain's app as the pool uses it: the generic admission below, instantiated for one
/// app, behind one dynamic call per CheckTx or batch.
pub(super) trait Admission<S: StateView>: Send + Sync {
    fn check_one(&self, pool: &Mempool<S>, raw: &[u8]) -> Result<Hash, CheckTxError>;
    fn check_many(&self, pool: &Mempool<S>, raws: &[&[u8]]) -> Vec<Result<Hash, CheckTxError>>;
    fn lane_state(&self, state: &S, sender: &Address) -> Result<LaneState, S::Error>;
}

impl<S: StateView, A: App> Admission<S> for A {
    fn check_one(&self, pool: &Mempool<S>, raw: &[u8]) -> Result<Hash, CheckTxError> {
        pool.check_one(self, raw)
    }

    fn check_many(&self, pool: &Mempool<S>, raws: &[&[u8]]) -> Vec<Result<Hash, CheckTxError>> {
        pool.check_batch(self, raws)
    }

    fn lane_state(&self, state: &S, sender: &Address) -> Result<LaneState, S::Error> {
        App::lane_state(self, state, sender)
    }
}

/// Picks the [`Admission`] of the app a chain names.
pub(super) struct ForApp<S>(pub(super) PhantomData<fn() -> S>);

impl<S: StateView> AppVisitor for ForApp<S> {
    type Output = Box<dyn Admission<S>>;
    fn visit<A: App>(self, app: A) -> Box<dyn Admission<S>> {
        Box::new(app)
    }
}

impl<S: StateView> Mempool<S> {
    /// Admits `raw` if it is a valid tx that fits; returns its hash.
    pub fn check_tx(&self, raw: &[u8]) -> Result<Hash, CheckTxError> {
        self.app.check_one(self, raw)
    }

    /// Admits several txs, in order, as [`Mempool::check_tx`] would one by one; with the
    /// sig-batch toggle their signatures are verified in one batch.
    pub fn check_txs(&self, raws: &[&[u8]]) -> Vec<Result<Hash, CheckTxError>> {
        // Under a stable symbol, so the eBPF funclatency uprobes can time CheckTx batches.
        tpslab_probe_points::check_txs(raws.len() as u64, 0, || self.app.check_many(self, raws))
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

    fn check_one<A: App>(&self, app: &A, raw: &[u8]) -> Result<Hash, CheckTxError> {
        let r = self.precheck(app, raw, None).and_then(|(tx, hash)| {
            if A::SIGNED && !app.verify_one(&tx) {
                return Err(CheckTxError::Invalid(TypesError::BadSignature));
            }
            self.admit(app, raw, &tx, hash)
        });
        self.count(&r);
        r
    }

    fn check_batch<A: App>(&self, app: &A, raws: &[&[u8]]) -> Vec<Result<Hash, CheckTxError>> {
        if !A::SIGNED || !self.cfg.sig_batch || raws.len() < 2 {
            return raws.iter().map(|r| self.check_one(app, r)).collect();
        }
        // Earlier txs of the batch count as pending for the nonce and balance prechecks of
        // later ones from the same sender, as they would one by one.
        let mut overlay = Ahead::default();
        let pre: Vec<Result<(A::Tx<'_>, Hash), CheckTxError>> = raws
            .iter()
            .map(|r| self.precheck(app, r, Some(&mut overlay)))
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
            let refs: Vec<&(A::Tx<'_>, Hash)> =
                pick.iter().filter_map(|&i| pre[i].as_ref().ok()).collect();
            let txs: Vec<&A::Tx<'_>> = refs.iter().map(|(tx, _)| tx).collect();
            let verified = app.verify(&txs, true);
            for (&i, (ok, (tx, hash))) in pick.iter().zip(verified.into_iter().zip(refs)) {
                out[i] = Some(if ok {
                    self.admit(app, raws[i], tx, *hash)
                } else {
                    Err(CheckTxError::Invalid(TypesError::BadSignature))
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

    /// Everything refusable before the signature, cheapest first: size, decoding and the
    /// app's stateless checks, duplicate, a full pool, and the sender lane's nonce and
    /// balance (read from its pending queue, or one state read). A verification costs
    /// ~50 us; none of these costs more than a lookup, so a flood of txs that cannot be
    /// admitted spends no verification at all. `insert` checks room, nonce and balance again
    /// under the lock (they may have changed). `overlay` (batches): what the earlier txs of
    /// the batch that passed will have done to the pool by the time this one is admitted.
    /// Returns the decoded tx and its hash.
    fn precheck<'r, A: App>(
        &self,
        app: &A,
        raw: &'r [u8],
        mut overlay: Option<&mut Ahead>,
    ) -> Result<(A::Tx<'r>, Hash), CheckTxError> {
        if raw.len() > self.cfg.max_tx_bytes {
            return Err(CheckTxError::TooLarge {
                size: raw.len(),
                max: self.cfg.max_tx_bytes,
            });
        }
        let ctx = TxContext {
            chain_id: &self.cfg.chain_id,
            buffer_pool: self.cfg.buffer_pool,
        };
        let tx = app.decode(raw, &ctx)?;
        let hash = app.hash(&tx);
        let lane = app.lane(&tx);
        let pending = {
            let g = self.lock();
            let earlier = overlay.as_ref().is_some_and(|o| o.hashes.contains(&hash));
            if earlier || g.seen.contains(&hash) {
                return Err(CheckTxError::Duplicate { hash });
            }
            self.check_room(&g, raw.len())?;
            lane.and_then(|l| g.senders.get(&l.sender).map(SenderQueue::state))
        };
        if let Some(lane) = lane {
            let ahead = overlay
                .as_ref()
                .and_then(|o| o.senders.get(&lane.sender).copied());
            let st = match ahead.or(pending) {
                Some(st) => st,
                None => self.committed(app, &lane.sender)?,
            };
            check_nonce_and_funds(&lane, st)?;
            if let Some(o) = overlay.as_mut() {
                let cost = lane.cost.unwrap_or(u64::MAX);
                o.senders.insert(
                    lane.sender,
                    LaneState {
                        next_nonce: st.next_nonce + 1,
                        available: st.available - cost,
                    },
                );
            }
        }
        if let Some(o) = overlay {
            o.hashes.insert(hash);
        }
        Ok((tx, hash))
    }

    /// A sender lane's committed state.
    fn committed<A: App>(&self, app: &A, sender: &Address) -> Result<LaneState, CheckTxError> {
        app.lane_state(&self.state, sender)
            .map_err(|e| CheckTxError::State(e.to_string()))
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

    /// After the signature verified: record it, insert, wake the producer. `hash` is the
    /// one precheck computed (kvstore hashes on demand: 512 B of SHA-256 each time).
    fn admit<A: App>(
        &self,
        app: &A,
        raw: &[u8],
        tx: &A::Tx<'_>,
        hash: Hash,
    ) -> Result<Hash, CheckTxError> {
        if let Some(c) = self.sig_cache.as_ref().filter(|_| A::SIGNED) {
            c.insert(hash);
        }
        let len = self.insert(app, raw, hash, app.lane(tx))?;
        self.wake_if_due(len);
        Ok(hash)
    }

    /// Wakes a producer waiting for `len` pending txs.
    fn wake_if_due(&self, len: usize) {
        if len >= self.wake_at.load(Ordering::Relaxed) {
            self.notify.notify_one();
        }
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

    /// The stateful part of admission, under the lock: new, room, and (for a tx in a sender
    /// lane) the lane's nonce and funds. Returns the new pool size.
    fn insert<A: App>(
        &self,
        app: &A,
        raw: &[u8],
        hash: Hash,
        lane: Option<Lane>,
    ) -> Result<usize, CheckTxError> {
        let mut g = self.lock();
        let inner = &mut *g;
        if inner.seen.contains(&hash) {
            return Err(CheckTxError::Duplicate { hash });
        }
        self.check_room(inner, raw.len())?;
        inner.seq += 1;
        let seq = inner.seq;
        let Some(lane) = lane else {
            inner.fifo.push_back((seq, hash));
            return Ok(self.store(inner, hash, raw, (0, 0), seq));
        };
        let st = match inner.senders.get(&lane.sender) {
            Some(q) => q.state(),
            None => self.committed(app, &lane.sender)?,
        };
        check_nonce_and_funds(&lane, st)?;
        let cost = lane.cost.unwrap_or(u64::MAX);
        let q = inner.senders.entry(lane.sender).or_insert(SenderQueue {
            first_seq: seq,
            next_nonce: st.next_nonce,
            available: st.available,
            txs: VecDeque::new(),
        });
        q.next_nonce += 1;
        q.available -= cost;
        q.txs.push_back(hash);
        Ok(self.store(inner, hash, raw, (lane.nonce, cost), seq))
    }

    /// Stores an admitted tx (already queued for its ordering); returns the new pool size.
    /// `lane` is the tx's (nonce, cost), zeros without a lane; `seq` its arrival number.
    fn store(
        &self,
        inner: &mut Inner,
        hash: Hash,
        raw: &[u8],
        lane: (u64, u64),
        seq: u64,
    ) -> usize {
        let (nonce, cost) = lane;
        inner.txs.insert(
            hash,
            Entry {
                raw: Arc::from(raw),
                nonce,
                cost,
                admitted: Instant::now(),
                proposed: false,
                seq,
            },
        );
        inner.bytes += raw.len();
        inner.seen.insert(hash);
        self.metrics.size.set(inner.txs.len() as i64);
        inner.txs.len()
    }
}

/// The earlier txs of a CheckTx batch that passed the prechecks: their lanes' next state,
/// and their hashes (a later copy is a duplicate).
#[derive(Default)]
struct Ahead {
    senders: HashMap<Address, LaneState>,
    hashes: HashSet<Hash>,
}

/// Strict nonces (exactly the lane's next one) and enough funds for the tx's cost.
fn check_nonce_and_funds(lane: &Lane, st: LaneState) -> Result<(), CheckTxError> {
    if lane.nonce < st.next_nonce {
        return Err(CheckTxError::NonceTooLow {
            expected: st.next_nonce,
            got: lane.nonce,
        });
    }
    if lane.nonce > st.next_nonce {
        return Err(CheckTxError::NonceTooHigh {
            expected: st.next_nonce,
            got: lane.nonce,
        });
    }
    match lane.cost {
        Some(cost) if cost <= st.available => Ok(()),
        cost => Err(CheckTxError::InsufficientFunds {
            available: st.available,
            cost: cost.unwrap_or(u64::MAX),
        }),
    }
}
