//! The buffer-pool toggle's tuned path: decoded tx messages are taken from a shared pool and
//! given back when the [`ParsedTx`](crate::tx::ParsedTx) holding them drops, and sign-bytes
//! are built in a per-thread scratch buffer, so steady-state CheckTx and execution stop
//! allocating per tx.
//!
//! The lesson the seed article paid for with sync.Pool: a pooled buffer must be reset before
//! reuse, or one tx's bytes leak into the next. [`decode_reusing`] clears every field first,
//! and a test decodes a short tx into a message that held a long one.

use crate::pb;
use parking_lot::Mutex;
use prost::bytes::Buf;
use prost::encoding::{
    check_wire_type, decode_key, decode_varint, skip_field, string, uint64, DecodeContext, WireType,
};
use prost::Message;
use std::cell::RefCell;

/// Most messages kept for reuse (a few MB); beyond it returned messages are freed.
const POOL_MAX: usize = 16_384;

static POOL: Mutex<Vec<pb::Tx>> = Mutex::new(Vec::new());

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A message from the pool (or a new one when the pool is empty).
pub(crate) fn take() -> pb::Tx {
    POOL.lock().pop().unwrap_or_default()
}

/// Gives a message back for reuse.
pub(crate) fn give(tx: pb::Tx) {
    let mut pool = POOL.lock();
    if pool.len() < POOL_MAX {
        pool.push(tx);
    }
}

/// Runs `f` with this thread's scratch buffer, emptied.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        s.clear();
        f(&mut s)
    })
}

/// Decodes `buf` into `tx`, reusing the capacity of its strings and byte vectors. Accepts and
/// rejects exactly what `pb::Tx::decode` does (unknown fields skipped, the last occurrence of
/// a field wins); the error is the reason, as text.
pub(crate) fn decode_reusing(tx: &mut pb::Tx, buf: &[u8]) -> Result<(), String> {
    merge_fields(tx, buf).map_err(|e| match e {
        Field::Prost(e) => e.to_string(),
        Field::Underflow => "failed to decode Protobuf message: buffer underflow".into(),
    })
}

enum Field {
    Prost(prost::DecodeError),
    Underflow,
}

impl From<prost::DecodeError> for Field {
    fn from(e: prost::DecodeError) -> Field {
        Field::Prost(e)
    }
}

fn merge_fields(tx: &mut pb::Tx, mut buf: &[u8]) -> Result<(), Field> {
    tx.clear();
    let ctx = DecodeContext::default();
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match tag {
            1 => string::merge(wire_type, &mut tx.chain_id, &mut buf, ctx.clone())?,
            2 => bytes_into(wire_type, &mut tx.from, &mut buf)?,
            3 => bytes_into(wire_type, &mut tx.to, &mut buf)?,
            4 => uint64::merge(wire_type, &mut tx.amount, &mut buf, ctx.clone())?,
            5 => uint64::merge(wire_type, &mut tx.nonce, &mut buf, ctx.clone())?,
            6 => uint64::merge(wire_type, &mut tx.fee, &mut buf, ctx.clone())?,
            7 => bytes_into(wire_type, &mut tx.payload, &mut buf)?,
            8 => bytes_into(wire_type, &mut tx.signature, &mut buf)?,
            _ => skip_field(wire_type, tag, &mut buf, ctx.clone())?,
        }
    }
    Ok(())
}

/// prost's `bytes::merge` copies through a fresh `Bytes` when reading from a slice; this
/// copies straight into the vector's existing capacity.
fn bytes_into(wire_type: WireType, out: &mut Vec<u8>, buf: &mut &[u8]) -> Result<(), Field> {
    check_wire_type(WireType::LengthDelimited, wire_type)?;
    let len = decode_varint(buf)?;
    if len > buf.remaining() as u64 {
        return Err(Field::Underflow);
    }
    let len = len as usize;
    out.clear();
    out.extend_from_slice(&buf[..len]);
    buf.advance(len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: usize) -> pb::Tx {
        pb::Tx {
            chain_id: "chain-x".into(),
            from: vec![1; 32],
            to: vec![2; 20],
            amount: 5,
            nonce: 7,
            fee: 1,
            payload: vec![9; payload],
            signature: vec![3; 64],
        }
    }

    #[test]
    fn reused_message_holds_nothing_of_the_previous_tx() {
        let mut m = sample(500);
        let short = pb::Tx {
            payload: Vec::new(),
            nonce: 0,
            ..sample(0)
        };
        decode_reusing(&mut m, &short.encode_to_vec()).unwrap();
        assert_eq!(m, short);
    }

    #[test]
    fn agrees_with_prost_on_good_and_bad_input() {
        let good = sample(40).encode_to_vec();
        let mut m = pb::Tx::default();
        decode_reusing(&mut m, &good).unwrap();
        assert_eq!(m, pb::Tx::decode(good.as_slice()).unwrap());
        // Every truncation and a few corruptions: both accept or both refuse, same message.
        let mut inputs: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x80;
            inputs.push(bad);
        }
        inputs.push(vec![0xff; 12]);
        // An unknown field is skipped by both.
        let mut extra = good.clone();
        extra.extend_from_slice(&[0x48, 0x01]);
        inputs.push(extra);
        for input in inputs {
            let theirs = pb::Tx::decode(input.as_slice());
            let ours = decode_reusing(&mut m, &input).map(|()| m.clone());
            assert_eq!(theirs.ok(), ours.ok(), "{input:?}");
        }
    }
}
