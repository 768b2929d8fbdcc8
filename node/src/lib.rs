//! The tpslab validator process: the gRPC API server, the metrics and pprof endpoints, and the
//! wiring of state DB, mempool, p2p and consensus (file formats and the client are in
//! tpslab-api). The `tpslab` binary (`cli/`) is a thin CLI over this.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod admin;
pub mod alloc;
mod engines;
pub mod frame_check;
mod gather;
pub mod gossip;
pub mod heap;
mod http;
pub mod logging;
mod metrics_text;
pub mod paths;
mod process_metrics;
pub mod profile;
pub mod run;
pub mod service;
mod sig_cache_metrics;
mod sig_metrics;
pub mod stage_metrics;
pub mod tasks;
pub mod telemetry;
