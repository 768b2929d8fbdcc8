//! `kvstore`: unsigned `key=value` writes, like CometBFT's kvstore example app, so raw
//! consensus throughput can be compared with systems that do not verify tx signatures.
//!
//! State layout: one entry per key, in the entry store. Txs have no sender: the mempool keeps
//! them in arrival order.

use crate::{App, BlockState, StateKey, TxCode, TxContext};
use tpslab_types::tx::tx_hash;
use tpslab_types::{AppKind, Hash, TypesError, TypesResult};

/// The kvstore app.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvStore;

/// A kvstore tx, borrowing its wire bytes.
#[derive(Clone, Copy, Debug)]
pub struct KvTx<'a> {
    raw: &'a [u8],
    /// The key written.
    pub key: &'a [u8],
    /// The value written.
    pub value: &'a [u8],
}

/// Splits a kvstore tx into key and value. As in CometBFT's kvstore, `key=value` splits at the
/// first `=`, and a tx without `=` stores itself under itself. An empty tx or key is malformed.
pub fn parse_kv(raw: &[u8]) -> TypesResult<(&[u8], &[u8])> {
    let malformed = |reason: &str| TypesError::Malformed {
        what: "kvstore tx",
        reason: reason.to_string(),
    };
    if raw.is_empty() {
        return Err(malformed("empty tx"));
    }
    match raw.iter().position(|&b| b == b'=') {
        Some(0) => Err(malformed("empty key")),
        Some(i) => Ok((&raw[..i], &raw[i + 1..])),
        None => Ok((raw, raw)),
    }
}

impl App for KvStore {
    type Tx<'a> = KvTx<'a>;
    const KIND: AppKind = AppKind::KvStore;
    const SIGNED: bool = false;

    fn decode<'a>(&self, raw: &'a [u8], _ctx: &TxContext<'_>) -> TypesResult<KvTx<'a>> {
        let (key, value) = parse_kv(raw)?;
        Ok(KvTx { raw, key, value })
    }

    /// Computed on demand: execution needs it only for debug logs.
    fn hash(&self, tx: &KvTx<'_>) -> Hash {
        tx_hash(tx.raw)
    }

    fn verify(&self, txs: &[&KvTx<'_>], _batch: bool) -> Vec<bool> {
        vec![true; txs.len()]
    }

    fn verify_one(&self, _tx: &KvTx<'_>) -> bool {
        true
    }

    /// The one entry it writes.
    fn conflict_keys(&self, tx: &KvTx<'_>) -> Option<Vec<StateKey>> {
        Some(vec![StateKey::Entry(tx.key.to_vec())])
    }

    fn deliver<S: BlockState + ?Sized>(
        &self,
        tx: &KvTx<'_>,
        state: &mut S,
    ) -> Result<TxCode, S::Error> {
        state.put_entry(tx.key, tx.value);
        Ok(TxCode::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_txs_split_at_the_first_equals() {
        assert_eq!(parse_kv(b"a=b=c").unwrap(), (&b"a"[..], &b"b=c"[..]));
        assert_eq!(parse_kv(b"abc").unwrap(), (&b"abc"[..], &b"abc"[..]));
        assert_eq!(parse_kv(b"k=").unwrap(), (&b"k"[..], &b""[..]));
        assert!(parse_kv(b"").is_err());
        assert!(parse_kv(b"=v").is_err());
    }
}
