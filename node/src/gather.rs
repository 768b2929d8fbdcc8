//! sig-batch's gathering: CheckTx waits a few milliseconds for more txs before verifying, so
//! a signature batch is big enough to be cheap (the batch path's cost per signature falls
//! from ~17 us at 16 to ~12 us at 1024: `cargo bench -p tpslab-types --bench verify`, group
//! rule_batch_by_size). Waiting pays only when txs come fast: at a trickle the batch would stay
//! small whatever the wait, and the CPU is idle anyway, so a gatherer waits only while its
//! recent arrival rate would bring [`WORTH_WAITING`] txs within the window.

use std::time::Duration;
use tokio::time::Instant;

/// How long CheckTx gathers txs when they come fast. A peer's gossip frame holds its last
/// few milliseconds of txs, a dozen at 10k tx/s; 20 ms from every peer makes batches of
/// ~250 at 14k tx/s offered (~100 with 10 ms, ~18 without).
pub const WINDOW: Duration = Duration::from_millis(20);
/// Expected arrivals within the window below which a gatherer does not wait.
pub const WORTH_WAITING: f64 = 64.0;
/// Weight of the newest batch in the rate estimate.
const NEWEST: f64 = 0.2;

/// One CheckTx queue's arrival rate, and whether to wait for more.
#[derive(Debug)]
pub struct Gatherer {
    window: Duration,
    per_sec: f64,
    last: Option<Instant>,
}

impl Gatherer {
    /// A gatherer that waits up to `window`.
    pub fn new(window: Duration) -> Gatherer {
        Gatherer {
            window,
            per_sec: 0.0,
            last: None,
        }
    }

    /// Until when to gather after a first arrival at `now`; None: check at once.
    pub fn until(&self, now: Instant) -> Option<Instant> {
        (self.per_sec * self.window.as_secs_f64() >= WORTH_WAITING).then(|| now + self.window)
    }

    /// Records that `n` txs were taken for checking at `now`.
    pub fn taken(&mut self, n: usize, now: Instant) {
        if let Some(last) = self.last {
            // At least a millisecond: two takes in a row must not read as an infinite rate.
            let secs = now.duration_since(last).as_secs_f64().max(1e-3);
            self.per_sec = (1.0 - NEWEST) * self.per_sec + NEWEST * n as f64 / secs;
        }
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(g: &mut Gatherer, n: usize, every: Duration, times: u32) -> Instant {
        let mut now = Instant::now();
        for _ in 0..times {
            now += every;
            g.taken(n, now);
        }
        now
    }

    #[test]
    fn waits_only_while_txs_come_fast() {
        let mut g = Gatherer::new(WINDOW);
        let now = Instant::now();
        assert_eq!(g.until(now), None, "no history: check at once");
        // A trickle: 2 txs every 100 ms (20 tx/s).
        let now = feed(&mut g, 2, Duration::from_millis(100), 30);
        assert_eq!(g.until(now), None);
        // Load: 100 txs every 10 ms (10k tx/s), 200 per window.
        let now = feed(&mut g, 100, Duration::from_millis(10), 30);
        assert_eq!(g.until(now), Some(now + WINDOW));
        // Back to a trickle: it stops waiting within a second or so.
        let now = feed(&mut g, 1, Duration::from_millis(100), 15);
        assert_eq!(g.until(now), None);
    }
}
