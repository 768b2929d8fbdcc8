//! A full mempool refuses a flood before any signature check: the flood costs lookups, not
//! verifications. (Its own test binary: the verification counters are process-wide.)

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use tpslab_mempool::{Mempool, MempoolConfig, RejectReason};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::sig::{verification_counts, SigPath};
use tpslab_types::tx::{encode_transfer, Transfer};
use tpslab_types::{Account, Address, StateView};

#[derive(Clone)]
struct Funded(Arc<HashMap<Address, Account>>);

impl StateView for Funded {
    type Error = Infallible;
    fn account(&self, addr: &Address) -> Result<Account, Infallible> {
        Ok(self.0.get(addr).copied().unwrap_or_default())
    }
}

fn total_verifications() -> u64 {
    verification_counts()
        .iter()
        .filter(|(p, _)| {
            matches!(
                p,
                SigPath::TxSingle | SigPath::TxBatch | SigPath::TxFallback
            )
        })
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn a_flood_at_a_full_mempool_performs_zero_verifications() {
    let senders = 10_000u64;
    let state = Funded(Arc::new(
        (0..senders + 8)
            .map(|i| {
                let a = address_of(&account_key("f", i));
                (
                    a,
                    Account {
                        balance: 1_000,
                        nonce: 0,
                    },
                )
            })
            .collect(),
    ));
    let tx = |i: u64, nonce: u64| {
        encode_transfer(
            &account_key("f", i),
            Transfer {
                chain_id: "c".into(),
                to: address_of(&account_key("f", 0)),
                amount: 1,
                nonce,
                fee: 1,
                payload: vec![],
            },
        )
    };
    for sig_batch in [false, true] {
        let pool = Mempool::new(
            MempoolConfig {
                chain_id: "c".into(),
                max_txs: 8,
                sig_batch,
                ..Default::default()
            },
            state.clone(),
        );
        // Fill it: 8 verifications.
        let before = total_verifications();
        let fill: Vec<Vec<u8>> = (0..8).map(|i| tx(senders + i, 0)).collect();
        let refs: Vec<&[u8]> = fill.iter().map(|r| r.as_slice()).collect();
        assert!(pool.check_txs(&refs).iter().all(|r| r.is_ok()));
        assert_eq!(total_verifications() - before, 8);

        // 10k valid txs at the full pool, alone and in batches like the API's.
        let flood: Vec<Vec<u8>> = (0..senders).map(|i| tx(i, 0)).collect();
        let before = total_verifications();
        for chunk in flood.chunks(256) {
            let refs: Vec<&[u8]> = chunk.iter().map(|r| r.as_slice()).collect();
            for r in pool.check_txs(&refs) {
                assert_eq!(r.unwrap_err().reason(), RejectReason::MempoolFull);
            }
        }
        for raw in flood.iter().take(100) {
            assert_eq!(
                pool.check_tx(raw).unwrap_err().reason(),
                RejectReason::MempoolFull
            );
        }
        assert_eq!(total_verifications() - before, 0, "sig_batch={sig_batch}");

        // A batch larger than the room verifies only what fits.
        let pool = Mempool::new(
            MempoolConfig {
                chain_id: "c".into(),
                max_txs: 5,
                sig_batch,
                ..Default::default()
            },
            state.clone(),
        );
        let refs: Vec<&[u8]> = flood[..64].iter().map(|r| r.as_slice()).collect();
        let before = total_verifications();
        let out = pool.check_txs(&refs);
        assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 5);
        assert_eq!(total_verifications() - before, 5, "sig_batch={sig_batch}");
    }
}
