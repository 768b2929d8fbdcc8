//! What a node shares with its users: the gRPC API (stubs and a client), and the file formats
//! a node is started from (`config.toml` with its defaults, `genesis.json`, the validator key
//! file, the home directory layout, `testnet.json`). The load generator and the testnet
//! orchestration build on this crate alone, so they drive nodes like any user would and link
//! neither RocksDB nor the node's internals.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod client;
pub mod config;
pub mod genesis;
pub mod home;
pub mod keyfile;
pub mod raft_config;
pub mod testnet_file;

/// Messages and client/server stubs generated from `proto/api.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("tpslab.api");
}
