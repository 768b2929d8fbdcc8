//! The mempool: admission (CheckTx), dedup, capacity limits, fair reaping for block proposals,
//! and the post-commit update that removes committed txs and rechecks the rest.
//!
//! Admission order of checks, cheapest first: size limit, decode and field shapes, chain id,
//! duplicate, signature, then (under the lock) capacity and the stateful nonce/balance check
//! against the committed state plus the sender's txs already pending here.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

mod config;
mod error;
mod metrics;
mod pool;
mod port;
mod seen;

pub use config::MempoolConfig;
pub use error::{CheckTxError, RejectReason};
pub use metrics::MempoolMetrics;
pub use pool::{Mempool, UpdateStats};
