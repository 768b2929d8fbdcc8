//! adaptive-pause: when a BFT validator starts the next height after a commit.
//!
//! The naive path is CometBFT's timeout_commit: always `commit_pause` (block_interval_ms).
//! The tuned path waits as long as the height it follows took, from its start to its commit
//! (at least [`MIN_PAUSE`], at most `commit_pause`), and not at all once the mempool holds a
//! full block; past that wait, an empty mempool keeps it waiting for the first tx (up to
//! `commit_pause`), so an idle chain does not spin out empty blocks. On a lightly loaded chain
//! a height takes tens of milliseconds, so txs wait a short pause instead of 200 ms; on a busy
//! one heights take longer and so do the pauses, so blocks stay large and their fixed cost
//! (three voting phases, an fsync, the commit fan-out) amortised: a fixed short pause lost
//! capacity (README, "The commit pause").
//!
//! Each validator decides alone. A pause only moves when a height starts, never what is
//! valid, and messages of the next height that arrive meanwhile are kept for it.

use super::*;
use crate::pipeline::BlockLimits;

/// The shortest adaptive pause, so a height's commit fan-out (clients, mempool update) is
/// under way before the next proposal is built.
pub(super) const MIN_PAUSE: Duration = Duration::from_millis(10);

/// How often an adaptive pause looks at the mempool (a tick, not the pool's wake-up: the
/// pool's single waiter slot belongs to the solo and Raft producers).
pub(super) const CHECK_EVERY: Duration = Duration::from_millis(5);

/// An adaptive pause in progress: the next height starts at `soon` if any tx is pending (or
/// once one arrives), before it if a full block is pending; the reactor's `start_at` stays
/// the latest start.
#[derive(Clone, Copy, Debug)]
pub(super) struct Early {
    /// When the height's own work has been waited for.
    pub soon: tokio::time::Instant,
    /// Pending txs that fill a block.
    pub full: usize,
}

impl Early {
    /// Pending txs that end the pause now.
    pub fn want(&self, now: tokio::time::Instant) -> usize {
        if now >= self.soon {
            1
        } else {
            self.full
        }
    }
}

/// The adaptive pause after a height that took `work`.
pub(super) fn after(work: Duration, max: Duration) -> Duration {
    work.clamp(MIN_PAUSE.min(max), max)
}

/// How many pending txs fill a block: the count limit, or fewer when the pool's mean tx
/// would fill the byte limit first.
pub(super) fn full_block_txs(limits: BlockLimits, pending: usize, pending_bytes: usize) -> usize {
    let by_bytes = match pending_bytes.checked_div(pending) {
        Some(mean) if mean > 0 => limits.max_bytes / mean,
        _ => limits.max_txs,
    };
    limits.max_txs.min(by_bytes).max(1)
}

impl Reactor {
    /// After committing: when the next height starts (and, adaptive, what ends it earlier).
    pub(super) fn schedule_next_height(&mut self) {
        let now = tokio::time::Instant::now();
        self.start_at = Some(now + self.cfg.commit_pause);
        self.early = None;
        if !self.cfg.adaptive_pause {
            return;
        }
        let pool = self.pipeline.pool();
        let (pending, bytes) = (pool.size(), pool.bytes());
        let full = full_block_txs(self.pipeline.limits(), pending, bytes);
        if pending >= full {
            self.start_at = Some(now);
            return;
        }
        let work = self
            .height_started
            .map_or(self.cfg.commit_pause, |t| now.saturating_duration_since(t));
        self.early = Some(Early {
            soon: now + after(work, self.cfg.commit_pause),
            full,
        });
    }

    /// During an adaptive pause: whether enough txs are pending to start now.
    pub(super) fn pause_over(&self) -> bool {
        self.early
            .is_some_and(|e| self.pipeline.pool().size() >= e.want(tokio::time::Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_pause_follows_the_work_within_its_bounds() {
        assert_eq!(after(MS(3), MS(200)), MIN_PAUSE);
        assert_eq!(after(MS(75), MS(200)), MS(75));
        assert_eq!(after(MS(900), MS(200)), MS(200));
        // A block interval below the minimum is kept as configured.
        assert_eq!(after(MS(50), MS(5)), MS(5));
    }

    #[test]
    fn a_full_block_is_the_count_limit_or_what_fills_the_bytes() {
        let limits = BlockLimits {
            max_txs: 20_000,
            max_bytes: 12 << 20,
        };
        assert_eq!(full_block_txs(limits, 0, 0), 20_000);
        // 512 B txs: the count limit comes first.
        assert_eq!(full_block_txs(limits, 1000, 512_000), 20_000);
        // 1 KiB txs: 12 MiB holds 12,288 of them.
        assert_eq!(full_block_txs(limits, 1000, 1024 * 1000), 12_288);
        // Txs bigger than a block: one fills it.
        assert_eq!(full_block_txs(limits, 1, 64 << 20), 1);
    }

    #[test]
    fn past_the_soon_mark_any_tx_ends_the_pause() {
        let now = tokio::time::Instant::now();
        let e = Early {
            soon: now + MS(50),
            full: 20_000,
        };
        assert_eq!(e.want(now), 20_000);
        assert_eq!(e.want(now + MS(50)), 1);
    }
}
