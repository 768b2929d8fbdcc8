//! `[raft]`: the settings of a Raft chain's engine (ignored on a BFT chain). Block size is
//! `[consensus] max_block_txs / max_block_bytes` for both engines.

use serde::{Deserialize, Serialize};

/// `[raft]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    /// One Raft tick, ms: the unit of the election and heartbeat timeouts.
    pub tick_ms: u64,
    /// A follower that hears no leader for this many ticks starts a (pre-)election; raft-rs
    /// draws the real timeout from [election_ticks, 2 * election_ticks).
    pub election_ticks: usize,
    /// The leader sends heartbeats every this many ticks.
    pub heartbeat_ticks: usize,
    /// Batching: once a tx is pending, the leader waits up to this long for a full block
    /// (`consensus.max_block_txs`) before proposing what it has.
    pub linger_ms: u64,
    /// Log compaction: once `2 * log_keep` applied entries are in the log, all but the last
    /// `log_keep` go (a follower that lags by more catches up from a snapshot: the chain's
    /// height and hashes, then the blocks by block sync). Bounds the log in memory and on
    /// disk to `2 * log_keep` blocks. 0 never compacts.
    pub log_keep: u64,
}

impl Default for RaftSection {
    fn default() -> Self {
        RaftSection {
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            linger_ms: 20,
            log_keep: 200,
        }
    }
}

impl RaftSection {
    /// The field that is wrong, and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.tick_ms == 0 {
            return Err(("raft.tick_ms", "must be greater than 0".into()));
        }
        if self.heartbeat_ticks == 0 {
            return Err(("raft.heartbeat_ticks", "must be greater than 0".into()));
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err((
                "raft.election_ticks",
                format!(
                    "({}) must exceed raft.heartbeat_ticks ({}), or followers time out between heartbeats",
                    self.election_ticks, self.heartbeat_ticks
                ),
            ));
        }
        Ok(())
    }

    /// The tick as a duration.
    pub fn tick(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.tick_ms)
    }

    /// The linger as a duration.
    pub fn linger(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.linger_ms)
    }
}
