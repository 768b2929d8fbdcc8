//! check_tx throughput: decode, chain id, dedup, ed25519 verify and the stateful checks, on
//! pre-signed transfers from many senders (state in memory, so only the mempool is measured).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::collections::HashMap;
use std::convert::Infallible;
use tpslab_mempool::{Mempool, MempoolConfig};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::tx::{encode_transfer, Transfer};
use tpslab_types::{Account, Address, StateView};

struct MemState(HashMap<Address, Account>);

impl StateView for MemState {
    type Error = Infallible;
    fn account(&self, addr: &Address) -> Result<Account, Infallible> {
        Ok(self.0.get(addr).copied().unwrap_or_default())
    }
}

const SENDERS: u64 = 1_000;
const TXS: u64 = 2_000;

fn bench(c: &mut Criterion) {
    let keys: Vec<_> = (0..SENDERS).map(|i| account_key("bench", i)).collect();
    let state: HashMap<_, _> = keys
        .iter()
        .map(|k| {
            (
                address_of(k),
                Account {
                    balance: u64::MAX / 2,
                    nonce: 0,
                },
            )
        })
        .collect();
    let txs: Vec<Vec<u8>> = (0..TXS)
        .map(|i| {
            encode_transfer(
                &keys[(i % SENDERS) as usize],
                Transfer {
                    chain_id: "bench".into(),
                    to: address_of(&keys[((i + 1) % SENDERS) as usize]),
                    amount: 1,
                    nonce: i / SENDERS,
                    fee: 1,
                    payload: vec![0; 100],
                },
            )
        })
        .collect();
    let mut g = c.benchmark_group("mempool");
    g.throughput(Throughput::Elements(TXS));
    g.sample_size(20);
    g.bench_function("check_tx_2000_signed_transfers", |b| {
        b.iter_batched(
            || {
                Mempool::new(
                    MempoolConfig {
                        chain_id: "bench".into(),
                        ..Default::default()
                    },
                    MemState(state.clone()),
                )
            },
            |mp| {
                for t in &txs {
                    mp.check_tx(t).expect("valid tx");
                }
                mp
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
