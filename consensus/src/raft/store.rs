//! Raft's storage: raft-rs reads from a [`MemStorage`], and every change is first written to
//! the durable [`RaftLog`] (RocksDB, its own column family), synced, so a restart reloads the
//! same log, term and vote. No vote or append ack leaves before the write it depends on.

use crate::error::{ConsensusError, ConsensusResult};
use prost011::Message as _;
use raft::prelude::{ConfState, Entry, HardState};
use raft::storage::MemStorage;
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
    mem: MemStorage,
}

impl RaftStore {
    /// Loads what `log` holds; on first start, writes `voters` as the conf state. Returns the
    /// store and whether it was empty (a fresh node).
    pub fn open(log: Arc<dyn RaftLog>, voters: Vec<u64>) -> ConsensusResult<(RaftStore, bool)> {
        let state = log
            .load()
            .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        let fresh = state.hard_state.is_empty() && state.entries.is_empty();
        let mem = MemStorage::new();
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
        let mut entries = Vec::with_capacity(state.entries.len());
        for (i, (index, bytes)) in state.entries.iter().enumerate() {
            let e = Entry::decode(bytes.as_slice()).map_err(|e| corrupt("entry", e))?;
            // MemStorage panics on a gap; a gap on disk is corruption, so say so instead.
            if e.index != *index || *index != i as u64 + 1 {
                return Err(corrupt(
                    "log",
                    format!("entry {index} holds index {} at position {i}", e.index),
                ));
            }
            entries.push(e);
        }
        {
            let mut w = mem.wl();
            w.set_conf_state(cs);
            if !state.hard_state.is_empty() {
                let hs =
                    HardState::decode(&*state.hard_state).map_err(|e| corrupt("hard state", e))?;
                w.set_hardstate(hs);
            }
            w.append(&entries).map_err(|e| corrupt("log", e))?;
        }
        Ok((RaftStore { log, mem }, fresh))
    }

    /// What raft-rs reads.
    pub fn mem(&self) -> &MemStorage {
        &self.mem
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
        let mut w = self.mem.wl();
        w.append(entries)
            .map_err(|e| ConsensusError::Raft(format!("raft log append: {e}")))?;
        if let Some(hs) = hs {
            w.set_hardstate(hs.clone());
        }
        Ok(())
    }

    /// Records a newer commit index (durable too: a restart then replays at most to it).
    pub fn set_commit(&self, commit: u64) -> ConsensusResult<()> {
        let mut hs = self.mem.rl().hard_state().clone();
        hs.commit = commit;
        self.persist(&[], Some(&hs))
    }
}
