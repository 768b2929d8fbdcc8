//! The machine a run measured on, beyond /proc's facts: how fast its data disk syncs (the
//! naive write path syncs once per tx, so the disk can dominate a step), how fast its CPU
//! verifies transfer signatures (the tuned transfer chain's largest cost: hosts that report
//! the same CPU model have differed twofold here), and which binary ran the validators.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;
use tpslab_types::keys::account_key;
use tpslab_types::tx::{encode_transfer, verify_signatures, ParsedTx, Transfer};
use tpslab_types::Address;

/// Synced 4 KiB writes into a file in `dir` (the disk the step testnets use): P50 and P99 of
/// 200, us. None when the disk cannot be written.
pub fn fsync_latency(dir: &Path) -> Option<(f64, f64)> {
    let path = dir.join(".fsync-probe");
    let mut f = std::fs::File::create(&path).ok()?;
    let block = [0u8; 4096];
    let mut us = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        f.write_all(&block).ok()?;
        f.sync_data().ok()?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    us.sort_by(f64::total_cmp);
    Some((us[us.len() / 2], us[us.len() * 99 / 100]))
}

/// Signature verification of transfer txs as the validators do it, us per tx: (one by one,
/// in batches of 256 with their keys already cached). Each the best of 3 timed rounds after
/// one untimed round; the rounds together take ~50 ms. Measured once per process (the
/// experiment's start and each of its capacity searches share it).
pub fn verify_us() -> (f64, f64) {
    static MEASURED: OnceLock<(f64, f64)> = OnceLock::new();
    *MEASURED.get_or_init(measure_verify_us)
}

fn measure_verify_us() -> (f64, f64) {
    const N: usize = 256;
    let txs: Vec<ParsedTx> = (0..N as u64)
        .filter_map(|i| {
            let raw = encode_transfer(
                &account_key("calibrate", i),
                Transfer {
                    chain_id: "calibrate".into(),
                    to: Address([7; 20]),
                    amount: 1,
                    nonce: i,
                    fee: 1,
                    payload: vec![0; 100],
                },
            );
            ParsedTx::decode(&raw).ok()
        })
        .collect();
    let refs: Vec<&ParsedTx> = txs.iter().collect();
    let per_tx = |batch: bool, n: usize| {
        (0..4)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(verify_signatures(&refs[..n], batch));
                t.elapsed().as_secs_f64() * 1e6 / n as f64
            })
            .skip(1)
            .fold(f64::INFINITY, f64::min)
    };
    (per_tx(false, 64), per_tx(true, N))
}

/// [`verify_us`] as a sentence for reports.
pub fn verify_line((single, batched): (f64, f64)) -> String {
    format!(
        "a transfer's signature verifies in {single:.1} us one by one, {batched:.1} us per tx in batches of 256 \
         (each validator verifies each tx once: capacities from machines that differ here differ too)"
    )
}

/// SHA-256 of the file at `path`, hex (None if unreadable).
pub fn file_sha256(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).ok()?;
    Some(hex::encode(h.finalize()))
}
