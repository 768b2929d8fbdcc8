//! The batch half of the rule: ZIP-215's cofactored batch equation, written out.
//!
//! For signatures (R_i, S_i) by keys A_i with k_i = SHA-512(R_i || A_i || msg_i) and random
//! 128-bit z_i, the batch holds when
//! `[8]( -(sum z_i S_i) B + sum (z_i k_i) A_i + sum z_i R_i ) = 0`,
//! which is ed25519-zebra's `batch::Verifier` equation term for term (coefficients of one key
//! summed, so a sender's many signatures cost one point). It is written out here because
//! zebra's verifier decompresses every key of every batch, and on a chain the same senders
//! sign again and again: keys come from [`super::key_cache`] instead. Decompressing a point
//! is a field exponentiation, about a fifth of a batched verification.
//!
//! A member whose single verification must fail on its own bytes (S not canonical, R or A no
//! curve point: the checks zebra's single path makes first) is refused here and kept out of
//! the equation, so one malformed signature does not send a whole batch to the one-by-one
//! fallback. Everything else is decided by the equation, and by [`super::verify`] alone when
//! the equation fails.

use super::{key_cache, Item};
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand::RngCore;
use sha2::{Digest, Sha512};
use std::collections::HashMap;

/// What the batch says of one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Fails alone, whatever the others are (bad S, R or A encoding): not in the equation.
    Refused,
    /// In the equation, which held (true) or did not (false: the member may still be good).
    InBatch(bool),
}

/// Checks `items` (keys already past [`super::check_public_key`]) in one equation.
pub(super) fn verify(items: &[&Item<'_>]) -> Vec<Verdict> {
    let keys = key_cache::points(items.iter().map(|it| it.pk));
    let mut verdicts = vec![Verdict::Refused; items.len()];
    let mut rng = rand::thread_rng();
    let mut b_coeff = Scalar::ZERO;
    // One point per distinct key, its coefficients summed.
    let mut key_slot: HashMap<&[u8; 32], usize> = HashMap::with_capacity(items.len());
    let (mut a_coeffs, mut a_points) = (Vec::new(), Vec::new());
    let (mut r_coeffs, mut r_points) = (Vec::with_capacity(items.len()), Vec::new());
    let mut members = Vec::with_capacity(items.len());
    for (i, (it, key)) in items.iter().zip(keys).enumerate() {
        let Some(a) = key else { continue };
        let (r_bytes, s_bytes) = it.sig.split_at(32);
        let r_bytes: [u8; 32] = r_bytes.try_into().expect("64 = 32 + 32");
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(
            s_bytes.try_into().expect("64 = 32 + 32"),
        )) else {
            continue;
        };
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
            continue;
        };
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r_bytes)
                .chain_update(it.pk)
                .chain_update(it.msg),
        );
        let mut z = [0u8; 16];
        rng.fill_bytes(&mut z);
        let z = Scalar::from(u128::from_le_bytes(z));
        b_coeff -= z * s;
        let slot = *key_slot.entry(it.pk).or_insert_with(|| {
            a_points.push(a);
            a_coeffs.push(Scalar::ZERO);
            a_points.len() - 1
        });
        a_coeffs[slot] += z * k;
        r_coeffs.push(z);
        r_points.push(r);
        members.push(i);
    }
    if members.is_empty() {
        return verdicts;
    }
    let sum = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&b_coeff).chain(&a_coeffs).chain(&r_coeffs),
        std::iter::once(&ED25519_BASEPOINT_POINT)
            .chain(&a_points)
            .chain(&r_points),
    );
    let held = sum.mul_by_cofactor().is_identity();
    for i in members {
        verdicts[i] = Verdict::InBatch(held);
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::craft::{self, Shape};
    use crate::keys::account_key;

    struct Signed {
        pk: [u8; 32],
        sig: [u8; 64],
        msg: Vec<u8>,
    }

    /// Signatures by `keys[i % keys.len()]`: keys repeat when `n` exceeds them.
    fn signed(keys: u64, n: u64) -> Vec<Signed> {
        (0..n)
            .map(|i| {
                let key = account_key("batch", i % keys);
                let msg = format!("msg {i}").into_bytes();
                Signed {
                    pk: key.verifying_key().to_bytes(),
                    sig: craft::sign(&key, &msg, Shape::Honest, i),
                    msg,
                }
            })
            .collect()
    }

    fn run(v: &[Signed]) -> Vec<Verdict> {
        let items: Vec<Item<'_>> = v
            .iter()
            .map(|s| Item {
                pk: &s.pk,
                sig: &s.sig,
                msg: &s.msg,
            })
            .collect();
        verify(&items.iter().collect::<Vec<_>>())
    }

    /// The equation itself holds for honest batches (the one-by-one fallback would hide an
    /// equation that always fails), with keys repeated or not.
    #[test]
    fn honest_batches_hold_with_repeated_keys() {
        for (keys, n) in [(1, 5), (3, 40), (300, 300)] {
            let got = run(&signed(keys, n));
            assert!(
                got.iter().all(|v| *v == Verdict::InBatch(true)),
                "{keys} keys, {n} sigs"
            );
        }
    }

    #[test]
    fn a_wrong_signature_fails_the_equation_and_malformed_ones_stay_out() {
        let mut v = signed(3, 10);
        v[4].msg.push(b'!');
        let got = run(&v);
        assert!(got.iter().all(|g| *g == Verdict::InBatch(false)));
        let mut v = signed(3, 10);
        v[2].sig[63] = 0xff; // S >= L
        let no_point = (0u64..)
            .map(|i| crate::hash::Hash::digest(&i.to_be_bytes()).0)
            .find(|b| CompressedEdwardsY(*b).decompress().is_none())
            .expect("about half of all encodings are no point");
        v[5].sig[..32].copy_from_slice(&no_point);
        let got = run(&v);
        assert_eq!((got[2], got[5]), (Verdict::Refused, Verdict::Refused));
        let members = got.iter().filter(|g| **g == Verdict::InBatch(true)).count();
        assert!(members >= 8, "{got:?}");
    }
}
