//! A real 4-validator testnet of separate processes on 127.0.0.1: txs committed on every node
//! with identical hashes, the chain going on with 1 of 4 down, halting (without forking) with
//! 2 of 4 down and resuming when one returns, and SIGKILLed validators catching up by block
//! sync, with the safety audit (`tpslab testnet check`) passing at the end.

// Each test is one scenario against real node processes, read top to bottom; splitting it
// would scatter the story.
#![allow(clippy::too_many_lines)]

mod common;

use common::*;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tpslab_api::proto::node_client::NodeClient;
use tpslab_api::proto::{BroadcastTxRequest, SubscribeCommitsRequest};
use tpslab_types::tx::tx_hash;

async fn client(addr: &str) -> NodeClient<tonic::transport::Channel> {
    NodeClient::connect(format!("http://{addr}")).await.unwrap()
}

async fn height(addr: &str) -> Option<u64> {
    status_of(addr).await.map(|s| s.height)
}

fn kill9(home: &Path) {
    let pid = std::fs::read_to_string(home.join("node.pid")).unwrap();
    Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
}

/// Starts a node as its own process group, like `testnet up` does; `testnet down` (the TestNet
/// guard) stops it by pid, and the test process never reaps it.
#[allow(clippy::zombie_processes)]
fn restart(home: &Path) {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(home.join("node.log"))
        .unwrap();
    let child = Command::new(bin())
        .args(["node", "--home"])
        .arg(home)
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap();
    std::fs::write(home.join("node.pid"), child.id().to_string()).unwrap();
}

/// Submits transfers (sender i sends to i+1) spread over `addrs`, returns their hashes.
async fn submit(addrs: &[String], senders: std::ops::Range<u64>, nonce: u64) -> HashSet<Vec<u8>> {
    let mut hashes = HashSet::new();
    for s in senders {
        let raw = transfer(s, s + 1, 7, nonce);
        hashes.insert(tx_hash(&raw).to_vec());
        let addr = &addrs[(s as usize) % addrs.len()];
        client(addr)
            .await
            .broadcast_tx(BroadcastTxRequest { tx: raw, id: s })
            .await
            .unwrap();
    }
    hashes
}

type Commits = tonic::Streaming<tpslab_api::proto::CommitEvent>;

/// Subscribe before submitting, so no commit can slip by unseen.
async fn subscribe(addr: &str) -> Commits {
    client(addr)
        .await
        .subscribe_commits(SubscribeCommitsRequest {})
        .await
        .unwrap()
        .into_inner()
}

async fn wait_committed(
    mut sub: Commits,
    mut want: HashSet<Vec<u8>>,
    timeout: Duration,
    what: &str,
) {
    let r = tokio::time::timeout(timeout, async {
        while !want.is_empty() {
            let ev = sub.next().await.unwrap().unwrap();
            for h in &ev.tx_hashes {
                want.remove(h);
            }
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "{what}: {} txs not committed in {timeout:?}",
        want.len()
    );
}

async fn wait_height(addr: &str, home: &Path, at_least: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while height(addr).await.unwrap_or(0) < at_least {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(home.join("node.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "{addr} did not reach height {at_least} (at {:?}); log tail:\n{}",
                height(addr).await,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Plain HTTP/1.1 GET, enough for /metrics.
/// A sample `name` of a metrics page, by its exact name and labels.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Task health: each subscribed client holds one forwarder task, and leaving releases it
/// (no waiting for the next commit), so the live count returns to where it was.
async fn subscriptions_end_with_their_clients(home: &std::path::Path) {
    let addr = std::fs::read_to_string(home.join("metrics.addr")).unwrap();
    let grpc = std::fs::read_to_string(home.join("grpc.addr")).unwrap();
    let name = "tokio_task_alive{task=\"subscribe\"}";
    let alive = || sample(&http_get(&addr, "/metrics"), name).unwrap();
    // Forwarders of the subscriptions this test dropped earlier end asynchronously: start
    // from a settled count (no client is subscribed now).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive() != 0.0 {
        assert!(std::time::Instant::now() < deadline, "{} alive", alive());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = alive();
    let mut subs = Vec::new();
    for _ in 0..20 {
        subs.push(subscribe(grpc.trim()).await);
    }
    assert_eq!(alive(), before + 20.0);
    drop(subs);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive() != before {
        assert!(
            std::time::Instant::now() < deadline,
            "subscription tasks outlived their clients: {} alive, {before} before",
            alive()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr.trim()).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// Connects to `target`'s p2p port as the validator whose home is `as_home`, sends a vote with
/// a corrupted signature, and expects the connection to be closed.
async fn invalid_vote_gets_disconnected(as_home: &Path, target: &tpslab_testnet::TestnetNode) {
    use futures::SinkExt;
    use prost::Message;
    let key = tpslab_api::keyfile::load(&as_home.join("priv_validator_key.json")).unwrap();
    let target_key =
        tpslab_api::keyfile::load(&target.home.join("priv_validator_key.json")).unwrap();
    let stream = tokio::net::TcpStream::connect(&target.p2p_addr)
        .await
        .unwrap();
    let mut framed =
        tokio_util::codec::Framed::new(stream, tokio_util::codec::LengthDelimitedCodec::new());
    let allowed = [tpslab_p2p::PeerId(target_key.verifying_key().to_bytes())].into();
    tpslab_p2p::handshake::handshake(&mut framed, &key, CHAIN, "bft", &allowed, &target.p2p_addr)
        .await
        .unwrap();
    let h = height(&target.grpc_addr).await.unwrap() + 1;
    let mut vote = tpslab_types::vote::VoteData {
        chain_id: CHAIN,
        vote_type: tpslab_types::pb::VoteType::Prevote,
        height: h,
        round: 0,
        block_hash: None,
        timestamp_unix_nanos: 1,
    }
    .sign(&key);
    vote.signature[10] ^= 0xff;
    let msg = tpslab_types::pb::ConsensusMessage {
        msg: Some(tpslab_types::pb::consensus_message::Msg::Vote(vote)),
    };
    let env = tpslab_p2p::Envelope {
        channel: tpslab_p2p::Channel::Consensus as u32,
        payload: msg.encode_to_vec().into(),
    };
    framed
        .send(bytes::Bytes::from(env.encode_to_vec()))
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = futures::StreamExt::next(&mut framed).await {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "connection not closed after an invalid vote"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_agree_survive_crashes_and_halt_without_quorum() {
    // Kept on failure for the node logs; removed at the end of a passing run.
    let tmp = tempfile::tempdir().unwrap().keep();
    let dir = tmp.join("net");
    eprintln!("testnet dir: {}", dir.display());
    let fast = "[consensus]\ntimeout_propose_ms = 1000\ntimeout_prevote_ms = 300\n\
                timeout_precommit_ms = 300\n";
    let net = TestNet::up(dir.clone(), 4, 200, fast);
    let file = net.file.clone();
    let addrs: Vec<String> = file.nodes.iter().map(|n| n.grpc_addr.clone()).collect();

    // All four commit submitted txs; every node has the same state.
    let sub = subscribe(&addrs[0]).await;
    let batch = submit(&addrs, 0..40, 0).await;
    wait_committed(sub, batch, Duration::from_secs(60), "all up").await;
    net.check(&[]);

    // One validator SIGKILLed while txs are in flight: the other three go on.
    let sub = subscribe(&addrs[0]).await;
    let batch = submit(&addrs[..3], 40..60, 0).await;
    kill9(&file.nodes[3].home);
    wait_committed(sub, batch, Duration::from_secs(60), "1 of 4 down").await;

    // A validator that signs a vote badly is disconnected with the reason logged; consensus
    // goes on. (node3 is down, so its key can be used to connect as it.)
    invalid_vote_gets_disconnected(&file.nodes[3].home, &file.nodes[0]).await;
    let sub = subscribe(&addrs[0]).await;
    let batch = submit(&addrs[..3], 80..85, 0).await;
    wait_committed(sub, batch, Duration::from_secs(60), "after a bad vote").await;
    let log = std::fs::read_to_string(file.nodes[0].home.join("node.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("invalid vote from") && l.contains("invalid signature")),
        "disconnect reason logged"
    );

    // Metrics with CometBFT-like names.
    let metrics = http_get(
        &std::fs::read_to_string(file.nodes[0].home.join("metrics.addr")).unwrap(),
        "/metrics",
    );
    for name in [
        "consensus_height ",
        "consensus_rounds ",
        "consensus_block_interval_seconds_count",
        "consensus_step_duration_seconds_count{step=\"prevote\"}",
        "consensus_total_txs ",
        "mempool_size ",
        "mempool_failed_txs_total",
        "mempool_already_received_txs_total",
        "p2p_peers 2",
        "p2p_message_send_bytes_total",
        "p2p_message_receive_bytes_total",
        "state_block_processing_time_count",
        "tpslab_stage_latency_seconds_bucket{le=\"0.001\",stage=\"check_tx\"}",
        "tpslab_stage_latency_seconds_count{stage=\"consensus\"}",
        "mempool_capacity_txs ",
        "tpslab_stage_txs{stage=\"gossip\"}",
        "tokio_alive_tasks ",
        "tokio_task_alive{task=\"consensus\"} 1",
        "tokio_task_scheduled_seconds{task=\"api_stream\"}",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    subscriptions_end_with_their_clients(&file.nodes[0].home).await;

    // A second one down: no quorum, no commits (and no fork).
    kill9(&file.nodes[2].home);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let halted_at = height(&addrs[0]).await.unwrap();
    let sub = subscribe(&addrs[0]).await;
    let pending = submit(&addrs[..2], 60..70, 0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        height(&addrs[0]).await.unwrap(),
        halted_at,
        "committed without quorum"
    );
    assert_eq!(height(&addrs[1]).await.unwrap(), halted_at);

    // One returns: it catches up by block sync, quorum is back, the pending txs commit.
    restart(&file.nodes[2].home);
    wait_committed(sub, pending, Duration::from_secs(60), "quorum back").await;
    // The other returns and catches up too.
    restart(&file.nodes[3].home);
    let tip = height(&addrs[0]).await.unwrap();
    wait_height(&addrs[3], &file.nodes[3].home, tip, Duration::from_secs(60)).await;

    let said = net.check(&[]);
    assert!(said.contains("agree"), "{said}");
    // Nothing acknowledged as committed is missing on the node that was down longest.
    for s in [0u64, 45, 65] {
        let a = tpslab_types::keys::address_of(&tpslab_types::keys::account_key(SEED, s));
        let acc = client(&addrs[3])
            .await
            .get_account(tpslab_api::proto::GetAccountRequest {
                address: a.0.to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(acc.nonce, 1, "account {s} on node3");
    }
    let status = net.run(&["testnet", "status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("node3"));
    drop(net);
    let _ = std::fs::remove_dir_all(&tmp);
}
