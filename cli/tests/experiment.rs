//! The tuning toggles from the command line and `tpslab experiment` end to end on a tiny
//! quick configuration (real node processes): the table, results.json's schema, the HTML
//! report with its charts, and `--compare`.

// Each test is one scenario against real node processes, read top to bottom; splitting it
// would scatter the story.
#![allow(clippy::too_many_lines)]

mod common;

use common::{bin, quick_experiment, quick_experiment_capacity, succeeded, testnet_turn};
use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn opts_lists_every_toggle_with_its_paths() {
    let out = run(&["opts"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for t in tpslab_types::tuning::CATALOGUE {
        assert!(text.contains(t.name), "{} missing:\n{text}", t.name);
        assert!(text.contains(t.naive) && text.contains(t.tuned));
    }
    assert!(text.contains("[tuning]"));
}

#[test]
fn unknown_toggles_are_refused_and_chosen_ones_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let out = Command::new(bin())
        .args([
            "testnet",
            "init",
            "--validators",
            "2",
            "--opt",
            "turbo",
            "--out",
        ])
        .arg(&net)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown optimization `turbo`"), "{err}");

    let out = Command::new(bin())
        .args([
            "testnet",
            "init",
            "--validators",
            "2",
            "--opt",
            "sig-cache,read-cache",
            "--out",
        ])
        .arg(&net)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: toml::Table =
        toml::from_str(&std::fs::read_to_string(net.join("node0/config.toml")).unwrap()).unwrap();
    let tuning = cfg["tuning"].as_table().unwrap();
    for (k, v) in tuning {
        let want = k == "sig_cache" || k == "read_cache";
        assert_eq!(v.as_bool(), Some(want), "{k}");
    }

    // A corrupt [tuning] section is refused with the field named.
    let cfg_path = net.join("node1/config.toml");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, text.replace("sig_cache = ", "sig_cahce = ")).unwrap();
    let out = run(&["node", "--home", net.join("node1").to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sig_cahce"), "{err}");
}

/// Bad engine lists and sizes are refused before any testnet starts.
#[test]
fn experiment_refuses_bad_engine_arguments() {
    for (args, said) in [
        (
            &["--consensus", "paxos"][..],
            "unknown consensus engine `paxos`",
        ),
        (
            &["--consensus", "raft,raft"][..],
            "--consensus names raft twice",
        ),
        (
            &["--consensus", "raft", "--raft-validators", "0"][..],
            "--raft-validators must be at least 1",
        ),
        (
            &["--validators", "0"][..],
            "--validators must be at least 1",
        ),
        (
            &["--resume"][..],
            "--resume: there is no /nonexistent/tpslab/results.json",
        ),
        (&["--capacity", "most"][..], "unknown capacity plan `most`"),
        (&["--repeats", "0"][..], "--repeats must be at least 1"),
    ] {
        let out = run(&[
            &["experiment", "--quick", "--out", "/nonexistent/tpslab"][..],
            args,
        ]
        .concat());
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `quick_experiment(duration) --out OUT ARGS`, which must succeed; its stdout.
fn run_quick(duration: &str, out: &std::path::Path, args: &[&str]) -> String {
    run_quick_capacity(duration, "none", out, args)
}

/// `run_quick` with `--capacity capacity`.
fn run_quick_capacity(
    duration: &str,
    capacity: &str,
    out: &std::path::Path,
    args: &[&str],
) -> String {
    let run = quick_experiment_capacity(duration, capacity)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    succeeded(&run, "experiment")
}

#[test]
fn quick_experiment_end_to_end() {
    let _turn = testnet_turn();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("exp");
    // A tiny capacity search on each step (6 s trials from 20 tx/s, at most 40). Commits
    // come a block at a time (~0.27 s at 30 tx/s), so a trial shorter than ~20 blocks can
    // count one block less than the rate fills and miss the 95 % bar on that alone (2 s
    // trials did: 28 of 30 TPS).
    let stdout = run_quick_capacity(
        "6s",
        "baseline,tuned",
        &out_dir,
        &[
            "--probes",
            "--capacity-trial",
            "6s",
            "--capacity-start",
            "20",
            "--capacity-max",
            "40",
        ],
    );
    assert!(
        stdout.contains("| step | toggle added | TPS | P50 ms | P99 ms | capacity tx/s | CPU % | p2p B/tx | allocs/tx (/offered) | lock wait us/tx (/offered) | x baseline | vs compared |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tuned vs baseline at 25 tx/s offered (same-load ratio"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 run per step: the spread is unknown"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tuned vs baseline capacity (highest offered rate with >= 95% committed and P99 <= 1000 ms): "),
        "{stdout}"
    );
    // Every tx accounted for, and the generator's own figures, per step.
    assert!(
        stdout.contains("| step | offered | sent | accepted | rejected | committed | censored | late sends | generator CPU % |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| baseline | 150 | 150 | 150 | 0 | 150 | 0.0% |"),
        "{stdout}"
    );

    // results.json: schema, run info, one entry per step with the table's figures.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(r["schema"], 1);
    assert_eq!(r["info"]["validators"], 4);
    assert_eq!(r["info"]["rate"], 25);
    assert!(r["info"]["cpus"].as_u64().unwrap() >= 1);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["name"], "baseline");
    assert_eq!(steps[0]["enabled"].as_array().unwrap().len(), 0);
    assert_eq!(steps[1]["name"], "tuned");
    assert_eq!(
        steps[1]["enabled"].as_array().unwrap().len(),
        tpslab_types::tuning::CATALOGUE.len()
    );
    for s in steps {
        // 25 tx/s is below either configuration's capacity, even in a debug build: everything
        // commits. The 6 s window leaves room for a slow debug-build height (per-tx fsync, debug
        // logs, unoptimised ed25519) to land inside it.
        assert_eq!(s["report"]["committed"], 150, "{s}");
        assert!(s["tps"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["p99_ms"].as_f64().unwrap() >= s["p50_ms"].as_f64().unwrap());
        assert!(s["cpu_pct"].as_f64().unwrap() >= 0.0, "{s}");
        let cpu_sampled = s["report"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["cpu_pct"].is_f64());
        assert!(cpu_sampled, "{s}");
        assert_eq!(s["report"]["resources"].as_array().unwrap().len(), 4);
        assert!(!s["report"]["latency_cdf"].as_array().unwrap().is_empty());
        // Every pipeline stage was timed in the window, by the validators themselves.
        let stages = s["report"]["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 5, "{s}");
        assert!(
            stages.iter().all(|x| x["count"].as_u64().unwrap() > 0),
            "{s}"
        );
    }
    assert_eq!(steps[0]["x_baseline"], 1.0);
    // Each step's capacity search: trials from 20 tx/s for the baseline, from the baseline's
    // capacity for tuned, none above 40 tx/s; both keep up at these rates (capacity >= 30).
    for (i, s) in steps.iter().enumerate() {
        let c = &s["capacity"];
        let trials = c["trials"].as_array().unwrap_or_else(|| panic!("{s}"));
        assert!(!trials.is_empty(), "{c}");
        assert!(
            trials.iter().all(|t| t["rate"].as_u64().unwrap() <= 40),
            "{c}"
        );
        assert_eq!(c["slo_p99_ms"], 1000.0);
        let start = if i == 0 {
            20
        } else {
            steps[0]["capacity"]["rate"].as_u64().unwrap_or(20)
        };
        assert_eq!(c["started_at"], start, "{c}");
        assert_eq!(c["rate"], 30, "{c}");
        assert!(c["failed_at"].is_null(), "{c}");
        assert_eq!(s["repeats"].as_array().unwrap().len(), 1);
        assert_eq!(s["repeats"][0]["order"], i);
    }
    assert!(stdout.contains("| >= 30 |"), "{stdout}");

    // eBPF probes: attached to every step's validators when running as root (CI does).
    if tpslab_probe::available().is_ok() {
        for s in steps {
            let p = &s["probes"];
            assert!(p.is_object(), "no probe figures: {s}");
            // Every validator committed the step's blocks, each seen by the commit uprobe.
            assert!(p["blocks_seen"].as_u64().unwrap() >= 4, "{p}");
            assert!(p["committed_txs"].as_f64().unwrap() >= 150.0, "{p}");
            assert!(p["runq_p99_us"].as_u64().is_some(), "{p}");
            assert!(p["syscalls_per_tx"].as_f64().unwrap() > 0.0, "{p}");
            assert!(p["commit_p99_us"].as_f64().is_some(), "{p}");
        }
        // The baseline syncs the WAL once per tx, the tuned path once per block: compared per
        // block commit (all validators' fsyncs over their block commits), since the tuned
        // adaptive-pause makes blocks of one or two txs at this light load, so per tx the
        // tuned chain syncs more (its votes' WAL writes are per block too).
        let fsyncs_per_block = |i: usize| {
            let p = &steps[i]["probes"];
            let per_tx = p["fsyncs_per_tx"].as_f64().unwrap();
            let txs = p["committed_txs"].as_f64().unwrap();
            per_tx * txs / p["blocks_seen"].as_f64().unwrap().max(1.0)
        };
        let (naive, tuned) = (fsyncs_per_block(0), fsyncs_per_block(1));
        assert!(naive > tuned, "{naive} vs {tuned} fsyncs per block commit");
    } else {
        assert!(r["info"]["probes_note"].is_string());
    }

    // The HTML report is self-contained and holds the charts and the table.
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(
        html.matches("<svg").count() >= 4,
        "TPS, P99, CDF and CPU charts"
    );
    assert!(html.contains("Committed TPS") && html.contains("Latency CDF"));
    assert!(html.contains("<td>baseline</td>") && html.contains("<td>tuned</td>"));
    assert!(html.contains("Kernel-side evidence per step"));
    assert!(
        html.contains("signature verifies in"),
        "the CPU's calibration"
    );
    // A stage-latency table per step.
    assert!(html.contains("Where txs wait: stage latencies per step"));
    assert_eq!(
        html.matches("<th>stage</th><th>from -> to</th>").count(),
        2,
        "one stage table per step"
    );
    assert!(stdout.contains("where txs wait"), "{stdout}");
    // A CPU flame graph per step (node0, profiled over the window), the differential one
    // against the step before, and the "what moved" table.
    for (i, s) in steps.iter().enumerate() {
        let svg = s["flame_svg"].as_str().unwrap_or_else(|| panic!("{s}"));
        let svg = std::fs::read_to_string(out_dir.join(svg)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("tpslab"), "{svg:.300}");
        let name = s["name"].as_str().unwrap();
        assert!(html.contains(&format!("alt=\"flame graph of {name}\"")));
        assert!(!s["profile_top"].as_array().unwrap().is_empty(), "{s}");
        if i > 0 {
            let diff = s["flame_diff_svg"][0]
                .as_str()
                .unwrap_or_else(|| panic!("{s}"));
            assert!(out_dir.join(diff).exists(), "{diff}");
        }
    }
    assert!(html.contains("alt=\"differential flame graph baseline to tuned\""));
    assert!(html.contains("what moved"));
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http")
    );

    // --compare of a run with itself: no regressions.
    let json = out_dir.join("results.json");
    let cmp = run(&[
        "experiment",
        "--compare",
        json.to_str().unwrap(),
        json.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&cmp.stdout);
    assert!(
        cmp.status.success(),
        "{}",
        String::from_utf8_lossy(&cmp.stderr)
    );
    assert!(text.contains("0 step(s) regressed"), "{text}");
    assert!(text.contains("| baseline |"), "{text}");

    // A run whose tuned step lost 20% TPS is flagged.
    let mut worse = r.clone();
    let tps = worse["steps"][1]["tps"].as_f64().unwrap();
    worse["steps"][1]["tps"] = serde_json::json!(tps * 0.8);
    let worse_path = dir.path().join("worse.json");
    std::fs::write(&worse_path, serde_json::to_string(&worse).unwrap()).unwrap();
    let cmp = run(&[
        "experiment",
        "--compare",
        json.to_str().unwrap(),
        worse_path.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&cmp.stdout);
    assert!(
        text.contains("REGRESSION") && text.contains("1 step(s) regressed"),
        "{text}"
    );
    // The machine and build are on record.
    // The binary under test is built in the test's own profile (release: scripts/test).
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    assert_eq!(r["info"]["build"], format!("{profile}, system allocator"));
    assert_eq!(r["info"]["binary_sha256"].as_str().unwrap().len(), 64);
    let fsync = r["info"]["fsync_us"].as_array().unwrap();
    assert!(fsync[0].as_f64().unwrap() > 0.0 && fsync[1].as_f64() >= fsync[0].as_f64());
    // Runs on another CPU or at another rate are refused; another disk gets a warning.
    let variant = |edit: &dyn Fn(&mut serde_json::Value), name: &str| {
        let mut v = r.clone();
        edit(&mut v);
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
        run(&[
            "experiment",
            "--compare",
            json.to_str().unwrap(),
            p.to_str().unwrap(),
        ])
    };
    let other_cpu = variant(&|v| v["info"]["cpu"] = "Z80".into(), "cpu.json");
    assert!(!other_cpu.status.success());
    assert!(String::from_utf8_lossy(&other_cpu.stderr).contains("the runs differ in CPU model"));
    let other_rate = variant(&|v| v["info"]["rate"] = 26.into(), "rate.json");
    assert!(String::from_utf8_lossy(&other_rate.stderr).contains("differ in rate (25 vs 26)"));
    let slow = fsync[0].as_f64().unwrap() * 3.0;
    let slow_disk = variant(
        &|v| v["info"]["fsync_us"] = serde_json::json!([slow, slow]),
        "disk.json",
    );
    assert!(slow_disk.status.success());
    assert!(String::from_utf8_lossy(&slow_disk.stdout).contains("warning: the disks differ"));
    // So is the CPU's signature speed; a slower CPU of the same model name gets a warning.
    let verify = r["info"]["verify_us"].as_array().unwrap();
    let (single, batched) = (verify[0].as_f64().unwrap(), verify[1].as_f64().unwrap());
    assert!(single > 0.0 && batched > 0.0, "{verify:?}");
    let slow_cpu = variant(
        &|v| v["info"]["verify_us"] = serde_json::json!([single * 2.0, batched * 2.0]),
        "verify.json",
    );
    assert!(slow_cpu.status.success());
    assert!(String::from_utf8_lossy(&slow_cpu.stdout).contains("warning: the CPUs differ"));
    // Not a results file: a clear error.
    let bad = run(&[
        "experiment",
        "--compare",
        json.to_str().unwrap(),
        "/etc/hostname",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a tpslab experiment results file"));
}

/// `experiment --perturb`: every step runs the schedule, except that the baseline (write-batch
/// off, not crash-atomic) gets no kill or restart; each step's faults are in results.json and
/// every tx still commits.
#[test]
fn quick_experiment_under_faults() {
    let _turn = testnet_turn();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("exp");
    let out = quick_experiment("6s")
        .arg("--out")
        .arg(&out_dir)
        .args([
            "--perturb",
            "kill:node3@1s,restart:node3@2s,disconnect:node3@3s-4s,pause:node2@4s-5s",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("skipped (write-batch off, the naive commit is not crash-atomic): kill:node3@1s, restart:node3@2s"),
        "{stderr}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    let steps = r["steps"].as_array().unwrap();
    let faults = |s: &serde_json::Value| s["report"]["faults"].as_array().unwrap().len();
    assert_eq!(faults(&steps[0]), 2, "{}", steps[0]);
    assert_eq!(steps[0]["faults_skipped"].as_array().unwrap().len(), 2);
    assert_eq!(faults(&steps[1]), 4, "{}", steps[1]);
    for s in steps {
        for f in s["report"]["faults"].as_array().unwrap() {
            assert!(f["error"].is_null(), "{f}");
        }
        assert_eq!(s["report"]["committed"], 150, "{s}");
        assert_eq!(s["report"]["per_second_tps"].as_array().unwrap().len(), 6);
    }
}

/// `experiment --consensus raft,bft`: every step on both engines, side by side, Raft at the
/// same fault budget (3 validators against BFT's 4); each engine's headline and the
/// engine-against-engine line.
#[test]
fn quick_experiment_compares_raft_and_bft() {
    let _turn = testnet_turn();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("exp");
    let stdout = run_quick(
        "3s",
        &out_dir,
        &["--consensus", "raft,bft", "--no-profile", "--repeats", "2"],
    );
    for said in [
        "| baseline [raft] |",
        "| tuned [bft] |",
        "tuned vs baseline [raft, 3 validators] at 25 tx/s offered",
        "tuned vs baseline [bft, 4 validators] at 25 tx/s offered",
        "raft (3 validators) vs bft (4 validators), committed TPS: baseline ",
    ] {
        assert!(stdout.contains(said), "{said}: {stdout}");
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    let steps: Vec<(String, String, u64, u64)> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["engine"].as_str().unwrap().to_string(),
                s["validators"].as_u64().unwrap(),
                s["report"]["committed"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = |n: &str, e: &str, v| (n.to_string(), e.to_string(), v, 75);
    assert_eq!(
        steps,
        vec![
            want("baseline", "raft", 3),
            want("baseline", "bft", 4),
            want("tuned", "raft", 3),
            want("tuned", "bft", 4),
        ]
    );
    // Two repeats, interleaved: every step once, then every step again.
    for (j, s) in r["steps"].as_array().unwrap().iter().enumerate() {
        let runs: Vec<(u64, u64)> = s["repeats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["repeat"].as_u64().unwrap(), x["order"].as_u64().unwrap()))
            .collect();
        assert_eq!(runs, vec![(0, j as u64), (1, 4 + j as u64)], "{s}");
    }
    assert!(
        stdout.contains("figures are medians (min-max) over the repeats"),
        "{stdout}"
    );

    // --resume: an interrupted run (here: its last row dropped, and the second repeat of
    // the row before) goes on with the units it lacks, and keeps the ones it has.
    let mut cut = r.clone();
    cut["steps"].as_array_mut().unwrap().pop();
    cut["steps"][2]["repeats"].as_array_mut().unwrap().pop();
    let json = out_dir.join("results.json");
    std::fs::write(&json, serde_json::to_string(&cut).unwrap()).unwrap();
    let again = quick_experiment("3s")
        .arg("--out")
        .arg(&out_dir)
        .args(["--consensus", "raft,bft", "--no-profile", "--resume"])
        .args(["--repeats", "2"])
        .output()
        .unwrap();
    succeeded(&again, "experiment --resume");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("3 of 4 steps measured before (5 runs, 0 capacity searches)"),
        "{err}"
    );
    let ran: Vec<&str> = err.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(
        ran,
        vec![
            "[4/4] tuned (repeat 1/2): 4 bft validators, 25 tx/s for 3s",
            "[3/4] tuned (repeat 2/2): 3 raft validators, 25 tx/s for 3s",
            "[4/4] tuned (repeat 2/2): 4 bft validators, 25 tx/s for 3s",
        ],
        "{err}"
    );
    let resumed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(resumed["steps"].as_array().unwrap().len(), 4);
    assert_eq!(resumed["steps"][0]["tps"], r["steps"][0]["tps"]);
    assert_eq!(resumed["steps"][3]["engine"], "bft");
    assert_eq!(resumed["steps"][3]["report"]["committed"], 75);
    for s in resumed["steps"].as_array().unwrap() {
        assert_eq!(s["repeats"].as_array().unwrap().len(), 2, "{s}");
    }
    assert_eq!(resumed["steps"][1]["repeats"], r["steps"][1]["repeats"]);
    assert_eq!(resumed["info"]["resumed_unix"].as_array().unwrap().len(), 1);
    // Another tx size, or another plan, would not compare with the rows kept: refused.
    for (args, said) in [
        (
            &["--tx-size", "300"][..],
            "was measured with --tx-size 250, not 300",
        ),
        (&["--consensus", "bft"][..], "the plan differs"),
        (
            &["--consensus", "raft,bft", "--capacity-trial", "3s"][..],
            "was measured with --capacity-trial 6s, not 3s",
        ),
    ] {
        let out = quick_experiment("3s")
            .arg("--out")
            .arg(&out_dir)
            .args(["--no-profile", "--resume"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{args:?}: {err}");
    }
    // Rows measured by another build do not compare either.
    let mut other = resumed.clone();
    other["info"]["binary_sha256"] = "0".repeat(64).into();
    std::fs::write(&json, serde_json::to_string(&other).unwrap()).unwrap();
    let out = quick_experiment("3s")
        .arg("--out")
        .arg(&out_dir)
        .args(["--consensus", "raft,bft", "--no-profile", "--resume"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("was measured with another tpslab binary (sha256 000000000000..."),
        "{err}"
    );
}
