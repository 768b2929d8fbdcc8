//! What one load run counts as it goes, shared by the sender, the response and commit
//! readers, and the progress bar.

use std::sync::atomic::AtomicU64;

/// Counters shared by the sender, the response readers and the commit readers.
#[derive(Default)]
pub(crate) struct Counters {
    pub sent_all: AtomicU64,
    pub sent: AtomicU64,
    pub responded: AtomicU64,
    pub accepted: AtomicU64,
    pub late: AtomicU64,
    pub committed: AtomicU64,
    pub committed_all: AtomicU64,
    pub committed_in_window: AtomicU64,
    pub blocks: AtomicU64,
}
