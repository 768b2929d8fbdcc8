//! Errors of the p2p layer.

use thiserror::Error;

/// Why a connection or a send failed.
#[derive(Debug, Error)]
pub enum P2pError {
    /// Socket error.
    #[error("i/o with {peer}: {source}")]
    Io {
        /// Address or peer id.
        peer: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The remote key is not a genesis validator.
    #[error("unknown peer key {pubkey}")]
    UnknownPeer {
        /// Hex public key.
        pubkey: String,
    },
    /// The remote failed the handshake.
    #[error("handshake with {peer} failed: {reason}")]
    Handshake {
        /// Address.
        peer: String,
        /// What went wrong.
        reason: String,
    },
    /// A frame could not be decoded or broke the protocol.
    #[error("protocol violation by {peer}: {reason}")]
    Protocol {
        /// Peer id.
        peer: String,
        /// What it sent.
        reason: String,
    },
    /// No connection to that peer.
    #[error("peer {peer} is not connected")]
    NotConnected {
        /// Peer id.
        peer: String,
    },
    /// The peer's send queue for the channel is full.
    #[error("send queue to {peer} on channel {channel} is full")]
    QueueFull {
        /// Peer id.
        peer: String,
        /// Channel name.
        channel: &'static str,
    },
    /// The message would make a frame over `max_frame_bytes`; it was not sent (sending it
    /// would only make the peer drop the link).
    #[error("a {channel} message of {payload} bytes makes a frame of {frame} bytes, over the {max} byte limit (p2p.max_frame_bytes)")]
    FrameTooLarge {
        /// Channel name.
        channel: &'static str,
        /// Payload size.
        payload: usize,
        /// Its frame size.
        frame: usize,
        /// The limit.
        max: usize,
    },
}

/// Result alias of this crate.
pub type P2pResult<T> = Result<T, P2pError>;
