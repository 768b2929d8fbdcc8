//! Faults injected into a testnet during a load window (`tpslab load --perturb SCHEDULE`),
//! and what they did to throughput.
//!
//! A schedule is comma-separated `ACTION:NODE@TIME` (or `@FROM-TO` for an interval), times
//! from the start of the measured window: `kill:node2@5s,restart:node2@12s,pause:node1@15s-20s`.
//! `kill` is SIGKILL (the node's mempool dies with it, as in CometBFT), `restart` starts it
//! again from its home (it catches up by block sync), `pause` is SIGSTOP then SIGCONT, and
//! `disconnect` makes the node drop and refuse every peer link for the interval (through its
//! fault endpoint, so the testnet must be made with `testnet init --fault-injection`). The
//! load goes only to nodes the schedule never touches, so no tx is lost with a killed node's
//! mempool and a paused target cannot stall the sender.
//!
//! Each fault's effect comes from the per-second committed TPS: the pre-fault TPS (mean of the
//! 3 s before it), the dip (the lowest second from the fault until recovery) and the time to
//! recover (until TPS is back to >= 90 % of the pre-fault TPS for 3 s in a row).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tpslab_api::testnet_file::TestnetNode;

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL.
    Kill,
    /// Start the node again.
    Restart,
    /// SIGSTOP at the start, SIGCONT at the end.
    Pause {
        /// When it resumes, from the window start.
        until: Duration,
    },
    /// The node drops and refuses its peer links until `until` (its fault endpoint).
    Disconnect {
        /// When its links may come back, from the window start.
        until: Duration,
    },
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// What.
    pub action: Action,
    /// Which node (`node2`).
    pub node: String,
    /// When, from the window start.
    pub at: Duration,
}

impl Fault {
    /// The fault as written in a schedule.
    pub fn label(&self) -> String {
        match self.action {
            Action::Kill => format!("kill:{}@{}s", self.node, self.at.as_secs_f64()),
            Action::Restart => format!("restart:{}@{}s", self.node, self.at.as_secs_f64()),
            Action::Pause { until } | Action::Disconnect { until } => format!(
                "{}:{}@{}s-{}s",
                if matches!(self.action, Action::Pause { .. }) {
                    "pause"
                } else {
                    "disconnect"
                },
                self.node,
                self.at.as_secs_f64(),
                until.as_secs_f64()
            ),
        }
    }
}

/// A parsed `--perturb` schedule, in time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule(pub Vec<Fault>);

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Schedule, String> {
        let mut faults = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            faults.push(parse_fault(part)?);
        }
        if faults.is_empty() {
            return Err("empty schedule (try kill:node2@5s,restart:node2@12s)".into());
        }
        faults.sort_by_key(|f| f.at);
        Ok(Schedule(faults))
    }
}

fn parse_fault(part: &str) -> Result<Fault, String> {
    let bad =
        |why: &str| format!("bad fault {part:?}: {why} (e.g. kill:node2@5s, pause:node1@15s-20s)");
    let (action, rest) = part.split_once(':').ok_or_else(|| bad("no ACTION:"))?;
    let (node, when) = rest.split_once('@').ok_or_else(|| bad("no @TIME"))?;
    if node.is_empty() {
        return Err(bad("no node"));
    }
    let (from, to) = match when.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (when, None),
    };
    let at = crate::parse_duration(from).map_err(|e| bad(&e))?;
    let until = to
        .map(crate::parse_duration)
        .transpose()
        .map_err(|e| bad(&e))?;
    let action = match (action, until) {
        ("kill", None) => Action::Kill,
        ("restart", None) => Action::Restart,
        ("pause", Some(until)) if until > at => Action::Pause { until },
        ("disconnect", Some(until)) if until > at => Action::Disconnect { until },
        ("pause" | "disconnect", _) => {
            return Err(bad(&format!(
                "{action} needs an interval FROM-TO with TO after FROM"
            )))
        }
        ("kill" | "restart", Some(_)) => return Err(bad("kill and restart take one time")),
        _ => return Err(bad("ACTION is kill, restart, pause or disconnect")),
    };
    Ok(Fault {
        action,
        node: node.to_string(),
        at,
    })
}

/// A schedule bound to a testnet's processes.
#[derive(Clone, Debug)]
pub struct Perturb {
    /// The faults.
    pub schedule: Schedule,
    /// Every node of the testnet.
    pub nodes: Vec<TestnetNode>,
    /// The tpslab binary, to restart nodes with.
    pub exe: PathBuf,
}

impl Perturb {
    /// Checks every fault names a node of the testnet and the schedule leaves one untouched
    /// node to send load to.
    pub fn check(&self) -> Result<()> {
        for f in &self.schedule.0 {
            if !self.nodes.iter().any(|n| n.name == f.node) {
                let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                bail!(
                    "--perturb names {}, not a node of the testnet ({})",
                    f.node,
                    names.join(", ")
                );
            }
        }
        for f in &self.schedule.0 {
            let disconnect = matches!(f.action, Action::Disconnect { .. });
            if disconnect
                && self
                    .nodes
                    .iter()
                    .any(|n| n.name == f.node && !n.fault_injection)
            {
                bail!(
                    "--perturb disconnects {}, but its testnet has no fault endpoint: make it with `tpslab testnet init --fault-injection`",
                    f.node
                );
            }
        }
        if self.untouched().is_empty() {
            bail!("--perturb touches every node: leave at least one to send load to");
        }
        Ok(())
    }

    /// The nodes no fault touches: the load goes to them.
    pub fn untouched(&self) -> Vec<&TestnetNode> {
        self.nodes
            .iter()
            .filter(|n| !self.schedule.0.iter().any(|f| f.node == n.name))
            .collect()
    }

    /// Runs the schedule from `window_start`; returns what happened to each fault.
    pub async fn run(self, window_start: Instant) -> Vec<FaultOutcome> {
        let mut steps: Vec<(Duration, usize, bool)> = Vec::new();
        for (i, f) in self.schedule.0.iter().enumerate() {
            steps.push((f.at, i, false));
            if let Action::Pause { until } = f.action {
                steps.push((until, i, true));
            }
        }
        steps.sort_by_key(|s| s.0);
        let mut errors: Vec<Option<String>> = vec![None; self.schedule.0.len()];
        for (at, i, resume) in steps {
            tokio::time::sleep_until((window_start + at).into()).await;
            let f = &self.schedule.0[i];
            if let Err(e) = self.apply(f, resume).await {
                tracing::warn!(fault = %f.label(), error = %e, "fault not applied");
                errors[i].get_or_insert(format!("{e:#}"));
            }
        }
        self.schedule
            .0
            .iter()
            .zip(errors)
            .map(|(f, error)| FaultOutcome {
                fault: f.label(),
                error,
                ..FaultOutcome::default()
            })
            .collect()
    }

    async fn apply(&self, f: &Fault, resume: bool) -> Result<()> {
        let n = self
            .nodes
            .iter()
            .find(|n| n.name == f.node)
            .context("unknown node")?;
        let signal = |sig: &str| -> Result<()> {
            let pid = tpslab_testnet::node_pid(n)
                .with_context(|| format!("{} is not running", n.name))?;
            let ok = Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()?
                .success();
            anyhow::ensure!(ok, "kill {sig} {pid} failed");
            Ok(())
        };
        match (f.action, resume) {
            (Action::Disconnect { until }, _) => {
                // The node ends the isolation itself, so a harness that dies mid-fault
                // does not leave it cut off.
                let ms = until.saturating_sub(f.at).as_millis();
                let path = format!("/fault/isolate?ms={ms}");
                crate::http::http_post(&n.metrics_addr, &path)
                    .await
                    .with_context(|| format!("POST {}{path}", n.metrics_addr))
                    .map(|_| ())
            }
            (Action::Kill, _) => signal("-KILL"),
            (Action::Pause { .. }, false) => signal("-STOP"),
            (Action::Pause { .. }, true) => signal("-CONT"),
            (Action::Restart, _) => tpslab_testnet::start_node(n, &self.exe).map(|_| ()),
        }
    }
}

/// What one fault did.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct FaultOutcome {
    /// The fault as scheduled.
    pub fault: String,
    /// Why it could not be applied, if it could not.
    pub error: Option<String>,
    /// Mean committed TPS over the 3 s before it (None if it came too early).
    pub pre_tps: Option<f64>,
    /// Lowest committed TPS of a second from the fault until recovery (or the window's end).
    pub dip_tps: Option<u64>,
    /// Seconds from the fault until TPS is back to >= 90 % of `pre_tps` for 3 s in a row;
    /// None if it did not recover within the window.
    pub recovered_after_secs: Option<u64>,
}

/// Seconds of history a fault's baseline and recovery are judged on.
const SPAN: usize = 3;

/// Fills in each fault's pre-fault TPS, dip and recovery from the window's per-second
/// committed TPS. The pre-fault TPS is the mean of the 3 s before the fault, unless those
/// seconds were still disturbed by an earlier fault (not yet recovered): then it is that
/// fault's pre-fault TPS, the last undisturbed level (a catch-up burst is not a baseline).
pub fn analyse(schedule: &Schedule, per_second: &[u64], outcomes: &mut [FaultOutcome]) {
    let mut baseline: Option<f64> = None;
    let mut disturbed_until = 0usize;
    for (f, o) in schedule.0.iter().zip(outcomes.iter_mut()) {
        let t0 = f.at.as_secs() as usize;
        if t0 >= per_second.len() {
            continue;
        }
        let pre = if t0 >= SPAN && t0 - SPAN >= disturbed_until {
            Some(per_second[t0 - SPAN..t0].iter().sum::<u64>() as f64 / SPAN as f64)
        } else {
            baseline
        };
        let Some(pre) = pre else { continue };
        baseline = Some(pre);
        o.pre_tps = Some(pre);
        let good = |s: usize| per_second[s] as f64 >= 0.9 * pre;
        let back =
            (t0..per_second.len().saturating_sub(SPAN - 1)).find(|&s| (s..s + SPAN).all(good));
        let dip_end = back.unwrap_or(per_second.len()).max(t0 + 1);
        o.dip_tps = per_second[t0..dip_end.min(per_second.len())]
            .iter()
            .min()
            .copied();
        o.recovered_after_secs = back.map(|s| (s - t0) as u64);
        disturbed_until = disturbed_until.max(back.unwrap_or(per_second.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_in_time_order_and_bad_ones_say_why() {
        let s: Schedule = "restart:node2@12s, kill:node2@5s,pause:node1@15s-20s"
            .parse()
            .unwrap();
        assert_eq!(s.0[0].action, Action::Kill);
        assert_eq!(s.0[1].at, Duration::from_secs(12));
        assert_eq!(
            s.0[2].action,
            Action::Pause {
                until: Duration::from_secs(20)
            }
        );
        for bad in [
            "",
            "kill",
            "kill:node2",
            "nap:node1@3s",
            "pause:node1@5s",
            "pause:node1@5s-4s",
            "kill:@3s",
            "kill:n@3x",
            "disconnect:node3@2s",
        ] {
            let e = bad.parse::<Schedule>().unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
    }

    #[test]
    fn a_schedule_naming_an_unknown_node_or_touching_every_node_is_refused() {
        let node = |name: &str| TestnetNode {
            fault_injection: true,
            name: name.into(),
            home: PathBuf::from("/nonexistent"),
            ..Default::default()
        };
        let p = |s: &str| Perturb {
            schedule: s.parse().unwrap(),
            nodes: vec![node("node0"), node("node1")],
            exe: PathBuf::from("/nonexistent"),
        };
        assert_eq!(
            "disconnect:node1@2s-4s".parse::<Schedule>().unwrap().0[0].action,
            Action::Disconnect {
                until: Duration::from_secs(4)
            }
        );
        let e = p("kill:node7@1s").check().unwrap_err().to_string();
        assert!(e.contains("node7") && e.contains("node0, node1"), "{e}");
        let e = p("kill:node0@1s,pause:node1@2s-3s")
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("every node"), "{e}");
        let ok = p("kill:node1@1s");
        ok.check().unwrap();
        // A disconnect needs the nodes' fault endpoint.
        let mut no_endpoint = p("disconnect:node1@1s-2s");
        no_endpoint.nodes[1].fault_injection = false;
        let e = no_endpoint.check().unwrap_err().to_string();
        assert!(e.contains("testnet init --fault-injection"), "{e}");
        assert_eq!(ok.untouched().len(), 1);
    }

    #[test]
    fn a_dip_and_its_recovery_are_read_from_per_second_tps() {
        let s: Schedule = "kill:node2@4s".parse().unwrap();
        let mut o = vec![FaultOutcome::default()];
        analyse(&s, &[100, 100, 100, 100, 40, 20, 95, 92, 91, 100], &mut o);
        assert_eq!(o[0].pre_tps, Some(100.0));
        assert_eq!(o[0].dip_tps, Some(20));
        assert_eq!(o[0].recovered_after_secs, Some(2));
        // Never back within the window.
        let mut o = vec![FaultOutcome::default()];
        analyse(&s, &[100, 100, 100, 100, 10, 10, 10, 10], &mut o);
        assert_eq!((o[0].dip_tps, o[0].recovered_after_secs), (Some(10), None));
        // A second fault during the first's catch-up burst is judged against the level
        // before the first.
        let s: Schedule = "kill:node2@3s,restart:node2@6s".parse().unwrap();
        let mut o = vec![FaultOutcome::default(); 2];
        let tps = [100, 100, 100, 0, 0, 300, 0, 100, 95, 100];
        analyse(&s, &tps, &mut o);
        assert_eq!(o[0].recovered_after_secs, Some(4));
        assert_eq!(o[1].pre_tps, Some(100.0));
        assert_eq!(
            (o[1].dip_tps, o[1].recovered_after_secs),
            (Some(0), Some(1))
        );
    }
}
