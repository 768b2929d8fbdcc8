//! What the network is started with and what it reports: the settings, the peers to link
//! with, the events it delivers and per-peer traffic.

use crate::wire::{Channel, PeerId};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tpslab_types::link::LinkSpec;

/// A validator to connect to.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Its public key.
    pub id: PeerId,
    /// Where it listens: `IP:PORT` or `HOST:PORT`. A host name is resolved again at every
    /// dial, so a peer that comes back on another address (a restarted pod) is found.
    pub addr: String,
}

/// Settings of the network.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Chain id, checked in the handshake.
    pub chain_id: String,
    /// The chain's consensus engine name, checked in the handshake (`bft` unless set).
    pub engine: String,
    /// Our validator key.
    pub key: SigningKey,
    /// Listen address (port 0 picks one; see [`Network::local_addr`]).
    pub listen: SocketAddr,
    /// Every other validator. Only these keys may connect.
    pub peers: Vec<PeerInfo>,
    /// Largest frame accepted; a bigger one disconnects the sender.
    pub max_frame_bytes: usize,
    /// Frames queued per peer and channel before sends fail (backpressure).
    pub queue_capacity: usize,
    /// Time allowed for a handshake.
    pub handshake_timeout: Duration,
    /// Longest wait between reconnect attempts.
    pub max_backoff: Duration,
    /// zero-copy-net toggle: encode frames straight into the connection's write buffer and
    /// flush every frame already queued at once, instead of one buffer and one write per
    /// frame.
    pub zero_copy: bool,
    /// Emulated links by peer (off for a peer not listed). Each node shapes what it sends.
    pub links: HashMap<PeerId, LinkSpec>,
}

impl NetworkConfig {
    /// Defaults for everything but identity and peers.
    pub fn new(
        chain_id: String,
        key: SigningKey,
        listen: SocketAddr,
        peers: Vec<PeerInfo>,
    ) -> Self {
        NetworkConfig {
            chain_id,
            engine: "bft".into(),
            key,
            listen,
            peers,
            max_frame_bytes: 16 << 20,
            queue_capacity: 4096,
            handshake_timeout: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
            zero_copy: true,
            links: HashMap::new(),
        }
    }
}

/// What the network tells the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An authenticated peer connected.
    PeerUp(PeerId),
    /// A peer disconnected, and why.
    PeerDown {
        /// Who.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A frame arrived.
    Message {
        /// From whom.
        peer: PeerId,
        /// On which channel.
        channel: Channel,
        /// The channel's message.
        payload: Bytes,
    },
}

/// Traffic of one connected peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer.
    pub peer: PeerId,
    /// Bytes written (frames with length prefix).
    pub sent_bytes: u64,
    /// Bytes read.
    pub recv_bytes: u64,
    /// Frames written.
    pub sent_msgs: u64,
    /// Frames read.
    pub recv_msgs: u64,
    /// Frames not queued because the queue was full.
    pub dropped: u64,
}
