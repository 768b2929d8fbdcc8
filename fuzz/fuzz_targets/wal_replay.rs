//! The consensus WAL read back from arbitrary bytes (a torn or corrupted file after a crash):
//! the intact prefix, never a panic; what was read, written again, reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tpslab_consensus::wal::{decode_entries, encode_entry};

fuzz_target!(|data: &[u8]| {
    let (entries, used) = decode_entries(data);
    assert!(used <= data.len());
    let again: Vec<u8> = entries.iter().flat_map(encode_entry).collect();
    let (reread, n) = decode_entries(&again);
    assert_eq!(n, again.len(), "a re-encoded entry did not read back");
    assert_eq!(reread, entries, "entries changed through a write and read");
});
