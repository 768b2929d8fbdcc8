//! `tpslab testnet rollout`: the canary rollout on a real 4-validator testnet. Under load it
//! turns a toggle on everywhere with no commit gap past 2 x timeout_propose, no accepted tx
//! left uncommitted and a clean audit, watched by a real Prometheus; a canary worse than its
//! peers (by its figures, or by an alert firing on it alone) is rolled back (its old config
//! restored and running) and the rollout stops there.

mod common;

use common::*;

fn sig_cache_on(net: &TestNet, i: usize) -> bool {
    let text = std::fs::read_to_string(net.file.nodes[i].home.join("config.toml")).unwrap();
    let cfg: toml::Table = toml::from_str(&text).unwrap();
    cfg["tuning"]["sig_cache"].as_bool().unwrap()
}

/// A 4-validator testnet with sig-cache off (with `Some(rules)`: and a Prometheus with the
/// kit's rules plus these), and `testnet rollout --opt sig-cache ARGS`: its output and JSON
/// report (the testnet stays up for the caller's checks).
fn rollout(
    dir: &std::path::Path,
    accounts: u64,
    prometheus: Option<&str>,
    args: &[&str],
) -> (TestNet, std::process::Output, serde_json::Value) {
    let net = TestNet::up(
        dir.join("net"),
        4,
        accounts,
        // A fixed pause: adaptive-pause's one-tx blocks put the peers' consensus P99 near
        // 7 ms, and the health rule (3x the peers' + 50 ms) then calls a freshly restarted
        // canary's catch-up a regression.
        "[tuning]\nsig_cache = false\nadaptive_pause = false\n",
    );
    if let Some(rules) = prometheus {
        let file = dir.join("extra.yml");
        std::fs::write(&file, rules).unwrap();
        let up = net.run(&[
            "testnet",
            "up",
            "--prometheus",
            "--rules",
            file.to_str().unwrap(),
        ]);
        succeeded(&up, "testnet up --prometheus");
    }
    let json = dir.join("rollout.json");
    let mut all = vec![
        "testnet",
        "rollout",
        "--opt",
        "sig-cache",
        "--json",
        json.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = net.run(&all);
    let r = std::fs::read_to_string(&json)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (net, out, r)
}

#[test]
fn rollout_under_load_turns_a_toggle_on_everywhere_keeps_every_tx_and_audits() {
    let dir = tempfile::tempdir().unwrap();
    let (net, out, r) = rollout(
        dir.path(),
        4000,
        Some("groups: []\n"),
        &["--under-load", "200", "--soak", "3s"],
    );
    let stdout = succeeded(&out, "testnet rollout");
    assert!(
        stdout.contains("rolled out sig-cache to 4 validators"),
        "{stdout}"
    );
    let canaries = r["canaries"].as_array().unwrap();
    assert_eq!(canaries.len(), 4, "{r}");
    for c in canaries {
        assert_eq!(c["kept"], true, "{c}");
        let after: Vec<&str> = c["after"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(after.contains(&"sig-cache"), "{c}");
        // Prometheus was asked: the kit's alerts were compared, and none fired on it alone.
        assert!(c["health"]["alerts"]["canary"].is_array(), "{c}");
    }
    for i in 0..4 {
        assert!(sig_cache_on(&net, i), "node{i} still has sig-cache off");
    }
    // A restart phase and a soak per canary, each under load; every accepted tx committed.
    let loads = r["loads"].as_array().unwrap();
    assert_eq!(loads.len(), 8, "{r}");
    for l in loads {
        assert!(l["accepted"].as_u64().unwrap() > 0, "{l}");
        assert_eq!(l["uncommitted"], 0, "{l}");
    }
    let gap = r["max_commit_gap_ms"].as_f64().unwrap();
    let bound = 2.0 * r["timeout_propose_ms"].as_f64().unwrap();
    assert!(gap < bound, "commit gap {gap} ms >= {bound} ms");
    assert!(
        r["audited_height"].as_u64().unwrap() > r["from_height"].as_u64().unwrap(),
        "{r}"
    );
    net.check(&[]);
}

#[test]
fn a_canary_worse_than_its_peers_is_rolled_back_and_the_rollout_stops() {
    let dir = tempfile::tempdir().unwrap();
    // Thresholds no canary can meet: any CPU at all is a regression.
    let (net, out, r) = rollout(
        dir.path(),
        100,
        None,
        &["--soak", "2s", "--max-cpu-ratio", "0", "--cpu-slack=-1"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("rolled back") && err.contains("node0") && err.contains("CPU"),
        "{err}"
    );
    assert_eq!(r["canaries"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["canaries"][0]["kept"], false);
    for i in 0..4 {
        assert!(
            !sig_cache_on(&net, i),
            "node{i} has sig-cache on after the rollback"
        );
    }
    // node0 runs again on its old config and the chain agrees with itself.
    let status = succeeded(&net.run(&["testnet", "status"]), "status");
    assert!(status.contains("node0"), "{status}");
    net.check(&[]);
}

/// Fires wherever sig-cache runs: on the canary alone once it restarted with it.
const SIG_CACHE_ALERT: &str = r#"groups:
  - name: canary-test
    rules:
      - alert: SigCacheRunning
        expr: tpslab_tuning_enabled{toggle="sig-cache"} == 1
        labels:
          severity: warning
"#;

#[test]
fn an_alert_firing_on_the_canary_alone_rolls_it_back() {
    let dir = tempfile::tempdir().unwrap();
    // The soak outlasts a scrape and a rule evaluation (1 s each) after the restart.
    let (net, out, r) = rollout(dir.path(), 100, Some(SIG_CACHE_ALERT), &["--soak", "4s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("rolled back") && err.contains("SigCacheRunning") && err.contains("node0"),
        "{err}"
    );
    let c = &r["canaries"][0];
    assert_eq!(c["kept"], false, "{r}");
    // The alert under test was on the canary alone; the kit's own rules may be pending
    // anywhere on a young testnet (TpslabRssGrowing was, on every node, in one run).
    let has = |list: &serde_json::Value| {
        list.as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("SigCacheRunning"))
    };
    assert!(!has(&c["health"]["alerts"]["before"]), "{c}");
    assert!(!has(&c["health"]["alerts"]["peers"]), "{c}");
    assert!(has(&c["health"]["alerts"]["canary"]), "{c}");
    assert!(
        !sig_cache_on(&net, 0),
        "node0 kept sig-cache after the rollback"
    );
    succeeded(&net.run(&["testnet", "down"]), "testnet down");
    assert!(
        std::fs::read_to_string(net.dir.join("prometheus/pid")).is_err(),
        "testnet down left prometheus running"
    );
}

#[test]
fn a_rollout_refuses_unknown_toggles_and_broken_configs_before_touching_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let init = std::process::Command::new(bin())
        .args([
            "testnet",
            "init",
            "--validators",
            "4",
            "--accounts",
            "10",
            "--out",
        ])
        .arg(&net)
        .output()
        .unwrap();
    succeeded(&init, "testnet init");
    let run = |opt: &str| {
        std::process::Command::new(bin())
            .args(["testnet", "rollout", "--opt", opt])
            .arg(&net)
            .output()
            .unwrap()
    };
    let out = run("turbo");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("turbo"), "{err}");
    // A corrupt config.toml is named, not half-applied.
    let cfg = net.join("node0/config.toml");
    std::fs::write(&cfg, "[tuning]\nsig_cache = maybe\n").unwrap();
    let out = run("sig-cache");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("config.toml"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        "[tuning]\nsig_cache = maybe\n"
    );
}
