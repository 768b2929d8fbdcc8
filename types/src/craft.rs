//! Adversarial ed25519 signatures, for the tests that prove every verification path gives the
//! same verdict ([`crate::sig`]). They are what a hostile client can send; honest signers never
//! make them.

use crate::pb;
use crate::tx::{sign_bytes, unsigned_transfer, Transfer};
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha512};

/// A shape of signature (or key) that ed25519 implementations disagree on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// An honest RFC 8032 signature.
    Honest,
    /// R = rB + T with T of order 8: passes the cofactored equation (valid under the project's
    /// rule), fails cofactorless `verify_strict`, and passes dalek's cofactorless batch when
    /// the batch's coefficient for it is a multiple of 8.
    MixedOrderR,
    /// R of small order (here the order-8 point T): valid cofactored, refused by `verify_strict`.
    SmallOrderR,
    /// R = the identity in the non-canonical encoding y = p + 1: valid under ZIP-215.
    NonCanonicalR,
    /// S + L in place of S: the same point equation, but S is not canonical: refused.
    HighS,
    /// The key is the identity and S = 0: under bare ZIP-215 this "signs" any message; the
    /// project refuses small-order keys.
    SmallOrderKey,
    /// The key is aB + T (mixed order) with a signature made for it: valid cofactored,
    /// refused by `verify_strict`.
    MixedOrderKey,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 7] = [
        Shape::Honest,
        Shape::MixedOrderR,
        Shape::SmallOrderR,
        Shape::NonCanonicalR,
        Shape::HighS,
        Shape::SmallOrderKey,
        Shape::MixedOrderKey,
    ];

    /// The verdict of the project's rule on this shape.
    pub fn valid_under_rule(self) -> bool {
        !matches!(self, Shape::HighS | Shape::SmallOrderKey)
    }
}

fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
    let h = Sha512::new()
        .chain_update(r)
        .chain_update(a)
        .chain_update(msg);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// The identity in the non-canonical encoding y = p + 1 = 2^255 - 18.
fn noncanonical_identity() -> [u8; 32] {
    let mut e = [0xff; 32];
    e[0] = 0xee;
    e[31] = 0x7f;
    e
}

/// The public key `shape` signs with, for `key`.
pub fn public_key(key: &SigningKey, shape: Shape) -> [u8; 32] {
    match shape {
        Shape::SmallOrderKey => EdwardsPoint::default().compress().to_bytes(),
        Shape::MixedOrderKey => (key.verifying_key().to_edwards() + EIGHT_TORSION[1])
            .compress()
            .to_bytes(),
        _ => key.verifying_key().to_bytes(),
    }
}

/// A signature of `shape` over `msg` by [`public_key`]`(key, shape)`. `nonce` varies R, so a
/// caller can make many different signatures of one shape.
pub fn sign(key: &SigningKey, msg: &[u8], shape: Shape, nonce: u64) -> [u8; 64] {
    let a = key.to_scalar();
    let pk = public_key(key, shape);
    let r = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(b"tpslab/craft/v1")
            .chain_update(key.to_bytes())
            .chain_update(nonce.to_be_bytes())
            .chain_update(msg)
            .finalize()
            .into(),
    );
    let t = EIGHT_TORSION[1];
    let (r_bytes, s) = match shape {
        Shape::Honest | Shape::HighS | Shape::MixedOrderKey => {
            let rb = (r * B).compress().to_bytes();
            (rb, r + challenge(&rb, &pk, msg) * a)
        }
        Shape::MixedOrderR => {
            let rb = (r * B + t).compress().to_bytes();
            (rb, r + challenge(&rb, &pk, msg) * a)
        }
        Shape::SmallOrderR => {
            let rb = t.compress().to_bytes();
            (rb, challenge(&rb, &pk, msg) * a)
        }
        Shape::NonCanonicalR => {
            let rb = noncanonical_identity();
            (rb, challenge(&rb, &pk, msg) * a)
        }
        Shape::SmallOrderKey => (EdwardsPoint::default().compress().to_bytes(), Scalar::ZERO),
    };
    let mut s_bytes = s.to_bytes();
    if shape == Shape::HighS {
        s_bytes = add_l(&s_bytes);
    }
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&r_bytes);
    sig[32..].copy_from_slice(&s_bytes);
    sig
}

/// `s + L` as 32 little-endian bytes (fits: s < L < 2^253).
fn add_l(s: &[u8; 32]) -> [u8; 32] {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = s[i] as u16 + L[i] as u16 + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

/// A transfer from `key`'s [`public_key`] signed with a signature of `shape`.
pub fn sign_transfer(key: &SigningKey, t: Transfer, shape: Shape, nonce: u64) -> pb::Tx {
    let mut tx = unsigned_transfer(public_key(key, shape), t);
    tx.signature = sign(key, &sign_bytes(&tx), shape, nonce).to_vec();
    tx
}
