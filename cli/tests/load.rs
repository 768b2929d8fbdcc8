//! `tpslab load` against real nodes: the committed count it reports equals what the chain
//! contains (cross-checked block by block with GetBlock), and a full mempool shows up as
//! rejections by reason.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn load(args: &[&str], json: &Path) -> serde_json::Value {
    let (table, report) = run_load(args, json);
    assert!(table.contains("committed TPS"), "{table}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_counts_match_the_chain() {
    let mut node = TestNode::init(500, "[consensus]\nblock_interval_ms = 100\n");
    node.start().await;
    let json = node.home().join("report.json");
    let genesis = node.home().join("genesis.json");
    let r = load(
        &[
            "--target",
            &node.addr,
            "--genesis",
            genesis.to_str().unwrap(),
            "--rate",
            "100",
            "--duration",
            "2s",
            "--warmup",
            "1s",
            "--drain",
            "60s",
        ],
        &json,
    );
    assert_eq!(r["sent"], 200);
    assert_eq!(r["accepted"], 200);
    assert_eq!(r["committed"], 200, "{r}");
    let on_chain = txs_on_chain(&node.addr).await;
    assert_eq!(r["committed_including_warmup"].as_u64().unwrap(), on_chain);
    assert_eq!(on_chain, 300);
    assert!(r["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    // The generator measured itself: it signed and sent 100 tx/s, so it used some CPU.
    let cpu = r["generator_cpu_pct"].as_f64().unwrap();
    assert!(cpu > 0.0 && cpu < 100.0 * 64.0, "{cpu}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mempool_is_reported_by_reason() {
    let mut node = TestNode::init(
        500,
        "[consensus]\nmax_block_txs = 100000\nblock_interval_ms = 3600000\n[mempool]\nmax_txs = 20\n",
    );
    node.start().await;
    let json = node.home().join("report.json");
    let genesis = node.home().join("genesis.json");
    let (table, r) = run_load(
        &[
            "--target",
            &node.addr,
            "--genesis",
            genesis.to_str().unwrap(),
            "--rate",
            "100",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--drain",
            "1s",
        ],
        &json,
    );
    assert_eq!(r["sent"], 100);
    assert_eq!(r["accepted"], 20);
    assert_eq!(r["rejected"]["mempool is full"], 80, "{r}");
    assert_eq!(r["committed"], 0);
    // The 20 accepted never commit: they are censored, in the latencies at the time they had
    // waited when the 1 s drain ended (lower bounds), not left out.
    assert_eq!(r["uncommitted"], 20, "{r}");
    assert!(r["latency_ms"]["min"].as_f64().unwrap() >= 1000.0, "{r}");
    assert!(table.contains("percentiles above"), "{table}");
    // The 80 refused txs cost no signature verification: only the 20 admitted were verified.
    let metrics = std::fs::read_to_string(node.home().join("metrics.addr")).unwrap();
    let page = tpslab_bench::monitor::http_get(metrics.trim(), "/metrics")
        .await
        .unwrap();
    let verified: f64 = page
        .lines()
        .filter(|l| l.starts_with("tpslab_signature_verifications_total{path=\"tx_"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(verified, 20.0, "{page}");
}

/// sig-cache is on (the default is tuned): blocks found their txs verified at CheckTx; gossip
/// drops are counted (none at this rate).
async fn sig_cache_and_gossip_metrics(net: &TestNet, want: u64) {
    let metric = |page: &str, name: &str| -> f64 {
        page.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(-1.0)
    };
    let mut hits = 0.0;
    for n in &net.file.nodes {
        let page = tpslab_bench::monitor::http_get(&n.metrics_addr, "/metrics")
            .await
            .unwrap();
        hits += metric(&page, "sig_cache_hits_total");
        assert!(metric(&page, "sig_cache_misses_total") >= 0.0, "{page}");
        assert_eq!(metric(&page, "mempool_gossip_dropped_total"), 0.0, "{page}");
    }
    assert!(
        hits >= want as f64,
        "{hits} sig-cache hits for {want} txs on 4 nodes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testnet_counts_match_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let net = TestNet::up(dir.clone(), 4, 300, "");
    let json = tmp.path().join("report.json");
    let r = load(
        &[
            "--testnet",
            dir.to_str().unwrap(),
            "--rate",
            "50",
            "--duration",
            "2s",
            "--warmup",
            "1s",
            "--drain",
            "60s",
        ],
        &json,
    );
    assert_eq!(r["committed"], 100, "{r}");
    let want = r["committed_including_warmup"].as_u64().unwrap();
    assert_eq!(want, 150);
    // Every validator was watched: CPU and RSS from /proc, blocks from its /metrics.
    let res = r["resources"].as_array().unwrap();
    assert_eq!(res.len(), 4, "{r}");
    for n in res {
        assert!(n["cpu_pct"].as_f64().unwrap() > 0.0, "{n}");
        assert!(n["rss_peak_mib"].as_f64().unwrap() > 1.0, "{n}");
        assert!(n["blocks"].is_u64(), "{n}");
    }
    // Where the window's txs waited: every stage of the pipeline was seen, from the
    // validators' own histograms (/debug/stages at the window's edges, merged).
    let stages = r["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["check_tx", "gossip", "mempool", "consensus", "notify"],
        "{r}"
    );
    for st in stages {
        let n = st["count"].as_u64().unwrap();
        let q = |k: &str| st[k].as_f64().unwrap();
        assert!(n > 0, "{st}");
        assert!(q("p50_ms") > 0.0 && q("p50_ms") <= q("p95_ms") && q("p95_ms") <= q("p99_ms"));
    }
    // Each window tx passed CheckTx once, at the node it was sent to (give or take the txs
    // in flight at the window's edges).
    let checked = stages[0]["count"].as_u64().unwrap();
    assert!((80..=120).contains(&checked), "{}", stages[0]);
    // At most the three other validators admitted each from gossip (fewer when the block
    // carrying it arrived first: slow unoptimised signature checks in a debug build).
    let gossiped = stages[1]["count"].as_u64().unwrap();
    assert!(gossiped <= 3 * checked + 60, "{}", stages[1]);
    // Every validator's chain holds exactly the generated txs (commits reach all of them).
    for n in &net.file.nodes {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let got = txs_on_chain(&n.grpc_addr).await;
            if got == want {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {got} txs, want {want}",
                n.name
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    sig_cache_and_gossip_metrics(&net, want).await;
    net.check(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kvstore_open_and_closed_loop_counts_match_the_chain() {
    let mut node = TestNode::init(
        10,
        "app = \"kvstore\"\n[consensus]\nblock_interval_ms = 50\n",
    );
    node.start().await;
    let json = node.home().join("report.json");
    // No --genesis: kvstore txs are unsigned, and the workload is the node's app.
    let common = [
        "--target",
        &node.addr,
        "--tx-size",
        "512",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--drain",
        "60s",
    ];
    let open = load(&[&common[..], &["--rate", "200"]].concat(), &json);
    assert_eq!(open["workload"], "kvstore", "{open}");
    assert_eq!(open["mode"], "open");
    assert_eq!(open["committed"], 400, "{open}");
    let closed = load(&[&common[..], &["--concurrency", "16"]].concat(), &json);
    assert_eq!(closed["mode"], "closed", "{closed}");
    assert_eq!(closed["concurrency"], 16);
    assert!(closed["committed"].as_u64().unwrap() > 16, "{closed}");
    assert_eq!(closed["committed"], closed["sent"], "{closed}");
    let on_chain = txs_on_chain(&node.addr).await;
    assert_eq!(
        open["committed_including_warmup"].as_u64().unwrap()
            + closed["committed_including_warmup"].as_u64().unwrap(),
        on_chain
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturate_runs_steps_against_a_node() {
    let mut node = TestNode::init(
        10,
        "app = \"kvstore\"\n[consensus]\nblock_interval_ms = 50\n",
    );
    node.start().await;
    let json = node.home().join("saturate.json");
    let out = Command::new(bin())
        .args(["bench", "saturate", "--target", &node.addr])
        .args(["--start-rate", "100", "--factor", "2", "--max-rate", "200"])
        .args(["--duration", "1s", "--warmup", "500ms", "--drain", "10s"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("saturation point: "), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{r}");
    assert_eq!(steps[1]["rate"], 200);
    assert_eq!(steps[1]["report"]["committed"], 200, "{r}");
}

#[test]
fn generator_reports_its_own_send_rate() {
    let out = Command::new(bin())
        .args(["bench", "generator", "--rate", "2000", "--duration", "1s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("generator maximum send rate: "), "{stdout}");
}

/// `load --perturb`: a validator killed, restarted and later cut off from its peers, another
/// paused, during the window; the load goes to the two untouched ones, each fault's effect is reported, no tx is lost,
/// and afterwards every node holds the same chain with every generated tx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perturbed_run_loses_nothing_and_every_node_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let net = TestNet::up_with(dir.clone(), 4, 300, "", &["--fault-injection"]);
    let json = tmp.path().join("report.json");
    let (stdout, r) = run_load(
        &[
            "--testnet",
            dir.to_str().unwrap(),
            "--rate",
            "50",
            "--duration",
            "16s",
            "--warmup",
            "1s",
            "--drain",
            "60s",
            "--perturb",
            "kill:node3@3s,restart:node3@5s,pause:node2@8s-10s,disconnect:node3@12s-14s",
        ],
        &json,
    );
    assert!(stdout.contains("| kill:node3@3s |"), "{stdout}");
    assert!(stdout.contains("| disconnect:node3@12s-14s |"), "{stdout}");
    assert!(
        stdout.contains("audit: every node holds the same chain"),
        "{stdout}"
    );
    assert_eq!(r["targets"], 2, "{r}");
    let faults = r["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 4, "{r}");
    for f in faults {
        assert!(f["error"].is_null(), "{f}");
        assert!(f["pre_tps"].as_f64().unwrap() > 0.0, "{f}");
    }
    assert_eq!(r["per_second_tps"].as_array().unwrap().len(), 16, "{r}");
    assert_eq!(r["uncommitted"], 0, "{r}");
    assert_eq!(r["committed"], r["accepted"], "{r}");
    assert_eq!(r["committed"], 800, "{r}");
    // The disconnected node really was cut off (by its fault endpoint).
    let log = std::fs::read_to_string(net.file.nodes[3].home.join("node.log")).unwrap();
    assert!(log.contains("isolating this node from its peers"), "{log}");
    let want = r["committed_including_warmup"].as_u64().unwrap();
    for n in &net.file.nodes {
        assert_eq!(txs_on_chain(&n.grpc_addr).await, want, "{}", n.name);
    }
}
