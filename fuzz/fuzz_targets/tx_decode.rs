//! A tx from a client or a peer: decode (plain and pooled buffers must agree), the shape and
//! chain checks, and the one signature rule alone and in a batch (same verdict).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpslab_types::tx::{verify_signatures, ParsedTx};

fuzz_target!(|data: &[u8]| {
    let plain = ParsedTx::decode_with(data, false);
    let pooled = ParsedTx::decode_with(data, true);
    assert_eq!(plain.is_ok(), pooled.is_ok(), "pooled decode disagrees");
    let Ok(tx) = plain else { return };
    let _ = tx.check_chain_id("tpslab");
    let _ = tx.cost();
    let alone = tx.verify_signature().is_ok();
    let batched = verify_signatures(&[&tx, &tx], true);
    assert_eq!(
        batched,
        vec![alone, alone],
        "batch verdict differs from single"
    );
    assert_eq!(verify_signatures(&[&tx], false), vec![alone]);
});
