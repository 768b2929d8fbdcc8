//! ed25519 verification cost per signature under the project's rule (ed25519-zebra, ZIP-215)
//! one by one and batched, next to ed25519-dalek's `verify_strict` and `verify_batch` (the
//! rule used before, which let single and batch verdicts differ). Run by hand:
//! `cargo bench -p tpslab-types --bench verify`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use tpslab_types::keys::account_key;
use tpslab_types::sig::{self, SigPath};

const N: usize = 64;

fn bench(c: &mut Criterion) {
    let keys: Vec<_> = (0..N as u64).map(|i| account_key("bench", i)).collect();
    let msgs: Vec<Vec<u8>> = (0..N).map(|i| vec![i as u8; 150]).collect();
    let sigs: Vec<[u8; 64]> = keys
        .iter()
        .zip(&msgs)
        .map(|(k, m)| k.sign(m).to_bytes())
        .collect();
    let pks: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    let items: Vec<sig::Item<'_>> = (0..N)
        .map(|i| sig::Item {
            pk: &pks[i],
            sig: &sigs[i],
            msg: &msgs[i],
        })
        .collect();
    let dalek_keys: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
    let dalek_sigs: Vec<Signature> = sigs.iter().map(Signature::from_bytes).collect();
    let msg_refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();

    let mut g = c.benchmark_group("ed25519_64_signatures");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(30);
    g.bench_function("rule_one_by_one", |b| {
        b.iter(|| {
            for i in 0..N {
                sig::verify(&pks[i], &sigs[i], &msgs[i], SigPath::TxSingle).unwrap();
            }
        })
    });
    g.bench_function("rule_batch", |b| {
        b.iter(|| assert!(sig::verify_many(&items, true).iter().all(|ok| *ok)))
    });
    g.bench_function("dalek_verify_strict", |b| {
        b.iter(|| {
            for i in 0..N {
                dalek_keys[i]
                    .verify_strict(&msgs[i], &dalek_sigs[i])
                    .unwrap();
            }
        })
    });
    g.bench_function("dalek_verify_batch", |b| {
        b.iter(|| ed25519_dalek::verify_batch(&msg_refs, &dalek_sigs, &dalek_keys).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
