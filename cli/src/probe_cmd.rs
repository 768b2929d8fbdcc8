//! `tpslab probe`: attaches the eBPF probes to running processes (pids or a testnet's
//! validators) for a while and prints bcc-style histograms and tables, or JSON.

use crate::load_cmd::parse_duration;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use tpslab_probe::{ProbeKind, Probes, Target};
use tpslab_testnet as testnet;

#[derive(Args)]
pub struct ProbeArgs {
    /// Processes to probe; repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// Or: every running validator of a testnet.
    #[arg(long, conflicts_with = "pid")]
    testnet: Option<PathBuf>,
    /// How long to collect.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Probe families: runqlat, offcpu, syscalls, funclatency, net, or all.
    #[arg(long, default_value = "all")]
    probe: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Instead of printing at the end, serve the figures as Prometheus metrics on this
    /// address (host:port) for the whole --duration: block commits from the kernel side,
    /// run-queue/on/off-CPU time, syscall counts and time.
    #[arg(long)]
    serve: Option<String>,
}

pub fn probe(a: ProbeArgs) -> Result<()> {
    let kinds = ProbeKind::parse_list(&a.probe)?;
    if kinds.is_empty() {
        bail!("--probe names no probe");
    }
    let pids = match &a.testnet {
        Some(dir) => {
            let net = testnet::load(dir)?;
            let pids: Vec<u32> = net.nodes.iter().filter_map(testnet::node_pid).collect();
            if pids.is_empty() {
                bail!("no validator of {} is running", dir.display());
            }
            pids
        }
        None if a.pid.is_empty() => bail!("give --pid P[,P..] or --testnet DIR"),
        None => a.pid.clone(),
    };
    let targets: Vec<Target> = pids.iter().map(|&pid| Target { pid }).collect();
    let mut probes = Probes::attach(&targets, &kinds).context("attaching eBPF probes")?;
    if !a.json {
        eprintln!(
            "probing pid {} with {} for {:.1} s",
            pids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
            kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(","),
            a.duration.as_secs_f64()
        );
    }
    if let Some(addr) = &a.serve {
        return crate::probe_serve::serve(probes, addr, a.duration);
    }
    // Drain block records as they come so the ring buffer never fills on long runs.
    let end = std::time::Instant::now() + a.duration;
    while std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200).min(end - std::time::Instant::now()));
        probes.poll_blocks();
    }
    let report = probes.read()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}
