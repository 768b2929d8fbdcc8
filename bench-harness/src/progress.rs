//! Live progress on a terminal: elapsed, sent/s, committed/s and P99 so far, once a second.
//! Nothing is drawn when stderr is not a terminal (CI logs, pipes).

use crate::counters::Counters;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running progress line; [`Progress::finish`] clears it.
pub(crate) struct Progress {
    bar: ProgressBar,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(
        enabled: bool,
        start: Instant,
        counters: Arc<Counters>,
        hist: Arc<Mutex<Histogram<u64>>>,
    ) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
                task: None,
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let b = bar.clone();
        let task = tokio::spawn(async move {
            let mut last = (0u64, 0u64);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if Instant::now() < start {
                    b.set_message("preparing");
                    continue;
                }
                let sent = counters.sent_all.load(Ordering::Relaxed);
                let committed = counters.committed_all.load(Ordering::Relaxed);
                let p99 = {
                    let h = hist.lock();
                    (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0)
                };
                b.set_message(format!(
                    "sent/s {:>7}  committed/s {:>7}  P99 {}",
                    sent.saturating_sub(last.0),
                    committed.saturating_sub(last.1),
                    p99.map_or("-".into(), |v| format!("{v:.0} ms")),
                ));
                b.tick();
                last = (sent, committed);
            }
        });
        Progress {
            bar,
            task: Some(task),
        }
    }

    pub(crate) fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}
