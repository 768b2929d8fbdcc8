//! Raft chains as real processes on 127.0.0.1: 3 and 5 validators commit every submitted tx
//! with identical blocks and app hashes; killing the leader under load elects another and
//! loses nothing; an isolated minority commits nothing while the majority goes on, then
//! converges; a wiped follower catches up without voting first, and does not vote at all
//! while the leader is down; and Raft and BFT chains that ran the same txs show the same app
//! hash.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};
use tpslab_api::proto::{GetAccountRequest, StatusRequest};
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::Hash;

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
    net.check(&[]);
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
    let log = log_since(&node_named(&net, &new).home, 0);
    assert!(log.contains("raft leader"), "{log}");
    net.check(&[]);
}

async fn heights(net: &TestNet) -> Vec<u64> {
    let mut h = Vec::new();
    for n in &net.file.nodes {
        h.push(height_of(&n.grpc_addr).await);
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
    net.check(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_follower_catches_up_before_it_votes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let net = TestNet::up_with(dir.clone(), 3, 300, "", &["--consensus", "raft"]);
    let lead = leader(&net).await;
    let (_, r) = run_load(&load_args(&dir, "3s", &[]), &tmp.path().join("r.json"));
    let want = r["committed_including_warmup"].as_u64().unwrap();
    let f = a_follower(&net, &lead);
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
    wait_for_txs(&f.grpc_addr, want, 30).await;
    // The leader was told, and replicated to it from index 1 again.
    let lead_log = log_since(&node_named(&net, &lead).home, 0);
    assert!(
        lead_log.contains("follower lost its log; replicating from the start"),
        "{lead_log}"
    );
    net.check(&[]);
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
    let l = node_named(&net, &lead);
    let w = a_follower(&net, &lead);
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
    wait_for_txs(&w.grpc_addr, want, 60).await;
    net.check(&[]);
}

/// Runs 40 transfers of one sender (its nonces fix their order) on a fresh testnet of
/// `validators` and `consensus`; the app hash every node reports once all are committed, and
/// the chain's height then.
async fn app_hash_after_transfers(consensus: &str, validators: usize) -> (Vec<u8>, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let net = TestNet::up_with(
        tmp.path().join("net"),
        validators,
        20,
        "",
        &["--consensus", consensus],
    );
    if consensus == "raft" {
        leader(&net).await;
    }
    let txs: Vec<Vec<u8>> = (0..40).map(|i| transfer(0, 1 + i % 9, 5 + i, i)).collect();
    let mut c = tpslab_api::client::connect(&net.file.nodes[0].grpc_addr)
        .await
        .unwrap();
    for (code, log) in stream_txs(&mut c, &txs).await {
        assert_eq!(code, 0, "{log}");
    }
    let sender = address_of(&account_key(SEED, 0)).0.to_vec();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        seen.clear();
        for n in &net.file.nodes {
            let mut c = tpslab_api::client::connect(&n.grpc_addr).await.unwrap();
            let nonce = c
                .get_account(GetAccountRequest {
                    address: sender.clone(),
                })
                .await
                .unwrap()
                .into_inner()
                .nonce;
            let s = c.status(StatusRequest {}).await.unwrap().into_inner();
            seen.push((nonce, s.app_hash, s.height));
        }
        if seen.iter().all(|s| s.0 == 40) {
            break;
        }
        assert!(Instant::now() < deadline, "{consensus}: not all committed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen.iter().all(|s| s.1 == seen[0].1),
        "{consensus} nodes disagree"
    );
    net.check(&[]);
    (seen[0].1.clone(), seen[0].2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_and_bft_reach_the_same_app_hash_for_the_same_txs() {
    // One after the other: multi-node testnets take turns.
    let (bft, bft_height) = app_hash_after_transfers("bft", 4).await;
    let (raft, raft_height) = app_hash_after_transfers("raft", 3).await;
    // BFT commits a block every interval, empty ones too; Raft only when txs are pending: the
    // same txs were cut into different blocks at different heights.
    assert!(
        bft_height > raft_height,
        "bft {bft_height}, raft {raft_height}"
    );
    assert_eq!(
        Hash::from_slice("bft", &bft).unwrap(),
        Hash::from_slice("raft", &raft).unwrap(),
        "bft height {bft_height}, raft height {raft_height}"
    );
}
