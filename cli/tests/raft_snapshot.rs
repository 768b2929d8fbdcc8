//! Raft log compaction as real processes: with `[raft] log_keep` small, the leader compacts
//! its log while a follower is down; the follower then needs entries that are gone, so it
//! installs the leader's snapshot, fetches the blocks up to it by block sync and rejoins; and
//! a wiped follower does the same without voting first. Blocks and app hashes agree after.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// Entries kept: a few seconds of load at 50 tx/s makes far more blocks than twice this.
const PATCH: &str = "[raft]\nlog_keep = 4\n";

async fn metric(addr: &str, name: &str) -> f64 {
    let page = tpslab_bench::monitor::http_get(addr, "/metrics")
        .await
        .unwrap_or_default();
    page.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until `home`'s log after `from` holds `needle`.
async fn wait_for_log(home: &Path, from: usize, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let log = log_since(home, from);
        if log.contains(needle) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {needle:?} in: {log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A running 3-node Raft testnet that compacts its log to `PATCH`'s few entries, and its
/// leader's name (the temp dir keeps it alive).
async fn compacting_raft_net() -> (tempfile::TempDir, std::path::PathBuf, TestNet, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let net = TestNet::up_with(dir.clone(), 3, 300, PATCH, &["--consensus", "raft"]);
    let lead = leader(&net).await;
    (tmp, dir, net, lead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_a_compacted_log_catches_up_from_a_snapshot() {
    let (tmp, dir, net, lead) = compacting_raft_net().await;
    let l = node_named(&net, &lead);
    let f = a_follower(&net, &lead);
    tpslab_testnet::stop_node(&f).unwrap();
    // Load through the leader only: `--testnet` would want every validator up.
    let genesis = l.home.join("genesis.json");
    let args = [
        "--target",
        &l.grpc_addr,
        "--genesis",
        genesis.to_str().unwrap(),
        "--rate",
        "50",
        "--duration",
        "3s",
        "--warmup",
        "1s",
        "--drain",
        "60s",
    ];
    let (_, r) = run_load(&args, &tmp.path().join("r.json"));
    let want = r["committed_including_warmup"].as_u64().unwrap();
    let height = height_of(&l.grpc_addr).await;
    let first = metric(&l.metrics_addr, "raft_log_first_index").await;
    assert!(
        first > 8.0,
        "the leader did not compact (first index {first})"
    );
    assert!(height > 8, "too few blocks for the test ({height})");
    let from = log_len(&f.home);
    tpslab_testnet::start_node(&f, Path::new(bin())).unwrap();
    let log = wait_for_log(&f.home, from, "reached the snapshot's chain", 60).await;
    assert!(log.contains("installed a raft snapshot"), "{log}");
    wait_for_txs(&f.grpc_addr, want, 30).await;
    assert!(metric(&f.metrics_addr, "raft_snapshots_installed_total").await >= 1.0);
    // More load after the catch-up: the follower replicates from the log again.
    let (_, r) = run_load(&load_args(&dir, "2s", &[]), &tmp.path().join("r2.json"));
    assert_eq!(r["uncommitted"], 0, "{r}");
    wait_for_txs(&f.grpc_addr, txs_on_chain(&l.grpc_addr).await, 30).await;
    net.check(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_follower_rejoins_from_a_snapshot_without_voting_first() {
    let (tmp, dir, net, lead) = compacting_raft_net().await;
    let (_, r) = run_load(&load_args(&dir, "3s", &[]), &tmp.path().join("r.json"));
    let want = r["committed_including_warmup"].as_u64().unwrap();
    let f = a_follower(&net, &lead);
    let from = wipe_and_restart(&f);
    let log = wait_for_log(
        &f.home,
        from,
        "caught up with the leader; voting from now on",
        60,
    )
    .await;
    assert!(log.contains("fresh=true"), "{log}");
    let installed = log
        .find("installed a raft snapshot")
        .expect("no snapshot installed");
    let voting = log.find("voting from now on").unwrap();
    assert!(
        installed < voting,
        "voted before it installed the snapshot: {log}"
    );
    wait_for_txs(&f.grpc_addr, want, 30).await;
    net.check(&[]);
}
