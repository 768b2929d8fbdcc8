//! Block production and commit.
//!
//! For now one validator decides alone ([`SoloProducer`]): it cuts a block when enough txs are
//! pending or the block interval has passed, executes it against the state DB, signs the
//! commit, writes everything in one atomic batch, updates the mempool and announces the commit.
//! The Tendermint BFT rounds between several validators ([`bft`], a pure state machine and its
//! driver, unit-tested without a network) build on the same block pipeline.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod bft;
pub mod compact;
mod error;
mod event;
pub mod frame_budget;
mod invalid;
pub mod memory;
pub mod metrics;
mod pipeline;
pub mod raft;
mod reactor;
pub mod signer;
pub mod sim;
mod solo;
pub mod sync;
pub mod transport;
pub mod wal;

pub use error::{ConsensusError, ConsensusResult};
pub use event::CommitEvent;
pub use invalid::{BlockFault, CommitFault, Invalid, InvalidMessage, MessageKind};
pub use pipeline::{now_unix_nanos, BlockLimits, BlockPipeline, PipelineParts};
pub use reactor::{Byzantine, Reactor, ReactorConfig};
pub use solo::{SoloConfig, SoloProducer};
