//! Emulated links on real processes: a testnet made with `--link` runs its consensus over the
//! configured delay (every block's consensus stage takes at least the three one-way hops of
//! propose, prevote and precommit), loses a fifth of its gossip and still commits every
//! accepted tx with all validators agreeing; a latency matrix writes per-pair links.

mod common;

use common::*;
use std::process::Command;

const LINK: &str = "delay=30ms,jitter=5ms,loss=20%";

#[test]
fn a_chain_over_lossy_delayed_links_commits_everything_and_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let net = TestNet::up_each(
        tmp.path().join("net"),
        4,
        1000,
        |_| String::new(),
        &["--link", LINK],
    );
    let status = succeeded(&net.run(&["testnet", "status"]), "status");
    assert!(status.contains(&format!("every link {LINK}")), "{status}");
    let dir = net.dir.clone();
    let (_, r) = run_load(&load_args(&dir, "6s", &[]), &tmp.path().join("load.json"));
    let accepted = r["accepted"].as_u64().unwrap();
    assert!(accepted >= 250, "{r}");
    assert_eq!(r["committed"].as_u64().unwrap(), accepted, "{r}");
    let consensus = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "consensus")
        .unwrap_or_else(|| panic!("no consensus stage: {r}"))
        .clone();
    // Proposal, prevotes and precommits each cross a link of 25-35 ms.
    assert!(consensus["p50_ms"].as_f64().unwrap() >= 75.0, "{consensus}");
    net.check(&[]);
    let mut lost = 0.0;
    for n in &net.file.nodes {
        let page = metrics(&n.metrics_addr);
        let shaped = page
            .lines()
            .filter(|l| l.starts_with("p2p_emulated_link{") && l.contains(LINK))
            .count();
        assert_eq!(shaped, 3, "{}: {page}", n.name);
        lost += metric(&page, "p2p_emulated_gossip_lost_total");
    }
    // A fifth of the gossip frames was dropped, and counted (every tx still committed).
    assert!(lost > 0.0, "no lost gossip counted");
}

#[test]
fn a_latency_matrix_gives_each_pair_its_regions_delay() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("net");
    let matrix = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/latency-4regions.csv");
    let run = Command::new(bin())
        .args(["testnet", "init", "--validators", "4", "--out"])
        .arg(&out)
        .args(["--latency-matrix", matrix, "--link", "jitter=2ms"])
        .args([
            "--regions",
            "node0=us-east,node1=eu-west,node2=ap-northeast,node3=sa-east",
        ])
        .output()
        .unwrap();
    let stdout = succeeded(&run, "testnet init");
    assert!(stdout.contains("latency matrix"), "{stdout}");
    let file: tpslab_testnet::TestnetFile =
        serde_json::from_str(&std::fs::read_to_string(out.join("testnet.json")).unwrap()).unwrap();
    let cfg = |i: usize| {
        tpslab_api::config::Config::load(&file.nodes[i].home.join("config.toml")).unwrap()
    };
    let genesis =
        tpslab_api::genesis::Genesis::load(&file.nodes[0].home.join("genesis.json")).unwrap();
    let key = |i: usize| genesis.validators[i].pub_key.clone();
    // us-east -> ap-northeast and back, eu-west -> sa-east: the matrix's figures.
    assert_eq!(cfg(0).p2p.links[&key(2)], "delay=73ms,jitter=2ms");
    assert_eq!(cfg(2).p2p.links[&key(0)], "delay=73ms,jitter=2ms");
    assert_eq!(cfg(1).p2p.links[&key(3)], "delay=92ms,jitter=2ms");
    assert_eq!(cfg(0).p2p.links.len(), 3);

    // A region the matrix lacks, a node left out, a matrix without regions: refused.
    for (args, needle) in [
        (
            vec![
                "--regions",
                "node0=mars,node1=eu-west,node2=eu-west,node3=eu-west",
            ],
            "the matrix has only",
        ),
        (
            vec!["--regions", "node0=us-east,node1=eu-west,node2=eu-west"],
            "no region for node3",
        ),
        (vec![], "needs --regions"),
    ] {
        let run = Command::new(bin())
            .args(["testnet", "init", "--validators", "4", "--out"])
            .arg(tmp.path().join("bad"))
            .args(["--latency-matrix", matrix])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && err.contains(needle), "{err}");
    }
}
