//! A testnet across "hosts": `testnet init --hosts` with four network namespaces standing in
//! for four machines (veth pairs on a bridge, each validator on its namespace's address and
//! the fixed ports), the harness outside them. It commits load, passes the audit, survives a
//! validator killed and restarted in its namespace, and `testnet down` stops every validator
//! through the admin RPC (a wrong token stops none). Needs root (`ip netns`); the namespaces,
//! veths and bridge are removed however the test ends, and leftovers of a killed run are
//! removed by the next.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("run ip")
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Four namespaces on one bridge, named after this process (`tps<pid>-<i>`, bridge
/// `tpsb<pid>`), so concurrent runs do not collide and a dead run's leftovers are known.
struct Hosts {
    tag: String,
    n: usize,
    subnet: String,
}

impl Hosts {
    fn new(n: usize) -> Hosts {
        remove_leftovers();
        let pid = std::process::id();
        let tag = format!("{pid}");
        // A /24 no interface of this machine uses, from the pid.
        let subnet = (0..250)
            .map(|k| {
                format!(
                    "10.{}.{}",
                    200 + (pid as usize + k) % 50,
                    (pid as usize / 50 + k) % 250
                )
            })
            .find(|s| {
                let addrs = String::from_utf8_lossy(&ip(&["-o", "addr"]).stdout).into_owned();
                !addrs.contains(&format!(" {s}."))
            })
            .expect("a free /24");
        let h = Hosts { tag, n, subnet };
        let br = h.bridge();
        ip_ok(&["link", "add", &br, "type", "bridge"]);
        ip_ok(&["addr", "add", &format!("{}.1/24", h.subnet), "dev", &br]);
        ip_ok(&["link", "set", &br, "up"]);
        for i in 0..n {
            let (ns, outside, inside) = (h.ns(i), h.veth(i, 'h'), h.veth(i, 'n'));
            ip_ok(&["netns", "add", &ns]);
            ip_ok(&[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]);
            ip_ok(&["link", "set", &inside, "netns", &ns]);
            ip_ok(&["link", "set", &outside, "master", &br, "up"]);
            let addr = format!("{}/24", h.addr(i));
            ip_ok(&[
                "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", &inside,
            ]);
            ip_ok(&["netns", "exec", &ns, "ip", "link", "set", &inside, "up"]);
            ip_ok(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        }
        h
    }

    fn ns(&self, i: usize) -> String {
        format!("tps{}-{i}", self.tag)
    }

    fn bridge(&self) -> String {
        format!("tpsb{}", self.tag)
    }

    fn veth(&self, i: usize, side: char) -> String {
        format!("tpv{}{side}{i}", self.tag)
    }

    fn addr(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, i + 2)
    }

    /// `tpslab node --home HOME` inside namespace `i` (the node binds that host's address).
    fn start(&self, i: usize, home: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("node.log"))
            .unwrap();
        Command::new("ip")
            .args(["netns", "exec", &self.ns(i), bin(), "node", "--home"])
            .arg(home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for i in 0..self.n {
            remove_ns(&self.ns(i));
            let _ = ip(&["link", "del", &self.veth(i, 'h')]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

fn remove_ns(ns: &str) {
    let pids = String::from_utf8_lossy(&ip(&["netns", "pids", ns]).stdout).into_owned();
    for p in pids.split_whitespace() {
        let _ = Command::new("kill").args(["-KILL", p]).status();
    }
    let _ = ip(&["netns", "del", ns]);
}

/// Namespaces and bridges of runs whose process is gone.
fn remove_leftovers() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("tps")
            .and_then(|r| r.split_once('-'))
            .map(|(p, _)| p.to_string())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_ns(&name);
            let _ = ip(&["link", "del", &format!("tpsb{pid}")]);
        }
    }
}

/// Each validator's height from `testnet status` (None: unreachable).
fn heights(dir: &Path) -> Vec<Option<u64>> {
    let out = Command::new(bin())
        .args(["testnet", "status"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("node") && !l.starts_with("node "))
        .map(|l| l.split_whitespace().nth(1).and_then(|h| h.parse().ok()))
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn tpslab(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .arg(dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn a_testnet_on_four_namespaces_commits_audits_restarts_and_stops_by_admin_rpc() {
    if !is_root() {
        eprintln!("SKIPPED: network namespaces need root");
        return;
    }
    let _turn = testnet_turn();
    let hosts = Hosts::new(4);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let list: Vec<String> = (0..4).map(|i| hosts.addr(i)).collect();
    let init = Command::new(bin())
        .args(["testnet", "init", "--hosts", &list.join(",")])
        .args(["--accounts", "1000", "--seed", SEED, "--chain-id", CHAIN])
        .args(["--block-interval-ms", "50", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    succeeded(&init, "testnet init --hosts");
    let file: tpslab_testnet::TestnetFile =
        serde_json::from_str(&std::fs::read_to_string(dir.join("testnet.json")).unwrap()).unwrap();
    let homes: Vec<PathBuf> = file.nodes.iter().map(|n| n.home.clone()).collect();
    for (n, a) in file.nodes.iter().zip(&list) {
        assert_eq!(n.grpc_addr, format!("{a}:9090"));
    }

    // Starting remote validators is their hosts' job.
    let up = tpslab(&["testnet", "up"], &dir);
    let err = String::from_utf8_lossy(&up.stderr);
    assert!(!up.status.success() && err.contains("other hosts"), "{err}");

    let mut nodes: Vec<Child> = (0..4).map(|i| hosts.start(i, &homes[i])).collect();
    wait_for("every validator up", Duration::from_secs(60), || {
        heights(&dir).iter().all(Option::is_some)
    });
    commit_and_audit(&dir, tmp.path());
    kill_and_restart(&hosts, &mut nodes, &file, &dir, tmp.path());
    stop_by_admin_rpc(&mut nodes, &file, &dir);
}

/// Load and audit through the manifest's addresses.
fn commit_and_audit(dir: &Path, tmp: &Path) {
    let (_, r) = run_load(&load_args(dir, "4s", &[]), &tmp.join("load1.json"));
    let accepted = r["accepted"].as_u64().unwrap();
    assert!(accepted >= 150, "{r}");
    assert_eq!(r["committed"].as_u64().unwrap(), accepted, "{r}");
    succeeded(&tpslab(&["testnet", "check"], dir), "testnet check");
}

/// Kill one validator in its namespace: the other three keep committing; restarted there,
/// it catches up and agrees.
fn kill_and_restart(
    hosts: &Hosts,
    nodes: &mut [Child],
    file: &tpslab_testnet::TestnetFile,
    dir: &Path,
    tmp: &Path,
) {
    let homes: Vec<PathBuf> = file.nodes.iter().map(|n| n.home.clone()).collect();
    nodes[2].kill().unwrap();
    nodes[2].wait().unwrap();
    wait_for("node2 seen down", Duration::from_secs(20), || {
        heights(dir)[2].is_none()
    });
    let others: Vec<String> = [0, 1, 3]
        .iter()
        .map(|&i| file.nodes[i].grpc_addr.clone())
        .collect();
    let genesis = homes[0].join("genesis.json");
    let (_, r) = run_load(
        &[
            "--target",
            &others.join(","),
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
        ],
        &tmp.join("load2.json"),
    );
    assert_eq!(r["committed"], r["accepted"], "{r}");
    assert!(r["accepted"].as_u64().unwrap() >= 100, "{r}");

    nodes[2] = hosts.start(2, &homes[2]);
    wait_for("node2 caught up", Duration::from_secs(60), || {
        let h = heights(dir);
        h.iter().all(Option::is_some) && h[2] == h[0]
    });
    succeeded(&tpslab(&["testnet", "check"], dir), "testnet check");
}

/// A wrong admin token stops nothing on that node while the others stop; with the right one
/// it stops too, cleanly.
fn stop_by_admin_rpc(nodes: &mut [Child], file: &tpslab_testnet::TestnetFile, dir: &Path) {
    let manifest = std::fs::read_to_string(dir.join("testnet.json")).unwrap();
    let token = file.nodes[0].admin_token.clone().unwrap();
    let wrong: String = token.chars().rev().collect();
    std::fs::write(dir.join("testnet.json"), manifest.replace(&token, &wrong)).unwrap();
    let down = tpslab(&["testnet", "down"], dir);
    let out = String::from_utf8_lossy(&down.stdout).into_owned();
    assert!(!down.status.success(), "{out}");
    assert!(
        out.contains("node0: NOT stopped") && out.contains("wrong admin token"),
        "{out}"
    );
    for (i, n) in nodes.iter_mut().enumerate().skip(1) {
        let status = wait_exit(n, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("node{i} still running after down"));
        assert!(status.success(), "node{i} exited {status}");
    }
    assert!(
        nodes[0].try_wait().unwrap().is_none(),
        "node0 stopped without its token"
    );

    std::fs::write(dir.join("testnet.json"), &manifest).unwrap();
    let down = tpslab(&["testnet", "down"], dir);
    let out = String::from_utf8_lossy(&down.stdout).into_owned();
    assert!(down.status.success(), "{out}");
    assert!(out.contains("node0: stopping at height"), "{out}");
    assert!(out.contains("node1: not reachable"), "{out}");
    let status = wait_exit(&mut nodes[0], Duration::from_secs(30)).expect("node0 stops");
    assert!(status.success(), "node0 exited {status}");
    let log = std::fs::read_to_string(file.nodes[0].home.join("node.log")).unwrap();
    assert!(log.contains("shutting down (admin RPC)"), "{log}");
}

fn wait_exit(c: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
