//! The operations kit's alerts in a canary's health: when the testnet runs a Prometheus
//! (`testnet up --prometheus`), which alerts are active on each validator before the canary
//! restarts and after its soak. An alert is the canary's regression when it fires on the
//! canary alone: not on it before, and on none of its peers (what a restart does to the
//! chain, e.g. peers' extra rounds while it was down, shows on them too). Pending alerts
//! (condition true, `for:` not yet served) and `info` ones are shown but do not roll back: a
//! rule's `for:` says a shorter spell is not an alert, and a soak shorter than it cannot make
//! one fire (set `--soak` past the `for:` of the rules that should gate a rollout).

use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use tpslab_testnet::TestnetFile;

/// Severities that can roll a canary back. `info` alerts (lock wait per tx) only advise: they
/// read a per-tx rate that a restart alone moves.
const ROLLS_BACK: [&str; 2] = ["warning", "critical"];

/// Active alerts by validator name: `alertname`, with ` [pending]`, ` [info]` or
/// ` [info, pending]` appended when it only advises.
pub type ByNode = BTreeMap<String, BTreeSet<String>>;

/// The testnet's Prometheus, if `testnet up --prometheus` started one that still runs.
pub fn prometheus(dir: &Path) -> Option<String> {
    tpslab_testnet::prometheus::addr(dir)
}

/// The alerts active now, per validator (an alert's `node` label, or the validator whose
/// metrics address is its `instance`; alerts of no one validator are left out).
pub async fn active(prom: &str, file: &TestnetFile) -> Result<ByNode> {
    let text = crate::http::http10_get(prom, "/api/v1/alerts")
        .await
        .with_context(|| format!("asking Prometheus on {prom} for its alerts"))?;
    parse(&text, file)
}

/// Waits (at most `timeout`) until Prometheus has scraped `instance` after `since` (Unix
/// seconds) and run one more rule evaluation, so the alerts it reports judge the canary as
/// it runs now, not the process before its restart. False if it never did.
pub async fn wait_scraped(prom: &str, instance: &str, since: f64, timeout: Duration) -> bool {
    let query = format!("timestamp(up{{instance=\"{instance}\"}})");
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let path = format!("/api/v1/query?query={encoded}");
        let last = crate::http::http10_get(prom, &path)
            .await
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()?
                    .parse::<f64>()
                    .ok()
            });
        if last.is_some_and(|t| t > since) {
            // The config evaluates rules every second (testnet/src/prometheus.rs).
            tokio::time::sleep(Duration::from_millis(1500)).await;
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

fn parse(text: &str, file: &TestnetFile) -> Result<ByNode> {
    let v: serde_json::Value =
        serde_json::from_str(text).context("Prometheus's /api/v1/alerts is not JSON")?;
    let list = v["data"]["alerts"]
        .as_array()
        .context("Prometheus's /api/v1/alerts has no data.alerts")?;
    let mut out = ByNode::new();
    for a in list {
        let pending = match a["state"].as_str() {
            Some("firing") => false,
            Some("pending") => true,
            _ => continue,
        };
        let labels = &a["labels"];
        let Some(name) = labels["alertname"].as_str() else {
            continue;
        };
        let node = labels["node"].as_str().map(str::to_string).or_else(|| {
            let inst = labels["instance"].as_str()?;
            let n = file.nodes.iter().find(|n| n.metrics_addr == inst)?;
            Some(n.name.clone())
        });
        let Some(node) = node else { continue };
        let severity = labels["severity"].as_str().unwrap_or("warning");
        let mut notes: Vec<&str> = Vec::new();
        if !ROLLS_BACK.contains(&severity) {
            notes.push(severity);
        }
        if pending {
            notes.push("pending");
        }
        let entry = if notes.is_empty() {
            name.to_string()
        } else {
            format!("{name} [{}]", notes.join(", "))
        };
        out.entry(node).or_default().insert(entry);
    }
    Ok(out)
}

/// What the alerts say about one canary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AlertCheck {
    /// Active on it before its restart.
    pub before: Vec<String>,
    /// Active on it at the soak's end.
    pub canary: Vec<String>,
    /// Active on any of its peers at the soak's end.
    pub peers: Vec<String>,
}

impl AlertCheck {
    /// The canary's entries in two snapshots, against its peers' in the second.
    pub fn of(canary: &str, before: &ByNode, after: &ByNode) -> AlertCheck {
        let list = |m: &ByNode, n: &str| -> Vec<String> {
            m.get(n)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default()
        };
        let peers: BTreeSet<String> = after
            .iter()
            .filter(|(n, _)| n.as_str() != canary)
            .flat_map(|(_, s)| s.iter().cloned())
            .collect();
        AlertCheck {
            before: list(before, canary),
            canary: list(after, canary),
            peers: peers.into_iter().collect(),
        }
    }

    /// Alerts that roll it back: firing on it alone, new since its restart, not advisory.
    pub fn regressions(&self) -> Vec<&str> {
        self.canary
            .iter()
            .filter(|a| !a.contains(" [") && !self.before.contains(a) && !self.peers.contains(a))
            .map(String::as_str)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tpslab_testnet::TestnetNode;

    fn file() -> TestnetFile {
        let node = |i: usize| TestnetNode {
            name: format!("node{i}"),
            metrics_addr: format!("127.0.0.1:2000{i}"),
            ..Default::default()
        };
        TestnetFile {
            chain_id: "t".into(),
            nodes: (0..3).map(node).collect(),
            links: None,
        }
    }

    #[test]
    fn alerts_map_to_validators_by_node_label_or_instance() {
        let text = r#"{"status":"success","data":{"alerts":[
          {"labels":{"alertname":"A","node":"node0","severity":"warning"},"state":"firing"},
          {"labels":{"alertname":"B","instance":"127.0.0.1:20001","severity":"critical"},"state":"pending"},
          {"labels":{"alertname":"C","node":"node2","severity":"info"},"state":"firing"},
          {"labels":{"alertname":"D","node":"node2"},"state":"inactive"},
          {"labels":{"alertname":"E"},"state":"firing"}]}}"#;
        let m = parse(text, &file()).unwrap();
        assert_eq!(m["node0"].iter().collect::<Vec<_>>(), ["A"]);
        assert_eq!(m["node1"].iter().collect::<Vec<_>>(), ["B [pending]"]);
        assert_eq!(m["node2"].iter().collect::<Vec<_>>(), ["C [info]"]);
        assert_eq!(m.len(), 3);
        assert!(parse("{}", &file()).is_err());
        assert!(parse("<html>", &file()).is_err());
    }

    #[test]
    fn only_an_alert_on_the_canary_alone_is_its_regression() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let before: ByNode = [("node0".to_string(), set(&["Old"]))].into();
        let after: ByNode = [
            (
                "node0".to_string(),
                set(&["Old", "New", "Shared", "Lock [info]", "Slow [pending]"]),
            ),
            ("node1".to_string(), set(&["Shared"])),
        ]
        .into();
        let c = AlertCheck::of("node0", &before, &after);
        assert_eq!(c.regressions(), ["New"]);
        assert!(AlertCheck::of("node1", &before, &after)
            .regressions()
            .is_empty());
    }
}
