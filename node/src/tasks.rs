//! Async health: the runtime's live task count and one tokio-metrics [`TaskMonitor`] per kind
//! of task the node spawns, exported on `/metrics`. A leak shows as an alive count that only
//! grows (the load harness samples it and flags that).

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tokio_metrics::TaskMonitor;

type Labels = Vec<(String, String)>;

/// One monitor per kind of task. Cloning shares the monitors.
#[derive(Clone, Default)]
pub struct TaskMonitors {
    /// A `BroadcastTxStream` call's CheckTx loop (one per client stream).
    pub api_stream: TaskMonitor,
    /// A `SubscribeCommits` call's forwarder (one per subscribed client).
    pub subscribe: TaskMonitor,
    /// The consensus reactor or single-validator producer.
    pub consensus: TaskMonitor,
    /// The tx gossip batcher (gossip-batch toggle).
    pub gossip: TaskMonitor,
}

impl TaskMonitors {
    fn all(&self) -> [(&'static str, &TaskMonitor); 4] {
        [
            ("api_stream", &self.api_stream),
            ("subscribe", &self.subscribe),
            ("consensus", &self.consensus),
            ("gossip", &self.gossip),
        ]
    }
}

/// The gauges, refreshed on every scrape.
#[derive(Clone, Default)]
pub struct TaskGauges {
    runtime_alive: Gauge,
    global_queue: Gauge,
    alive: Family<Labels, Gauge>,
    instrumented: Family<Labels, Gauge<u64, AtomicU64>>,
    poll_secs: Family<Labels, Gauge<f64, AtomicU64>>,
    scheduled_secs: Family<Labels, Gauge<f64, AtomicU64>>,
    slow_polls: Family<Labels, Gauge<u64, AtomicU64>>,
}

impl TaskGauges {
    /// Adds the gauges to `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "tokio_alive_tasks",
            "Tasks alive in the node's runtime",
            self.runtime_alive.clone(),
        );
        r.register(
            "tokio_global_queue_depth",
            "Tasks waiting in the runtime's global queue",
            self.global_queue.clone(),
        );
        r.register(
            "tokio_task_alive",
            "Instrumented tasks not yet dropped, by kind",
            self.alive.clone(),
        );
        r.register(
            "tokio_task_instrumented",
            "Tasks started since start, by kind",
            self.instrumented.clone(),
        );
        r.register(
            "tokio_task_poll_seconds",
            "Time spent polling tasks of this kind since start",
            self.poll_secs.clone(),
        );
        r.register(
            "tokio_task_scheduled_seconds",
            "Time tasks of this kind waited to be polled after a wake-up since start",
            self.scheduled_secs.clone(),
        );
        r.register(
            "tokio_task_slow_polls",
            "Polls of this kind of task that took over 50 us",
            self.slow_polls.clone(),
        );
    }

    /// Copies the runtime's and the monitors' figures into the gauges.
    pub fn update(&self, monitors: &TaskMonitors) {
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            let m = h.metrics();
            self.runtime_alive.set(m.num_alive_tasks() as i64);
            self.global_queue.set(m.global_queue_depth() as i64);
        }
        for (name, mon) in monitors.all() {
            let c = mon.cumulative();
            let l = vec![("task".to_string(), name.to_string())];
            let alive = c.instrumented_count.saturating_sub(c.dropped_count);
            self.alive.get_or_create(&l).set(alive as i64);
            self.instrumented
                .get_or_create(&l)
                .set(c.instrumented_count);
            self.poll_secs
                .get_or_create(&l)
                .set(c.total_poll_duration.as_secs_f64());
            self.scheduled_secs
                .get_or_create(&l)
                .set(c.total_scheduled_duration.as_secs_f64());
            self.slow_polls
                .get_or_create(&l)
                .set(c.total_slow_poll_count);
        }
    }
}
