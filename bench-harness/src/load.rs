//! One load run, open or closed loop.
//!
//! Open loop (wrk2's model): tx `i` is due at `start + i / rate`; latency is measured from that
//! intended time, so a slow node (or a slow generator) shows up as latency, never hidden.
//! Closed loop (k6's "VUs"): `concurrency` txs in flight; a new one is sent when one commits
//! or is rejected; latency is measured from the actual send.

use crate::monitor::{Monitor, Watched};
use crate::progress::Progress;
use crate::report::{LoadReport, Percentiles};
use crate::txsource;
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::StreamExt;
use tpslab_node::client::connect;
use tpslab_node::genesis::Genesis;
use tpslab_node::proto::{BroadcastTxRequest, SubscribeCommitsRequest};
use tpslab_types::tx::tx_hash;
use tpslab_types::{App, Hash};

/// How txs are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Constant offered rate, tx/s.
    Open {
        /// Offered rate, tx/s.
        rate: u64,
    },
    /// A fixed number of txs in flight.
    Closed {
        /// Txs in flight.
        concurrency: usize,
        /// Txs made before the run (the run stops early if it uses them all).
        max_txs: u64,
    },
}

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// gRPC addresses; load is spread over them.
    pub targets: Vec<String>,
    /// The chain's genesis (chain id, test account seed and count).
    pub genesis: Genesis,
    /// Which txs to send.
    pub workload: App,
    /// Pacing.
    pub mode: Mode,
    /// Measured window.
    pub duration: Duration,
    /// Sent before the window, not measured.
    pub warmup: Duration,
    /// Approximate encoded size of each tx.
    pub tx_size: usize,
    /// How long to wait for outstanding commits after the last send.
    pub drain: Duration,
    /// Nodes whose CPU, RSS and /metrics are sampled.
    pub watch: Vec<Watched>,
    /// Show live progress on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
}

/// A send this much after its intended time counts as late (tokio's timer has 1 ms
/// granularity, so smaller delays are timer jitter, not a generator falling behind).
const LATE: Duration = Duration::from_millis(10);

/// Counters shared by the sender, the response readers and the commit readers.
#[derive(Default)]
pub(crate) struct Counters {
    pub sent_all: AtomicU64,
    pub sent: AtomicU64,
    pub responded: AtomicU64,
    pub accepted: AtomicU64,
    pub late: AtomicU64,
    pub committed: AtomicU64,
    pub committed_all: AtomicU64,
    pub committed_in_window: AtomicU64,
    pub blocks: AtomicU64,
}

/// A tx sent and not yet committed or rejected: its index and the time latency counts from.
type Pending = Arc<Mutex<HashMap<Hash, (u64, Instant)>>>;

struct Shared {
    pending: Pending,
    hist: Arc<Mutex<Histogram<u64>>>,
    counters: Arc<Counters>,
    rejected: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Released whenever a tx leaves `pending` (closed loop only).
    slots: Option<Arc<Semaphore>>,
    window: (Instant, Instant),
    /// Index of the first tx sent inside the window (u64::MAX until then). Txs are sent in
    /// index order and none after the window, so `i >= first_measured` means measured.
    first_measured: AtomicU64,
}

impl Shared {
    fn measured(&self, t: Instant) -> bool {
        t >= self.window.0 && t < self.window.1
    }

    /// Records tx `i` as pending (latency counted from `at`) and sends it on `stream`.
    async fn send(
        &self,
        stream: &mpsc::Sender<BroadcastTxRequest>,
        hash: Hash,
        i: u64,
        tx: Vec<u8>,
        at: Instant,
    ) -> Result<()> {
        if self.measured(at) {
            self.first_measured.fetch_min(i, Ordering::Relaxed);
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
        }
        self.pending.lock().insert(hash, (i, at));
        self.counters.sent_all.fetch_add(1, Ordering::Relaxed);
        if stream.send(BroadcastTxRequest { tx, id: i }).await.is_err() {
            anyhow::bail!("a target closed its stream");
        }
        Ok(())
    }

    fn done(&self) {
        if let Some(s) = &self.slots {
            s.add_permits(1);
        }
    }
}

/// Runs the load and reports what was measured.
pub async fn run(cfg: &LoadConfig) -> Result<LoadReport> {
    anyhow::ensure!(!cfg.targets.is_empty(), "no target");
    let n = match cfg.mode {
        Mode::Open { rate } => {
            anyhow::ensure!(rate > 0, "--rate must be positive");
            (rate as f64 * (cfg.warmup + cfg.duration).as_secs_f64()) as u64
        }
        Mode::Closed {
            concurrency,
            max_txs,
        } => {
            anyhow::ensure!(concurrency > 0, "--concurrency must be positive");
            max_txs
        }
    };
    let set = txsource::make(cfg.workload, &cfg.genesis, &cfg.targets[0], n, cfg.tx_size).await?;
    let hashes: Arc<Vec<Hash>> = Arc::new(set.txs.iter().map(|t| tx_hash(t)).collect());

    // Subscribe before sending so no commit is missed; start the clock after.
    let mut subs = Vec::new();
    for t in &cfg.targets {
        subs.push(
            connect(t)
                .await?
                .subscribe_commits(SubscribeCommitsRequest {})
                .await
                .with_context(|| format!("subscribing to commits of {t}"))?
                .into_inner(),
        );
    }
    let start = Instant::now() + Duration::from_millis(100);
    let window = (start + cfg.warmup, start + cfg.warmup + cfg.duration);
    let shared = Arc::new(Shared {
        pending: Arc::default(),
        hist: Arc::new(Mutex::new(
            Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).context("histogram")?,
        )),
        counters: Arc::default(),
        rejected: Arc::default(),
        slots: match cfg.mode {
            Mode::Closed { concurrency, .. } => Some(Arc::new(Semaphore::new(concurrency))),
            Mode::Open { .. } => None,
        },
        window,
        first_measured: AtomicU64::new(u64::MAX),
    });
    for (k, sub) in subs.into_iter().enumerate() {
        tokio::spawn(track_commits(k, sub, shared.clone()));
    }
    let mut streams = Vec::new();
    for t in &cfg.targets {
        let (tx, rx) = mpsc::channel::<BroadcastTxRequest>(65_536);
        let responses = connect(t)
            .await?
            .broadcast_tx_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .with_context(|| format!("opening a tx stream to {t}"))?
            .into_inner();
        tokio::spawn(track_responses(responses, shared.clone(), hashes.clone()));
        streams.push(tx);
    }

    let progress = Progress::start(
        cfg.progress,
        start,
        shared.counters.clone(),
        shared.hist.clone(),
    );
    tokio::time::sleep_until(start.into()).await;
    let monitor_at_window = {
        let watch = cfg.watch.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(window.0.into()).await;
            Monitor::start(watch, Duration::from_millis(500))
        })
    };
    let senders = set.senders.max(1);
    // All of one sender's txs go to one target, in nonce order.
    let stream_of = |i: u64| &streams[((i % senders) % streams.len() as u64) as usize];
    let mut ran_out = false;
    match cfg.mode {
        Mode::Open { rate } => {
            let due = |i: u64| start + Duration::from_secs_f64(i as f64 / rate as f64);
            for (i, tx) in set.txs.into_iter().enumerate() {
                let i = i as u64;
                let at = due(i);
                tokio::time::sleep_until(at.into()).await;
                if shared.measured(at) && Instant::now() > at + LATE {
                    shared.counters.late.fetch_add(1, Ordering::Relaxed);
                }
                shared
                    .send(stream_of(i), hashes[i as usize], i, tx, at)
                    .await?;
            }
        }
        Mode::Closed { .. } => {
            let slots = shared.slots.clone().context("closed loop without slots")?;
            let mut txs = set.txs.into_iter().enumerate();
            loop {
                let permit = tokio::select! {
                    p = slots.acquire() => p.context("slots closed")?,
                    _ = tokio::time::sleep_until(window.1.into()) => break,
                };
                permit.forget();
                let now = Instant::now();
                if now >= window.1 {
                    break;
                }
                let Some((i, tx)) = txs.next() else {
                    ran_out = true;
                    break;
                };
                let i = i as u64;
                shared
                    .send(stream_of(i), hashes[i as usize], i, tx, now)
                    .await?;
            }
        }
    }
    let sent_all = Instant::now();
    let monitor = monitor_at_window.await.ok();
    let resources = match monitor {
        Some(m) => {
            tokio::time::sleep_until(window.1.max(Instant::now()).into()).await;
            m.finish().await
        }
        None => Vec::new(),
    };
    let drain_end = sent_all + cfg.drain;
    // Wait for every CheckTx response too: they travel on another stream than commits.
    let outstanding = |s: &Shared| {
        s.counters.responded.load(Ordering::Relaxed) < s.counters.sent_all.load(Ordering::Relaxed)
            || s.pending.lock().values().any(|&(_, t)| s.measured(t))
    };
    while Instant::now() < drain_end && outstanding(&shared) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.finish();
    drop(streams);

    let secs = cfg.duration.as_secs_f64();
    let c = &shared.counters;
    let sent = c.sent.load(Ordering::Relaxed);
    let h = shared.hist.lock();
    let send_secs = if ran_out {
        (sent_all.max(window.0) - window.0).as_secs_f64().max(1e-3)
    } else {
        (sent_all.min(window.1).max(window.0) - window.0)
            .as_secs_f64()
            .max(secs)
    };
    let rejected = shared.rejected.lock().clone();
    let windows: Vec<_> = resources.iter().map(|r| r.stage_window.clone()).collect();
    let stages = if windows.iter().any(|w| !w.is_empty()) {
        tpslab_types::stages::summarize(&windows)
    } else {
        Vec::new()
    };
    Ok(LoadReport {
        workload: cfg.workload.to_string(),
        mode: match cfg.mode {
            Mode::Open { .. } => "open".into(),
            Mode::Closed { .. } => "closed".into(),
        },
        target_rate: match cfg.mode {
            Mode::Open { rate } => Some(rate),
            Mode::Closed { .. } => None,
        },
        concurrency: match cfg.mode {
            Mode::Closed { concurrency, .. } => Some(concurrency),
            Mode::Open { .. } => None,
        },
        tx_size: cfg.tx_size,
        targets: cfg.targets.len(),
        duration_secs: secs,
        sent,
        accepted: c.accepted.load(Ordering::Relaxed),
        rejected,
        sent_late: c.late.load(Ordering::Relaxed),
        ran_out_of_txs: ran_out,
        committed: c.committed.load(Ordering::Relaxed),
        committed_including_warmup: c.committed_all.load(Ordering::Relaxed),
        blocks: c.blocks.load(Ordering::Relaxed),
        send_rate: sent as f64 / send_secs,
        committed_tps: c.committed_in_window.load(Ordering::Relaxed) as f64 / secs,
        latency_ms: Percentiles::of(&h),
        latency_cdf: crate::report::cdf(&h),
        resources,
        stages,
    })
}

async fn track_commits(
    k: usize,
    mut sub: tonic::Streaming<tpslab_node::proto::CommitEvent>,
    s: Arc<Shared>,
) {
    while let Some(Ok(ev)) = sub.next().await {
        let now = Instant::now();
        let in_window = s.measured(now);
        if k == 0 && in_window {
            s.counters.blocks.fetch_add(1, Ordering::Relaxed);
        }
        for h in &ev.tx_hashes {
            let Ok(h) = Hash::from_slice("tx hash", h) else {
                continue;
            };
            let Some((_, t)) = s.pending.lock().remove(&h) else {
                continue;
            };
            s.done();
            s.counters.committed_all.fetch_add(1, Ordering::Relaxed);
            if in_window {
                s.counters
                    .committed_in_window
                    .fetch_add(1, Ordering::Relaxed);
            }
            if s.measured(t) {
                let us = now.saturating_duration_since(t).as_micros() as u64;
                let _ = s.hist.lock().record(us.max(1));
                s.counters.committed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn track_responses(
    mut responses: tonic::Streaming<tpslab_node::proto::BroadcastTxResponse>,
    s: Arc<Shared>,
    hashes: Arc<Vec<Hash>>,
) {
    while let Some(Ok(r)) = responses.next().await {
        s.counters.responded.fetch_add(1, Ordering::Relaxed);
        let Some(h) = hashes.get(r.id as usize) else {
            continue;
        };
        let measured = r.id >= s.first_measured.load(Ordering::Relaxed);
        if r.code == 0 {
            if measured {
                s.counters.accepted.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        if s.pending.lock().remove(h).is_none() {
            continue;
        }
        s.done();
        if measured {
            let reason = r.log.split(':').next().unwrap_or("").to_string();
            *s.rejected.lock().entry(reason).or_default() += 1;
        }
    }
}
