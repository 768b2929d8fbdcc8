//! The open-loop run: tx `i` is due at `start + i / rate`; latency is measured from that
//! intended time, so a slow node (or a slow generator) shows up as latency, never hidden.

use crate::report::{LoadReport, Percentiles};
use crate::txsource::presign;
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tpslab_node::client::connect;
use tpslab_node::genesis::Genesis;
use tpslab_node::proto::{BroadcastTxRequest, SubscribeCommitsRequest};
use tpslab_types::tx::tx_hash;
use tpslab_types::Hash;

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// gRPC addresses; txs are spread round-robin over them.
    pub targets: Vec<String>,
    /// The chain's genesis (chain id, test account seed and count).
    pub genesis: Genesis,
    /// Offered rate, tx/s.
    pub rate: u64,
    /// Measured window.
    pub duration: Duration,
    /// Sent before the window, not measured.
    pub warmup: Duration,
    /// Approximate encoded size of each tx.
    pub tx_size: usize,
    /// How long to wait for outstanding commits after the last send.
    pub drain: Duration,
}

/// A send this much after its intended time counts as late (tokio's timer has 1 ms
/// granularity, so smaller delays are timer jitter, not a generator falling behind).
const LATE: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    late: AtomicU64,
    committed: AtomicU64,
    committed_all: AtomicU64,
    committed_in_window: AtomicU64,
    blocks: AtomicU64,
}

/// Runs the load and reports what was measured.
pub async fn run(cfg: &LoadConfig) -> Result<LoadReport> {
    anyhow::ensure!(!cfg.targets.is_empty(), "no target");
    anyhow::ensure!(cfg.rate > 0, "--rate must be positive");
    let warm_n = (cfg.rate as f64 * cfg.warmup.as_secs_f64()) as u64;
    let total = warm_n + (cfg.rate as f64 * cfg.duration.as_secs_f64()) as u64;
    let txs = presign(&cfg.genesis, &cfg.targets[0], total, cfg.tx_size).await?;
    let hashes: Vec<Hash> = txs.iter().map(|t| tx_hash(t)).collect();

    let pending: Arc<Mutex<HashMap<Hash, u64>>> = Arc::default();
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).context("histogram")?,
    ));
    let counters = Arc::new(Counters::default());
    let rejected: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let rate = cfg.rate as f64;
    // Subscribe before sending so no commit is missed; start the clock after.
    let mut subs = Vec::new();
    for t in &cfg.targets {
        subs.push(
            connect(t)
                .await?
                .subscribe_commits(SubscribeCommitsRequest {})
                .await?
                .into_inner(),
        );
    }
    let start = Instant::now() + Duration::from_millis(100);
    let due = move |i: u64| start + Duration::from_secs_f64(i as f64 / rate);
    let window = (due(warm_n), due(total));
    for (k, mut sub) in subs.into_iter().enumerate() {
        let (pending, hist, counters) = (pending.clone(), hist.clone(), counters.clone());
        tokio::spawn(async move {
            while let Some(Ok(ev)) = sub.next().await {
                let now = Instant::now();
                if k == 0 && now >= window.0 && now <= window.1 {
                    counters.blocks.fetch_add(1, Ordering::Relaxed);
                }
                for h in &ev.tx_hashes {
                    let Ok(h) = Hash::from_slice("tx hash", h) else {
                        continue;
                    };
                    let Some(i) = pending.lock().remove(&h) else {
                        continue;
                    };
                    counters.committed_all.fetch_add(1, Ordering::Relaxed);
                    if now >= window.0 && now <= window.1 {
                        counters.committed_in_window.fetch_add(1, Ordering::Relaxed);
                    }
                    if i >= warm_n {
                        let us = now.saturating_duration_since(due(i)).as_micros() as u64;
                        let _ = hist.lock().record(us.max(1));
                        counters.committed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    let mut streams = Vec::new();
    for t in &cfg.targets {
        let (tx, rx) = mpsc::channel::<BroadcastTxRequest>(65_536);
        let mut client = connect(t).await?;
        let responses = client
            .broadcast_tx_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        let (pending, counters, rejected) = (pending.clone(), counters.clone(), rejected.clone());
        let hashes = hashes.clone();
        tokio::spawn(async move {
            let mut responses = responses;
            while let Some(Ok(r)) = responses.next().await {
                let in_window = r.id >= warm_n;
                if r.code == 0 {
                    if in_window {
                        counters.accepted.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    if let Some(h) = hashes.get(r.id as usize) {
                        pending.lock().remove(h);
                    }
                    if in_window {
                        let reason = r.log.split(':').next().unwrap_or("").to_string();
                        *rejected.lock().entry(reason).or_default() += 1;
                    }
                }
            }
        });
        streams.push(tx);
    }

    for (i, tx) in txs.into_iter().enumerate() {
        let i = i as u64;
        let at = due(i);
        tokio::time::sleep_until(at.into()).await;
        if i >= warm_n && Instant::now() > at + LATE {
            counters.late.fetch_add(1, Ordering::Relaxed);
        }
        pending.lock().insert(hashes[i as usize], i);
        let s = &streams[i as usize % streams.len()];
        if s.send(BroadcastTxRequest { tx, id: i }).await.is_err() {
            anyhow::bail!("a target closed its stream");
        }
    }
    let sent_all = Instant::now();
    let drain_end = sent_all + cfg.drain;
    while Instant::now() < drain_end && pending.lock().values().any(|&i| i >= warm_n) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(streams);

    let secs = cfg.duration.as_secs_f64();
    let sent = total - warm_n;
    let h = hist.lock();
    let ms = |us: u64| us as f64 / 1000.0;
    let latency_ms = if h.is_empty() {
        Percentiles::default()
    } else {
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
        }
    };
    let committed = counters.committed.load(Ordering::Relaxed);
    let send_window = (window.1.min(sent_all) - window.0.min(sent_all))
        .as_secs_f64()
        .max(secs);
    let rejected = rejected.lock().clone();
    Ok(LoadReport {
        target_rate: cfg.rate,
        duration_secs: secs,
        sent,
        accepted: counters.accepted.load(Ordering::Relaxed),
        rejected,
        sent_late: counters.late.load(Ordering::Relaxed),
        committed,
        committed_including_warmup: counters.committed_all.load(Ordering::Relaxed),
        blocks: counters.blocks.load(Ordering::Relaxed),
        send_rate: sent as f64 / send_window,
        committed_tps: counters.committed_in_window.load(Ordering::Relaxed) as f64 / secs,
        latency_ms,
    })
}
