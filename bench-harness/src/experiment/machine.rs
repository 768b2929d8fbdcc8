//! The machine a run measured on, beyond /proc's facts: how fast its data disk syncs (the
//! naive write path syncs once per tx, so the disk can dominate a step), and which binary ran
//! the validators.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

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

/// SHA-256 of the file at `path`, hex (None if unreadable).
pub fn file_sha256(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).ok()?;
    Some(hex::encode(h.finalize()))
}
