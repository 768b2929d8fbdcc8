//! The validators as processes: start one (its own process group, so it outlives the CLI),
//! wait until all serve gRPC, stop them, and say why one exited at start.

use crate::pids::alive;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tpslab_api::client::connect;
use tpslab_api::home::Home;
use tpslab_api::keyfile;
use tpslab_api::proto::StatusRequest;
use tpslab_api::testnet_file::{load, TestnetFile, TestnetNode};

fn pid_file(n: &TestnetNode) -> PathBuf {
    n.home.join("node.pid")
}

/// The process id of a running validator of the testnet.
pub fn node_pid(n: &TestnetNode) -> Option<u32> {
    read_pid(n).filter(|p| alive(*p))
}

fn read_pid(n: &TestnetNode) -> Option<u32> {
    std::fs::read_to_string(pid_file(n))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Starts one node of the testnet (used by `up` and to restart a single node).
pub fn start_node(n: &TestnetNode, exe: &Path) -> Result<u32> {
    if let Some(pid) = read_pid(n).filter(|p| alive(*p)) {
        return Ok(pid);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(n.home.join("node.log"))?;
    let _ = std::fs::remove_file(Home(n.home.clone()).grpc_addr_file());
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(exe);
    cmd.arg("node").arg("--home").arg(&n.home);
    if n.byzantine.is_some() {
        cmd.arg("--allow-byzantine");
    }
    if n.fault_injection {
        cmd.arg("--allow-fault-injection");
    }
    if let Some(cpus) = &n.cpus {
        cmd.arg("--cpus").arg(cpus);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", n.name))?;
    std::fs::write(pid_file(n), child.id().to_string())?;
    Ok(child.id())
}

/// `testnet up`: starts every node and waits until each serves gRPC.
pub async fn up(dir: &Path, exe: &Path, timeout: Duration) -> Result<TestnetFile> {
    let t = load(dir)?;
    crate::remote::refuse_up(dir, &t)?;
    for n in &t.nodes {
        start_node(n, exe)?;
    }
    let deadline = Instant::now() + timeout;
    for n in &t.nodes {
        // Whoever answers must be this node: a node of an older testnet still running on the
        // same ports (its dir deleted and initialised again) would answer too, while the one
        // just started exits on the taken port or is slower to bind.
        let own = keyfile::load(&Home(n.home.clone()).key())
            .map(|k| k.verifying_key().to_bytes().to_vec())
            .ok();
        let mut stranger = false;
        loop {
            if let Ok(mut c) = connect(&n.grpc_addr).await {
                if let Ok(r) = c.status(StatusRequest {}).await {
                    if own.as_ref().is_none_or(|k| *k == r.get_ref().validator) {
                        break;
                    }
                    stranger = true;
                }
            }
            if read_pid(n).is_some_and(|p| !alive(p)) {
                let log = n.home.join("node.log");
                let cause = exit_cause(&log);
                if cause.contains("Address already in use") {
                    return Err(PortTaken {
                        node: n.name.clone(),
                        cause,
                    }
                    .into());
                }
                bail!(
                    "{} exited at start: {cause} (log: {})",
                    n.name,
                    log.display()
                );
            }
            if Instant::now() > deadline {
                if stranger {
                    bail!(
                        "{}: another validator answers on {}, not the one this testnet started \
                         (a node of an older testnet still running there? stop it first)",
                        n.name,
                        n.grpc_addr
                    );
                }
                bail!("{} did not become healthy in {timeout:?}", n.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(t)
}

/// A node could not start because one of its ports was taken by another socket; the caller
/// may retry on fresh ports (`testnet init` again).
#[derive(Debug, thiserror::Error)]
#[error("{node} could not bind its port: {cause}")]
pub struct PortTaken {
    /// The node.
    pub node: String,
    /// The node's own error, naming the address.
    pub cause: String,
}

/// The error a node printed last before exiting (its `Error:` line and causes, on one line).
fn exit_cause(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let Some(at) = text.rfind("Error: ") else {
        return "no error in its log".into();
    };
    let mut parts: Vec<&str> = Vec::new();
    for l in text[at + "Error: ".len()..].lines().map(str::trim) {
        if l.starts_with("Stack backtrace") {
            break;
        }
        let l = l
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == ':')
            .trim();
        // Skip a cause already spelled out at the end of the line before (io errors often are).
        if l.is_empty() || l == "Caused by:" || parts.last().is_some_and(|p| p.ends_with(l)) {
            continue;
        }
        parts.push(l);
    }
    parts.join(": ")
}

/// Stops one node with SIGTERM (SIGKILL after 20 s).
pub fn stop_node(n: &TestnetNode) -> Result<()> {
    let Some(pid) = read_pid(n) else {
        return Ok(());
    };
    if alive(pid) {
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()?;
        }
    }
    let _ = std::fs::remove_file(pid_file(n));
    Ok(())
}

/// `testnet down`: every validator, and the testnet's Prometheus if `up --prometheus` started
/// one.
pub fn down(dir: &Path) -> Result<()> {
    let file = load(dir)?;
    if crate::remote::is_remote(&file) {
        bail!("this testnet runs on other hosts: use down_remote (the admin RPC)");
    }
    for n in &file.nodes {
        stop_node(n)?;
    }
    crate::prometheus::stop(dir)
}
