//! ed25519 verification cost per signature under the project's rule (ZIP-215) one by one and
//! batched (keys cached across batches), next to ed25519-zebra's own batch verifier and
//! ed25519-dalek's `verify_strict` and `verify_batch` (the rule used before, which let single
//! and batch verdicts differ). Run by hand:
//! `cargo bench -p tpslab-types --bench verify`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use tpslab_types::keys::account_key;
use tpslab_types::sig::{self, SigPath};

const N: usize = 64;

/// `n` signatures of 150-byte messages, each by its own key.
struct Signed {
    keys: Vec<ed25519_dalek::SigningKey>,
    msgs: Vec<Vec<u8>>,
    sigs: Vec<[u8; 64]>,
    pks: Vec<[u8; 32]>,
}

impl Signed {
    fn new(n: usize) -> Signed {
        let keys: Vec<_> = (0..n as u64).map(|i| account_key("bench", i)).collect();
        let msgs: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 150]).collect();
        let sigs = keys
            .iter()
            .zip(&msgs)
            .map(|(k, m)| k.sign(m).to_bytes())
            .collect();
        let pks = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
        Signed {
            keys,
            msgs,
            sigs,
            pks,
        }
    }

    /// The first `n` as items for [`sig::verify_many`].
    fn items(&self, n: usize) -> Vec<sig::Item<'_>> {
        (0..n)
            .map(|i| sig::Item {
                pk: &self.pks[i],
                sig: &self.sigs[i],
                msg: &self.msgs[i],
            })
            .collect()
    }
}

fn bench(c: &mut Criterion) {
    let s = Signed::new(N);
    let (keys, msgs, sigs, pks) = (&s.keys, &s.msgs, &s.sigs, &s.pks);
    let items = s.items(N);
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
    // The same equation by ed25519-zebra's verifier, which decompresses every key each batch
    // (the rule's batch path keeps keys decompressed across batches).
    g.bench_function("zebra_batch", |b| {
        b.iter(|| {
            let mut v = ed25519_zebra::batch::Verifier::new();
            for i in 0..N {
                v.queue((
                    ed25519_zebra::VerificationKeyBytes::from(pks[i]),
                    ed25519_zebra::Signature::from_bytes(&sigs[i]),
                    &msgs[i][..],
                ));
            }
            v.verify(rand::thread_rng()).unwrap()
        })
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

/// Per-signature cost of the batch path by batch size (distinct keys): what coalescing small
/// gossip batches would buy.
fn by_batch_size(c: &mut Criterion) {
    let s = Signed::new(1024);
    let mut g = c.benchmark_group("rule_batch_by_size");
    g.sample_size(20);
    for n in [4usize, 16, 64, 256, 1024] {
        let items = s.items(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(n.to_string(), |b| {
            b.iter(|| assert!(sig::verify_many(&items, true).iter().all(|ok| *ok)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, by_batch_size);
criterion_main!(benches);
