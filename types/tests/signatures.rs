//! One verdict per signature: every verification path (single, batch of any size and
//! composition, fallback after a failed batch, pooled or not, votes) agrees with the project's
//! documented rule on published edge-case vectors and on crafted adversarial shapes.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use prost::Message;
use sha2::{Digest, Sha512};
use tpslab_types::craft::{self, Shape};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::pb::VoteType;
use tpslab_types::sig::{self, SigPath};
use tpslab_types::tx::{encode_transfer, verify_signatures, Transfer};
use tpslab_types::vote::{verify_vote_signature, VoteData};
use tpslab_types::ParsedTx;

/// The rule written out independently of `sig`: canonical key on the curve, not of small
/// order; R a curve point (any encoding); S < L; `[8]([S]B - R - [k]A) = 0`.
fn reference(pk: &[u8; 32], signature: &[u8; 64], msg: &[u8]) -> bool {
    let Some(a) = CompressedEdwardsY(*pk).decompress() else {
        return false;
    };
    if a.compress().to_bytes() != *pk || a.is_small_order() {
        return false;
    }
    let r_bytes: [u8; 32] = signature[..32].try_into().unwrap();
    let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
        return false;
    };
    let s_bytes: [u8; 32] = signature[32..].try_into().unwrap();
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
        return false;
    };
    let h = Sha512::new()
        .chain_update(r_bytes)
        .chain_update(pk)
        .chain_update(msg);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    (s * B - r - k * a).mul_by_cofactor().is_identity()
}

struct Vector {
    pk: [u8; 32],
    sig: [u8; 64],
    msg: Vec<u8>,
}

fn speccheck() -> Vec<Vector> {
    let text = include_str!("data/ed25519-speccheck-cases.json");
    let cases: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
    cases
        .iter()
        .map(|c| {
            let h = |k: &str| hex::decode(c[k].as_str().unwrap()).unwrap();
            Vector {
                pk: h("pub_key").try_into().unwrap(),
                sig: h("signature").try_into().unwrap(),
                msg: h("message"),
            }
        })
        .collect()
}

fn honest(i: u64) -> Vector {
    let key = account_key("honest", i);
    let msg = format!("honest message {i}").into_bytes();
    Vector {
        pk: key.verifying_key().to_bytes(),
        sig: craft::sign(&key, &msg, Shape::Honest, i),
        msg,
    }
}

fn verdicts(vs: &[&Vector], batch: bool) -> Vec<bool> {
    let items: Vec<sig::Item<'_>> = vs
        .iter()
        .map(|v| sig::Item {
            pk: &v.pk,
            sig: &v.sig,
            msg: &v.msg,
        })
        .collect();
    sig::verify_many(&items, batch)
}

/// Every composition of `odd` vectors among `n` honest ones: alone, first, middle, last, all
/// together; each item's verdict must be its single verdict.
fn assert_batches_agree(odd: &[Vector]) {
    let honest: Vec<Vector> = (0..64).map(honest).collect();
    let single: Vec<bool> = odd
        .iter()
        .map(|v| sig::verify(&v.pk, &v.sig, &v.msg, SigPath::TxSingle).is_ok())
        .collect();
    for n in [1usize, 2, 7, 31, 63] {
        for (oi, o) in odd.iter().enumerate() {
            for pos in [0, n / 2, n] {
                let mut batch: Vec<&Vector> = honest[..n].iter().collect();
                batch.insert(pos, o);
                let got = verdicts(&batch, true);
                assert_eq!(got[pos], single[oi], "vector {oi} at {pos} of {}", n + 1);
                assert!(
                    got.iter().enumerate().all(|(i, ok)| i == pos || *ok),
                    "an honest item lost its verdict next to vector {oi}"
                );
                assert_eq!(got, verdicts(&batch, false));
            }
        }
    }
    // All odd ones in one batch, with and without honest company.
    let all: Vec<&Vector> = odd.iter().collect();
    assert_eq!(verdicts(&all, true), single);
    let mut mixed: Vec<&Vector> = honest[..8].iter().collect();
    mixed.extend(odd.iter());
    let got = verdicts(&mixed, true);
    assert_eq!(&got[8..], &single[..]);
}

#[test]
fn speccheck_vectors_get_the_reference_verdict_on_every_path() {
    let vs = speccheck();
    assert_eq!(vs.len(), 10);
    let mut table = Vec::new();
    for (i, v) in vs.iter().enumerate() {
        let want = reference(&v.pk, &v.sig, &v.msg);
        let got = sig::verify(&v.pk, &v.sig, &v.msg, SigPath::TxSingle).is_ok();
        assert_eq!(got, want, "vector {i}");
        // Votes go through the same rule.
        let vote = sig::verify_fields(("k", &v.pk), ("s", &v.sig), &v.msg, SigPath::Vote);
        assert_eq!(vote.is_ok(), want, "vector {i} as a vote");
        table.push(if want { 'V' } else { 'X' });
    }
    // The rule's verdicts on speccheck cases 0-9 (see README "Signature rule"): small-order
    // keys (0, 1) and S >= L (6, 7) refused; mixed-order R and A and small-order R (2-5)
    // accepted; of the two non-canonical R encodings, 9 satisfies the equation with its
    // bytes in the challenge hash and is accepted, 8 does not and is refused.
    assert_eq!(table.iter().collect::<String>(), "XXVVVVXXXV");
    assert_batches_agree(&vs);
}

#[test]
fn crafted_shapes_get_the_rule_verdict_on_every_path() {
    let mut odd = Vec::new();
    for (i, shape) in Shape::ALL.into_iter().enumerate() {
        for nonce in 0..3 {
            let key = account_key("odd", i as u64);
            let msg = format!("msg {i} {nonce}").into_bytes();
            let v = Vector {
                pk: craft::public_key(&key, shape),
                sig: craft::sign(&key, &msg, shape, nonce),
                msg,
            };
            assert_eq!(reference(&v.pk, &v.sig, &v.msg), shape.valid_under_rule());
            odd.push(v);
        }
    }
    assert_batches_agree(&odd);
}

fn transfer(i: u64) -> Transfer {
    Transfer {
        chain_id: "c".into(),
        to: address_of(&account_key("to", 0)),
        amount: 1,
        nonce: i,
        fee: 1,
        payload: vec![i as u8; 8],
    }
}

#[test]
fn crafted_txs_get_one_verdict_alone_in_batches_pooled_or_not() {
    let honest: Vec<Vec<u8>> = (0..31)
        .map(|i| encode_transfer(&account_key("h", i), transfer(i)))
        .collect();
    for shape in Shape::ALL {
        for nonce in 0..16 {
            let bad = craft::sign_transfer(&account_key("a", 1), transfer(nonce), shape, nonce)
                .encode_to_vec();
            for pooled in [false, true] {
                if shape == Shape::SmallOrderKey {
                    // The key half of the rule is checked when the tx is decoded.
                    let e = ParsedTx::decode_with(&bad, pooled).unwrap_err();
                    assert_eq!(e, tpslab_types::TypesError::BadPublicKey);
                    continue;
                }
                let parse = |raw: &[u8]| ParsedTx::decode_with(raw, pooled).unwrap();
                let p = parse(&bad);
                assert_eq!(
                    p.verify_signature().is_ok(),
                    shape.valid_under_rule(),
                    "{shape:?}"
                );
                let mut txs: Vec<ParsedTx> = honest.iter().map(|r| parse(r)).collect();
                let pos = (nonce as usize * 7) % (txs.len() + 1);
                txs.insert(pos, parse(&bad));
                let refs: Vec<&ParsedTx> = txs.iter().collect();
                let batch = verify_signatures(&refs, true);
                assert_eq!(batch, verify_signatures(&refs, false), "{shape:?}");
                assert_eq!(batch[pos], shape.valid_under_rule(), "{shape:?} in a batch");
                assert_eq!(batch.iter().filter(|ok| !**ok).count(), {
                    usize::from(!shape.valid_under_rule())
                });
            }
        }
    }
}

/// The attack that forked a tuned testnet: ed25519-dalek's cofactorless batch accepts a
/// mixed-order R whenever the batch's coefficient for it is a multiple of 8, and its
/// coefficients come from a transcript of the batch, so varying an honest member finds such a
/// batch in ~8 tries. `verify_strict` refuses the same signature alone. Under the project's
/// rule the single and batch verdicts are the same (both accept: the equation is cofactored).
#[test]
fn a_batch_dalek_accepts_gets_the_same_verdict_alone() {
    use ed25519_dalek::{Signature, VerifyingKey};
    let key = account_key("attacker", 0);
    let bad = craft::sign_transfer(&key, transfer(0), Shape::MixedOrderR, 0);
    let bad_msg = tpslab_types::tx::sign_bytes(&bad);
    let bad_sig = Signature::from_slice(&bad.signature).unwrap();
    let vk = key.verifying_key();
    assert!(
        vk.verify_strict(&bad_msg, &bad_sig).is_err(),
        "dalek's single path refuses it"
    );
    let mut found = None;
    for salt in 0..256u64 {
        let mut t = transfer(salt);
        t.payload = salt.to_be_bytes().to_vec();
        let hk = account_key("h", 1);
        let h = tpslab_types::tx::sign_transfer(&hk, t);
        let h_msg = tpslab_types::tx::sign_bytes(&h);
        let h_sig = Signature::from_slice(&h.signature).unwrap();
        let keys: [VerifyingKey; 2] = [vk, hk.verifying_key()];
        let msgs: [&[u8]; 2] = [&bad_msg, &h_msg];
        if ed25519_dalek::verify_batch(&msgs, &[bad_sig, h_sig], &keys).is_ok() {
            found = Some(h);
            break;
        }
    }
    let honest = found.expect("a batch dalek accepts within 256 tries (expected ~8)");
    let raws = [bad.encode_to_vec(), honest.encode_to_vec()];
    let txs: Vec<ParsedTx> = raws.iter().map(|r| ParsedTx::decode(r).unwrap()).collect();
    let refs: Vec<&ParsedTx> = txs.iter().collect();
    let alone = txs[0].verify_signature().is_ok();
    assert_eq!(verify_signatures(&refs, true), vec![alone, true]);
    assert_eq!(verify_signatures(&refs, false), vec![alone, true]);
    assert!(alone, "a cofactored single check accepts a mixed-order R");
}

#[test]
fn votes_follow_the_same_rule() {
    for (i, shape) in Shape::ALL.into_iter().enumerate() {
        let key = account_key("validator", i as u64);
        let data = VoteData {
            chain_id: "c",
            vote_type: VoteType::Prevote,
            height: 7,
            round: 0,
            block_hash: None,
            timestamp_unix_nanos: 1,
        };
        let pk = craft::public_key(&key, shape);
        let s = craft::sign(&key, &data.sign_bytes(), shape, 0);
        assert_eq!(
            verify_vote_signature(&data, &pk, &s).is_ok(),
            shape.valid_under_rule(),
            "{shape:?}"
        );
    }
}

#[test]
fn verifications_are_counted_by_path() {
    let before = sig::verification_counts();
    let vs: Vec<Vector> = (0..4).map(honest).collect();
    let refs: Vec<&Vector> = vs.iter().collect();
    assert!(verdicts(&refs, true).iter().all(|ok| *ok));
    let after = sig::verification_counts();
    let batch = |c: &[(SigPath, u64); 5]| c[SigPath::TxBatch as usize].1;
    assert!(batch(&after) >= batch(&before) + 4);
}

/// Non-canonical key encodings (y + p for the points with y < 19, and x = 0 with the sign
/// bit set) are refused on every path, even where the equation would hold with the
/// canonical point: under bare ZIP-215 they would give one key two addresses.
#[test]
fn non_canonical_keys_are_refused_on_every_path() {
    let mut keys = Vec::new();
    for y in 0u8..19 {
        let mut enc = [0xffu8; 32];
        enc[0] = 0xed + y; // y + p, little-endian
        enc[31] = 0x7f;
        for sign in [0u8, 0x80] {
            let mut e = enc;
            e[31] |= sign;
            if CompressedEdwardsY(e).decompress().is_some() {
                keys.push(e);
            }
        }
    }
    let mut neg_zero = [0u8; 32];
    neg_zero[0] = 1;
    neg_zero[31] = 0x80;
    keys.push(neg_zero);
    assert!(
        keys.len() > 3,
        "{} non-canonical encodings on the curve",
        keys.len()
    );
    let honest_vs: Vec<Vector> = (0..8).map(honest).collect();
    for pk in keys {
        // Any signature: the key is refused before the equation is looked at.
        let v = Vector {
            pk,
            sig: honest_vs[0].sig,
            msg: honest_vs[0].msg.clone(),
        };
        assert_eq!(
            sig::verify(&v.pk, &v.sig, &v.msg, SigPath::TxSingle),
            Err(tpslab_types::TypesError::BadPublicKey)
        );
        let mut batch: Vec<&Vector> = honest_vs.iter().collect();
        batch.insert(3, &v);
        let got = verdicts(&batch, true);
        assert!(!got[3] && got.iter().filter(|ok| **ok).count() == 8);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Batches in which keys repeat (their coefficients are summed onto one point) and random
    /// bytes of signatures, messages or keys are flipped: each item gets its single verdict,
    /// which is the reference rule's.
    #[test]
    fn repeated_keys_and_flipped_bytes_get_the_single_verdict(
        picks in proptest::collection::vec((0u64..3, 1u8..=255, 0usize..6, 0usize..64), 2..40)
    ) {
        let vs: Vec<Vector> = picks
            .iter()
            .enumerate()
            .map(|(j, &(k, flip, place, pos))| {
                let key = account_key("repeat", k);
                let mut v = Vector {
                    pk: key.verifying_key().to_bytes(),
                    msg: format!("message {j}").into_bytes(),
                    sig: [0; 64],
                };
                v.sig = craft::sign(&key, &v.msg, Shape::Honest, j as u64);
                match place {
                    0 => v.sig[pos] ^= flip,
                    1 => { let n = v.msg.len(); v.msg[pos % n] ^= flip }
                    2 => v.pk[pos % 32] ^= flip,
                    _ => {}
                }
                v
            })
            .collect();
        let refs: Vec<&Vector> = vs.iter().collect();
        let want: Vec<bool> = vs.iter().map(|v| reference(&v.pk, &v.sig, &v.msg)).collect();
        proptest::prop_assert_eq!(verdicts(&refs, true), want.clone());
        proptest::prop_assert_eq!(verdicts(&refs, false), want);
    }
}
