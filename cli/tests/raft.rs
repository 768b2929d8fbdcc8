//! Raft chains as real processes on 127.0.0.1: 3 and 5 validators commit every submitted tx
//! with identical blocks and app hashes; killing the leader under load elects another and
//! loses nothing; an isolated minority commits nothing while the majority goes on, then
//! converges; a wiped follower catches up without voting first, and does not vote at all
//! while the leader is down.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};
use tpslab_api::proto::{StatusRequest, StatusResponse};

async fn status_of(addr: &str) -> Option<StatusResponse> {
    let mut c = tpslab_api::client::connect(addr).await.ok()?;
    Some(c.status(StatusRequest {}).await.ok()?.into_inner())
}

/// The name of the node every reachable node calls leader, once they agree.
async fn leader(net: &TestNet) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut leaders = Vec::new();
        for n in &net.file.nodes {
            if let Some(s) = status_of(&n.grpc_addr).await {
                let r = s.raft.expect("a raft node reports its raft state");
                assert_eq!(s.consensus, "raft");
                leaders.push((n.name.clone(), r.role, r.leader));
            }
        }
        let ids: std::collections::HashSet<u64> = leaders.iter().map(|l| l.2).collect();
        if ids.len() == 1 && !ids.contains(&0) {
            let id = *ids.iter().next().unwrap();
            let name = net.file.nodes[id as usize - 1].name.clone();
            // The node they all follow says it leads.
            assert!(
                leaders.iter().any(|l| l.0 == name && l.1 == "leader"),
                "{leaders:?}"
            );
            return name;
        }
        assert!(Instant::now() < deadline, "no agreed leader: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops `n`, deletes its data dir (Raft log, chain, state) and starts it again; returns the
/// length its log had, so callers read only what the new life logged.
fn wipe_and_restart(n: &tpslab_testnet::TestnetNode) -> usize {
    tpslab_testnet::stop_node(n).unwrap();
    std::fs::remove_dir_all(n.home.join("data")).unwrap();
    let from = log_len(&n.home);
    tpslab_testnet::start_node(n, Path::new(bin())).unwrap();
    from
}

/// Bytes in a node's log now (a restart appends to it).
fn log_len(home: &Path) -> usize {
    std::fs::read(home.join("node.log")).map_or(0, |b| b.len())
}

/// What a node logged after `from` bytes.
fn log_since(home: &Path, from: usize) -> String {
    let b = std::fs::read(home.join("node.log")).unwrap_or_default();
    String::from_utf8_lossy(b.get(from..).unwrap_or_default()).into_owned()
}

fn check_ok(net: &TestNet) {
    let check = net.run(&["testnet", "check"]);
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

fn load_args<'a>(dir: &'a Path, duration: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--testnet",
        dir.to_str().unwrap(),
        "--rate",
        "50",
        "--duration",
        duration,
        "--warmup",
        "1s",
        "--drain",
        "60s",
    ];
    a.extend_from_slice(extra);
    a
}

async fn commits_everything(validators: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let net = TestNet::up_with(dir.clone(), validators, 300, "", &["--consensus", "raft"]);
    leader(&net).await;
    let (_, r) = run_load(&load_args(&dir, "3s", &[]), &tmp.path().join("r.json"));
    assert_eq!(r["committed"], 150, "{r}");
    assert_eq!(r["uncommitted"], 0, "{r}");
    let want = r["committed_including_warmup"].as_u64().unwrap();
    for n in &net.file.nodes {
        assert_eq!(txs_on_chain(&n.grpc_addr).await, want, "{}", n.name);
    }
    check_ok(&net);
    let status = String::from_utf8_lossy(&net.run(&["testnet", "status"]).stdout).to_string();
    assert_eq!(status.matches("raft leader term").count(), 1, "{status}");
    assert!(status.contains("raft follower term"), "{status}");
    // The metrics the issue names are served.
    let m = tpslab_bench::monitor::http_get(&net.file.nodes[0].metrics_addr, "/metrics")
        .await
        .unwrap();
    for name in [
        "raft_term",
        "raft_leader_changes_total",
        "raft_commit_index",
        "raft_applied_index",
        "raft_proposals_dropped_total",
        "raft_append_latency_seconds_count",
    ] {
        assert!(m.contains(name), "{name} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_and_five_node_raft_chains_commit_every_tx() {
    commits_everything(3).await;
    commits_everything(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_elects_another_and_keeps_every_tx() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let net = TestNet::up_with(dir.clone(), 3, 300, "", &["--consensus", "raft"]);
    let old = leader(&net).await;
    let schedule = format!("kill:{old}@2s,restart:{old}@6s");
    let (stdout, r) = run_load(
        &load_args(&dir, "10s", &["--perturb", &schedule]),
        &tmp.path().join("r.json"),
    );
    assert!(
        stdout.contains("audit: every node holds the same chain"),
        "{stdout}"
    );
    // Whatever the killed node had accepted is counted as lost with it; everything else
    // was committed, and on every node.
    assert_eq!(r["uncommitted"], 0, "{r}");
    let want = r["committed_including_warmup"].as_u64().unwrap();
    assert!(r["committed"].as_u64().unwrap() > 300, "{r}");
    for n in &net.file.nodes {
        assert_eq!(txs_on_chain(&n.grpc_addr).await, want, "{}", n.name);
    }
    let new = leader(&net).await;
    let log = std::fs::read_to_string(
        net.file
            .nodes
            .iter()
            .find(|n| n.name == new)
            .unwrap()
            .home
            .join("node.log"),
    )
    .unwrap();
    assert!(log.contains("raft leader"), "{log}");
    check_ok(&net);
}

async fn heights(net: &TestNet) -> Vec<u64> {
    let mut h = Vec::new();
    for n in &net.file.nodes {
        h.push(status_of(&n.grpc_addr).await.map_or(0, |s| s.height));
    }
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_minority_commits_nothing_and_converges_after_healing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let net = TestNet::up_with(
        dir.clone(),
        3,
        300,
        "",
        &["--consensus", "raft", "--fault-injection"],
    );
    // Cut off the leader itself: the worst minority (it believed it led).
    let old = leader(&net).await;
    let i = net.file.nodes.iter().position(|n| n.name == old).unwrap();
    let isolated = net.file.nodes[i].grpc_addr.clone();
    let schedule = format!("disconnect:{old}@2s-12s");
    let load = {
        let dir = dir.clone();
        let json = tmp.path().join("r.json");
        std::thread::spawn(move || {
            run_load(&load_args(&dir, "14s", &["--perturb", &schedule]), &json)
        })
    };
    // Time is judged from what the nodes report, not from sleeps: a loaded machine starts the
    // load late and elects slowly.
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_of(&isolated).await.is_none_or(|s| s.peers != 0) {
        assert!(Instant::now() < deadline, "the leader was never cut off");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = heights(&net).await;
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let during = heights(&net).await;
        let cut_off = status_of(&isolated).await.is_some_and(|s| s.peers == 0);
        assert!(cut_off, "the disconnect ended before the majority moved on");
        assert_eq!(
            before[i], during[i],
            "the isolated node committed: {before:?} -> {during:?}"
        );
        if (0..3).filter(|j| *j != i).all(|j| during[j] > before[j]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the majority stalled: {before:?} -> {during:?}"
        );
    }
    let (stdout, r) = load.join().unwrap();
    assert!(
        stdout.contains("audit: every node holds the same chain"),
        "{stdout}"
    );
    assert_eq!(r["uncommitted"], 0, "{r}");
    let want = r["committed_including_warmup"].as_u64().unwrap();
    for n in &net.file.nodes {
        assert_eq!(txs_on_chain(&n.grpc_addr).await, want, "{}", n.name);
    }
    check_ok(&net);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn a_wiped_follower_catches_up_before_it_votes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let net = TestNet::up_with(dir.clone(), 3, 300, "", &["--consensus", "raft"]);
    let lead = leader(&net).await;
    let (_, r) = run_load(&load_args(&dir, "3s", &[]), &tmp.path().join("r.json"));
    let want = r["committed_including_warmup"].as_u64().unwrap();
    let f = net
        .file
        .nodes
        .iter()
        .find(|n| n.name != lead)
        .unwrap()
        .clone();
    let from = wipe_and_restart(&f);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = log_since(&f.home, from);
        if log.contains("caught up with the leader; voting from now on") {
            assert!(log.contains("fresh=true"), "{log}");
            break;
        }
        assert!(Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while txs_on_chain(&f.grpc_addr).await != want {
        assert!(
            Instant::now() < deadline,
            "the wiped follower did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The leader was told, and replicated to it from index 1 again.
    let lead_home = &net.file.nodes.iter().find(|n| n.name == lead).unwrap().home;
    let lead_log = std::fs::read_to_string(lead_home.join("node.log")).unwrap();
    assert!(
        lead_log.contains("follower lost its log; replicating from the start"),
        "{lead_log}"
    );
    check_ok(&net);
}

/// A wiped follower among started peers waits for a leader however long that takes: with
/// the leader down it must not help the other follower win an election (its lost vote may
/// have gone to someone else in that term). The two stay leaderless; once the old leader is
/// back, a leader emerges, the wiped node catches up, and the chains agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_follower_does_not_vote_while_the_leader_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let net = TestNet::up_with(dir.clone(), 3, 300, "", &["--consensus", "raft"]);
    let lead = leader(&net).await;
    let (_, r) = run_load(&load_args(&dir, "2s", &[]), &tmp.path().join("r.json"));
    let want = r["committed_including_warmup"].as_u64().unwrap();
    let node = |name: &str| {
        net.file
            .nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap()
            .clone()
    };
    let l = node(&lead);
    let w = net
        .file
        .nodes
        .iter()
        .find(|n| n.name != lead)
        .unwrap()
        .clone();
    tpslab_testnet::stop_node(&l).unwrap();
    let from = wipe_and_restart(&w);
    // Ten election timeouts (1 s each by default).
    tokio::time::sleep(Duration::from_secs(10)).await;
    for n in net.file.nodes.iter().filter(|n| n.name != lead) {
        let s = status_of(&n.grpc_addr).await.expect("node up");
        let raft = s.raft.unwrap();
        assert_ne!(
            raft.role, "leader",
            "{} led without the wiped node's abstention",
            n.name
        );
    }
    let log = log_since(&w.home, from);
    assert!(log.contains("fresh=true"), "{log}");
    assert!(!log.contains("voting"), "{log}");
    tpslab_testnet::start_node(&l, Path::new(bin())).unwrap();
    leader(&net).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while txs_on_chain(&w.grpc_addr).await != want {
        assert!(
            Instant::now() < deadline,
            "the wiped follower did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check_ok(&net);
}
