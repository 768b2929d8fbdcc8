//! The mempool's own cost per kvstore tx at a running chain's steady state: txs of 512 B
//! admitted in gossip-sized batches (`check_txs`), reaped into 2,000-tx blocks and removed by
//! `update` once committed, with the seen cache already full (its default 200,000 hashes) and
//! ~10,000 txs pending. No signatures: what is left is hashing and the pool's and cache's
//! hash tables, the part of a kvstore validator's CPU the profile charges to the mempool.
//! `cargo bench -p tpslab-mempool --bench kvstore_churn [-- ROUNDS]` prints ns per tx.
//! Evidence, not a test: it asserts only that every tx is admitted and committed once.

use std::convert::Infallible;
use std::time::{Duration, Instant};
use tpslab_mempool::{Mempool, MempoolConfig};
use tpslab_types::{Account, Address, AppKind, StateView};

struct NoState;

impl StateView for NoState {
    type Error = Infallible;
    fn account(&self, _addr: &Address) -> Result<Account, Infallible> {
        Ok(Account::default())
    }
}

const BATCH: usize = 100;
const BLOCK: usize = 2_000;
const PENDING: usize = 10_000;

/// A kvstore tx of 512 B writing its own key, `key-<i as 16 digits>=vvv...`.
fn tx(i: u64) -> Vec<u8> {
    let mut t = format!("key-{i:016}=").into_bytes();
    t.resize(512, b'v');
    t
}

/// The `i` of [`tx`]`(i)`.
fn index(raw: &[u8]) -> usize {
    std::str::from_utf8(&raw[4..20]).unwrap().parse().unwrap()
}

/// Runs `warm` then `timed` txs through the pool; ns per timed tx, counting the pool's calls
/// only (not making the txs).
fn run(warm: u64, timed: u64) -> f64 {
    let mp = Mempool::new(
        MempoolConfig {
            app: AppKind::KvStore,
            chain_id: "bench".into(),
            ..Default::default()
        },
        NoState,
    );
    let mut hashes = Vec::new();
    let mut spent = Duration::ZERO;
    let mut next = 0u64;
    while next < warm + timed {
        let raws: Vec<Vec<u8>> = (next..next + BATCH as u64).map(tx).collect();
        let refs: Vec<&[u8]> = raws.iter().map(Vec::as_slice).collect();
        let t = Instant::now();
        let results = mp.check_txs(&refs);
        let block = (mp.size() >= PENDING + BLOCK).then(|| mp.reap(BLOCK, usize::MAX));
        let took = t.elapsed();
        for r in results {
            hashes.push(r.expect("a new kvstore tx is admitted"));
        }
        let took = took
            + block.map_or(Duration::ZERO, |block| {
                let committed: Vec<_> = block.iter().map(|raw| hashes[index(raw)]).collect();
                let t = Instant::now();
                let stats = mp.update(&committed, None);
                let took = t.elapsed();
                assert_eq!(stats.removed, BLOCK);
                took
            });
        if next >= warm {
            spent += took;
        }
        next += BATCH as u64;
    }
    spent.as_nanos() as f64 / timed as f64
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this with no args, and
    // then a few blocks only show that it runs.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (warm, timed) = if args.iter().any(|a| a == "--bench") {
        (300_000, 500_000)
    } else {
        (12_000, 4_000)
    };
    let rounds = args.iter().find_map(|a| a.parse::<u32>().ok()).unwrap_or(3);
    for _ in 0..rounds {
        println!("kvstore churn: {:.0} ns per tx", run(warm, timed));
    }
}
