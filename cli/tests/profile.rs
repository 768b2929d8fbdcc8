//! CPU profiles from a real node under load: `/debug/pprof/profile` answers a pprof protobuf
//! naming the node's own functions and an SVG flame graph; bad queries get 400; `tpslab
//! profile` writes both per node and `profile diff` compares two.

// Each test is one scenario against real node processes, read top to bottom; splitting it
// would scatter the story.
#![allow(clippy::too_many_lines)]

mod common;

use common::*;
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_of_a_node_under_load() {
    let mut node = TestNode::init(200, "[consensus]\nblock_interval_ms = 50\n");
    node.start().await;
    let metrics = std::fs::read_to_string(node.home().join("metrics.addr"))
        .unwrap()
        .trim()
        .to_string();
    let genesis = node.home().join("genesis.json");
    let mut load = Command::new(bin())
        .args(["load", "--target", &node.addr, "--genesis"])
        .arg(&genesis)
        .args([
            "--rate",
            "200",
            "--duration",
            "8s",
            "--warmup",
            "0s",
            "--drain",
            "5s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    let bad = tpslab_bench::monitor::http_get(&metrics, "/debug/pprof/profile?seconds=0").await;
    let err = bad.unwrap_err().to_string();
    assert!(err.contains("400") && err.contains("seconds"), "{err}");

    let out_dir = node.home().join("profiles");
    let out = Command::new(bin())
        .args([
            "profile",
            "--node",
            &metrics,
            "--seconds",
            "2",
            "--frequency",
            "199",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    let _ = load.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = metrics.replace([':', '.'], "_");
    let pb = std::fs::read(out_dir.join(format!("{name}.pb.gz"))).unwrap();
    assert_eq!(&pb[..2], &[0x1f, 0x8b], "gzip");
    let funcs = tpslab_bench::profile::functions(&pb).unwrap();
    assert!(!funcs.is_empty());
    assert!(
        funcs.iter().any(|f| f.name.contains("tpslab_")),
        "no tpslab function in the profile: {:?}",
        funcs.iter().take(20).map(|f| &f.name).collect::<Vec<_>>()
    );
    let svg = std::fs::read_to_string(out_dir.join(format!("{name}.svg"))).unwrap();
    assert!(svg.contains("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(stdout.contains("top functions by self time"), "{stdout}");

    let pb_path = out_dir.join(format!("{name}.pb.gz"));
    let diff_svg = out_dir.join("diff.svg");
    let diff = Command::new(bin())
        .args(["profile", "diff"])
        .arg(&pb_path)
        .arg(&pb_path)
        .arg("--svg")
        .arg(&diff_svg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&diff.stdout);
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert!(text.contains("| function | self A | self B |"), "{text}");
    assert!(text.contains("+0.0 pt"), "{text}");
    // The differential flame graph of a profile against itself: the same frames, none moved.
    let svg = std::fs::read_to_string(&diff_svg).unwrap();
    assert!(svg.contains("<svg") && svg.contains("tpslab_"));
    assert!(svg.contains("red: more of the samples"));
}
