//! Admission (CheckTx): the cheap checks first (size, decode, chain id, duplicate, room,
//! nonce and balance), then signature verification, alone or batched, then insertion under
//! the pool lock. A batch gets exactly the verdicts its txs would get one by one.

use super::{Entry, Inner, Mempool, SenderQueue};
use crate::error::{CheckTxError, RejectReason};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tpslab_types::app::parse_kv;
use tpslab_types::tx::{tx_hash, verify_signatures, ParsedTx};
use tpslab_types::{Address, App, Hash, StateView};

impl<S: StateView> Mempool<S> {
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
        self.wake_if_due(len);
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
            self.check_new_and_room(inner, hash, raw.len())?;
            inner.fifo.push_back(hash);
            self.store(inner, hash, raw, 0, 0)
        };
        self.wake_if_due(len);
        Ok(hash)
    }

    /// A tx must not be pending or recently seen, and must fit the pool's limits.
    fn check_new_and_room(
        &self,
        inner: &Inner,
        hash: Hash,
        size: usize,
    ) -> Result<(), CheckTxError> {
        if inner.seen.contains(&hash) {
            return Err(CheckTxError::Duplicate { hash });
        }
        self.check_room(inner, size)
    }

    /// Stores an admitted tx (already queued for its ordering); returns the new pool size.
    fn store(&self, inner: &mut Inner, hash: Hash, raw: &[u8], nonce: u64, cost: u64) -> usize {
        inner.txs.insert(
            hash,
            Entry {
                raw: Arc::from(raw),
                nonce,
                cost,
                admitted: Instant::now(),
                proposed: false,
            },
        );
        inner.bytes += raw.len();
        inner.seen.insert(hash);
        self.metrics.size.set(inner.txs.len() as i64);
        inner.txs.len()
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

    /// The stateful part of admission, under the lock. Returns the new pool size.
    fn insert(&self, raw: &[u8], tx: &ParsedTx) -> Result<usize, CheckTxError> {
        let mut g = self.lock();
        let inner = &mut *g;
        self.check_new_and_room(inner, tx.hash, raw.len())?;
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
        Ok(self.store(inner, tx.hash, raw, nonce, cost))
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
