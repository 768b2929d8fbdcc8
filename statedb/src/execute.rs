//! Block execution: apply each tx against the committed state plus the block's own earlier
//! writes. A tx that fails (bad signature, wrong nonce, no funds) is skipped and its code
//! recorded, as a Cosmos DeliverTx failure would be; the block itself stays valid.

use crate::app_hash::block_app_hash;
use crate::db::StateDb;
use crate::error::StateResult;
use std::collections::BTreeMap;
use tpslab_types::app::parse_kv;
use tpslab_types::tx::ParsedTx;
use tpslab_types::{Account, Address, App, Hash};

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

/// The final value of everything a block wrote, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSet {
    /// Accounts (transfer app).
    pub accounts: BTreeMap<Address, Account>,
    /// Key-value entries (kvstore app).
    pub kv: BTreeMap<Vec<u8>, Vec<u8>>,
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

/// Executes `txs` of block `height` on top of the committed state in `db`.
pub fn execute_block(
    db: &StateDb,
    app: App,
    chain_id: &str,
    height: u64,
    prev_app_hash: &Hash,
    txs: &[Vec<u8>],
) -> StateResult<ExecOutcome> {
    let mut out = ExecOutcome {
        tx_codes: Vec::with_capacity(txs.len()),
        ..Default::default()
    };
    for raw in txs {
        let code = match app {
            App::Transfer => apply_tx(db, chain_id, raw, &mut out.write_set.accounts)?,
            App::KvStore => apply_kv(raw, &mut out.write_set.kv),
        };
        if code == TxCode::Ok {
            out.applied += 1;
        }
        out.tx_codes.push(code as u32);
    }
    out.app_hash = block_app_hash(prev_app_hash, height, &out.write_set);
    Ok(out)
}

fn load(db: &StateDb, ws: &BTreeMap<Address, Account>, addr: &Address) -> StateResult<Account> {
    match ws.get(addr) {
        Some(a) => Ok(*a),
        None => db.get_account(addr),
    }
}

fn apply_tx(
    db: &StateDb,
    chain_id: &str,
    raw: &[u8],
    ws: &mut BTreeMap<Address, Account>,
) -> StateResult<TxCode> {
    let Ok(tx) = ParsedTx::decode(raw) else {
        return Ok(TxCode::Malformed);
    };
    if tx.check_chain_id(chain_id).is_err() {
        return Ok(TxCode::WrongChainId);
    }
    if tx.verify_signature().is_err() {
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
