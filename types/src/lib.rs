//! Wire types, hashing and keys shared by every tpslab crate.
//!
//! Everything here is pure (no I/O): the prost messages generated from `proto/types.proto`,
//! canonical sign-bytes for transactions and votes, SHA-256 hashing and merkle roots,
//! addresses, and deterministic key derivation so a load generator can rebuild the genesis
//! accounts from the same seed.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod account;
pub mod app;
pub mod block;
mod bufpool;
pub mod byzantine;
pub mod craft;
pub mod engine;
pub mod error;
pub mod hash;
pub mod keys;
pub mod link;
pub mod ports;
pub mod sig;
pub mod sigcache;
pub mod stages;
pub mod tuning;
pub mod tx;
pub mod vote;

/// Messages generated from `proto/types.proto`.
#[allow(missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/tpslab.types.rs"));
}

pub use account::{Account, Address, StateView};
pub use app::AppKind;
pub use engine::EngineKind;
pub use error::{TypesError, TypesResult};
pub use hash::Hash;
pub use tuning::Tuning;
pub use tx::ParsedTx;
