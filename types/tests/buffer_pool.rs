//! The buffer-pool toggle cuts allocations per tx: the same txs decoded and verified (one by
//! one and in a batch, as CheckTx and block execution do), counted by a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::tx::{encode_transfer, verify_signatures, ParsedTx, Transfer};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per tx for one round of: decode each tx, verify it alone, verify all in a
/// batch, drop them.
fn allocs_per_tx(raws: &[Vec<u8>], pooled: bool) -> f64 {
    let before = ALLOCS.load(Ordering::Relaxed);
    let parsed: Vec<ParsedTx> = raws
        .iter()
        .map(|r| ParsedTx::decode_with(r, pooled).unwrap())
        .collect();
    for p in &parsed {
        p.verify_signature().unwrap();
    }
    let refs: Vec<&ParsedTx> = parsed.iter().collect();
    assert!(verify_signatures(&refs, true).into_iter().all(|ok| ok));
    drop(refs);
    drop(parsed);
    (ALLOCS.load(Ordering::Relaxed) - before) as f64 / raws.len() as f64
}

#[test]
fn buffer_pool_cuts_allocations_per_tx() {
    let to = address_of(&account_key("bp", 999));
    let raws: Vec<Vec<u8>> = (0..256)
        .map(|i| {
            encode_transfer(
                &account_key("bp", i % 16),
                Transfer {
                    chain_id: "bp-chain".into(),
                    to,
                    amount: 1,
                    nonce: i,
                    fee: 1,
                    payload: vec![7; 64],
                },
            )
        })
        .collect();
    // Warm both paths (the pool fills on the first pooled round, scratch buffers grow).
    allocs_per_tx(&raws, false);
    allocs_per_tx(&raws, true);
    let naive = allocs_per_tx(&raws, false);
    let pooled = allocs_per_tx(&raws, true);
    println!("allocations per tx: naive {naive:.2}, buffer-pool {pooled:.2}");
    // Naive: chain id, from, to, payload, signature per decode, sign-bytes per check.
    assert!(naive >= 7.0, "naive {naive}");
    assert!(pooled < 1.0, "buffer-pool {pooled}");
}
