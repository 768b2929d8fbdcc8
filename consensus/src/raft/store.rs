//! Raft's storage: raft-rs reads from a [`ChainStorage`], and every change is first written to
//! the durable [`RaftLog`] (RocksDB, its own column family), synced, so a restart reloads the
//! same log, term, vote, log base and snapshot. No vote or append ack leaves before the write
//! it depends on.

use super::storage::ChainStorage;
use crate::error::{ConsensusError, ConsensusResult};
use prost011::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use std::sync::Arc;
use tpslab_types::ports::{RaftLog, RaftWrite};

fn corrupt(what: &str, e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Raft(format!("stored raft {what} is corrupt: {e}"))
}

fn store_err(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Raft(format!("cannot write the raft log: {e}"))
}

/// The durable log and its in-memory mirror.
pub struct RaftStore {
    log: Arc<dyn RaftLog>,
    storage: ChainStorage,
}

impl RaftStore {
    /// Loads what `log` holds; on first start, writes `voters` as the conf state. Returns the
    /// store and whether the node is fresh: it started with nothing (first start, or a lost
    /// disk) and has not caught up since, across restarts.
    pub fn open(log: Arc<dyn RaftLog>, voters: Vec<u64>) -> ConsensusResult<(RaftStore, bool)> {
        let state = log
            .load()
            .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        let empty =
            state.hard_state.is_empty() && state.entries.is_empty() && state.log_base.is_empty();
        let fresh = empty || state.abstaining;
        if empty && !state.abstaining {
            log.write(&RaftWrite {
                abstaining: Some(true),
                ..RaftWrite::default()
            })
            .map_err(store_err)?;
        }
        let storage = ChainStorage::default();
        let mem = &storage.mem;
        let cs = if state.conf_state.is_empty() {
            let cs = ConfState::from((voters, vec![]));
            log.write(&RaftWrite {
                conf_state: Some(cs.encode_to_vec()),
                ..RaftWrite::default()
            })
            .map_err(store_err)?;
            cs
        } else {
            ConfState::decode(&*state.conf_state).map_err(|e| corrupt("conf state", e))?
        };
        let base = if state.log_base.is_empty() {
            SnapshotMetadata::default()
        } else {
            SnapshotMetadata::decode(&*state.log_base).map_err(|e| corrupt("log base", e))?
        };
        if !state.snapshot.is_empty() {
            let snap = Snapshot::decode(&*state.snapshot).map_err(|e| corrupt("snapshot", e))?;
            storage.set_snapshot(snap);
        }
        let mut entries = Vec::with_capacity(state.entries.len());
        for (i, (index, bytes)) in state.entries.iter().enumerate() {
            let e = Entry::decode(bytes.as_slice()).map_err(|e| corrupt("entry", e))?;
            // MemStorage panics on a gap; a gap on disk is corruption, so say so instead.
            if e.index != *index || *index != base.index + i as u64 + 1 {
                return Err(corrupt(
                    "log",
                    format!(
                        "entry {index} holds index {} at position {i} after base {}",
                        e.index, base.index
                    ),
                ));
            }
            entries.push(e);
        }
        {
            let mut w = mem.wl();
            if base.index > 0 {
                let snap = Snapshot {
                    metadata: Some(base),
                    ..Snapshot::default()
                };
                w.apply_snapshot(snap).map_err(|e| corrupt("log base", e))?;
            }
            w.set_conf_state(cs);
            if !state.hard_state.is_empty() {
                let hs =
                    HardState::decode(&*state.hard_state).map_err(|e| corrupt("hard state", e))?;
                w.set_hardstate(hs);
            }
            w.append(&entries).map_err(|e| corrupt("log", e))?;
        }
        Ok((RaftStore { log, storage }, fresh))
    }

    /// What raft-rs reads.
    pub fn storage(&self) -> &ChainStorage {
        &self.storage
    }

    /// The snapshot this node would send, if it ever compacted or installed one.
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.storage.snapshot()
    }

    /// Index of the first entry still in the log.
    pub fn first_index(&self) -> u64 {
        raft::Storage::first_index(&self.storage).unwrap_or(1)
    }

    /// Compacts the log after apply: `snapshot` describes the chain at its applied index;
    /// entries up to `base` go (`base` at most that index, so the log keeps the entries a
    /// slightly lagging follower still needs). The snapshot is durable before any entry
    /// it replaces is gone.
    pub fn compact(&self, snapshot: Snapshot, base: u64) -> ConsensusResult<()> {
        let term = raft::Storage::term(&self.storage, base)
            .map_err(|e| ConsensusError::Raft(format!("term of compaction base {base}: {e}")))?;
        let meta = SnapshotMetadata {
            index: base,
            term,
            conf_state: snapshot.get_metadata().conf_state.clone(),
        };
        self.log
            .write(&RaftWrite {
                compact_below: Some(base + 1),
                log_base: Some(meta.encode_to_vec()),
                snapshot: Some(snapshot.encode_to_vec()),
                ..RaftWrite::default()
            })
            .map_err(store_err)?;
        self.storage.set_snapshot(snapshot);
        self.storage
            .mem
            .wl()
            .compact(base + 1)
            .map_err(|e| ConsensusError::Raft(format!("raft log compaction: {e}")))
    }

    /// Replaces the whole log with a snapshot a leader sent: the log continues after its
    /// index, and this node serves it in turn.
    pub fn install(&self, snapshot: &Snapshot) -> ConsensusResult<()> {
        let mut hs = self.storage.mem.rl().hard_state().clone();
        let meta = snapshot.get_metadata();
        hs.term = hs.term.max(meta.term);
        hs.commit = meta.index;
        self.log
            .write(&RaftWrite {
                compact_below: Some(u64::MAX),
                hard_state: Some(hs.encode_to_vec()),
                conf_state: Some(meta.get_conf_state().encode_to_vec()),
                log_base: Some(meta.encode_to_vec()),
                snapshot: Some(snapshot.encode_to_vec()),
                ..RaftWrite::default()
            })
            .map_err(store_err)?;
        self.storage
            .mem
            .wl()
            .apply_snapshot(snapshot.clone())
            .map_err(|e| ConsensusError::Raft(format!("raft snapshot: {e}")))?;
        self.storage.set_snapshot(snapshot.clone());
        Ok(())
    }

    /// Durably appends `entries` and sets `hs`, then mirrors both in memory.
    pub fn persist(&self, entries: &[Entry], hs: Option<&HardState>) -> ConsensusResult<()> {
        if entries.is_empty() && hs.is_none() {
            return Ok(());
        }
        self.log
            .write(&RaftWrite {
                entries: entries
                    .iter()
                    .map(|e| (e.index, e.encode_to_vec()))
                    .collect(),
                hard_state: hs.map(|h| h.encode_to_vec()),
                ..RaftWrite::default()
            })
            .map_err(store_err)?;
        let mut w = self.storage.mem.wl();
        w.append(entries)
            .map_err(|e| ConsensusError::Raft(format!("raft log append: {e}")))?;
        if let Some(hs) = hs {
            w.set_hardstate(hs.clone());
        }
        Ok(())
    }

    /// Records that this node has caught up (or the chain is new) and votes from now on.
    pub fn end_abstention(&self) -> ConsensusResult<()> {
        self.log
            .write(&RaftWrite {
                abstaining: Some(false),
                ..RaftWrite::default()
            })
            .map_err(store_err)
    }

    /// Records a newer commit index (durable too: a restart then replays at most to it).
    pub fn set_commit(&self, commit: u64) -> ConsensusResult<()> {
        let mut hs = self.storage.mem.rl().hard_state().clone();
        hs.commit = commit;
        self.persist(&[], Some(&hs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tpslab_statedb::{StateDb, StateDbOptions};

    fn db(dir: &std::path::Path) -> Arc<dyn RaftLog> {
        Arc::new(StateDb::open(dir, &StateDbOptions::default()).unwrap())
    }

    #[test]
    fn abstention_survives_a_restart_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (store, fresh) = RaftStore::open(db(dir.path()), vec![1, 2, 3]).unwrap();
        assert!(fresh);
        // It learns a term (a hard state on disk) but has not caught up: still fresh.
        let hs = HardState {
            term: 3,
            ..HardState::default()
        };
        store.persist(&[], Some(&hs)).unwrap();
        drop(store);
        let (store, fresh) = RaftStore::open(db(dir.path()), vec![1, 2, 3]).unwrap();
        assert!(fresh, "a restart must not end abstention");
        store.end_abstention().unwrap();
        drop(store);
        let (_, fresh) = RaftStore::open(db(dir.path()), vec![1, 2, 3]).unwrap();
        assert!(!fresh, "abstention ended, with a hard state on disk");
    }

    #[test]
    fn a_corrupt_log_base_or_snapshot_is_refused_at_start() {
        for (base, snap, said) in [
            (
                Some(b"\xff\xff".to_vec()),
                None,
                "stored raft log base is corrupt",
            ),
            (
                None,
                Some(b"\xff\xff".to_vec()),
                "stored raft snapshot is corrupt",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            db(dir.path())
                .write(&RaftWrite {
                    log_base: base,
                    snapshot: snap,
                    ..RaftWrite::default()
                })
                .unwrap();
            let err = RaftStore::open(db(dir.path()), vec![1]).err().unwrap();
            assert!(err.to_string().contains(said), "{err}");
        }
    }
}
