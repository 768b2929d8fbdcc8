//! `transfer`: ed25519-signed balance transfers, like Cosmos bank.
//!
//! State layout: one account (balance, nonce) per address, in the account store. A tx moves
//! `amount` from the sender to `to` and burns `fee`; its nonce must be the sender's next one.

use crate::{App, BlockState, Lane, StateKey, TxCode, TxContext};
use tpslab_types::tx::{verify_signatures, ParsedTx};
use tpslab_types::{AppKind, Hash, TypesResult};

/// The transfer app.
#[derive(Clone, Copy, Debug, Default)]
pub struct Transfer;

impl App for Transfer {
    type Tx<'a> = ParsedTx;
    const KIND: AppKind = AppKind::Transfer;
    const SIGNED: bool = true;

    fn decode(&self, raw: &[u8], ctx: &TxContext<'_>) -> TypesResult<ParsedTx> {
        let tx = ParsedTx::decode_with(raw, ctx.buffer_pool)?;
        tx.check_chain_id(ctx.chain_id)?;
        Ok(tx)
    }

    fn hash(&self, tx: &ParsedTx) -> Hash {
        tx.hash
    }

    fn lane(&self, tx: &ParsedTx) -> Option<Lane> {
        Some(Lane {
            sender: tx.sender,
            nonce: tx.tx.nonce,
            cost: tx.cost(),
        })
    }

    fn verify(&self, txs: &[&ParsedTx], batch: bool) -> Vec<bool> {
        verify_signatures(txs, batch)
    }

    fn verify_one(&self, tx: &ParsedTx) -> bool {
        tx.verify_signature().is_ok()
    }

    /// The sender's and the recipient's accounts.
    fn conflict_keys(&self, tx: &ParsedTx) -> Option<Vec<StateKey>> {
        Some(vec![StateKey::Account(tx.sender), StateKey::Account(tx.to)])
    }

    fn deliver<S: BlockState + ?Sized>(
        &self,
        tx: &ParsedTx,
        state: &mut S,
    ) -> Result<TxCode, S::Error> {
        let mut from = state.account(&tx.sender)?;
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
            state.put_account(tx.sender, from);
            return Ok(TxCode::Ok);
        }
        let mut to = state.account(&tx.to)?;
        let Some(new_to) = to.balance.checked_add(tx.tx.amount) else {
            return Ok(TxCode::Overflow);
        };
        to.balance = new_to;
        state.put_account(tx.sender, from);
        state.put_account(tx.to, to);
        Ok(TxCode::Ok)
    }
}
