//! Raft engine metrics (names as the issue and etcd's dashboards use them).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Metrics of one Raft node.
#[derive(Clone, Debug)]
pub struct RaftMetrics {
    /// Current term.
    pub term: Gauge,
    /// Times the known leader changed.
    pub leader_changes: Counter,
    /// Highest log index known committed.
    pub commit_index: Gauge,
    /// Highest log index applied to the chain.
    pub applied_index: Gauge,
    /// Proposals raft-rs refused (no leader, leadership moving).
    pub proposals_dropped: Counter,
    /// Time to durably write one Ready's entries and hard state.
    pub append_latency: Histogram,
    /// 0 follower, 1 candidate, 2 leader, 3 pre-candidate.
    pub role: Gauge,
    /// Raft id of the leader this node follows (0: none known); ids are genesis order + 1.
    pub leader: Gauge,
    /// Index of the first entry still in the log (it grows as the log is compacted).
    pub log_first_index: Gauge,
    /// Snapshots installed from a leader (the entries this node needed were compacted).
    pub snapshots_installed: Counter,
}

impl Default for RaftMetrics {
    fn default() -> Self {
        RaftMetrics {
            term: Gauge::default(),
            leader_changes: Counter::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            proposals_dropped: Counter::default(),
            // 100 us .. ~3 s.
            append_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
            role: Gauge::default(),
            leader: Gauge::default(),
            log_first_index: Gauge::default(),
            snapshots_installed: Counter::default(),
        }
    }
}

impl RaftMetrics {
    /// Adds every metric to `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register("raft_term", "Current Raft term", self.term.clone());
        r.register(
            "raft_leader_changes",
            "Times the known leader changed",
            self.leader_changes.clone(),
        );
        r.register(
            "raft_commit_index",
            "Highest log index known committed",
            self.commit_index.clone(),
        );
        r.register(
            "raft_applied_index",
            "Highest log index applied to the chain",
            self.applied_index.clone(),
        );
        r.register(
            "raft_proposals_dropped",
            "Block proposals raft-rs refused",
            self.proposals_dropped.clone(),
        );
        r.register(
            "raft_append_latency_seconds",
            "Time to durably write a Ready's entries and hard state",
            self.append_latency.clone(),
        );
        r.register(
            "raft_role",
            "0 follower, 1 candidate, 2 leader, 3 pre-candidate",
            self.role.clone(),
        );
        r.register(
            "raft_leader",
            "Raft id of the known leader (genesis order + 1; 0 none)",
            self.leader.clone(),
        );
        r.register(
            "raft_log_first_index",
            "Index of the first entry still in the Raft log (compaction moves it up)",
            self.log_first_index.clone(),
        );
        r.register(
            "raft_snapshots_installed",
            "Raft snapshots installed from a leader",
            self.snapshots_installed.clone(),
        );
    }
}
