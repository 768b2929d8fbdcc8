//! Block execution, for whichever app the chain runs: decode every tx and verify the
//! signatures (batched, or skipped for txs in the sig cache), then deliver each tx in order
//! against the committed state plus the block's own earlier writes. A tx that fails (bad
//! signature, wrong nonce, no funds) is skipped and its code recorded, as a Cosmos DeliverTx
//! failure would be; the block itself stays valid.

use crate::block_view::BlockView;
use crate::db::StateDb;
use crate::error::StateResult;
use crate::parallel::MIN_PARALLEL_TXS;
use crate::write_set::WriteSet;
use tpslab_app::{App, AppVisitor, TxContext};
use tpslab_types::sigcache::SigCache;
use tpslab_types::{AppKind, Hash};
use tracing::debug;

pub use tpslab_app::TxCode;

/// What executing a block produced.
#[derive(Clone, Debug, Default)]
pub struct ExecOutcome {
    /// What the block wrote.
    pub write_set: WriteSet,
    /// Per-tx outcome, in block order.
    pub tx_codes: Vec<u32>,
    /// Number of txs applied.
    pub applied: usize,
    /// App hash after the block.
    pub app_hash: Hash,
    /// Worker threads its txs were delivered on (parallel-exec); 0: one after another.
    pub parallel_workers: usize,
}

/// How a block is executed: the app, and the tuning toggles that touch execution.
#[derive(Clone, Copy)]
pub struct ExecOptions<'a> {
    /// The state machine.
    pub app: AppKind,
    /// write-batch toggle off: each applied tx's writes are put to RocksDB at once, synced,
    /// and the block's commit then writes only its record and meta, so each account is
    /// written once. Not crash-atomic: a crash between a tx's put and the block's commit
    /// leaves state ahead of the last committed block (the naive pattern this models has
    /// the same hole). On: nothing is written here; the commit writes it all in one batch.
    pub write_batch: bool,
    /// sig-batch toggle: verify the block's signatures in one batch.
    pub sig_batch: bool,
    /// sig-cache toggle: skip txs whose hash is in the cache (verified at CheckTx).
    pub sig_cache: Option<&'a SigCache>,
    /// buffer-pool toggle: decode txs into pooled messages.
    pub buffer_pool: bool,
    /// parallel-exec toggle: txs that share no state deliver on different threads, their
    /// writes replayed in block order (same codes, writes and app hash as sequential).
    pub parallel: bool,
}

impl ExecOptions<'_> {
    /// `app` with every toggle's tuned path except the cache.
    pub fn new(app: AppKind) -> ExecOptions<'static> {
        ExecOptions {
            app,
            write_batch: true,
            sig_batch: true,
            sig_cache: None,
            buffer_pool: true,
            parallel: true,
        }
    }
}

/// Executes `txs` of block `height` on top of the committed state in `db`, with the app
/// `opts.app` names.
pub fn execute_block(
    db: &StateDb,
    opts: &ExecOptions<'_>,
    chain_id: &str,
    height: u64,
    prev_app_hash: &Hash,
    txs: &[Vec<u8>],
) -> StateResult<ExecOutcome> {
    let block = Execute {
        db,
        opts,
        chain_id,
        height,
        prev_app_hash,
        txs,
    };
    tpslab_app::visit(opts.app, block)
}

/// [`execute_block`] with a given app (`opts.app` is ignored): for apps outside the
/// registry, such as a test's.
pub fn execute_block_with<A: App>(
    app: &A,
    db: &StateDb,
    opts: &ExecOptions<'_>,
    chain_id: &str,
    height: u64,
    prev_app_hash: &Hash,
    txs: &[Vec<u8>],
) -> StateResult<ExecOutcome> {
    let block = Execute {
        db,
        opts,
        chain_id,
        height,
        prev_app_hash,
        txs,
    };
    block.run(app)
}

/// One block's execution, waiting for its app.
struct Execute<'a> {
    db: &'a StateDb,
    opts: &'a ExecOptions<'a>,
    chain_id: &'a str,
    height: u64,
    prev_app_hash: &'a Hash,
    txs: &'a [Vec<u8>],
}

impl AppVisitor for Execute<'_> {
    type Output = StateResult<ExecOutcome>;

    fn visit<A: App>(self, app: A) -> StateResult<ExecOutcome> {
        self.run(&app)
    }
}

impl Execute<'_> {
    fn run<A: App>(self, app: &A) -> StateResult<ExecOutcome> {
        let mut checked = decode_all(app, self.opts, self.chain_id, self.txs);
        let need = checked
            .iter()
            .filter(|c| matches!(c, Ok((_, false))))
            .count();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        // Threads pay for themselves only with signatures to verify: delivery alone is ~1 us
        // a transfer, less than grouping and handing writes back cost (statedb/benches).
        let parallel = self.opts.parallel && threads >= 2 && need >= MIN_PARALLEL_TXS;
        let recorded = if parallel {
            let ready: Vec<(usize, &A::Tx<'_>, bool)> = checked
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().ok().map(|(tx, ok)| (i, tx, !*ok)))
                .collect();
            let sig_batch = self.opts.sig_batch;
            crate::parallel::deliver_all(app, self.db, &ready, checked.len(), threads, sig_batch)?
        } else {
            None
        };
        if recorded.is_none() {
            verify(
                app,
                &mut checked,
                self.opts.sig_batch,
                if parallel { threads } else { 1 },
            );
        }
        let parallel_workers = recorded.as_ref().map_or(0, |r| r.1);
        let mut recorded = recorded.map(|r| r.0);
        let mut write_set = WriteSet::default();
        let mut view = BlockView::new(self.db, &mut write_set, *self.prev_app_hash);
        let mut tx_codes = Vec::with_capacity(checked.len());
        let mut applied = 0;
        for (i, c) in checked.iter().enumerate() {
            let code = match (c, recorded.as_mut()) {
                (Err(code), _) => *code,
                (Ok((tx, _)), Some(outs)) => {
                    let out = std::mem::take(&mut outs[i]);
                    match out.code {
                        Some(code) if out.verified => {
                            view.stage(out.accounts, out.entries);
                            view.end_tx(code == TxCode::Ok, !self.opts.write_batch)?;
                            debug!(height = self.height, tx = %app.hash(tx), code = code as u32, "tx executed");
                            code
                        }
                        _ => TxCode::BadSignature,
                    }
                }
                (Ok((_, false)), None) => TxCode::BadSignature,
                (Ok((tx, true)), None) => {
                    let code = app.deliver(tx, &mut view)?;
                    view.end_tx(code == TxCode::Ok, !self.opts.write_batch)?;
                    debug!(height = self.height, tx = %app.hash(tx), code = code as u32, "tx executed");
                    code
                }
            };
            applied += usize::from(code == TxCode::Ok);
            tx_codes.push(code as u32);
        }
        let app_hash = view.app_hash();
        drop(view);
        write_set.persisted = !self.opts.write_batch;
        Ok(ExecOutcome {
            write_set,
            tx_codes,
            applied,
            app_hash,
            parallel_workers,
        })
    }
}

/// Each tx decoded and checked, with whether its signature verifies; or its failure code.
type Checked<T> = Result<(T, bool), TxCode>;

/// Each tx decoded, and whether it needs no verification (unsigned app, or in the sig cache).
fn decode_all<'t, A: App>(
    app: &A,
    opts: &ExecOptions<'_>,
    chain_id: &str,
    txs: &'t [Vec<u8>],
) -> Vec<Checked<A::Tx<'t>>> {
    let ctx = TxContext {
        chain_id,
        buffer_pool: opts.buffer_pool,
    };
    txs.iter()
        .map(|raw| {
            let tx = app
                .decode(raw, &ctx)
                .map_err(|e| TxCode::of_decode_error(&e))?;
            let cached = !A::SIGNED || opts.sig_cache.is_some_and(|c| c.contains(&app.hash(&tx)));
            Ok((tx, cached))
        })
        .collect()
}

/// Verifies the txs not yet known good, batched or not, split over `threads` (each chunk
/// its own batch: the verdict of a tx does not depend on its batch).
fn verify<A: App>(app: &A, checked: &mut [Checked<A::Tx<'_>>], batch: bool, threads: usize) {
    let need: Vec<usize> = (0..checked.len())
        .filter(|&i| matches!(checked[i], Ok((_, false))))
        .collect();
    let verdicts: Vec<bool> = {
        let refs: Vec<&A::Tx<'_>> = need
            .iter()
            .filter_map(|&i| checked[i].as_ref().ok().map(|(t, _)| t))
            .collect();
        if threads < 2 || refs.len() < 2 {
            app.verify(&refs, batch)
        } else {
            let chunk = refs.len().div_ceil(threads);
            std::thread::scope(|s| {
                let parts: Vec<_> = refs
                    .chunks(chunk)
                    .map(|c| s.spawn(move || app.verify(c, batch)))
                    .collect();
                // A panic in verification is the sequential path's panic too: passed on, never
                // turned into a verdict.
                parts
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        }
    };
    for (&i, ok) in need.iter().zip(verdicts) {
        if let Ok((_, v)) = &mut checked[i] {
            *v = ok;
        }
    }
}
