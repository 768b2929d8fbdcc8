//! Mempool admission, limits, reaping and recheck against an in-memory state.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use tpslab_mempool::{CheckTxError, Mempool, MempoolConfig, RejectReason};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::tx::{encode_transfer, tx_hash, Transfer};
use tpslab_types::{Account, Address, AppKind, StateView};

#[derive(Clone, Default)]
struct MemState(Arc<RwLock<HashMap<Address, Account>>>);

impl StateView for MemState {
    type Error = Infallible;
    fn account(&self, addr: &Address) -> Result<Account, Infallible> {
        Ok(self.0.read().get(addr).copied().unwrap_or_default())
    }
}

const CHAIN: &str = "c";

fn setup(cfg: MempoolConfig) -> (Mempool<MemState>, MemState) {
    let st = MemState::default();
    for i in 0..4 {
        st.0.write().insert(
            address_of(&account_key("s", i)),
            Account {
                balance: 100,
                nonce: 0,
            },
        );
    }
    (Mempool::new(cfg, st.clone()), st)
}

fn cfg() -> MempoolConfig {
    MempoolConfig {
        chain_id: CHAIN.into(),
        ..Default::default()
    }
}

fn tx(from: u64, amount: u64, nonce: u64) -> Vec<u8> {
    encode_transfer(
        &account_key("s", from),
        Transfer {
            chain_id: CHAIN.into(),
            to: address_of(&account_key("s", 9)),
            amount,
            nonce,
            fee: 1,
            payload: vec![0; 8],
        },
    )
}

fn reason(r: Result<tpslab_types::Hash, CheckTxError>) -> RejectReason {
    r.expect_err("should be rejected").reason()
}

#[test]
fn admits_valid_and_rejects_each_bad_input_with_its_reason() {
    let (mp, _) = setup(cfg());
    let t0 = tx(0, 10, 0);
    assert_eq!(mp.check_tx(&t0).unwrap(), tx_hash(&t0));
    assert_eq!(reason(mp.check_tx(&t0)), RejectReason::Duplicate);
    assert_eq!(reason(mp.check_tx(&tx(0, 10, 0))), RejectReason::Duplicate);
    assert_eq!(
        reason(mp.check_tx(&tx(0, 11, 0))),
        RejectReason::NonceTooLow
    );
    assert_eq!(
        reason(mp.check_tx(&tx(0, 10, 5))),
        RejectReason::NonceTooHigh
    );
    // 100 - 11 pending = 89 available; 89 + 1 fee does not fit.
    assert!(matches!(
        mp.check_tx(&tx(0, 89, 1)),
        Err(CheckTxError::InsufficientFunds {
            available: 89,
            cost: 90
        })
    ));
    assert_eq!(
        reason(mp.check_tx(&[0xde, 0xad, 0xbe, 0xef])),
        RejectReason::Malformed
    );
    let mut bad_sig = tx(1, 1, 0);
    let n = bad_sig.len();
    bad_sig[n - 3] ^= 0x40;
    assert_eq!(reason(mp.check_tx(&bad_sig)), RejectReason::BadSignature);
    let other_chain = encode_transfer(
        &account_key("s", 1),
        Transfer {
            chain_id: "other".into(),
            to: Address::default(),
            amount: 1,
            nonce: 0,
            fee: 0,
            payload: vec![],
        },
    );
    assert_eq!(
        reason(mp.check_tx(&other_chain)),
        RejectReason::WrongChainId
    );
    assert_eq!(
        reason(mp.check_tx(&vec![0u8; 20_000])),
        RejectReason::TooLarge
    );
    assert_eq!(mp.size(), 1);
}

#[test]
fn capacity_in_txs_and_bytes_is_enforced() {
    let (mp, _) = setup(MempoolConfig {
        max_txs: 2,
        ..cfg()
    });
    mp.check_tx(&tx(0, 1, 0)).unwrap();
    mp.check_tx(&tx(0, 1, 1)).unwrap();
    assert_eq!(reason(mp.check_tx(&tx(1, 1, 0))), RejectReason::MempoolFull);

    let one = tx(0, 1, 0).len();
    let (mp, _) = setup(MempoolConfig {
        max_bytes: one * 2 + 1,
        ..cfg()
    });
    mp.check_tx(&tx(0, 1, 0)).unwrap();
    mp.check_tx(&tx(1, 1, 0)).unwrap();
    assert_eq!(reason(mp.check_tx(&tx(2, 1, 0))), RejectReason::MempoolFull);
    assert_eq!(mp.size(), 2);
}

#[test]
fn gossip_a_full_pool_refused_is_found_by_lookup_but_never_proposed() {
    let (mp, _) = setup(MempoolConfig {
        max_txs: 16,
        ..cfg()
    });
    for n in 0..16 {
        mp.check_tx(&tx(0, 1, n)).unwrap();
    }
    let gossip = [tx(1, 1, 0), tx(2, 1, 0), tx(3, 1, 5)];
    let raws: Vec<&[u8]> = gossip.iter().map(|t| t.as_slice()).collect();
    let mut results = mp.check_txs(&raws);
    assert!(results.iter().all(|r| r
        .as_ref()
        .is_err_and(|e| e.reason() == RejectReason::MempoolFull)));
    // A refusal for another reason is not kept.
    let bad = tx(4, 1, 0)[..20].to_vec();
    let mut raws = raws.clone();
    raws.push(&bad);
    results.push(mp.check_tx(&bad));
    mp.keep_refused(&raws, &results);
    let hashes: Vec<_> = gossip.iter().map(|t| tx_hash(t)).collect();
    let found = mp.lookup(&hashes);
    for (f, t) in found.iter().zip(&gossip) {
        assert_eq!(f.as_deref(), Some(t.as_slice()));
    }
    assert_eq!(mp.lookup(&[tx_hash(&bad)]), vec![None]);
    // Kept aside only: not pending, not proposed.
    assert_eq!(mp.size(), 16);
    assert_eq!(mp.reap(100, usize::MAX).len(), 16);
    // As many txs as the pool (16): the oldest go first.
    let more: Vec<Vec<u8>> = (10..26).map(|s| tx(s, 1, 0)).collect();
    let raws: Vec<&[u8]> = more.iter().map(|t| t.as_slice()).collect();
    let results = mp.check_txs(&raws);
    mp.keep_refused(&raws, &results);
    assert_eq!(mp.lookup(&hashes).iter().filter(|f| f.is_some()).count(), 0);
}

#[test]
fn reap_is_round_robin_over_senders_in_nonce_order_and_respects_limits() {
    let (mp, _) = setup(cfg());
    // Sender 0 floods first; sender 1 and 2 arrive later.
    for n in 0..3 {
        mp.check_tx(&tx(0, 1, n)).unwrap();
    }
    mp.check_tx(&tx(1, 1, 0)).unwrap();
    mp.check_tx(&tx(2, 1, 0)).unwrap();
    mp.check_tx(&tx(1, 1, 1)).unwrap();
    let reaped: Vec<_> = mp
        .reap(100, usize::MAX)
        .iter()
        .map(|r| tx_hash(r))
        .collect();
    let expect: Vec<_> = [
        tx(0, 1, 0),
        tx(1, 1, 0),
        tx(2, 1, 0),
        tx(0, 1, 1),
        tx(1, 1, 1),
        tx(0, 1, 2),
    ]
    .iter()
    .map(|t| tx_hash(t))
    .collect();
    assert_eq!(reaped, expect);
    assert_eq!(mp.reap(2, usize::MAX).len(), 2);
    let one = tx(0, 1, 0).len();
    assert_eq!(mp.reap(100, one * 3).len(), 3);
    // Reaping does not remove.
    assert_eq!(mp.size(), 6);
}

#[test]
fn update_removes_committed_and_evicts_what_became_invalid() {
    let (mp, st) = setup(cfg());
    let a = tx(0, 10, 0);
    let b = tx(0, 10, 1);
    let c = tx(1, 50, 0);
    for t in [&a, &b, &c] {
        mp.check_tx(t).unwrap();
    }
    // Block commits `a`; meanwhile sender 1 lost funds elsewhere so `c` no longer fits.
    {
        let mut s = st.0.write();
        let s0 = s.get_mut(&address_of(&account_key("s", 0))).unwrap();
        s0.balance -= 11;
        s0.nonce = 1;
        s.get_mut(&address_of(&account_key("s", 1)))
            .unwrap()
            .balance = 10;
    }
    let stats = mp.update(&[tx_hash(&a)], None);
    assert_eq!((stats.removed, stats.evicted, stats.remaining), (1, 1, 1));
    assert_eq!(mp.reap(10, usize::MAX).len(), 1);
    // The committed tx is remembered as a duplicate; the sender continues at nonce 2.
    assert_eq!(reason(mp.check_tx(&a)), RejectReason::Duplicate);
    mp.check_tx(&tx(0, 1, 2)).unwrap();
    assert_eq!(mp.bytes(), b.len() + tx(0, 1, 2).len());
}

#[test]
fn kvstore_txs_are_admitted_in_arrival_order() {
    let (mp, _) = setup(MempoolConfig {
        app: AppKind::KvStore,
        max_txs: 3,
        ..cfg()
    });
    let a = mp.check_tx(b"k1=v").unwrap();
    mp.check_tx(b"k0=v").unwrap();
    mp.check_tx(b"lonely").unwrap();
    assert_eq!(reason(mp.check_tx(b"k1=v")), RejectReason::Duplicate);
    assert_eq!(reason(mp.check_tx(b"k2=v")), RejectReason::MempoolFull);
    assert_eq!(reason(mp.check_tx(b"")), RejectReason::Malformed);
    assert_eq!(reason(mp.check_tx(b"=v")), RejectReason::Malformed);
    let huge = vec![b'k'; cfg().max_tx_bytes + 1];
    assert_eq!(reason(mp.check_tx(&huge)), RejectReason::TooLarge);
    let reaped: Vec<Vec<u8>> = mp.reap(10, 1 << 20).iter().map(|t| t.to_vec()).collect();
    assert_eq!(
        reaped,
        vec![b"k1=v".to_vec(), b"k0=v".to_vec(), b"lonely".to_vec()]
    );
    let stats = mp.update(&[a], None);
    assert_eq!((stats.removed, stats.evicted, stats.remaining), (1, 0, 2));
    assert_eq!(mp.reap(10, 1 << 20).len(), 2);
    mp.check_tx(b"k2=v").unwrap();
    assert_eq!(reason(mp.check_tx(b"k1=v")), RejectReason::Duplicate);
}

/// Committed kvstore txs leave the arrival queue lazily: one committed from the middle is never
/// reaped again, and one committed, forgotten by the seen cache and submitted again is reaped
/// once, at its new place.
#[test]
fn kvstore_commits_from_the_middle_and_readmissions_reap_once() {
    let (mp, _) = setup(MempoolConfig {
        app: AppKind::KvStore,
        cache_size: 1,
        ..cfg()
    });
    let a = mp.check_tx(b"a=1").unwrap();
    let b = mp.check_tx(b"b=1").unwrap();
    mp.check_tx(b"c=1").unwrap();
    let reaped = |mp: &Mempool<MemState>| -> Vec<Vec<u8>> {
        mp.reap(10, 1 << 20).iter().map(|t| t.to_vec()).collect()
    };
    mp.update(&[b], None);
    assert_eq!(reaped(&mp), vec![b"a=1".to_vec(), b"c=1".to_vec()]);
    // The cache remembers one hash: after d, b is new again. Its stale entry sits between a
    // and c, its new one after d.
    mp.check_tx(b"d=1").unwrap();
    mp.check_tx(b"b=1").unwrap();
    let [a1, b1, c1, d1] = [b"a=1", b"b=1", b"c=1", b"d=1"].map(|t| t.to_vec());
    assert_eq!(reaped(&mp), vec![a1, c1.clone(), d1.clone(), b1]);
    let stats = mp.update(&[a, b], None);
    assert_eq!((stats.removed, stats.remaining), (2, 2));
    assert_eq!(reaped(&mp), vec![c1.clone(), d1.clone()]);
    // Many commits from the middle: what stays pending is reaped in order, nothing twice.
    let hashes: Vec<_> = (0..3000)
        .map(|i| mp.check_tx(format!("k{i}=v").as_bytes()).unwrap())
        .collect();
    let odd: Vec<_> = hashes.iter().skip(1).step_by(2).copied().collect();
    mp.update(&odd, None);
    let want: Vec<Vec<u8>> = [c1, d1]
        .into_iter()
        .chain((0..3000).step_by(2).map(|i| format!("k{i}=v").into_bytes()))
        .collect();
    assert_eq!(
        mp.reap(5000, usize::MAX)
            .iter()
            .map(|t| t.to_vec())
            .collect::<Vec<_>>(),
        want
    );
}

/// CheckTx one by one and in batches (sig-batch) give every crafted signature shape the same
/// verdict, whatever the rest of the batch (see types/src/sig.rs for the rule).
#[test]
fn crafted_signatures_get_the_same_verdict_alone_and_batched() {
    use tpslab_types::craft::{self, Shape};
    let crafted = |k: u64, shape: Shape| {
        prost::Message::encode_to_vec(&craft::sign_transfer(
            &account_key("s", 100 + k),
            Transfer {
                chain_id: CHAIN.into(),
                to: address_of(&account_key("s", 9)),
                amount: 1,
                nonce: 0,
                fee: 1,
                payload: vec![],
            },
            shape,
            k,
        ))
    };
    let verdicts = |sig_batch: bool, batched: bool| -> Vec<Option<RejectReason>> {
        let (pool, st) = setup(MempoolConfig { sig_batch, ..cfg() });
        for i in 0..200 {
            st.0.write().insert(
                address_of(&account_key("s", 100 + i)),
                Account {
                    balance: 100,
                    nonce: 0,
                },
            );
        }
        let mut out = Vec::new();
        let mut nonce = 0;
        for (k, shape) in Shape::ALL.into_iter().enumerate() {
            for round in 0..8u64 {
                let bad = crafted(k as u64 * 8 + round, shape);
                let r = if batched {
                    // Fresh honest company each time: the next nonce of accounts 0..3.
                    let honest: Vec<Vec<u8>> = (0..3).map(|i| tx(i, 0, nonce)).collect();
                    nonce += 1;
                    let mut raws: Vec<&[u8]> = honest.iter().map(|h| h.as_slice()).collect();
                    raws.insert((round % 4) as usize, &bad);
                    pool.check_txs(&raws).remove((round % 4) as usize)
                } else {
                    pool.check_tx(&bad)
                };
                out.push(r.err().map(|e| e.reason()));
            }
        }
        out
    };
    let alone = verdicts(false, false);
    assert_eq!(verdicts(true, true), alone);
    assert_eq!(verdicts(false, true), alone);
    for (k, shape) in Shape::ALL.into_iter().enumerate() {
        let want = match shape {
            Shape::HighS => Some(RejectReason::BadSignature),
            Shape::SmallOrderKey => Some(RejectReason::Malformed),
            Shape::MixedOrderKey => Some(RejectReason::InsufficientFunds),
            _ => None,
        };
        assert!(
            alone[k * 8..k * 8 + 8].iter().all(|v| *v == want),
            "{shape:?}: {alone:?}"
        );
    }
}
