//! A third app with sender lanes, written in this one file against the `App` trait alone,
//! gets the mempool's whole admission: strict nonces, funds reserved by pending txs, fair
//! reaping, and recheck after a block.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use tpslab_app::{App, BlockState, Lane, TxCode, TxContext};
use tpslab_mempool::{CheckTxError, Mempool, MempoolConfig, RejectReason};
use tpslab_types::tx::tx_hash;
use tpslab_types::{Account, Address, AppKind, Hash, StateView, TypesError, TypesResult};

#[derive(Clone, Default)]
struct MemState(Arc<RwLock<HashMap<Address, Account>>>);

impl StateView for MemState {
    type Error = Infallible;
    fn account(&self, addr: &Address) -> Result<Account, Infallible> {
        Ok(self.0.read().get(addr).copied().unwrap_or_default())
    }
}

/// Three bytes: sender, nonce, price. A ticket costs its price from the sender's balance.
struct Tickets;

struct Ticket<'a>(&'a [u8]);

fn sender(id: u8) -> Address {
    Address([id; 20])
}

impl App for Tickets {
    type Tx<'a> = Ticket<'a>;
    const KIND: AppKind = AppKind::Transfer;
    const SIGNED: bool = false;

    fn decode<'a>(&self, raw: &'a [u8], _ctx: &TxContext<'_>) -> TypesResult<Ticket<'a>> {
        if raw.len() != 3 {
            return Err(TypesError::BadLength {
                field: "ticket",
                expected: 3,
                got: raw.len(),
            });
        }
        Ok(Ticket(raw))
    }

    fn hash(&self, tx: &Ticket<'_>) -> Hash {
        tx_hash(tx.0)
    }

    fn lane(&self, tx: &Ticket<'_>) -> Option<Lane> {
        Some(Lane {
            sender: sender(tx.0[0]),
            nonce: u64::from(tx.0[1]),
            cost: Some(u64::from(tx.0[2])),
        })
    }

    fn verify(&self, txs: &[&Ticket<'_>], _batch: bool) -> Vec<bool> {
        vec![true; txs.len()]
    }

    fn deliver<S: BlockState + ?Sized>(
        &self,
        _tx: &Ticket<'_>,
        _state: &mut S,
    ) -> Result<TxCode, S::Error> {
        Ok(TxCode::Ok)
    }
}

fn reason(r: Result<Hash, CheckTxError>) -> RejectReason {
    r.expect_err("should be rejected").reason()
}

#[test]
fn a_third_app_gets_lanes_reaping_and_recheck() {
    let st = MemState::default();
    for id in [1, 2] {
        st.0.write().insert(
            sender(id),
            Account {
                balance: 100,
                nonce: 0,
            },
        );
    }
    let mp = Mempool::for_app(Tickets, MempoolConfig::default(), st.clone());
    let a0 = mp.check_tx(&[1, 0, 50]).unwrap();
    assert_eq!(reason(mp.check_tx(&[1, 0, 10])), RejectReason::NonceTooLow);
    assert_eq!(reason(mp.check_tx(&[1, 2, 10])), RejectReason::NonceTooHigh);
    assert_eq!(
        reason(mp.check_tx(&[1, 1, 60])),
        RejectReason::InsufficientFunds
    );
    assert_eq!(reason(mp.check_tx(&[1, 1])), RejectReason::Malformed);
    let batch: [&[u8]; 3] = [&[1, 1, 40], &[2, 0, 1], &[2, 1, 1]];
    assert!(mp.check_txs(&batch).iter().all(Result::is_ok));
    // Round robin over senders in arrival order, each in nonce order.
    let reaped: Vec<Vec<u8>> = mp.reap(10, 1 << 20).iter().map(|t| t.to_vec()).collect();
    assert_eq!(
        reaped,
        vec![vec![1, 0, 50], vec![2, 0, 1], vec![1, 1, 40], vec![2, 1, 1]]
    );
    // A block commits sender 1's first ticket and drains its balance: its second is evicted.
    st.0.write().insert(
        sender(1),
        Account {
            balance: 10,
            nonce: 1,
        },
    );
    let stats = mp.update(&[a0], None);
    assert_eq!((stats.removed, stats.evicted, stats.remaining), (1, 1, 2));
}
