//! Ports that cannot race: testnet ports come from the project's range below the ephemeral
//! one; a node whose port is taken exits naming the address and `testnet up` says so (also
//! when what holds the port is another validator answering status calls); an
//! experiment that cannot run a step still leaves results.json and report.html saying which
//! step failed and why.

mod common;

use common::*;

#[test]
fn a_taken_port_is_named_when_the_testnet_starts() {
    let _turn = testnet_turn();
    let dir = tempfile::tempdir().unwrap();
    let file = testnet_init(dir.path(), 2);
    let eph_lo: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    for n in &file.nodes {
        for a in [&n.grpc_addr, &n.p2p_addr, &n.metrics_addr] {
            let port: u16 = a.rsplit(':').next().unwrap().parse().unwrap();
            assert!(port < eph_lo, "{a} is in the ephemeral range");
        }
    }
    // Someone else takes node1's p2p port before it starts.
    let squatter = std::net::TcpListener::bind(&file.nodes[1].p2p_addr).unwrap();
    let up = testnet_up_then_down(dir.path());
    drop(squatter);
    assert!(!up.status.success());
    let err = String::from_utf8_lossy(&up.stderr);
    for needle in [
        "node1 could not bind its port",
        file.nodes[1].p2p_addr.as_str(),
        "Address already in use",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(!err.contains("Stack backtrace"), "{err}");
}

/// Another testnet's validator already serves node0's gRPC address: `testnet up` must not
/// take its answers for node0's (it used to report the testnet up while node0 had exited).
#[test]
fn another_validator_on_the_grpc_port_is_not_taken_for_the_node() {
    let a_dir = tempfile::tempdir().unwrap();
    let a = TestNet::up(a_dir.path().to_path_buf(), 1, 10, "");
    let taken = &a.file.nodes[0].grpc_addr;
    let dir = tempfile::tempdir().unwrap();
    let file = testnet_init(dir.path(), 1);
    let mine = &file.nodes[0].grpc_addr;
    for f in [
        file.nodes[0].home.join("config.toml"),
        dir.path().join("testnet.json"),
    ] {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.contains(mine.as_str()));
        std::fs::write(&f, text.replace(mine.as_str(), taken)).unwrap();
    }
    let up = testnet_up_then_down(dir.path());
    assert!(!up.status.success());
    let err = String::from_utf8_lossy(&up.stderr);
    assert!(
        err.contains("node0 could not bind its port") || err.contains("another validator answers"),
        "{err}"
    );
    assert!(err.contains(taken.as_str()), "{err}");
    // The other testnet's validator still serves.
    assert!(std::net::TcpStream::connect(taken.as_str()).is_ok());
    drop(a);
}

#[test]
fn a_failed_experiment_reports_the_step_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("exp");
    // Two ports cannot hold a 4-validator testnet: the first step cannot start.
    let out = quick_experiment("2s")
        .arg("--out")
        .arg(&out_dir)
        .env("TPSLAB_PORT_RANGE", "30000-30001")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("step baseline"), "{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(r["failed"]["name"], "baseline", "{r}");
    let why = r["failed"]["error"].as_str().unwrap();
    assert!(why.contains("free ports in the range 30000-30001"), "{why}");
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("The run stopped at step baseline"), "{html}");
}
