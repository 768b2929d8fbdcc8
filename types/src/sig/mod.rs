//! The project's one ed25519 rule: every signature (txs, votes, proposals, commits, the p2p
//! handshake) is accepted or refused by these functions, on every path (one by one, batched,
//! after a failed batch), so two honest validators can never disagree on the same bytes.
//!
//! The rule is ZIP-215 (the verification equation of Zcash, CometBFT and Penumbra) plus one
//! restriction on keys:
//!
//! - the public key is a canonical encoding (y < p, no "negative zero") of a point on the curve
//!   that is not of small order (under bare ZIP-215 the identity key with S = 0 "signs"
//!   anything, so funds held by such a key would be free to take);
//! - S is canonical (S < L);
//! - R is any encoding of a curve point (non-canonical encodings accepted, as ZIP-215 says);
//! - the equation is the cofactored one, `[8][S]B = [8]R + [8][k]A`, with
//!   `k = SHA-512(R_bytes || A_bytes || msg)`.
//!
//! Single signatures are checked by ed25519-zebra; batches by the same equation written out in
//! [`batch`], so that keys come decompressed from a cache.
//!
//! Because the single and the batch equation are both cofactored, a batch passes exactly when
//! every member passes alone (up to the 2^-128 chance of random coefficients cancelling a real
//! error). ed25519-dalek's `verify_strict` (cofactorless, refuses any small-order R) and its
//! `verify_batch` (cofactorless, deterministic coefficients) disagree on a signature whose R
//! has a torsion component, which is how the sig-batch toggle used to fork the chain.

mod batch;
mod key_cache;

use crate::{TypesError, TypesResult};
use curve25519_dalek::constants::EIGHT_TORSION;
use ed25519_zebra::{Signature, VerificationKey};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Which path verified a signature, for `tpslab_signature_verifications_total{path}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigPath {
    /// A tx verified alone (CheckTx, or execution without sig-batch).
    TxSingle,
    /// A tx verified as a member of a batch.
    TxBatch,
    /// A tx re-verified alone after its batch failed.
    TxFallback,
    /// A vote, proposal or commit signature.
    Vote,
    /// The p2p handshake.
    Handshake,
}

impl SigPath {
    /// Every path, in label order.
    pub const ALL: [SigPath; 5] = [
        SigPath::TxSingle,
        SigPath::TxBatch,
        SigPath::TxFallback,
        SigPath::Vote,
        SigPath::Handshake,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            SigPath::TxSingle => "tx_single",
            SigPath::TxBatch => "tx_batch",
            SigPath::TxFallback => "tx_fallback",
            SigPath::Vote => "vote",
            SigPath::Handshake => "handshake",
        }
    }
}

/// Process-wide counts of verifications per path (a process is one node).
static COUNTS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

fn count(path: SigPath, n: u64) {
    COUNTS[path as usize].fetch_add(n, Ordering::Relaxed);
}

/// How many signatures each path has verified in this process so far.
pub fn verification_counts() -> [(SigPath, u64); 5] {
    SigPath::ALL.map(|p| (p, COUNTS[p as usize].load(Ordering::Relaxed)))
}

/// Canonical encodings of the eight points of small order.
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static ENC: OnceLock<[[u8; 32]; 8]> = OnceLock::new();
    ENC.get_or_init(|| EIGHT_TORSION.map(|p| p.compress().to_bytes()))
}

/// Whether `y` (the encoding with its sign bit cleared) is below p = 2^255 - 19.
fn y_is_canonical(enc: &[u8; 32]) -> bool {
    // y >= p only for the 19 values p..2^255-1: top byte 0x7f, middle bytes 0xff, low byte >= 0xed.
    !(enc[31] & 0x7f == 0x7f && enc[1..31].iter().all(|&b| b == 0xff) && enc[0] >= 0xed)
}

/// Whether `y` is 1 or p - 1 (the two points with x = 0, whose sign bit must be clear).
fn y_is_plus_minus_one(enc: &[u8; 32]) -> bool {
    let mut y = *enc;
    y[31] &= 0x7f;
    let one = y[0] == 1 && y[1..].iter().all(|&b| b == 0);
    let minus_one = y[0] == 0xec && y[1..31].iter().all(|&b| b == 0xff) && y[31] == 0x7f;
    one || minus_one
}

/// The key half of the rule, on bytes alone (no point decompression, so it costs nothing next
/// to a verification): a canonical encoding, not of small order. Whether the point is on the
/// curve at all is found when a signature is verified against it.
pub fn check_public_key(pk: &[u8; 32]) -> TypesResult<()> {
    let canonical = y_is_canonical(pk) && !(pk[31] & 0x80 != 0 && y_is_plus_minus_one(pk));
    if !canonical || small_order_encodings().contains(pk) {
        return Err(TypesError::BadPublicKey);
    }
    Ok(())
}

/// Verifies `sig` by `pk` over `msg` under the project's rule, counted under `path`.
pub fn verify(pk: &[u8; 32], sig: &[u8; 64], msg: &[u8], path: SigPath) -> TypesResult<()> {
    check_public_key(pk)?;
    count(path, 1);
    let vk = VerificationKey::try_from(*pk).map_err(|_| TypesError::BadPublicKey)?;
    vk.verify(&Signature::from_bytes(sig), msg)
        .map_err(|_| TypesError::BadSignature)
}

/// Length-checked [`verify`] of wire fields, naming the field that has the wrong length.
pub fn verify_fields(
    (key_field, key): (&'static str, &[u8]),
    (sig_field, signature): (&'static str, &[u8]),
    msg: &[u8],
    path: SigPath,
) -> TypesResult<()> {
    let pk: [u8; 32] = key.try_into().map_err(|_| TypesError::BadLength {
        field: key_field,
        expected: 32,
        got: key.len(),
    })?;
    let sig: [u8; 64] = signature.try_into().map_err(|_| TypesError::BadLength {
        field: sig_field,
        expected: 64,
        got: signature.len(),
    })?;
    verify(&pk, &sig, msg, path)
}

/// One signature for [`verify_many`].
pub struct Item<'a> {
    /// The signer's public key.
    pub pk: &'a [u8; 32],
    /// The signature.
    pub sig: &'a [u8; 64],
    /// The signed bytes.
    pub msg: &'a [u8],
}

/// Verifies every item; `out[i]` is exactly what [`verify`] says of item `i`, whatever the
/// other items are. With `batch`, items with acceptable keys are checked in one cofactored
/// batch ([`batch`]) and, only if it fails, one by one to find the bad ones.
pub fn verify_many(items: &[Item<'_>], batch: bool) -> Vec<bool> {
    if !batch || items.len() < 2 {
        return items
            .iter()
            .map(|it| verify(it.pk, it.sig, it.msg, SigPath::TxSingle).is_ok())
            .collect();
    }
    let mut ok: Vec<bool> = items
        .iter()
        .map(|it| check_public_key(it.pk).is_ok())
        .collect();
    let idx: Vec<usize> = (0..items.len()).filter(|&i| ok[i]).collect();
    if idx.is_empty() {
        return ok;
    }
    count(SigPath::TxBatch, idx.len() as u64);
    let members: Vec<&Item<'_>> = idx.iter().map(|&i| &items[i]).collect();
    let verdict = batch::verify(&members);
    for (&i, v) in idx.iter().zip(&verdict) {
        ok[i] = match v {
            batch::Verdict::Refused => false,
            batch::Verdict::InBatch(true) => true,
            // The batch failed: find its bad members one by one.
            batch::Verdict::InBatch(false) => {
                let it = &items[i];
                verify(it.pk, it.sig, it.msg, SigPath::TxFallback).is_ok()
            }
        };
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::edwards::CompressedEdwardsY;

    /// The key rule by its definition (decompress, re-encode, look at the order); None for
    /// bytes that are no point at all, which verification refuses on every path.
    fn key_ok_by_definition(pk: &[u8; 32]) -> Option<bool> {
        let p = CompressedEdwardsY(*pk).decompress()?;
        Some(p.compress().to_bytes() == *pk && !p.is_small_order())
    }

    #[test]
    fn byte_level_key_check_matches_the_definition() {
        let mut cases: Vec<[u8; 32]> = small_order_encodings().to_vec();
        // Non-canonical encodings: y >= p (with either sign bit), and negative zero.
        for low in 0xeb..=0xffu8 {
            let mut e = [0xff; 32];
            e[0] = low;
            e[31] = 0x7f;
            cases.push(e);
            e[31] = 0xff;
            cases.push(e);
        }
        let mut one = [0u8; 32];
        one[0] = 1;
        cases.push(one);
        one[31] = 0x80;
        cases.push(one);
        let mut m1 = [0xff; 32];
        m1[0] = 0xec;
        m1[31] = 0x7f;
        cases.push(m1);
        m1[31] = 0xff;
        cases.push(m1);
        for i in 0..2000u64 {
            let h = crate::hash::Hash::digest(&i.to_be_bytes());
            cases.push(h.0);
        }
        for i in 0..50u64 {
            let k = crate::keys::account_key("k", i);
            cases.push(k.verifying_key().to_bytes());
        }
        let mut on_curve = 0;
        for c in &cases {
            let Some(ok) = key_ok_by_definition(c) else {
                let sig = [0u8; 64];
                assert!(verify(c, &sig, b"m", SigPath::TxSingle).is_err());
                continue;
            };
            on_curve += 1;
            assert_eq!(check_public_key(c).is_ok(), ok, "{}", hex::encode(c));
        }
        assert!(
            on_curve > 500,
            "{on_curve} of {} cases on the curve",
            cases.len()
        );
    }
}
