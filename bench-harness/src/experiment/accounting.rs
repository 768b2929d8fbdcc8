//! Every tx of every step accounted for, and the generator checked: sent, accepted, rejected
//! (by reason), committed and censored per step, with the generator's late sends and CPU. A
//! step's TPS means little if the generator fell behind or the txs it counts are a minority.

use super::results::ExperimentResults;

/// Late sends above this share of a step's sends: the generator did not offer the rate.
const LATE_SHARE: f64 = 0.01;

impl ExperimentResults {
    /// The accounting table, and a line per step whose generator fell behind or whose txs
    /// were rejected.
    pub fn txs_table(&self) -> String {
        let mut s = String::from(
            "\nevery tx of the window (censored: accepted, not committed by the end of the drain):\n\
             | step | offered | sent | accepted | rejected | committed | censored | late sends | generator CPU % |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        let mut notes = String::new();
        for st in &self.steps {
            let r = &st.report;
            let rejected: u64 = r.rejected.values().sum();
            let late = r.sent_late as f64 / (r.sent.max(1)) as f64;
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.1}% | {:.1}% | {} |\n",
                self.label(st),
                r.target_rate
                    .map_or("-".into(), |x| format!("{:.0}", x as f64 * r.duration_secs)),
                r.sent,
                r.accepted,
                rejected,
                r.committed,
                100.0 * r.censored_share(),
                100.0 * late,
                r.generator_cpu_pct
                    .map_or("-".into(), |c| format!("{c:.0}")),
            ));
            if late > LATE_SHARE {
                notes.push_str(&format!(
                    "warning: {}: the generator fell behind ({:.1}% of sends more than 10 ms late); the offered rate was not fully offered\n",
                    self.label(st),
                    100.0 * late
                ));
            }
            for (reason, n) in &r.rejected {
                notes.push_str(&format!("{}: rejected {n}: {reason}\n", self.label(st)));
            }
        }
        let peak = self
            .steps
            .iter()
            .filter_map(|st| st.report.generator_cpu_pct)
            .fold(None, |m: Option<f64>, c| Some(m.map_or(c, |m| m.max(c))));
        if let Some(peak) = peak {
            let cpus = self.info.cpus.max(1);
            s.push_str(&format!(
                "the load generator took at most {:.0}% of one core, {:.0}% of this machine's {cpus} CPUs, in any step's window\n",
                peak,
                peak / cpus as f64
            ));
        }
        s.push_str(&notes);
        s
    }
}
