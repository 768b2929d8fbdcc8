//! The tpslab validator process: config, genesis and key files, the gRPC API, and the wiring
//! of state DB, mempool and consensus. The `tpslab` binary (`cli/`) is a thin CLI over this.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod alloc;
pub mod api;
pub mod client;
pub mod config;
pub mod genesis;
pub mod gossip;
pub mod heap;
pub mod home;
mod http;
pub mod keyfile;
pub mod profile;
pub mod run;
mod sig_metrics;
pub mod stage_metrics;
pub mod tasks;
pub mod testnet;

/// Messages and client/server stubs generated from `proto/api.proto`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("tpslab.api");
}
