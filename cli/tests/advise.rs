//! `tpslab advise`: on the committed full-ladder results (the rules themselves are tested on
//! that fixture in tpslab-bench), refusing bad input, and live on a running testnet under load.

mod common;

use common::*;
use std::process::{Command, Stdio};

const FIXTURE: &str = "../bench-harness/fixtures/full-ladder-bft4.results.json";

fn advise(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("advise")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn advise_on_results_names_the_next_toggle_per_step_and_the_tuned_chains_limit() {
    let out = succeeded(&advise(&[FIXTURE]), "advise");
    assert!(out.starts_with("+zero-copy-net"), "{out}");
    assert!(
        out.contains("limited by: signature verification CPU"),
        "{out}"
    );
    let json = succeeded(
        &advise(&[FIXTURE, "--step", "baseline", "--json"]),
        "advise",
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["suggestions"][0]["toggle"], "sig-cache", "{v}");
    assert!(v[0]["figures"]["cpu"]["verify"].as_f64().unwrap() > 0.3);
    let all = succeeded(&advise(&[FIXTURE, "--all"]), "advise");
    assert_eq!(all.matches("try next:").count(), 12, "{all}");
}

#[test]
fn advise_refuses_missing_files_unknown_steps_and_results_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.json"), b"{\"schema\": 1}").unwrap();
    let path = |f: &str| dir.path().join(f).display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["/nonexistent/results.json".into()], "cannot read"),
        (
            vec![FIXTURE.into(), "--step".into(), "+turbo".into()],
            "no step `+turbo`",
        ),
        (vec![path("x.json")], "cannot read"),
        (
            vec!["--testnet".into(), dir.path().display().to_string()],
            "testnet.json",
        ),
        (
            vec![path("bad.json")],
            "not a tpslab experiment results file",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = advise(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advise_on_a_running_testnet_under_load_reads_its_figures_and_names_sig_cache() {
    let dir = tempfile::tempdir().unwrap();
    // Tuned but for sig-cache: every block re-verifies its txs.
    let net = TestNet::up(
        dir.path().join("net"),
        2,
        5000,
        "[tuning]\nsig_cache = false\n",
    );
    let net_dir = net.dir.to_str().unwrap();
    let mut load = Command::new(bin())
        .args([
            "load",
            "--testnet",
            net_dir,
            "--rate",
            "300",
            "--duration",
            "14s",
        ])
        .args(["--warmup", "1s", "--drain", "30s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The generator pre-signs its txs first; start watching once they flow (node0's
    // committed-tx counter: reading the chain block by block would take longer each poll,
    // and small blocks make many).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let metrics_addr = net.file.nodes[0].metrics_addr.clone();
    let committed = || async {
        let page = tpslab_bench::monitor::http_get(&metrics_addr, "/metrics").await;
        page.map_or(0.0, |p| metric(&p, "consensus_total_txs "))
    };
    while committed().await < 300.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the load never reached the chain"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let out = advise(&["--testnet", net_dir, "--secs", "5", "--json"]);
    let _ = load.wait();
    let v: serde_json::Value = serde_json::from_str(&succeeded(&out, "advise --testnet")).unwrap();
    let a = &v[0];
    let f = &a["figures"];
    assert!(f["source"].as_str().unwrap().contains("5 s"), "{f}");
    let enabled: Vec<&str> = f["enabled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        !enabled.contains(&"sig-cache") && enabled.contains(&"write-batch"),
        "{enabled:?}"
    );
    assert!(f["tps"].as_f64().unwrap() > 50.0, "{f}");
    // Admission and execution each verify every tx once, on every validator.
    let per_tx = f["verifications_per_tx"].as_f64().unwrap();
    assert!((1.5..=2.5).contains(&per_tx), "{per_tx}");
    assert!(!f["stages"].as_array().unwrap().is_empty(), "{f}");
    assert!(
        f["cpu"]["covered"].as_f64().unwrap() > 0.5,
        "node0 was profiled: {f}"
    );
    let toggles: Vec<&str> = a["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["toggle"].as_str())
        .collect();
    assert!(toggles.contains(&"sig-cache"), "{a}");
    for t in &toggles {
        assert!(!enabled.contains(t), "{t} is already on");
    }
}
