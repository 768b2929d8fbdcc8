//! A canary's health against its peers' over the soak: commit lag, CPU, peak RSS, the P99 of
//! the stages it times itself (check_tx, consensus), the highest decision round and the
//! Prometheus alerts active on it alone, and the thresholds past which it is a regression.

use super::alerts::AlertCheck;
use crate::monitor::NodeResources;
use serde::Serialize;
use tpslab_types::stages::{Stage, StageSummary};

/// The stages a node times for itself (the others end at a peer or a client).
const OWN_STAGES: [Stage; 2] = [Stage::CheckTx, Stage::Consensus];

/// When a canary counts as worse than its peers (defaults in docs/DESIGN.md, "Rollout").
#[derive(Clone, Debug, Serialize)]
pub struct Thresholds {
    /// Most blocks it may trail the others' highest height at the soak's end.
    pub max_lag_blocks: u64,
    /// Its CPU may exceed the others' median by this factor...
    pub cpu_ratio: f64,
    /// ...plus this many percentage points of one core (at low load the figures are noise).
    pub cpu_slack_pct: f64,
    /// Its peak RSS may exceed the others' median by this factor.
    pub rss_ratio: f64,
    /// Its P99 of a stage it times itself may exceed the others' median by this factor...
    pub stage_ratio: f64,
    /// ...plus this many ms.
    pub stage_slack_ms: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_lag_blocks: 3,
            cpu_ratio: 1.5,
            cpu_slack_pct: 15.0,
            rss_ratio: 1.5,
            stage_ratio: 3.0,
            stage_slack_ms: 50.0,
        }
    }
}

/// The comparison.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Health {
    /// Blocks behind the others' tip at the soak's end.
    pub lag_blocks: u64,
    /// Its CPU over the soak, % of one core.
    pub cpu_pct: Option<f64>,
    /// The others' median CPU.
    pub peers_cpu_pct: Option<f64>,
    /// Its peak RSS, MiB.
    pub rss_mib: Option<f64>,
    /// The others' median peak RSS.
    pub peers_rss_mib: Option<f64>,
    /// The highest decision round it saw (0: every height in round 0).
    pub max_round: Option<u64>,
    /// The others' highest.
    pub peers_max_round: Option<u64>,
    /// Per stage it times itself: (stage, its P99 ms, the peers' median P99 ms).
    pub stage_p99_ms: Vec<(String, f64, f64)>,
    /// The operations kit's alerts on it and its peers (None: the testnet runs no
    /// Prometheus, `testnet up --prometheus` starts one).
    pub alerts: Option<AlertCheck>,
    /// What crossed a threshold, if anything.
    pub regression: Option<String>,
}

impl Health {
    /// One line for the operator.
    pub fn summary(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        let verdict = match &self.regression {
            Some(r) => format!("REGRESSION: {r}"),
            None => "healthy".into(),
        };
        let stages: String = self
            .stage_p99_ms
            .iter()
            .map(|(s, m, p)| format!("; {s} P99 {m:.0} vs {p:.0} ms"))
            .collect();
        let alerts = match &self.alerts {
            None => "alerts not checked (no Prometheus)".to_string(),
            Some(a) if a.canary.is_empty() => "no alerts".to_string(),
            Some(a) => format!("alerts {}", a.canary.join(",")),
        };
        format!(
            "{verdict} (lag {} blocks; CPU {} % vs peers {} %; RSS {} vs {} MiB{stages}; {alerts})",
            self.lag_blocks,
            f(self.cpu_pct),
            f(self.peers_cpu_pct),
            f(self.rss_mib),
            f(self.peers_rss_mib)
        )
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Judges `canary` among `resources` (every validator's figures over the soak) and the
/// alerts, if a Prometheus watched.
pub fn judge(
    resources: &[NodeResources],
    canary: &str,
    lag: u64,
    alerts: Option<AlertCheck>,
    t: &Thresholds,
) -> Health {
    let me = resources.iter().find(|r| r.name == canary);
    let peers: Vec<&NodeResources> = resources.iter().filter(|r| r.name != canary).collect();
    let mut h = Health {
        lag_blocks: lag,
        cpu_pct: me.and_then(|r| r.cpu_pct),
        peers_cpu_pct: median(peers.iter().filter_map(|r| r.cpu_pct).collect()),
        rss_mib: me.and_then(|r| r.rss_peak_mib),
        peers_rss_mib: median(peers.iter().filter_map(|r| r.rss_peak_mib).collect()),
        max_round: me.and_then(|r| r.max_round),
        peers_max_round: peers.iter().filter_map(|r| r.max_round).max(),
        stage_p99_ms: Vec::new(),
        alerts,
        regression: None,
    };
    let p99 = |r: &NodeResources, stage: Stage| {
        let (_, hist) = r
            .stage_window
            .iter()
            .find(|(s, h)| *s == stage && !h.is_empty())?;
        Some(StageSummary::of(stage, hist).p99_ms)
    };
    for stage in OWN_STAGES {
        let mine = me.and_then(|r| p99(r, stage));
        let theirs = median(peers.iter().filter_map(|r| p99(r, stage)).collect());
        if let (Some(m), Some(p)) = (mine, theirs) {
            h.stage_p99_ms.push((stage.name().to_string(), m, p));
        }
    }
    let mut why = Vec::new();
    if lag > t.max_lag_blocks {
        why.push(format!(
            "{lag} blocks behind (at most {})",
            t.max_lag_blocks
        ));
    }
    if let (Some(c), Some(p)) = (h.cpu_pct, h.peers_cpu_pct) {
        let bound = p * t.cpu_ratio + t.cpu_slack_pct;
        if c > bound {
            why.push(format!(
                "CPU {c:.0} % > {bound:.0} % ({:.1}x the peers' {p:.0} % + {:.0})",
                t.cpu_ratio, t.cpu_slack_pct
            ));
        }
    }
    if let (Some(c), Some(p)) = (h.rss_mib, h.peers_rss_mib) {
        if c > p * t.rss_ratio {
            why.push(format!(
                "RSS {c:.0} MiB > {:.1}x the peers' {p:.0} MiB",
                t.rss_ratio
            ));
        }
    }
    for (stage, m, p) in &h.stage_p99_ms {
        let bound = p * t.stage_ratio + t.stage_slack_ms;
        if *m > bound {
            why.push(format!(
                "{stage} P99 {m:.0} ms > {bound:.0} ms ({:.1}x the peers' {p:.0} ms + {:.0})",
                t.stage_ratio, t.stage_slack_ms
            ));
        }
    }
    if let Some(a) = &h.alerts {
        let new = a.regressions();
        if !new.is_empty() {
            why.push(format!(
                "alert {} active on it alone (Prometheus)",
                new.join(", ")
            ));
        }
    }
    if me.is_none() {
        why.push("no figures for it over the soak".into());
    }
    if !why.is_empty() {
        h.regression = Some(why.join("; "));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cpu: f64, rss: f64) -> NodeResources {
        NodeResources {
            name: name.into(),
            cpu_pct: Some(cpu),
            rss_peak_mib: Some(rss),
            max_round: Some(0),
            ..Default::default()
        }
    }

    #[test]
    fn a_canary_is_judged_against_its_peers_median() {
        let r = vec![
            node("node0", 40.0, 100.0),
            node("node1", 30.0, 100.0),
            node("node2", 32.0, 110.0),
        ];
        let t = Thresholds::default();
        assert!(judge(&r, "node0", 1, None, &t).regression.is_none());
        let hot = vec![
            node("node0", 80.0, 100.0),
            node("node1", 30.0, 100.0),
            node("node2", 32.0, 110.0),
        ];
        let h = judge(&hot, "node0", 0, None, &t);
        assert!(h.regression.as_deref().unwrap().contains("CPU 80"), "{h:?}");
        let behind = judge(&r, "node0", 9, None, &t);
        assert!(behind.regression.unwrap().contains("9 blocks behind"));
        let fat = vec![
            node("node0", 30.0, 400.0),
            node("node1", 30.0, 100.0),
            node("node2", 32.0, 110.0),
        ];
        assert!(judge(&fat, "node0", 0, None, &t)
            .regression
            .unwrap()
            .contains("RSS 400"));
        assert!(judge(&r, "node9", 0, None, &t)
            .regression
            .unwrap()
            .contains("no figures"));
        let alert = AlertCheck {
            before: Vec::new(),
            canary: vec!["TpslabMempoolNearlyFull".into()],
            peers: Vec::new(),
        };
        let h = judge(&r, "node0", 0, Some(alert), &t);
        assert!(
            h.regression
                .as_deref()
                .unwrap()
                .contains("TpslabMempoolNearlyFull"),
            "{}",
            h.summary()
        );
    }
}
