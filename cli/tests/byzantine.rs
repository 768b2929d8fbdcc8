//! Byzantine validators on real processes (`testnet init --byzantine`): with one liar of four
//! the chain keeps committing under load, nothing accepted is lost and the honest nodes
//! agree; with two, silent or garbage pairs halt the chain until one turns honest, and an
//! equivocating pair forks it, which the audit detects and pins on both.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tpslab_testnet::TestnetFile;

/// Short rounds, so a liar's round costs little, and blocks small enough that an oversize
/// forgery stays within one frame.
const PATCH: &str = "[consensus]\ntimeout_propose_ms = 1000\ntimeout_prevote_ms = 300\n\
                     timeout_precommit_ms = 300\nmax_block_bytes = 1048576\n";

fn metrics(net: &TestNet, node: usize) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(tpslab_bench::monitor::http_get(
        &net.file.nodes[node].metrics_addr,
        "/metrics",
    ))
    .unwrap()
}

fn log(net: &TestNet, node: usize) -> String {
    std::fs::read_to_string(net.file.nodes[node].home.join("node.log")).unwrap_or_default()
}

fn pubkey_hex(net: &TestNet, node: usize) -> String {
    let g: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(net.file.nodes[0].home.join("genesis.json")).unwrap(),
    )
    .unwrap();
    g["validators"][node]["pub_key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A 4-validator testnet with node3 showing `behaviour`, under 10 s of load at 100 tx/s:
/// every accepted tx committed, the honest nodes audited equal. Returns the net and report.
fn one_of_four(behaviour: &str) -> (tempfile::TempDir, TestNet, serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let arg = format!("node3={behaviour}");
    let net = TestNet::up_with(dir.clone(), 4, 300, PATCH, &["--byzantine", &arg]);
    let status = net.run(&["testnet", "status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains(&format!("byzantine: {behaviour}")),
        "{status}"
    );
    let json = tmp.path().join("report.json");
    let (stdout, r) = run_load(
        &[
            "--testnet",
            dir.to_str().unwrap(),
            "--rate",
            "100",
            "--duration",
            "10s",
            "--warmup",
            "1s",
            "--drain",
            "60s",
            "--no-progress",
        ],
        &json,
    );
    assert!(
        stdout.contains("audit: every honest node holds the same chain")
            && stdout.contains("byzantine, not audited: node3"),
        "{stdout}"
    );
    assert_eq!(r["targets"], 3, "load goes to the honest nodes only: {r}");
    assert_eq!(r["uncommitted"], 0, "{r}");
    assert_eq!(r["committed"], r["accepted"], "{r}");
    assert_eq!(r["committed"], 1000, "{r}");
    (tmp, net, r)
}

#[test]
fn one_equivocator_of_four_is_caught_and_the_chain_goes_on() {
    let (_tmp, net, _) = one_of_four("equivocate");
    let key = pubkey_hex(&net, 3);
    for n in 0..3 {
        let page = metrics(&net, n);
        assert_eq!(
            metric(&page, "consensus_byzantine_validators "),
            1.0,
            "node{n}: {page}"
        );
        let votes =
            format!("consensus_evidence_total{{kind=\"duplicate-vote\",validator=\"{key}\"}}");
        assert!(metric(&page, &votes) > 0.0, "node{n}: {page}");
    }
}

#[test]
fn one_double_proposer_of_four_is_caught_and_the_chain_goes_on() {
    let (_tmp, net, _) = one_of_four("double-propose");
    let key = pubkey_hex(&net, 3);
    for n in 0..3 {
        let page = metrics(&net, n);
        let ev =
            format!("consensus_evidence_total{{kind=\"double-proposal\",validator=\"{key}\"}}");
        assert!(metric(&page, &ev) > 0.0, "node{n}: {page}");
    }
}

#[test]
fn one_forger_of_four_gets_nil_votes_and_its_bad_signature_tx_a_failure_code() {
    let (_tmp, net, _) = one_of_four("invalid-block");
    // Every forgery that breaks the block was refused by the honest nodes, for its reason.
    let logs: String = (0..3).map(|n| log(&net, n)).collect();
    for reason in [
        "tx_root differs",
        "app_hash differs",
        "expected",
        "time not after the last block",
        "over max_block_bytes",
    ] {
        assert!(logs.contains(reason), "no honest node refused: {reason}");
    }
    assert!(metric(&metrics(&net, 0), "consensus_invalid_proposals_total ") >= 5.0);
    // The block with a bad-signature tx is valid: committed, the tx failed with code 3.
    let key = hex::decode(pubkey_hex(&net, 3)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let found = rt
        .block_on(blocks(&net.file.nodes[0].grpc_addr))
        .iter()
        .any(|b| {
            let header = b.block.as_ref().unwrap().header.as_ref().unwrap();
            header.proposer == key && b.tx_codes.contains(&3)
        });
    assert!(
        found,
        "no committed block of node3 holds a bad-signature tx"
    );
}

#[test]
fn one_silent_validator_of_four_does_not_stop_the_chain() {
    let (_tmp, net, r) = one_of_four("silent");
    assert!(r["committed_tps"].as_f64().unwrap() > 50.0, "{r}");
    // It still follows the chain.
    let page = metrics(&net, 3);
    assert!(metric(&page, "consensus_height ") > 10.0, "{page}");
}

#[test]
fn one_garbage_sender_of_four_is_dropped_and_the_chain_goes_on() {
    let (_tmp, net, _) = one_of_four("garbage");
    let logs: String = (0..3).map(|n| log(&net, n)).collect();
    assert!(logs.contains("malformed"), "no honest node refused garbage");
}

#[test]
fn one_proposer_of_four_withholding_a_tx_costs_rounds_not_the_chain() {
    let (_tmp, net, _) = one_of_four("withhold-txs");
    let log3 = log(&net, 3);
    assert!(log3.contains("a tx no one else has"), "{log3}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let chain = rt.block_on(blocks(&net.file.nodes[0].grpc_addr));
    // Its blocks were never rebuilt, so never decided: its heights went to the next round.
    let key = hex::decode(pubkey_hex(&net, 3)).unwrap();
    for b in &chain {
        let block = b.block.as_ref().unwrap();
        assert!(
            !block.txs.iter().any(|t| t.starts_with(b"withheld/")),
            "a withheld tx was committed"
        );
        assert_ne!(block.header.as_ref().unwrap().proposer, key);
    }
    let later_rounds = chain
        .iter()
        .filter(|b| b.commit.as_ref().is_some_and(|c| c.round > 0))
        .count();
    assert!(later_rounds > 0, "no height needed a second round");
    // Honest nodes asked for the withheld tx and were never answered.
    for n in 0..3 {
        let page = metrics(&net, n);
        assert!(
            metric(&page, "consensus_compact_requests_total ") >= 1.0,
            "node{n}: {page}"
        );
    }
}

#[test]
fn one_validator_of_four_flooding_tx_requests_is_served_its_budget_and_no_more() {
    // one_of_four: every accepted tx committed, the honest nodes agree.
    let (_tmp, net, _) = one_of_four("flood-tx-requests");
    let log3 = log(&net, 3);
    assert!(!log3.contains("panicked"), "{log3}");
    // node3 asked for every block's txs 8 times; past 4 blocks' worth a block, the
    // honest nodes holding the block ignored it, and counted that.
    let refused: Vec<f64> = (0..3)
        .map(|n| {
            metric(
                &metrics(&net, n),
                "consensus_compact_requests_refused_total ",
            )
        })
        .collect();
    assert!(
        refused.iter().all(|r| *r >= 1.0),
        "every honest node holds the blocks it commits, so each refused some: {refused:?}"
    );
}

/// Height of `node`, 0 if unreachable.
fn height(file: &TestnetFile, node: usize) -> u64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(height_of(&file.nodes[node].grpc_addr))
}

/// Two of four `behaviour`: no block while both lie; node3 restarted honest (its
/// [byzantine] section removed, testnet.json updated), the chain resumes and the audit of
/// node0, node1 and node3 passes.
fn two_of_four_halt_then_resume(behaviour: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let arg = format!("node2={behaviour},node3={behaviour}");
    let mut net = TestNet::up_with(dir.clone(), 4, 300, PATCH, &["--byzantine", &arg]);
    std::thread::sleep(Duration::from_secs(5));
    let stalled = height(&net.file, 0);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        height(&net.file, 0),
        stalled,
        "two of four {behaviour}: the chain must halt"
    );
    assert_eq!(stalled, 0, "no block without a quorum");

    let n3 = net.file.nodes[3].clone();
    tpslab_testnet::stop_node(&n3).unwrap();
    let cfg = n3.home.join("config.toml");
    let mut doc: toml::Table = toml::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    doc.remove("byzantine");
    std::fs::write(&cfg, toml::to_string(&doc).unwrap()).unwrap();
    net.file.nodes[3].byzantine = None;
    std::fs::write(
        dir.join("testnet.json"),
        serde_json::to_string_pretty(&net.file).unwrap(),
    )
    .unwrap();
    tpslab_testnet::start_node(&net.file.nodes[3], std::path::Path::new(bin())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while height(&net.file, 0) < 5 {
        assert!(Instant::now() < deadline, "the chain did not resume");
        std::thread::sleep(Duration::from_millis(200));
    }
    net.check(&["--honest-only"]);
    // It picked height 1 up where its WAL left it (round, step, lock), so it never asked
    // its signer for a second, different vote in a step it had signed while it lied.
    let log3 = log(&net, 3);
    assert!(log3.contains("resuming from the WAL"), "{log3}");
    assert!(!log3.contains("refusing to double-sign"), "{log3}");
}

#[test]
fn two_silent_validators_of_four_halt_the_chain_until_one_is_honest() {
    two_of_four_halt_then_resume("silent");
}

#[test]
fn two_garbage_senders_of_four_halt_the_chain_until_one_is_honest() {
    two_of_four_halt_then_resume("garbage");
}

/// Two equivocators are beyond f = 1: they can fork the two honest nodes. The audit must
/// see the conflicting commits and name exactly the two validators that signed both.
#[test]
fn two_equivocators_of_four_fork_and_the_audit_names_both() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let net = TestNet::up_with(
        dir.clone(),
        4,
        300,
        PATCH,
        &["--byzantine", "node2=equivocate,node3=equivocate"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let stderr = loop {
        let check = net.run(&["testnet", "check", "--honest-only"]);
        if !check.status.success() {
            let e = String::from_utf8_lossy(&check.stderr).to_string();
            if e.contains("divergence") {
                break e;
            }
        }
        assert!(Instant::now() < deadline, "no fork in 60 s");
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("{stderr}");
    assert!(
        stderr.contains("validators whose verified precommits are in both: node2, node3"),
        "{stderr}"
    );
}
