//! The operations kit (ops/): the Prometheus rules pass `promtool check rules`; every metric
//! the rules and the Grafana dashboard use is served by a live node; `/metrics` passes
//! `promtool check metrics` with no findings; and `testnet up --prometheus` runs a real
//! Prometheus whose alerts fire when the mempool fills and quorum is lost.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

const RULE_FILES: [&str; 2] = [
    "../ops/prometheus/alerts.yml",
    "../ops/prometheus/recording.yml",
];
const DASHBOARD: &str = "../ops/grafana/tpslab-dashboard.json";

/// Every PromQL expression of the rule files and the dashboard.
fn expressions() -> Vec<String> {
    let mut out = Vec::new();
    for f in RULE_FILES {
        let text = std::fs::read_to_string(f).unwrap();
        out.extend(
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("expr: "))
                .map(str::to_string),
        );
    }
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    out
}

/// The metric names an expression selects: identifiers outside label matchers `{...}`,
/// ranges `[...]`, strings and grouping lists, not called as functions, not keywords, not
/// recording-rule names (with `:`).
fn metric_names(expr: &str) -> Vec<String> {
    // Modifiers followed by a parenthesised label list.
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    // Operators and modifiers, and aggregations (which may take `by (...)` before their
    // parenthesis).
    const KEYWORDS: [&str; 22] = [
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
    ];
    let b = expr.as_bytes();
    let (mut i, mut names, mut after_grouping) = (0, Vec::new(), false);
    while i < b.len() {
        let c = b[i] as char;
        match c {
            '{' | '[' | '"' => {
                let close = match c {
                    '{' => '}',
                    '[' => ']',
                    _ => '"',
                };
                i += 1 + expr[i + 1..].find(close).unwrap();
            }
            '(' if after_grouping => {
                i += expr[i..].find(')').unwrap();
                after_grouping = false;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let end = expr[i..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == ':'))
                    .map_or(expr.len(), |n| i + n);
                let word = &expr[i..end];
                let next = expr[end..].trim_start().chars().next();
                after_grouping = GROUPING.contains(&word);
                if !KEYWORDS.contains(&word) && !word.contains(':') && next != Some('(') {
                    names.push(word.to_string());
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// GET over HTTP/1.0 (no chunked bodies); the body.
fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[test]
fn the_expression_scanner_finds_metrics_and_skips_the_rest() {
    let names = metric_names(
        "sum by (instance, le) (rate(a_total{path=~\"tx_.*\"}[1m])) / on() group_left() \
         (floor(count(up{job=\"tpslab\"}) * 2 / 3) + 1) > bool tpslab:x:rate1m",
    );
    assert_eq!(names, ["a_total", "up"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_check_and_every_metric_they_use_is_served_clean_by_a_live_node() {
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .args(RULE_FILES)
        .output()
        .expect("promtool (Debian's prometheus package; scripts/setup installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::up(dir.path().join("net"), 2, 100, "");
    let page = get(&net.file.nodes[0].metrics_addr, "/metrics");
    let served: std::collections::HashSet<&str> = page
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for expr in expressions() {
        for name in metric_names(&expr) {
            // `up` is Prometheus's own series for each target.
            assert!(
                name == "up" || served.contains(name.as_str()),
                "{name} (in `{expr}`) is not on a live node's /metrics"
            );
        }
    }

    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "{findings}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_alerts_fire_when_the_mempool_fills_and_quorum_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let net = TestNet::up(
        dir.path().join("net"),
        2,
        1000,
        "[mempool]\nmax_txs = 100\n",
    );
    let up = succeeded(
        &net.run(&["testnet", "up", "--prometheus"]),
        "up --prometheus",
    );
    let prom = std::fs::read_to_string(net.dir.join("prometheus/addr")).unwrap();
    assert!(up.contains(&prom), "{up}");
    // node1 gone: a 2-validator chain commits nothing, so every accepted tx stays pending.
    let pid = std::fs::read_to_string(net.file.nodes[1].home.join("node.pid")).unwrap();
    Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    let node0 = &net.file.nodes[0];
    let genesis = node0.home.join("genesis.json");
    // 200 txs at a 100-tx mempool: the rest are refused (mempool is full), which is the point.
    Command::new(bin())
        .args(["load", "--target", &node0.grpc_addr, "--genesis"])
        .arg(&genesis)
        .args([
            "--rate",
            "200",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--drain",
            "1s",
        ])
        .output()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut firing: Vec<String> = Vec::new();
    while !(firing.iter().any(|a| a == "TpslabMempoolNearlyFull")
        && firing.iter().any(|a| a == "TpslabPeersBelowQuorum"))
    {
        assert!(
            Instant::now() < deadline,
            "alerts firing after 120 s: {firing:?}; node0 mempool: {:?}",
            get(&node0.metrics_addr, "/metrics")
                .lines()
                .find(|l| l.starts_with("mempool_size "))
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let v: serde_json::Value = serde_json::from_str(&get(&prom, "/api/v1/alerts")).unwrap();
        firing = v["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "firing")
            .map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
            .collect();
    }
    // The recording rules run too.
    let q: serde_json::Value =
        serde_json::from_str(&get(&prom, "/api/v1/query?query=tpslab:mempool_fill:ratio")).unwrap();
    assert_eq!(q["status"], "success", "{q}");
    succeeded(&net.run(&["testnet", "down"]), "testnet down");
    let prom_pid = std::fs::read_to_string(net.dir.join("prometheus/pid"));
    assert!(prom_pid.is_err(), "testnet down left prometheus running");
}
