//! `tpslab probe` against a real single-validator node under a light load: the JSON report names the node's
//! pid and sees its block commits through the commit uretprobe, and `--serve` exports them as
//! Prometheus metrics while the probes stay attached. Needs root (CI runs as root).

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_and_serves_a_running_node() {
    if let Err(e) = tpslab_probe::available() {
        eprintln!("skipping: {e}");
        return;
    }
    let mut node = TestNode::init(10, "[consensus]\nblock_interval_ms = 50\n");
    node.start().await;
    let pid = node.child.as_ref().unwrap().id().to_string();
    // A single validator only makes blocks with txs in them: keep a light load running.
    let mut load = Command::new(bin())
        .args(["load", "--target", &node.addr, "--genesis"])
        .arg(node.home().join("genesis.json"))
        .args([
            "--rate",
            "100",
            "--duration",
            "12s",
            "--warmup",
            "0s",
            "--drain",
            "2s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // JSON report: one process, block records from the kernel side, syscalls seen.
    let out = Command::new(bin())
        .args(["probe", "--pid", &pid, "--duration", "2s", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["procs"][0]["pid"].to_string(), pid);
    let blocks = r["blocks"].as_array().unwrap();
    assert!(blocks.len() >= 3, "{r}");
    let heights: Vec<u64> = blocks
        .iter()
        .map(|b| b["height"].as_u64().unwrap())
        .collect();
    assert!(heights.windows(2).all(|w| w[1] == w[0] + 1), "{heights:?}");
    assert!(!r["procs"][0]["syscalls"].as_array().unwrap().is_empty());

    // --serve: the same figures as metrics while attached.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut serve = Command::new(bin())
        .args(["probe", "--pid", &pid, "--duration", "6s", "--serve", &addr])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut page = String::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok(p) = tpslab_bench::monitor::http_get(&addr, "/metrics").await {
            if p.contains("tpslab_ebpf_blocks_total") && p.contains("tpslab_ebpf_syscall_calls") {
                page = p;
                break;
            }
        }
    }
    let _ = serve.wait();
    let blocks =
        tpslab_bench::monitor::metric(&page, &format!("tpslab_ebpf_blocks_total{{pid=\"{pid}\"}}"));
    assert!(blocks.is_some_and(|b| b >= 1.0), "{page}");
    let _ = load.kill();
    let _ = load.wait();
    node.kill();
}
