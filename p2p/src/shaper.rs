//! Emulated links (off unless configured, see [`tpslab_types::link`]): a peer's frames leave
//! its send queues no faster than the link rate, consensus first, and reach the socket one
//! link delay later. Sits between the send queues and the connection's writer, on the
//! sending side, so each direction of a link is shaped by the node that sends on it.

use crate::wire::{frame_len, Channel, Queued};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tpslab_types::link::LinkSpec;

/// The granularity of tokio's timer: frames arrive up to this much after they are due.
const TIMER_RESOLUTION: std::time::Duration = std::time::Duration::from_millis(1);

/// The timing of one direction of a link: when each frame handed to it arrives.
pub(crate) struct Shaper {
    spec: LinkSpec,
    /// When the last frame taken finishes going onto the wire.
    link_free: Instant,
    /// Arrival of the last consensus and sync frame: they stay in order, as on one TCP stream.
    last_due: [Option<Instant>; 2],
    rng: StdRng,
}

impl Shaper {
    pub(crate) fn new(spec: LinkSpec, seed: u64) -> Shaper {
        Shaper {
            spec,
            link_free: Instant::now(),
            last_due: [None; 2],
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// When the link can start sending another frame.
    pub(crate) fn free_at(&self) -> Instant {
        self.link_free
    }

    /// A frame of `payload_len` bytes on `channel`, taken at `now`: when it reaches the peer,
    /// or `None` for a lost gossip frame (which still used its share of the link).
    pub(crate) fn schedule(
        &mut self,
        now: Instant,
        payload_len: usize,
        channel: Channel,
    ) -> Option<Instant> {
        let bytes = frame_len(payload_len) + 4;
        let sent = now.max(self.link_free) + self.spec.serialisation(bytes);
        self.link_free = sent;
        let queue = channel.queue();
        if queue == Channel::Mempool.queue()
            && self.spec.gossip_loss > 0.0
            && self.rng.gen_bool(self.spec.gossip_loss)
        {
            return None;
        }
        let mut due = sent + self.delay();
        if let Some(last) = self.last_due.get_mut(queue) {
            due = last.map_or(due, |l| due.max(l));
            *last = Some(due);
        }
        Some(due)
    }

    fn delay(&mut self) -> std::time::Duration {
        let (d, j) = (self.spec.delay, self.spec.jitter);
        if j.is_zero() {
            return d;
        }
        let offset = self.rng.gen_range(-1.0..=1.0) * j.as_secs_f64();
        std::time::Duration::from_secs_f64((d.as_secs_f64() + offset).max(0.0))
    }
}

/// Runs one direction of a link until its queues close: takes a frame (consensus first)
/// whenever the link is free, and hands each to `out` (the writer's queue for its channel)
/// when it is due; counts each lost gossip frame in `lost`. Returns why it stopped.
pub(crate) async fn run(
    mut shaper: Shaper,
    queues: [mpsc::Receiver<Queued>; 3],
    out: [mpsc::Sender<Queued>; 3],
    lost: prometheus_client::metrics::counter::Counter,
) -> String {
    let [mut rx_c, mut rx_s, mut rx_m] = queues;
    // Frames on their way, by arrival, then by when they were taken (`seq` is unique, so the
    // frame itself is never compared).
    let mut held: BinaryHeap<Reverse<(Instant, u64, Queued)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut open = true;
    loop {
        let next_due = held.peek().map(|Reverse((due, ..))| *due);
        tokio::select! {
            biased;
            _ = sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                while held.peek().is_some_and(|Reverse((due, ..))| *due <= now) {
                    let Some(Reverse((_, _, frame))) = held.pop() else { break };
                    if out[frame.0.queue()].send(frame).await.is_err() {
                        return "connection writer stopped".into();
                    }
                }
            }
            frame = take(&mut rx_c, &mut rx_s, &mut rx_m, shaper.free_at()), if open => {
                let Some(frame) = frame else {
                    open = false;
                    continue;
                };
                match shaper.schedule(Instant::now(), frame.1.len(), frame.0) {
                    Some(due) => {
                        seq += 1;
                        held.push(Reverse((due, seq, frame)));
                    }
                    None => {
                        lost.inc();
                    }
                }
            }
            else => return "send queues closed".into(),
        }
    }
}

/// The next frame to put on the link once it is free, consensus first; `None` when every
/// queue is closed.
async fn take(
    rx_c: &mut mpsc::Receiver<Queued>,
    rx_s: &mut mpsc::Receiver<Queued>,
    rx_m: &mut mpsc::Receiver<Queued>,
    free_at: Instant,
) -> Option<Queued> {
    // tokio's timer has 1 ms resolution: waiting for the exact instant would round every
    // frame up to a whole millisecond (1 frame/ms, whatever the rate). Taking a frame up to
    // 1 ms early keeps the rate (its departure is still computed from `free_at`).
    sleep_until(free_at.checked_sub(TIMER_RESOLUTION).unwrap_or(free_at)).await;
    tokio::select! {
        biased;
        Some(m) = rx_c.recv() => Some(m),
        Some(m) = rx_s.recv() => Some(m),
        Some(m) = rx_m.recv() => Some(m),
        else => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn spec(s: &str) -> LinkSpec {
        s.parse().unwrap()
    }

    /// Starts a shaped link; returns its inputs and the writer side's receivers.
    fn link(s: &str) -> ([mpsc::Sender<Queued>; 3], [mpsc::Receiver<Queued>; 3]) {
        let (ti, ri): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::channel(1024)).unzip();
        let (to, ro): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::channel(1024)).unzip();
        let ri: [mpsc::Receiver<Queued>; 3] = ri.try_into().ok().unwrap();
        let to: [mpsc::Sender<Queued>; 3] = to.try_into().ok().unwrap();
        tokio::spawn(run(Shaper::new(spec(s), 7), ri, to, Default::default()));
        (ti.try_into().ok().unwrap(), ro.try_into().ok().unwrap())
    }

    fn frame(channel: Channel, n: usize) -> Queued {
        (channel, Bytes::from(vec![0u8; n]))
    }

    #[tokio::test(start_paused = true)]
    async fn delivers_after_exactly_the_delay() {
        let (tx, mut rx) = link("delay=50ms");
        let t0 = Instant::now();
        tx[0].send(frame(Channel::Consensus, 100)).await.unwrap();
        rx[0].recv().await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn frames_queue_at_the_link_rate() {
        // 8 mbit/s = 1 byte per microsecond; each frame is 991 + 9 bytes on the wire.
        let (tx, mut rx) = link("delay=10ms,bw=8mbit");
        let t0 = Instant::now();
        for _ in 0..10 {
            tx[2].send(frame(Channel::Mempool, 991)).await.unwrap();
        }
        for i in 1..=10u64 {
            rx[2].recv().await.unwrap();
            assert_eq!(
                t0.elapsed(),
                Duration::from_millis(10) + Duration::from_micros(1000 * i)
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn consensus_goes_first_on_a_busy_link() {
        let (tx, mut rx) = link("bw=8mbit");
        for _ in 0..5 {
            tx[2].send(frame(Channel::Mempool, 99_993)).await.unwrap();
        }
        // Let the link take the first gossip frame (100 ms on the wire), then send a vote.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let t0 = Instant::now();
        tx[0].send(frame(Channel::Consensus, 100)).await.unwrap();
        rx[0].recv().await.unwrap();
        // It waits for the frame already on the wire (~100 ms, plus the 1 ms timer
        // resolution), not for the four still queued (~400 ms more).
        assert!(
            t0.elapsed() <= Duration::from_millis(101),
            "{:?}",
            t0.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_keeps_consensus_in_order() {
        let (tx, mut rx) = link("delay=50ms,jitter=40ms");
        for i in 0..200u8 {
            tx[0]
                .send((Channel::Consensus, Bytes::from(vec![i])))
                .await
                .unwrap();
        }
        let t0 = Instant::now();
        for i in 0..200u8 {
            let (_, b) = rx[0].recv().await.unwrap();
            assert_eq!(b[0], i);
        }
        assert!(t0.elapsed() <= Duration::from_millis(90));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_link_is_not_held_to_one_frame_per_timer_tick() {
        // 1 gbit/s: 1000 frames of 1000 B take 8 ms on the wire, not 1000 timer ticks.
        let (tx, mut rx) = link("bw=1gbit");
        let t0 = Instant::now();
        for _ in 0..1000 {
            tx[2].send(frame(Channel::Mempool, 991)).await.unwrap();
        }
        for _ in 0..1000 {
            rx[2].recv().await.unwrap();
        }
        assert!(
            t0.elapsed() <= Duration::from_millis(10),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn gossip_loss_drops_only_gossip() {
        let mut s = Shaper::new(spec("delay=1ms,loss=30%"), 1);
        let now = Instant::now();
        let lost = (0..10_000)
            .filter(|_| s.schedule(now, 100, Channel::Mempool).is_none())
            .count();
        assert!((2_500..3_500).contains(&lost), "{lost}");
        assert!((0..1000).all(|_| s.schedule(now, 100, Channel::Consensus).is_some()));
        assert!((0..1000).all(|_| s.schedule(now, 100, Channel::Sync).is_some()));
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let mut s = Shaper::new(spec("delay=20ms,jitter=5ms"), 3);
        let now = Instant::now();
        for _ in 0..1000 {
            let due = s.schedule(now, 10, Channel::Mempool).unwrap();
            let d = due - now;
            assert!(d >= Duration::from_millis(15) && d <= Duration::from_millis(25));
        }
    }
}
