//! The consensus WAL replayed from arbitrary bytes (a torn or corrupted file after a crash):
//! an error or the valid prefix, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpslab_consensus::wal::Wal;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cs.wal");
    std::fs::write(&path, data).expect("write");
    let _ = Wal::open(&path);
});
