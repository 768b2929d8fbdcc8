//! `testnet up --prometheus`: a real Prometheus (Debian's `prometheus` package) scraping
//! every validator each second with the caller's rule files loaded, in `DIR/prometheus/`
//! (config, rules, TSDB, log, pid, and `addr` with its HTTP address). Its port comes from the
//! project's range like the validators'; `testnet down` stops it with them.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tpslab_api::testnet_file::TestnetFile;

fn home(dir: &Path) -> PathBuf {
    dir.join("prometheus")
}

fn pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(home(dir).join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| crate::pids::alive(*p))
}

/// The HTTP address of the testnet's running Prometheus, if one runs.
pub fn addr(dir: &Path) -> Option<String> {
    pid(dir)?;
    Some(
        std::fs::read_to_string(home(dir).join("addr"))
            .ok()?
            .trim()
            .to_string(),
    )
}

/// The scrape config: one job `tpslab`, every validator a target labelled with its name.
fn config(file: &TestnetFile, rule_files: &[&str]) -> String {
    let mut c = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n");
    c.push_str("rule_files:\n");
    for r in rule_files {
        c.push_str(&format!("  - rules/{r}\n"));
    }
    c.push_str("scrape_configs:\n  - job_name: tpslab\n    static_configs:\n");
    for n in &file.nodes {
        c.push_str(&format!(
            "      - targets: [\"{}\"]\n        labels:\n          node: {}\n",
            n.metrics_addr, n.name
        ));
    }
    c
}

/// Starts Prometheus for the testnet in `dir` with `rules` (file name, content) loaded and
/// waits until it is ready; returns its address. One already running with the same rules is
/// left as it is; with other rules, that is an error (rather than rules silently not loaded).
pub fn start(dir: &Path, file: &TestnetFile, rules: &[(&str, &str)]) -> Result<String> {
    let home = home(dir);
    if let Some(a) = addr(dir) {
        for (name, text) in rules {
            let loaded = std::fs::read_to_string(home.join("rules").join(name)).ok();
            if loaded.as_deref() != Some(*text) {
                bail!(
                    "a Prometheus already runs for this testnet (on {a}) without these {name} \
                     rules: `testnet down` first"
                );
            }
        }
        return Ok(a);
    }
    std::fs::create_dir_all(home.join("rules"))?;
    for (name, text) in rules {
        std::fs::write(home.join("rules").join(name), text)?;
    }
    let names: Vec<&str> = rules.iter().map(|(n, _)| *n).collect();
    std::fs::write(home.join("prometheus.yml"), config(file, &names))?;
    let port = tpslab_p2p::ports::allocate(1)?[0];
    let listen = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(home.join("prometheus.log"))?;
    use std::os::unix::process::CommandExt;
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            home.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            home.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .context(
            "cannot run prometheus (Debian: apt-get install --no-install-recommends \
             prometheus; scripts/setup installs it)",
        )?;
    std::fs::write(home.join("pid"), child.id().to_string())?;
    std::fs::write(home.join("addr"), &listen)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ready(&listen) {
            return Ok(listen);
        }
        if !crate::pids::alive(child.id()) {
            let text = std::fs::read_to_string(home.join("prometheus.log")).unwrap_or_default();
            let last = text.lines().rev().find(|l| l.contains("err")).unwrap_or("");
            bail!(
                "prometheus exited at start: {last} (log: {})",
                home.join("prometheus.log").display()
            );
        }
        if Instant::now() > deadline {
            bail!("prometheus on {listen} was not ready in 30 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET /-/ready` answered 200.
fn ready(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET /-/ready HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// Stops the testnet's Prometheus, if one runs.
pub fn stop(dir: &Path) -> Result<()> {
    let Some(p) = pid(dir) else {
        return Ok(());
    };
    Command::new("kill")
        .args(["-TERM", &p.to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::pids::alive(p) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if crate::pids::alive(p) {
        Command::new("kill")
            .args(["-KILL", &p.to_string()])
            .status()?;
    }
    let _ = std::fs::remove_file(home(dir).join("pid"));
    Ok(())
}
