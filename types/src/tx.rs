//! Transfer transactions: canonical sign-bytes, signing, decoding and verification.

use crate::account::Address;
use crate::hash::Hash;
use crate::pb;
use crate::sig::{self, SigPath};
use crate::{TypesError, TypesResult};
use ed25519_dalek::{Signer, SigningKey};
use prost::Message;

/// Domain separator of tx sign-bytes, so a tx signature can never be replayed as a vote.
const TX_DOMAIN: &[u8] = b"tpslab/tx/v1\0";

/// The canonical bytes a tx signature covers. Hand-written rather than the prost encoding so
/// the signed form is fixed by this function, not by a serializer's choices:
/// `domain || u32 BE len(chain_id) || chain_id || from(32) || to(20) || amount BE ||
/// nonce BE || fee BE || u32 BE len(payload) || payload`.
pub fn sign_bytes(tx: &pb::Tx) -> Vec<u8> {
    let mut out = Vec::with_capacity(TX_DOMAIN.len() + 100 + tx.chain_id.len() + tx.payload.len());
    sign_bytes_into(tx, &mut out);
    out
}

/// Appends [`sign_bytes`] of `tx` to `out`.
pub fn sign_bytes_into(tx: &pb::Tx, out: &mut Vec<u8>) {
    out.extend_from_slice(TX_DOMAIN);
    out.extend_from_slice(&(tx.chain_id.len() as u32).to_be_bytes());
    out.extend_from_slice(tx.chain_id.as_bytes());
    out.extend_from_slice(&tx.from);
    out.extend_from_slice(&tx.to);
    out.extend_from_slice(&tx.amount.to_be_bytes());
    out.extend_from_slice(&tx.nonce.to_be_bytes());
    out.extend_from_slice(&tx.fee.to_be_bytes());
    out.extend_from_slice(&(tx.payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&tx.payload);
}

/// What a transfer moves, before signing.
#[derive(Clone, Debug, Default)]
pub struct Transfer {
    /// Chain the tx is valid on.
    pub chain_id: String,
    /// Recipient.
    pub to: Address,
    /// Amount moved.
    pub amount: u64,
    /// Sender nonce.
    pub nonce: u64,
    /// Fee (burned).
    pub fee: u64,
    /// Opaque padding/payload.
    pub payload: Vec<u8>,
}

/// The transfer `t` from public key `from`, with an empty signature.
pub fn unsigned_transfer(from: [u8; 32], t: Transfer) -> pb::Tx {
    pb::Tx {
        chain_id: t.chain_id,
        from: from.to_vec(),
        to: t.to.0.to_vec(),
        amount: t.amount,
        nonce: t.nonce,
        fee: t.fee,
        payload: t.payload,
        signature: Vec::new(),
    }
}

/// Builds and signs a transfer from `key`.
pub fn sign_transfer(key: &SigningKey, t: Transfer) -> pb::Tx {
    let mut tx = unsigned_transfer(key.verifying_key().to_bytes(), t);
    tx.signature = key.sign(&sign_bytes(&tx)).to_bytes().to_vec();
    tx
}

/// Signs a transfer and returns its wire encoding.
pub fn encode_transfer(key: &SigningKey, t: Transfer) -> Vec<u8> {
    sign_transfer(key, t).encode_to_vec()
}

/// Hash of a tx: SHA-256 of its wire bytes.
pub fn tx_hash(raw: &[u8]) -> Hash {
    Hash::digest(raw)
}

/// A decoded tx whose fields have the right shapes; the signature is not checked yet, so the
/// caller chooses when (and whether batched or cached) to verify.
#[derive(Clone, Debug)]
pub struct ParsedTx {
    /// The decoded message.
    pub tx: pb::Tx,
    /// SHA-256 of the wire bytes.
    pub hash: Hash,
    /// Sender address, derived from `tx.from`.
    pub sender: Address,
    /// Recipient address.
    pub to: Address,
    /// Length of the wire bytes.
    pub size: usize,
    /// The sender's key bytes; decompressed to a curve point only when a signature is
    /// verified (a tx whose signature is cached never needs it).
    pubkey: [u8; 32],
    signature: [u8; 64],
    /// buffer-pool toggle: `tx` came from the pool and goes back on drop.
    pooled: bool,
}

impl Drop for ParsedTx {
    fn drop(&mut self) {
        if self.pooled {
            crate::bufpool::give(std::mem::take(&mut self.tx));
        }
    }
}

impl ParsedTx {
    /// Decodes `raw` into a new message and checks field shapes (key and signature lengths).
    pub fn decode(raw: &[u8]) -> TypesResult<ParsedTx> {
        ParsedTx::decode_with(raw, false)
    }

    /// [`ParsedTx::decode`], with the buffer-pool toggle: `pooled` decodes into a message
    /// from the pool (returned when this `ParsedTx` drops) and builds sign-bytes in scratch
    /// buffers; otherwise every decode and verification allocates afresh.
    pub fn decode_with(raw: &[u8], pooled: bool) -> TypesResult<ParsedTx> {
        let malformed = |reason: String| TypesError::Malformed { what: "tx", reason };
        let tx = if pooled {
            let mut tx = crate::bufpool::take();
            if let Err(e) = crate::bufpool::decode_reusing(&mut tx, raw) {
                crate::bufpool::give(tx);
                return Err(malformed(e));
            }
            tx
        } else {
            pb::Tx::decode(raw).map_err(|e| malformed(e.to_string()))?
        };
        let mut parsed = ParsedTx {
            hash: tx_hash(raw),
            sender: Address::default(),
            to: Address::default(),
            size: raw.len(),
            pubkey: [0; 32],
            signature: [0; 64],
            pooled,
            tx,
        };
        // Shape checks after `parsed` owns the message, so a pooled one goes back on error.
        parsed.check_shapes()?;
        Ok(parsed)
    }

    fn check_shapes(&mut self) -> TypesResult<()> {
        let tx = &self.tx;
        let from: [u8; 32] = tx
            .from
            .as_slice()
            .try_into()
            .map_err(|_| TypesError::BadLength {
                field: "tx.from",
                expected: 32,
                got: tx.from.len(),
            })?;
        let to = Address::from_slice("tx.to", &tx.to)?;
        let sig: [u8; 64] =
            tx.signature
                .as_slice()
                .try_into()
                .map_err(|_| TypesError::BadLength {
                    field: "tx.signature",
                    expected: 64,
                    got: tx.signature.len(),
                })?;
        // The key half of the signature rule is a byte check: refuse a small-order or
        // non-canonical key at decoding, before any state read or verification.
        crate::sig::check_public_key(&from)?;
        self.sender = Address::from_pubkey(&from);
        self.to = to;
        self.pubkey = from;
        self.signature = sig;
        Ok(())
    }

    /// Checks the tx was made for `chain_id`.
    pub fn check_chain_id(&self, chain_id: &str) -> TypesResult<()> {
        if self.tx.chain_id == chain_id {
            Ok(())
        } else {
            Err(TypesError::WrongChainId {
                expected: chain_id.to_string(),
                got: self.tx.chain_id.clone(),
            })
        }
    }

    /// Verifies the ed25519 signature over the canonical sign-bytes, under the project's one
    /// rule ([`crate::sig`]).
    pub fn verify_signature(&self) -> TypesResult<()> {
        let path = SigPath::TxSingle;
        if self.pooled {
            crate::bufpool::with_scratch(|buf| {
                sign_bytes_into(&self.tx, buf);
                sig::verify(&self.pubkey, &self.signature, buf, path)
            })
        } else {
            sig::verify(&self.pubkey, &self.signature, &sign_bytes(&self.tx), path)
        }
    }

    /// What the tx takes from the sender: amount + fee, or None on overflow.
    pub fn cost(&self) -> Option<u64> {
        self.tx.amount.checked_add(self.tx.fee)
    }
}

/// Verifies the signatures of `txs`; `out[i]` tells whether tx `i`'s verifies.
///
/// `batch = false` (the sig-batch toggle's naive path) verifies one by one. `batch = true`
/// runs one batch verification and, only if the batch fails, falls back to one by one to find
/// the bad txs. Both paths apply the same rule ([`crate::sig`]: ZIP-215, cofactored single
/// and batch equations, small-order and non-canonical keys refused), so a tx's verdict never
/// depends on the path it took, the other txs of its batch or the node's cache: a crafted
/// signature cannot split the validators.
pub fn verify_signatures(txs: &[&ParsedTx], batch: bool) -> Vec<bool> {
    if !batch || txs.len() < 2 {
        return txs.iter().map(|t| t.verify_signature().is_ok()).collect();
    }
    tpslab_probe_points::verify_batch(txs.len() as u64, 0, || {
        // buffer-pool: all sign-bytes of the batch in one scratch buffer instead of one
        // allocation each.
        if txs.iter().all(|t| t.pooled) {
            crate::bufpool::with_scratch(|buf| {
                let mut ends = Vec::with_capacity(txs.len());
                for t in txs {
                    sign_bytes_into(&t.tx, buf);
                    ends.push(buf.len());
                }
                let starts = std::iter::once(0).chain(ends.iter().copied());
                let items: Vec<sig::Item<'_>> = starts
                    .zip(&ends)
                    .zip(txs)
                    .map(|((s, &e), t)| t.item(&buf[s..e]))
                    .collect();
                sig::verify_many(&items, true)
            })
        } else {
            let msgs: Vec<Vec<u8>> = txs.iter().map(|t| sign_bytes(&t.tx)).collect();
            let items: Vec<sig::Item<'_>> = txs.iter().zip(&msgs).map(|(t, m)| t.item(m)).collect();
            sig::verify_many(&items, true)
        }
    })
}

impl ParsedTx {
    fn item<'a>(&'a self, msg: &'a [u8]) -> sig::Item<'a> {
        sig::Item {
            pk: &self.pubkey,
            sig: &self.signature,
            msg,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{account_key, address_of};

    fn transfer(nonce: u64) -> Transfer {
        Transfer {
            chain_id: "c".into(),
            to: address_of(&account_key("s", 1)),
            amount: 10,
            nonce,
            fee: 1,
            payload: vec![7; 16],
        }
    }

    #[test]
    fn signed_tx_verifies_and_tampering_is_caught() {
        let key = account_key("s", 0);
        let raw = encode_transfer(&key, transfer(0));
        let p = ParsedTx::decode(&raw).unwrap();
        p.check_chain_id("c").unwrap();
        p.verify_signature().unwrap();
        assert_eq!(p.sender, address_of(&key));
        assert!(matches!(
            p.check_chain_id("d"),
            Err(TypesError::WrongChainId { .. })
        ));

        let mut tx = sign_transfer(&key, transfer(0));
        tx.amount = 11;
        let p = ParsedTx::decode(&tx.encode_to_vec()).unwrap();
        assert_eq!(p.verify_signature(), Err(TypesError::BadSignature));
    }

    #[test]
    fn garbage_and_bad_shapes_are_errors() {
        assert!(matches!(
            ParsedTx::decode(&[0xff, 0xff, 0xff]),
            Err(TypesError::Malformed { .. })
        ));
        let mut tx = sign_transfer(&account_key("s", 0), transfer(0));
        tx.to = vec![1, 2, 3];
        assert!(matches!(
            ParsedTx::decode(&tx.encode_to_vec()),
            Err(TypesError::BadLength { field: "tx.to", .. })
        ));
    }

    #[test]
    fn sign_bytes_are_domain_separated_and_length_prefixed() {
        let mut a = sign_transfer(&account_key("s", 0), transfer(0));
        let mut b = a.clone();
        a.chain_id = "ab".into();
        a.payload = b"c".to_vec();
        b.chain_id = "a".into();
        b.payload = b"bc".to_vec();
        assert_ne!(sign_bytes(&a), sign_bytes(&b));
        assert!(sign_bytes(&a).starts_with(TX_DOMAIN));
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;
    use crate::keys::{account_key, address_of};

    #[test]
    fn batch_and_one_by_one_agree_on_good_and_bad_txs() {
        let raws: Vec<Vec<u8>> = (0..20u64)
            .map(|i| {
                let mut tx = sign_transfer(
                    &account_key("s", i),
                    Transfer {
                        chain_id: "c".into(),
                        to: address_of(&account_key("s", 99)),
                        amount: i,
                        nonce: 0,
                        fee: 1,
                        payload: vec![],
                    },
                );
                if i % 7 == 3 {
                    tx.amount += 1; // signature no longer matches
                }
                tx.encode_to_vec()
            })
            .collect();
        let parsed: Vec<ParsedTx> = raws.iter().map(|r| ParsedTx::decode(r).unwrap()).collect();
        let refs: Vec<&ParsedTx> = parsed.iter().collect();
        let one = verify_signatures(&refs, false);
        let batch = verify_signatures(&refs, true);
        assert_eq!(one, batch);
        assert_eq!(one.iter().filter(|ok| !**ok).count(), 3);
        // All good: the batch passes without the fallback.
        let good: Vec<&ParsedTx> = parsed
            .iter()
            .filter(|p| p.verify_signature().is_ok())
            .collect();
        assert!(verify_signatures(&good, true).iter().all(|b| *b));
    }
}
