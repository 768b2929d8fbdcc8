//! What raft-rs reads: the log in a [`MemStorage`], and beside it the snapshot this node
//! sends a follower that needs entries it has compacted away. raft-rs's `MemStorage` can only
//! describe a snapshot at its log base (the last compacted entry), but a node compacts to
//! `log_keep` entries *behind* what it applied, and the chain it can describe is the one at
//! its applied index: so the snapshot is kept apart, at an index at or past the log base.

use raft::prelude::{Entry, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState, StorageError};
use std::sync::{Arc, RwLock};

/// The log and the snapshot; clones share both.
#[derive(Clone, Default)]
pub struct ChainStorage {
    pub(super) mem: MemStorage,
    snapshot: Arc<RwLock<Option<Snapshot>>>,
}

impl ChainStorage {
    /// Replaces the snapshot served to followers.
    pub fn set_snapshot(&self, snap: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Some(snap);
    }

    /// The snapshot served to followers, if any.
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl raft::Storage for ChainStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // Nothing compacted means nothing to send; raft-rs retries later on this error.
        self.snapshot().ok_or(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}
