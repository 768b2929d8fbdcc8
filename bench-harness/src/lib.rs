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

mod counters;
pub mod experiment;
pub mod http;
pub mod load;
pub mod monitor;
pub mod profile;
mod progress;
pub mod report;
pub mod saturate;
pub mod sink;
pub mod txsource;

pub use load::{run, LoadConfig, Mode};
pub use report::LoadReport;
