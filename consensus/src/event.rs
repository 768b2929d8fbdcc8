//! What subscribers hear about each commit.

use tpslab_types::Hash;

/// A block became final and durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitEvent {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub block_hash: Hash,
    /// App hash after executing it.
    pub app_hash: Hash,
    /// Hashes of its txs, in block order (including txs that failed execution).
    pub tx_hashes: Vec<Hash>,
    /// Header time, Unix nanoseconds.
    pub block_time_unix_nanos: u64,
    /// When the commit was durable, Unix nanoseconds.
    pub commit_time_unix_nanos: u64,
}
