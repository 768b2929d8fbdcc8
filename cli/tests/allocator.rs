//! The global allocator is each binary's choice (`tpslab` system, `tpslab-jemalloc`
//! jemalloc): a system-allocator node says it has no heap profile and why; `experiment
//! --allocators system,jemalloc` runs the tuned chain on the sibling jemalloc binary; that
//! binary serves a real heap profile (pprof, symbolised) on `/debug/pprof/heap`.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_build_explains_the_missing_heap_profile() {
    let mut node = TestNode::init(10, "");
    node.start().await;
    let metrics = std::fs::read_to_string(node.home().join("metrics.addr")).unwrap();
    let page = tpslab_bench::monitor::http_get(metrics.trim(), "/metrics")
        .await
        .unwrap();
    assert!(
        page.contains("process_allocator{allocator=\"system\"} 1"),
        "{page}"
    );
    let err = tpslab_bench::monitor::http_get(metrics.trim(), "/debug/pprof/heap")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("501") && err.contains("jemalloc"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_runs_the_jemalloc_binary_which_serves_heap_profiles() {
    let _turn = testnet_turn();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("exp");
    let out = quick_experiment("4s")
        .args(["--no-profile", "--allocators", "system,jemalloc"])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The tail of stderr names the step that failed; a CI log shows only the end of the output.
    let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
    assert!(
        out.status.success(),
        "experiment failed ({}):\n{}\nstdout:\n{stdout}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(
        stdout.contains("| tuned [jemalloc] | (allocator) jemalloc |"),
        "{stdout}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[2]["kind"], "allocator");
    assert_eq!(steps[2]["report"]["committed"], 100, "{}", steps[2]);

    // The binary the experiment ran: a node on it serves a heap profile.
    let variant = std::path::Path::new(env!("CARGO_BIN_EXE_tpslab-jemalloc"));
    let mut node = TestNode::init(200, "[consensus]\nblock_interval_ms = 50\n");
    node.start_exe(&variant).await;
    let metrics = std::fs::read_to_string(node.home().join("metrics.addr"))
        .unwrap()
        .trim()
        .to_string();
    let page = tpslab_bench::monitor::http_get(&metrics, "/metrics")
        .await
        .unwrap();
    assert!(page.contains("process_allocator{allocator=\"jemalloc\"} 1"));
    let heap = tpslab_bench::monitor::http_get_bytes(
        &metrics,
        "/debug/pprof/heap",
        std::time::Duration::from_secs(60),
    )
    .await;
    let heap = heap.unwrap();
    assert_eq!(&heap[..2], &[0x1f, 0x8b], "gzipped pprof");
    let funcs = tpslab_bench::profile::functions(&heap).unwrap();
    assert!(
        funcs.iter().any(|f| f.name.contains("tpslab")),
        "no tpslab function in the heap profile: {:?}",
        funcs.iter().take(20).map(|f| &f.name).collect::<Vec<_>>()
    );
}
