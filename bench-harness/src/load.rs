//! One load run, open or closed loop.
//!
//! Open loop (wrk2's model): tx `i` is due at `start + i / rate`; latency is measured from that
//! intended time, so a slow node (or a slow generator) shows up as latency, never hidden.
//! Closed loop (k6's "VUs"): `concurrency` txs in flight; a new one is sent when one commits
//! or is rejected; latency is measured from the actual send.

use crate::counters::Counters;
use crate::monitor::{Monitor, NodeResources, Watched};
use crate::perturb::{FaultOutcome, Perturb};
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
use tpslab_api::client::connect;
use tpslab_api::genesis::Genesis;
use tpslab_api::proto::{BroadcastTxRequest, SubscribeCommitsRequest};
use tpslab_types::tx::tx_hash;
use tpslab_types::{AppKind, Hash};

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
    pub workload: AppKind,
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
    /// Faults to inject during the window (`--perturb`); `targets` must exclude the nodes
    /// they touch.
    pub perturb: Option<Perturb>,
    /// Every tx pays one of this many accounts (kvstore: writes one of this many keys), so
    /// blocks have at most this many conflict groups; None: no two senders share state
    /// (see [`txsource`]).
    pub hot_accounts: Option<u64>,
}

/// A send this much after its intended time counts as late (tokio's timer has 1 ms
/// granularity, so smaller delays are timer jitter, not a generator falling behind).
const LATE: Duration = Duration::from_millis(10);

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
    /// Txs seen committed in each second of the window.
    per_second: Mutex<Vec<u64>>,
}

impl Shared {
    fn new(mode: Mode, window: (Instant, Instant)) -> Result<Shared> {
        Ok(Shared {
            pending: Arc::default(),
            hist: Arc::new(Mutex::new(
                Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).context("histogram")?,
            )),
            counters: Arc::default(),
            rejected: Arc::default(),
            slots: match mode {
                Mode::Closed { concurrency, .. } => Some(Arc::new(Semaphore::new(concurrency))),
                Mode::Open { .. } => None,
            },
            window,
            first_measured: AtomicU64::new(u64::MAX),
            per_second: Mutex::new(vec![0; (window.1 - window.0).as_secs_f64().ceil() as usize]),
        })
    }

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
    let set = txsource::make(
        cfg.workload,
        &cfg.genesis,
        &cfg.targets[0],
        tx_count(cfg)?,
        cfg.tx_size,
        cfg.hot_accounts,
    )
    .await?;
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
    let shared = Arc::new(Shared::new(cfg.mode, window)?);
    for (k, sub) in subs.into_iter().enumerate() {
        tokio::spawn(track_commits(k, sub, shared.clone()));
    }
    let streams = open_streams(cfg, &shared, &hashes).await?;
    let faults = cfg.perturb.clone().map(|p| tokio::spawn(p.run(window.0)));

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
    let generator_cpu = tokio::spawn(own_cpu_over(window));
    let ran_out = send_all(cfg.mode, set, &hashes, &shared, &streams, start).await?;
    let sent_all = Instant::now();
    let resources = match monitor_at_window.await.ok() {
        Some(m) => {
            tokio::time::sleep_until(window.1.max(Instant::now()).into()).await;
            m.finish().await
        }
        None => Vec::new(),
    };
    // Wait for every CheckTx response too: they travel on another stream than commits.
    let outstanding = |s: &Shared| {
        s.counters.responded.load(Ordering::Relaxed) < s.counters.sent_all.load(Ordering::Relaxed)
            || s.pending.lock().values().any(|&(_, t)| s.measured(t))
    };
    while Instant::now() < sent_all + cfg.drain && outstanding(&shared) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.finish();
    drop(streams);
    let mut faults = match faults {
        Some(f) => f.await.context("the fault schedule failed")?,
        None => Vec::new(),
    };
    if let Some(p) = &cfg.perturb {
        crate::perturb::analyse(&p.schedule, &shared.per_second.lock(), &mut faults);
    }
    let mut report = report(cfg, &shared, ran_out, sent_all, resources, faults);
    report.generator_cpu_pct = generator_cpu.await.ok().flatten();
    Ok(report)
}

/// This process's CPU over `window`, % of one core.
async fn own_cpu_over(window: (Instant, Instant)) -> Option<f64> {
    let me = std::process::id();
    tokio::time::sleep_until(window.0.into()).await;
    let c0 = crate::monitor::cpu_seconds(me)?;
    tokio::time::sleep_until(window.1.into()).await;
    let c1 = crate::monitor::cpu_seconds(me)?;
    Some(100.0 * (c1 - c0) / (window.1 - window.0).as_secs_f64())
}

/// How many txs to make: enough for the whole run at the open-loop rate, or the closed
/// loop's cap.
fn tx_count(cfg: &LoadConfig) -> Result<u64> {
    Ok(match cfg.mode {
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
    })
}

/// One BroadcastTxStream per target, its responses read by a task of their own.
async fn open_streams(
    cfg: &LoadConfig,
    shared: &Arc<Shared>,
    hashes: &Arc<Vec<Hash>>,
) -> Result<Vec<mpsc::Sender<BroadcastTxRequest>>> {
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
    Ok(streams)
}

/// Sends the txs: at their due times (open loop) or whenever a slot frees (closed loop,
/// until the window ends). Returns whether the closed loop ran out of txs.
async fn send_all(
    mode: Mode,
    set: txsource::TxSet,
    hashes: &[Hash],
    shared: &Shared,
    streams: &[mpsc::Sender<BroadcastTxRequest>],
    start: Instant,
) -> Result<bool> {
    let senders = set.senders.max(1);
    // All of one sender's txs go to one target, in nonce order.
    let stream_of = |i: u64| &streams[((i % senders) % streams.len() as u64) as usize];
    match mode {
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
            Ok(false)
        }
        Mode::Closed { .. } => {
            let end = shared.window.1;
            let slots = shared.slots.clone().context("closed loop without slots")?;
            let mut txs = set.txs.into_iter().enumerate();
            loop {
                let permit = tokio::select! {
                    p = slots.acquire() => p.context("slots closed")?,
                    _ = tokio::time::sleep_until(end.into()) => return Ok(false),
                };
                permit.forget();
                let now = Instant::now();
                if now >= end {
                    return Ok(false);
                }
                let Some((i, tx)) = txs.next() else {
                    return Ok(true);
                };
                let i = i as u64;
                shared
                    .send(stream_of(i), hashes[i as usize], i, tx, now)
                    .await?;
            }
        }
    }
}

/// The report of a finished run.
fn report(
    cfg: &LoadConfig,
    shared: &Shared,
    ran_out: bool,
    sent_all: Instant,
    resources: Vec<NodeResources>,
    faults: Vec<FaultOutcome>,
) -> LoadReport {
    let window = shared.window;
    let secs = cfg.duration.as_secs_f64();
    let c = &shared.counters;
    let sent = c.sent.load(Ordering::Relaxed);
    // Every accepted tx of the window is in the latencies: one still pending when the drain
    // ended counts at the time it had waited by then, a lower bound (censored), so a chain
    // that commits little cannot look fast by leaving its slow txs out.
    let mut h = shared.hist.lock().clone();
    let drained = Instant::now();
    let mut censored = 0;
    for &(_, t) in shared.pending.lock().values() {
        if shared.measured(t) {
            censored += 1;
            let _ = h.record(((drained - t).as_micros() as u64).max(1));
        }
    }
    let send_secs = if ran_out {
        (sent_all.max(window.0) - window.0).as_secs_f64().max(1e-3)
    } else {
        (sent_all.min(window.1).max(window.0) - window.0)
            .as_secs_f64()
            .max(secs)
    };
    let windows: Vec<_> = resources.iter().map(|r| r.stage_window.clone()).collect();
    let stages = if windows.iter().any(|w| !w.is_empty()) {
        tpslab_types::stages::summarize(&windows)
    } else {
        Vec::new()
    };
    let (mode, target_rate, concurrency) = match cfg.mode {
        Mode::Open { rate } => ("open", Some(rate), None),
        Mode::Closed { concurrency, .. } => ("closed", None, Some(concurrency)),
    };
    LoadReport {
        workload: cfg.workload.to_string(),
        mode: mode.into(),
        target_rate,
        concurrency,
        tx_size: cfg.tx_size,
        hot_accounts: cfg.hot_accounts,
        targets: cfg.targets.len(),
        duration_secs: secs,
        sent,
        accepted: c.accepted.load(Ordering::Relaxed),
        rejected: shared.rejected.lock().clone(),
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
        per_second_tps: shared.per_second.lock().clone(),
        uncommitted: censored,
        faults,
        generator_cpu_pct: None,
        placement: None,
    }
}

async fn track_commits(
    k: usize,
    mut sub: tonic::Streaming<tpslab_api::proto::CommitEvent>,
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
                let sec = (now - s.window.0).as_secs() as usize;
                if let Some(n) = s.per_second.lock().get_mut(sec) {
                    *n += 1;
                }
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
    mut responses: tonic::Streaming<tpslab_api::proto::BroadcastTxResponse>,
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
