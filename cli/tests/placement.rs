//! CPU placement on real processes: `testnet up --cpus` pins each named validator (its every
//! thread, as the kernel reports them), a restart keeps it, `load --cpus` pins the generator
//! and the report records where everything ran; impossible placements are refused clearly.

mod common;

use common::*;

/// The CPUs every thread of `pid` may run on, as the kernel lists them per thread.
fn allowed_per_thread(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap_or_default();
        if let Some(l) = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")) {
            out.push(l.split_whitespace().nth(1).unwrap_or("").to_string());
        }
    }
    out
}

#[test]
fn validators_and_the_generator_run_where_they_are_placed() {
    let tmp = tempfile::tempdir().unwrap();
    let net = TestNet::up(tmp.path().join("net"), 2, 100, "");
    succeeded(&net.run(&["testnet", "down"]), "down");
    // node0 pinned to CPU 0; node1 left anywhere.
    succeeded(
        &net.run(&["testnet", "up", "--cpus", "node0=0"]),
        "up --cpus",
    );
    let file = tpslab_testnet::load(&net.dir).unwrap();
    assert_eq!(file.nodes[0].cpus.as_deref(), Some("0"));
    assert_eq!(file.nodes[1].cpus, None);
    let pid = tpslab_testnet::node_pid(&file.nodes[0]).unwrap();
    let threads = allowed_per_thread(pid);
    assert!(threads.len() > 2, "{threads:?}");
    assert!(threads.iter().all(|c| c == "0"), "{threads:?}");
    // A restart (as rollouts and perturbations do) keeps the placement.
    tpslab_testnet::stop_node(&file.nodes[0]).unwrap();
    let exe = std::path::Path::new(bin());
    let pid = tpslab_testnet::start_node(&file.nodes[0], exe).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(allowed_per_thread(pid).iter().all(|c| c == "0"));

    let args = load_args(&net.dir, "2s", &["--cpus", "0"]);
    let (stdout, r) = run_load(&args, &tmp.path().join("load.json"));
    assert_eq!(
        r["placement"], "generator cpus 0, node0 cpus 0, node1 cpus any",
        "{r}"
    );
    assert!(stdout.contains("placement: generator cpus 0"), "{stdout}");

    // Refused: a node that is not there, a CPU that is not there (the node says why).
    let out = net.run(&["testnet", "up", "--cpus", "node7=0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("node7 is not a node"),
        "{err}"
    );
    succeeded(&net.run(&["testnet", "down"]), "down");
    let out = net.run(&["testnet", "up", "--cpus", "node1=4096"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not one this process may run on"),
        "{err}"
    );
}

/// `experiment --cpus/--generator-cpus`: every step's validators and the generator placed,
/// and the report says so; a node no step has is refused before anything runs.
#[test]
fn an_experiment_places_its_validators_and_generator_and_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exp");
    let _turn = testnet_turn();
    let run = quick_experiment("2s")
        .args(["--validators", "2", "--no-profile"])
        .args(["--cpus", "node0=0", "--generator-cpus", "0", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    succeeded(&run, "experiment --cpus");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let want = "generator cpus 0, node0 cpus 0, other validators any";
    assert_eq!(results["info"]["placement"], want, "{}", results["info"]);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains(&format!("CPU placement: {want}")));

    let run = quick_experiment("2s")
        .args(["--validators", "2", "--cpus", "node2=0", "--out"])
        .arg(tmp.path().join("bad"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && err.contains("node2 is not a validator of any step"),
        "{err}"
    );
}
