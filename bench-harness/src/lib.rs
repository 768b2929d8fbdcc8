//! The load generator and benchmark harness (`tpslab load`, `tpslab bench`).
//!
//! Txs are made before the measured window (signed in parallel for the transfer workload),
//! then sent open loop (constant rate, latency from each tx's intended send time, so
//! coordinated omission cannot hide a stall) or closed loop (fixed concurrency). Commits are
//! tracked through SubscribeCommits on every target; latencies go into an HDR histogram. CPU,
//! RSS and /metrics of the nodes are sampled during the window. `saturate` steps the rate up
//! until the chain stops keeping up (the CometBFT QA method); `sink` is an accept-everything
//! node for measuring the generator itself.
//!
//! It talks to nodes only through their gRPC API, /metrics and process ids, as a user's tool
//! would: it builds on tpslab-api and tpslab-testnet, never on the node's crates.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod advise;
mod counters;
pub mod experiment;
pub mod http;
pub mod load;
pub mod machine;
pub mod monitor;
pub mod perturb;
pub mod profile;
mod progress;
pub mod report;
pub mod rollout;
pub mod saturate;
pub mod sink;
pub mod txsource;

pub use load::{run, LoadConfig, Mode};
pub use report::LoadReport;

use std::time::Duration;

/// Parses `30s`, `500ms`, `2m` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (try 30s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}
