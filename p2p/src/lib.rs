//! Authenticated TCP links between validators.
//!
//! Each connection starts with a handshake in which both sides prove they hold the ed25519 key
//! of a validator in the genesis ([`handshake`]); connections from unknown keys are refused.
//! After it, frames are length-delimited prost [`Envelope`]s with a maximum size, on three
//! channels (consensus, block sync, mempool gossip) with separate bounded send queues, drained
//! consensus-first so a flood of txs cannot starve votes. The node with the smaller public key
//! dials, the other accepts; dialers reconnect with exponential backoff.
//!
//! A link to a peer may be shaped (one-way delay, jitter, rate, gossip loss) to emulate a WAN
//! on one machine: see [`tpslab_types::link`] and `NetworkConfig::links`.
//!
//! Links are authenticated, not encrypted (CometBFT's SecretConnection also encrypts); tpslab
//! runs on loopback or a lab network.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

mod codec;
mod config;
mod error;
pub mod handshake;
mod metrics;
mod network;
mod peer;
mod peer_set;
pub mod ports;
mod shaper;
mod wire;

pub use config::{Event, NetworkConfig, PeerInfo, PeerStats};
pub use error::{P2pError, P2pResult};
pub use metrics::P2pMetrics;
pub use network::Network;
pub use wire::{frame_len, max_payload_len, Channel, Envelope, PeerId};
