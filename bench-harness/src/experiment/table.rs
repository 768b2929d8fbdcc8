//! The experiment's text tables: the seed-style table with each step's spread, capacity and
//! verdict against the step it is compared with; the headline ratios; the stage latencies.

use super::{ExperimentResults, StepResult};

/// How to read the spread and the verdict column, printed under the table.
const NOISE_NOTE: &str =
    "figures are medians (min-max) over the repeats, run interleaved (every step once before any \
step twice); \"within noise\": the median TPS differs from the compared step's (the one before; \
for ablation and allocator steps, tuned) by less than the wider of the two min-max ranges, so \
the run has not shown that the change did anything\n";

impl ExperimentResults {
    /// The seed-style table, the headline ratios and how to read them.
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| step | toggle added | TPS | P50 ms | P99 ms | capacity tx/s | CPU % | p2p B/tx | allocs/tx (/offered) | lock wait us/tx (/offered) | x baseline | vs compared |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for (i, st) in self.steps.iter().enumerate() {
            s.push_str(&self.row(i, st));
        }
        s.push_str(&self.headlines());
        for st in &self.steps {
            for n in &st.report.resources {
                if let Some(t) = n.tasks.as_ref().filter(|t| t.leak_suspected) {
                    s.push_str(&format!(
                        "warning: {} {}: live tasks only grew over the window, {} -> {} (possible task leak)\n",
                        st.name, n.name, t.start, t.end
                    ));
                }
            }
        }
        s
    }

    /// How to read the spread, then each engine's same-load and capacity ratios, and Raft
    /// against BFT when both ran.
    pub fn headlines(&self) -> String {
        let mut s = String::new();
        let runs = self
            .steps
            .iter()
            .map(|s| s.repeats.len().max(1))
            .max()
            .unwrap_or(1);
        if runs > 1 {
            s.push_str(NOISE_NOTE);
        } else {
            s.push_str("1 run per step: the spread is unknown (--repeats 3 measures it)\n");
        }
        for engine in self.engines() {
            s.push_str(&self.headline(engine));
        }
        s.push_str(&self.engines_line());
        s
    }

    fn row(&self, i: usize, st: &StepResult) -> String {
        let toggle = match (st.kind.as_str(), &st.toggle) {
            ("ablation", Some(t)) => format!("(removed) {t}"),
            ("allocator", Some(t)) => format!("(allocator) {t}"),
            (_, Some(t)) => t.clone(),
            _ => "-".into(),
        };
        let show =
            |f: &dyn Fn(&super::RunFigures) -> f64| st.spread(f).map_or("-".into(), |x| x.show(0));
        let pair = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{a:.0} ({b:.0})"),
            (Some(a), None) => format!("{a:.0}"),
            _ => "-".into(),
        };
        let first = st.repeats.first();
        format!(
            "| {} | {} | {} | {}{} | {}{} | {} | {:.0} | {} | {} | {} | {} | {} |\n",
            self.label(st),
            toggle,
            show(&|f| f.tps),
            st.bound(),
            show(&|f| f.p50_ms),
            st.bound(),
            show(&|f| f.p99_ms),
            st.capacity.as_ref().map_or("-".into(), |c| c.show()),
            st.cpu_pct,
            st.p2p_bytes_per_tx
                .map_or("-".into(), |b| format!("{b:.0}")),
            pair(
                st.allocs_per_tx,
                first.and_then(|_| median(st, |f| f.allocs_per_offered_tx))
            ),
            pair(
                st.lock_wait_us_per_tx,
                first.and_then(|_| median(st, |f| f.lock_wait_us_per_offered_tx))
            ),
            show_x(st.x_baseline),
            self.noise(i).map_or("-".into(), |n| n.show()),
        )
    }

    /// The same-load ratio and the capacity ratio of `engine`'s tuned step over its baseline,
    /// with their definitions and spreads.
    fn headline(&self, engine: &str) -> String {
        let (Some(b), Some(t)) = (self.baseline_of(engine), self.tuned_of(engine)) else {
            return String::new();
        };
        let of = if self.engines().len() > 1 {
            format!(" [{engine}, {} validators]", t.validators)
        } else {
            String::new()
        };
        let mut s = format!(
            "\ntuned vs baseline{of} at {} tx/s offered (same-load ratio: committed TPS at one offered rate): {} ({:.0} vs {:.0}){}, P99 {:.0} ms vs {}{:.0} ms ({}1/{:.1})\n",
            self.info.rate,
            times(t.tps, b.tps),
            t.tps,
            b.tps,
            ratio_range(t, b),
            t.p99_ms,
            b.bound(),
            b.p99_ms,
            if b.latency_censored { "at least " } else { "" },
            b.p99_ms / t.p99_ms.max(1e-9)
        );
        if let (Some(tc), Some(bc)) = (&t.capacity, &b.capacity) {
            let ratio = match (tc.rate, bc.rate) {
                (Some(x), Some(y)) if y > 0 => {
                    let at_least = if tc.failed_at.is_none() {
                        "at least "
                    } else {
                        ""
                    };
                    format!("{at_least}{:.2}x", x as f64 / y as f64)
                }
                _ => "-".into(),
            };
            let res = [tc, bc]
                .iter()
                .filter_map(|c| c.resolution_pct())
                .fold(0.0, f64::max);
            s.push_str(&format!(
                "tuned vs baseline{of} capacity (highest offered rate with >= 95% committed and P99 <= {:.0} ms): {ratio} ({} vs {} tx/s; searched once per step, each to within {res:.0}%)\n",
                tc.slo_p99_ms,
                tc.show(),
                bc.show()
            ));
            for (name, c) in [("tuned", tc), ("baseline", bc)] {
                if let Some(w) = c.floor_warning() {
                    s.push_str(&format!("WARNING ({name} capacity): {w}\n"));
                }
            }
        }
        s
    }

    /// Stage latencies of every step on one line each: P50 / P99 ms per stage.
    pub fn stages_table(&self) -> String {
        let names: Vec<&str> = tpslab_types::stages::Stage::ALL
            .iter()
            .map(|s| s.name())
            .collect();
        let mut s =
            String::from("\nwhere txs wait (P50 / P99 ms per stage, all validators):\n| step |");
        for n in &names {
            s.push_str(&format!(" {n} |"));
        }
        s.push_str(&format!("\n|---|{}\n", "---|".repeat(names.len())));
        for st in &self.steps {
            s.push_str(&format!("| {} |", self.label(st)));
            for n in &names {
                match st
                    .report
                    .stages
                    .iter()
                    .find(|x| x.stage == *n && x.count > 0)
                {
                    Some(x) => s.push_str(&format!(" {:.1} / {:.1} |", x.p50_ms, x.p99_ms)),
                    None => s.push_str(" - |"),
                }
            }
            s.push('\n');
        }
        s
    }

    /// Raft against BFT, step by step, when the run had both: what Byzantine tolerance costs
    /// under each toggle set.
    fn engines_line(&self) -> String {
        let (Some(raft), Some(bft)) = (self.tuned_of("raft"), self.tuned_of("bft")) else {
            return String::new();
        };
        let pairs: Vec<String> = self
            .steps
            .iter()
            .filter(|r| r.engine == "raft")
            .filter_map(|r| {
                let b = self
                    .steps
                    .iter()
                    .find(|b| b.engine == "bft" && b.name == r.name)?;
                Some(format!(
                    "{} {} ({:.0} vs {:.0})",
                    r.name,
                    times(r.tps, b.tps),
                    r.tps,
                    b.tps
                ))
            })
            .collect();
        format!(
            "raft ({} validators) vs bft ({} validators), committed TPS: {}\n",
            raft.validators,
            bft.validators,
            pairs.join("; ")
        )
    }
}

fn median(st: &StepResult, f: impl Fn(&super::RunFigures) -> Option<f64>) -> Option<f64> {
    super::Spread::of(st.repeats.iter().filter_map(f)).map(|s| s.median)
}

/// `; 6.90-7.50x over 3 repeats`: the ratio's range from the two steps' min-max, when both
/// ran more than once.
fn ratio_range(t: &StepResult, b: &StepResult) -> String {
    match (t.spread(|f| f.tps), b.spread(|f| f.tps)) {
        (Some(ts), Some(bs)) if ts.n > 1 && bs.n > 1 && bs.min > 0.0 => format!(
            "; {:.2}-{:.2}x from the min-max of {} and {} runs",
            ts.min / bs.max,
            ts.max / bs.min,
            ts.n,
            bs.n
        ),
        _ => String::new(),
    }
}

/// `a / b` as `4.79x`, or `-` when `b` is zero: a step that committed nothing in its window
/// (an overloaded baseline can) is no divisor.
pub(super) fn times(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

/// A step's `x_baseline` (0 when its baseline committed nothing).
pub(super) fn show_x(x: f64) -> String {
    if x > 0.0 {
        format!("{x:.2}x")
    } else {
        "-".into()
    }
}
