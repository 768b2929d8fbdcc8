//! Resource monitors: each validator's CPU % and RSS sampled from /proc, and its /metrics
//! (height, rounds, mempool size) sampled during the run, like Caliper's monitors.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tpslab_types::stages::{Stage, StageSnapshot};

pub use crate::http::{http_get, http_get_bytes, metric};

/// What to watch for one node.
#[derive(Clone, Debug)]
pub struct Watched {
    /// A name for the report (`node0`, or the target address).
    pub name: String,
    /// Its process id, when known (a local node).
    pub pid: Option<u32>,
    /// Its metrics address (`host:port`), when known.
    pub metrics_addr: Option<String>,
    /// Take a CPU profile (99 Hz) of this many seconds at the start of the window.
    pub profile_secs: Option<u64>,
}

/// Every validator of a testnet, by name, pid and metrics address (no profiles).
pub fn watch_testnet(file: &tpslab_testnet::TestnetFile) -> Vec<Watched> {
    file.nodes
        .iter()
        .map(|n| Watched {
            name: n.name.clone(),
            pid: tpslab_testnet::node_pid(n),
            metrics_addr: Some(n.metrics_addr.clone()),
            profile_secs: None,
        })
        .collect()
}

/// Resource use of one node over the measured window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeResources {
    /// The node's name.
    pub name: String,
    /// Mean CPU over the window, percent of one core (200 = two cores busy).
    pub cpu_pct: Option<f64>,
    /// Peak resident set size, MiB.
    pub rss_peak_mib: Option<f64>,
    /// Blocks committed in the window (from `consensus_height`).
    pub blocks: Option<u64>,
    /// Highest consensus round of a decision seen (0 = every height decided in round 0).
    pub max_round: Option<u64>,
    /// Largest mempool size sampled.
    pub mempool_peak: Option<u64>,
    /// Heap allocations during the window (from `process_allocations`).
    pub allocations: Option<u64>,
    /// Time threads waited for the mempool and state cache locks during the window, ms.
    #[serde(default)]
    pub lock_wait_ms: Option<f64>,
    /// Bytes it sent to its peers during the window (`p2p_message_send_bytes`: frames with
    /// their length prefix; consensus, gossip and sync together).
    #[serde(default)]
    pub p2p_sent_bytes: Option<u64>,
    /// Bytes of the txs it committed during the window (`consensus_committed_tx_bytes`).
    #[serde(default)]
    pub committed_tx_bytes: Option<u64>,
    /// Top functions of the CPU profile taken in the window (when asked for).
    #[serde(default)]
    pub profile_top: Vec<crate::profile::FunctionShare>,
    /// That CPU profile (pprof protobuf), for flame graphs; not serialized.
    #[serde(skip)]
    pub profile_pb: Option<Vec<u8>>,
    /// Tasks alive in the node's runtime at the window's start and end, and the most seen.
    #[serde(default)]
    pub tasks: Option<TaskCounts>,
    /// The node's stage-latency histograms over the window (from `/debug/stages`); merged
    /// across nodes into the report's stage table, not serialized.
    #[serde(skip)]
    pub stage_window: Vec<(Stage, Histogram<u64>)>,
}

/// A node's live task count over the window (`tokio_alive_tasks`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TaskCounts {
    /// At the first sample.
    pub start: u64,
    /// At the last sample.
    pub end: u64,
    /// Highest sampled.
    pub peak: u64,
    /// Samples taken.
    pub samples: usize,
    /// The count only grew, and by enough to matter: see [`leak_suspected`].
    pub leak_suspected: bool,
}

impl TaskCounts {
    /// The figures of a series of samples (None when empty).
    pub fn of(series: &[u64]) -> Option<TaskCounts> {
        Some(TaskCounts {
            start: *series.first()?,
            end: *series.last()?,
            peak: series.iter().copied().max()?,
            samples: series.len(),
            leak_suspected: leak_suspected(series),
        })
    }
}

/// Whether a live-task series looks like a leak: at least 5 samples, never falling, and the
/// end above the start by at least 20 tasks and 20 %. Under steady load a healthy node's count
/// moves both ways (per-request tasks come and go); one that only climbs is holding tasks
/// whose work is over (a forwarder whose client left, a timer per message, ...).
pub fn leak_suspected(series: &[u64]) -> bool {
    let (Some(&first), Some(&last)) = (series.first(), series.last()) else {
        return false;
    };
    series.len() >= 5
        && series.windows(2).all(|w| w[1] >= w[0])
        && last >= first + 20
        && last * 5 >= first * 6
}

/// Clock ticks per second of /proc times (USER_HZ, 100 on every mainstream Linux).
const USER_HZ: f64 = 100.0;

/// CPU seconds used so far by `pid` (user + system), from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Resident set size of `pid` in MiB, from /proc/PID/status.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// One sample of a node: its CPU time (from /proc) and counters from /metrics.
struct Point {
    cpu: Sample,
    /// `consensus_height`.
    height: Option<f64>,
    /// `process_allocations`.
    allocs: Option<f64>,
    /// Mempool + state lock wait, seconds.
    lock_wait: Option<f64>,
    /// `p2p_message_send_bytes_total`.
    sent: Option<f64>,
    /// `consensus_committed_tx_bytes_total`.
    tx_bytes: Option<f64>,
}

/// A node's stage histograms, fetched at the window's edges only (they are ~10 KB of JSON).
async fn stage_snapshot(addr: &str) -> Option<StageSnapshot> {
    let body = http_get(addr, "/debug/stages").await.ok()?;
    serde_json::from_str(&body).ok()
}

struct Sample {
    cpu: Option<f64>,
    at: Instant,
}

/// Samples the watched nodes every `every` from [`Monitor::start`] until [`Monitor::finish`].
pub struct Monitor {
    watched: Vec<Watched>,
    profiles: Vec<(usize, tokio::task::JoinHandle<anyhow::Result<Vec<u8>>>)>,
    task: tokio::task::JoinHandle<HashMap<usize, NodeResources>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Monitor {
    /// Starts sampling now.
    pub fn start(watched: Vec<Watched>, every: Duration) -> Monitor {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let profiles = watched
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let (secs, addr) = (n.profile_secs?, n.metrics_addr.clone()?);
                Some((
                    i,
                    tokio::spawn(
                        async move { crate::profile::fetch(&addr, secs, 99, false).await },
                    ),
                ))
            })
            .collect();
        let task = tokio::spawn(sample_loop(watched.clone(), every, rx));
        Monitor {
            watched,
            profiles,
            task,
            stop,
        }
    }

    /// Takes a last sample and returns each node's figures, in the order watched.
    pub async fn finish(self) -> Vec<NodeResources> {
        let _ = self.stop.send(true);
        let mut by_index = self.task.await.unwrap_or_default();
        for (i, task) in self.profiles {
            let mut raw = None;
            let top = match task.await {
                Ok(Ok(pb)) => {
                    let top = crate::profile::functions(&pb).unwrap_or_default();
                    raw = Some(pb);
                    top
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "profile failed");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            };
            if let Some(r) = by_index.get_mut(&i) {
                r.profile_top = top.into_iter().take(30).collect();
                r.profile_pb = raw;
            }
        }
        (0..self.watched.len())
            .map(|i| {
                by_index.remove(&i).unwrap_or_else(|| NodeResources {
                    name: self.watched[i].name.clone(),
                    ..Default::default()
                })
            })
            .collect()
    }
}

/// Samples every node each `every` until `stop` changes, then once more (the window's end
/// is always sampled), and turns first and last samples into each node's figures.
async fn sample_loop(
    w: Vec<Watched>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> HashMap<usize, NodeResources> {
    let mut out: HashMap<usize, NodeResources> = HashMap::new();
    let mut first: HashMap<usize, Point> = HashMap::new();
    let mut last: HashMap<usize, Point> = HashMap::new();
    let mut stages_first: HashMap<usize, StageSnapshot> = HashMap::new();
    for (i, n) in w.iter().enumerate() {
        if let Some(addr) = &n.metrics_addr {
            if let Some(snap) = stage_snapshot(addr).await {
                stages_first.insert(i, snap);
            }
        }
    }
    let mut stopping = false;
    let mut task_series: HashMap<usize, Vec<u64>> = HashMap::new();
    loop {
        for (i, n) in w.iter().enumerate() {
            let r = out.entry(i).or_insert_with(|| NodeResources {
                name: n.name.clone(),
                ..Default::default()
            });
            let s = sample(n, r, task_series.entry(i).or_default()).await;
            if let std::collections::hash_map::Entry::Vacant(e) = first.entry(i) {
                e.insert(s);
            } else {
                last.insert(i, s);
            }
        }
        if stopping {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => stopping = true,
        }
    }
    for (i, n) in w.iter().enumerate() {
        let (Some(addr), Some(before)) = (&n.metrics_addr, stages_first.get(&i)) else {
            continue;
        };
        if let (Some(after), Some(r)) = (stage_snapshot(addr).await, out.get_mut(&i)) {
            r.stage_window = after.since(before);
        }
    }
    for (i, r) in &mut out {
        r.tasks = task_series.get(i).and_then(|s| TaskCounts::of(s));
        if let (Some(a), Some(b)) = (first.get(i), last.get(i)) {
            r.add_deltas(a, b);
        }
    }
    out
}

/// One sample of node `n`: CPU time from /proc, then /metrics; peaks go straight into `r`.
async fn sample(n: &Watched, r: &mut NodeResources, tasks: &mut Vec<u64>) -> Point {
    // The CPU reading's own instant: a slow /metrics answer below (a busy or profiled node)
    // must not stretch or shrink the interval it is divided by.
    let cpu = n.pid.and_then(cpu_seconds);
    let cpu_at = Instant::now();
    if let Some(rss) = n.pid.and_then(rss_mib) {
        r.rss_peak_mib = Some(r.rss_peak_mib.map_or(rss, |p: f64| p.max(rss)));
    }
    let mut p = Point {
        cpu: Sample { cpu, at: cpu_at },
        height: None,
        allocs: None,
        lock_wait: None,
        sent: None,
        tx_bytes: None,
    };
    if let Some(addr) = &n.metrics_addr {
        if let Ok(page) = http_get(addr, "/metrics").await {
            p.height = metric(&page, "consensus_height");
            p.allocs = metric(&page, "process_allocations");
            p.lock_wait = metric(&page, "mempool_lock_wait_seconds_total")
                .map(|m| m + metric(&page, "state_lock_wait_seconds").unwrap_or(0.0));
            p.sent = metric(&page, "p2p_message_send_bytes_total");
            p.tx_bytes = metric(&page, "consensus_committed_tx_bytes_total");
            if let Some(t) = metric(&page, "tokio_alive_tasks") {
                tasks.push(t as u64);
            }
            if let Some(m) = metric(&page, "mempool_size") {
                r.mempool_peak = Some(r.mempool_peak.unwrap_or(0).max(m as u64));
            }
            if let Some(rd) = metric(&page, "consensus_rounds") {
                r.max_round = Some(r.max_round.unwrap_or(0).max(rd as u64));
            }
        }
    }
    p
}

impl NodeResources {
    /// The window's figures from its first and last samples.
    fn add_deltas(&mut self, a: &Point, b: &Point) {
        let secs = (b.cpu.at - a.cpu.at).as_secs_f64();
        if let (Some(c0), Some(c1)) = (a.cpu.cpu, b.cpu.cpu) {
            if secs > 0.0 {
                self.cpu_pct = Some(100.0 * (c1 - c0) / secs);
            }
        }
        let delta = |f: fn(&Point) -> Option<f64>| Some((f(b)? - f(a)?).max(0.0));
        self.blocks = delta(|p| p.height).map(|d| d as u64);
        self.allocations = delta(|p| p.allocs).map(|d| d as u64);
        self.lock_wait_ms = delta(|p| p.lock_wait).map(|d| 1000.0 * d);
        self.p2p_sent_bytes = delta(|p| p.sent).map(|d| d as u64);
        self.committed_tx_bytes = delta(|p| p.tx_bytes).map(|d| d as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_cpu_and_rss() {
        let pid = std::process::id();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_seconds(pid).is_some());
        assert!(rss_mib(pid).unwrap() > 0.0);
        assert!(cpu_seconds(u32::MAX).is_none());
    }

    #[test]
    fn only_a_steadily_growing_task_count_is_a_leak() {
        // Per-request tasks come and go: not a leak, even if it ends higher.
        assert!(!leak_suspected(&[40, 90, 60, 120, 80, 100]));
        // Climbing by one forwarder per client that left: a leak.
        let leak: Vec<u64> = (0..10).map(|i| 40 + 10 * i).collect();
        assert!(leak_suspected(&leak));
        assert!(TaskCounts::of(&leak).unwrap().leak_suspected);
        // Flat, or a small drift, or too few samples: not flagged.
        assert!(!leak_suspected(&[40; 10]));
        assert!(!leak_suspected(&[40, 41, 42, 43, 44, 45]));
        assert!(!leak_suspected(&[40, 100, 200]));
        assert!(!leak_suspected(&[]));
        assert_eq!(TaskCounts::of(&[]), None);
    }

    #[test]
    fn metric_lines_are_found_by_exact_name() {
        let page = "# HELP x\nconsensus_height 12\nconsensus_height_other 3\nmempool_size 7\n";
        assert_eq!(metric(page, "consensus_height"), Some(12.0));
        assert_eq!(metric(page, "mempool_size"), Some(7.0));
        assert_eq!(metric(page, "nope"), None);
    }
}
