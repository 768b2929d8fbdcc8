//! `tpslab testnet ...`: a local multi-validator network of separate `tpslab node` processes,
//! driven only through what a user has: the files of tpslab-api, process ids and gRPC.
//!
//! `init` writes one home per validator (`DIR/node<i>`) sharing one genesis, with ports from
//! the project's range on 127.0.0.1 (`tpslab_p2p::ports`), and `DIR/testnet.json` listing
//! them (and the emulated links between them, if any: [`links`]). `up` starts each node as its own process group (it outlives the CLI), `down` stops
//! them with SIGTERM, `status` shows each node, and `check` audits safety across nodes.
//! `init --hosts` places validators on other hosts instead ([`hosts`]) and writes their
//! deployment bundles ([`bundle`]); `status`, `check` and load then use the hosts' addresses,
//! and `down` asks each node through its admin RPC ([`down_remote`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

mod audit;
pub mod bundle;
pub mod hosts;
mod init;
pub mod links;
mod options;
mod pids;
mod process;
pub mod prometheus;
mod remote;

pub use audit::{check, settle, status, CheckScope, NodeStatus, RaftView};
pub use init::init;
pub use links::{LatencyMatrix, Links};
pub use options::{parse_byzantine, TestnetInit};
pub use process::{down, node_pid, start_node, stop_node, up, PortTaken};
pub use remote::{down_remote, is_remote, RemoteStop, StopOutcome};
pub use tpslab_api::testnet_file::{load, TestnetFile, TestnetNode};
