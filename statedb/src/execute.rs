//! Block execution: apply each tx against the committed state plus the block's own earlier
//! writes. A tx that fails (bad signature, wrong nonce, no funds) is skipped and its code
//! recorded, as a Cosmos DeliverTx failure would be; the block itself stays valid.

use crate::app_hash::block_app_hash;
use crate::db::StateDb;
use crate::error::StateResult;
use crate::write_set::WriteSet;
use std::collections::BTreeMap;
use tpslab_types::app::parse_kv;
use tpslab_types::sigcache::SigCache;
use tpslab_types::tx::{verify_signatures, ParsedTx};
use tpslab_types::{Account, Address, App, Hash};
use tracing::debug;

/// Outcome of one tx in a block. The numbers are stored in `BlockRecord.tx_codes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum TxCode {
    /// Applied.
    Ok = 0,
    /// The bytes do not decode to a well-formed tx.
    Malformed = 1,
    /// Made for another chain.
    WrongChainId = 2,
    /// The signature does not verify.
    BadSignature = 3,
    /// The nonce is not the sender's next nonce.
    BadNonce = 4,
    /// The sender cannot pay amount + fee.
    InsufficientFunds = 5,
    /// A balance would overflow.
    Overflow = 6,
}

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
}

/// How a block is executed: the app, and the tuning toggles that touch execution.
#[derive(Clone, Copy)]
pub struct ExecOptions<'a> {
    /// The state machine.
    pub app: App,
    /// write-batch toggle off: each applied tx's writes are put to RocksDB at once, synced
    /// (the block's commit then writes the record and meta). On: nothing is written here.
    pub write_batch: bool,
    /// sig-batch toggle: verify the block's signatures in one batch.
    pub sig_batch: bool,
    /// sig-cache toggle: skip txs whose hash is in the cache (verified at CheckTx).
    pub sig_cache: Option<&'a SigCache>,
    /// buffer-pool toggle: decode txs into pooled messages.
    pub buffer_pool: bool,
}

impl ExecOptions<'_> {
    /// `app` with every toggle's tuned path except the cache.
    pub fn new(app: App) -> ExecOptions<'static> {
        ExecOptions {
            app,
            write_batch: true,
            sig_batch: true,
            sig_cache: None,
            buffer_pool: true,
        }
    }
}

/// Executes `txs` of block `height` on top of the committed state in `db`.
pub fn execute_block(
    db: &StateDb,
    opts: &ExecOptions<'_>,
    chain_id: &str,
    height: u64,
    prev_app_hash: &Hash,
    txs: &[Vec<u8>],
) -> StateResult<ExecOutcome> {
    let mut out = ExecOutcome {
        tx_codes: Vec::with_capacity(txs.len()),
        ..Default::default()
    };
    match opts.app {
        App::Transfer => {
            let parsed = decode_and_verify(opts, chain_id, txs);
            for p in &parsed {
                let code = apply_tx(db, p, &mut out.write_set.accounts)?;
                if code == TxCode::Ok && !opts.write_batch {
                    if let Ok((tx, _)) = p {
                        let ws = &out.write_set.accounts;
                        let touched = [tx.sender, tx.to].map(|a| (a, ws.get(&a).copied()));
                        db.put_accounts_synced(
                            touched.iter().filter_map(|(a, acc)| Some((a, (*acc)?))),
                        )?;
                    }
                }
                if let Ok((tx, _)) = p {
                    debug!(height, tx = %tx.hash, code = code as u32, "tx executed");
                }
                out.finish_tx(code);
            }
        }
        App::KvStore => {
            for raw in txs {
                let code = apply_kv(raw, &mut out.write_set.kv);
                out.finish_tx(code);
            }
        }
    }
    out.app_hash = block_app_hash(prev_app_hash, height, &out.write_set);
    Ok(out)
}

impl ExecOutcome {
    fn finish_tx(&mut self, code: TxCode) {
        if code == TxCode::Ok {
            self.applied += 1;
        }
        self.tx_codes.push(code as u32);
    }
}

/// Each tx decoded and chain-checked, with whether its signature verifies; or why not.
type Checked = Result<(ParsedTx, bool), TxCode>;

fn decode_and_verify(opts: &ExecOptions<'_>, chain_id: &str, txs: &[Vec<u8>]) -> Vec<Checked> {
    let mut out: Vec<Checked> = txs
        .iter()
        .map(|raw| {
            let tx = ParsedTx::decode_with(raw, opts.buffer_pool).map_err(|_| TxCode::Malformed)?;
            tx.check_chain_id(chain_id)
                .map_err(|_| TxCode::WrongChainId)?;
            let cached = opts.sig_cache.is_some_and(|c| c.contains(&tx.hash));
            Ok((tx, cached))
        })
        .collect();
    let need: Vec<usize> = (0..out.len())
        .filter(|&i| matches!(out[i], Ok((_, false))))
        .collect();
    let refs: Vec<&ParsedTx> = need
        .iter()
        .filter_map(|&i| out[i].as_ref().ok().map(|(t, _)| t))
        .collect();
    let verified = verify_signatures(&refs, opts.sig_batch);
    for (&i, ok) in need.iter().zip(verified) {
        if let Ok((_, v)) = &mut out[i] {
            *v = ok;
        }
    }
    out
}

fn load(db: &StateDb, ws: &BTreeMap<Address, Account>, addr: &Address) -> StateResult<Account> {
    match ws.get(addr) {
        Some(a) => Ok(*a),
        None => db.get_account(addr),
    }
}

fn apply_tx(
    db: &StateDb,
    checked: &Checked,
    ws: &mut BTreeMap<Address, Account>,
) -> StateResult<TxCode> {
    let (tx, sig_ok) = match checked {
        Ok(c) => c,
        Err(code) => return Ok(*code),
    };
    if !sig_ok {
        return Ok(TxCode::BadSignature);
    }
    let mut from = load(db, ws, &tx.sender)?;
    if tx.tx.nonce != from.nonce {
        return Ok(TxCode::BadNonce);
    }
    let Some(cost) = tx.cost() else {
        return Ok(TxCode::Overflow);
    };
    if from.balance < cost {
        return Ok(TxCode::InsufficientFunds);
    }
    from.balance -= cost;
    from.nonce += 1;
    if tx.to == tx.sender {
        from.balance += tx.tx.amount;
        ws.insert(tx.sender, from);
        return Ok(TxCode::Ok);
    }
    let mut to = load(db, ws, &tx.to)?;
    let Some(new_to) = to.balance.checked_add(tx.tx.amount) else {
        return Ok(TxCode::Overflow);
    };
    to.balance = new_to;
    ws.insert(tx.sender, from);
    ws.insert(tx.to, to);
    Ok(TxCode::Ok)
}

fn apply_kv(raw: &[u8], kv: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> TxCode {
    match parse_kv(raw) {
        Ok((k, v)) => {
            kv.insert(k.to_vec(), v.to_vec());
            TxCode::Ok
        }
        Err(_) => TxCode::Malformed,
    }
}
