//! The node's own measurements as one handle: stage latency histograms, consensus metrics
//! and task monitors. The node makes it and hands a clone to each component that records
//! (mempool, block pipeline, gossip, API, HTTP); none of them owns it.

use crate::tasks::TaskMonitors;
use std::sync::Arc;
use tpslab_consensus::metrics::ConsensusMetrics;
use tpslab_types::stages::StageLatencies;

/// Cloning shares everything.
#[derive(Clone, Default)]
pub struct Telemetry {
    /// Per-stage latency histograms (check_tx, gossip, mempool, consensus, notify).
    pub stages: Arc<StageLatencies>,
    /// Heights, rounds, commit counts and timings.
    pub consensus: ConsensusMetrics,
    /// Raft term, leader, indexes (registered on a Raft chain only).
    pub raft: tpslab_consensus::raft::metrics::RaftMetrics,
    /// One monitor per kind of spawned task.
    pub tasks: TaskMonitors,
}
