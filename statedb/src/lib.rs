//! The state database: accounts (or kvstore entries) on RocksDB, block execution, and the app hash.
//!
//! Four column families: `state` (address -> balance/nonce), `kv` (the kvstore app's entries),
//! `blocks` (height -> the committed [`BlockRecord`](tpslab_types::pb::BlockRecord)) and `meta`
//! (last committed height, app hash, block hash; chain id; app). A block's state changes, its record and the new meta are written in
//! one RocksDB `WriteBatch`, so a crash leaves either the whole block or none of it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod app_hash;
mod block_view;
mod cache;
mod db;
pub mod error;
pub mod execute;
mod ledger;
mod parallel;
mod raft_log;
mod write_set;

pub use db::{StateDb, StateDbOptions, STATE_WRITE_BUFFER};
pub use error::{StateError, StateResult};
pub use execute::{execute_block, execute_block_with, ExecOptions, ExecOutcome, TxCode};
pub use tpslab_types::ports::Committed;
pub use write_set::WriteSet;
