//! Frames on the wire and the channel each belongs to.

use bytes::Bytes;
use std::fmt;

/// A peer's identity: its ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 32]);

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &hex_prefix(&self.0))
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &hex_prefix(&self.0))
    }
}

fn hex_prefix(b: &[u8]) -> String {
    b.iter().take(6).map(|x| format!("{x:02x}")).collect()
}

/// A frame waiting in a send queue, with the channel it goes out on.
pub(crate) type Queued = (Channel, Bytes);

/// What a frame carries; each has its own send queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Proposals and votes: drained first.
    Consensus = 0,
    /// Block sync requests and responses.
    Sync = 1,
    /// Tx gossip: drained last, dropped first.
    Mempool = 2,
    /// Raft messages (a Raft chain's consensus): the consensus queue's priority.
    Raft = 3,
}

impl Channel {
    /// All channels, in drain priority order.
    pub const ALL: [Channel; 4] = [
        Channel::Consensus,
        Channel::Raft,
        Channel::Sync,
        Channel::Mempool,
    ];

    /// The send queue it shares (a chain runs one engine, so Raft and BFT never compete).
    pub fn queue(&self) -> usize {
        match self {
            Channel::Consensus | Channel::Raft => 0,
            Channel::Sync => 1,
            Channel::Mempool => 2,
        }
    }

    /// Channel from its wire number.
    pub fn from_u32(n: u32) -> Option<Channel> {
        match n {
            0 => Some(Channel::Consensus),
            1 => Some(Channel::Sync),
            2 => Some(Channel::Mempool),
            3 => Some(Channel::Raft),
            _ => None,
        }
    }

    /// Name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Consensus => "consensus",
            Channel::Sync => "sync",
            Channel::Mempool => "mempool",
            Channel::Raft => "raft",
        }
    }
}

/// Bytes of the frame (the encoded [`Envelope`]) that carries a payload of `payload_len`
/// bytes: at most 2 for the channel field, 1 for the payload's tag, its length varint, the
/// payload. (The 4-byte length prefix of the framing is not counted, as `max_frame_bytes`
/// does not count it.)
pub fn frame_len(payload_len: usize) -> usize {
    2 + 1 + prost::length_delimiter_len(payload_len) + payload_len
}

/// The largest payload whose frame fits in `max_frame_bytes`.
pub fn max_payload_len(max_frame_bytes: usize) -> usize {
    let mut p = max_frame_bytes.saturating_sub(3 + 10);
    while frame_len(p + 1) <= max_frame_bytes {
        p += 1;
    }
    p
}

/// One frame after the handshake.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    /// [`Channel`] number.
    #[prost(uint32, tag = "1")]
    pub channel: u32,
    /// The channel's message, opaque to this crate.
    #[prost(bytes = "bytes", tag = "2")]
    pub payload: Bytes,
}

/// First handshake frame.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Hello {
    #[prost(bytes = "vec", tag = "1")]
    pub pubkey: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub nonce: Vec<u8>,
    #[prost(string, tag = "3")]
    pub chain_id: String,
    /// The chain's consensus engine (`bft` or `raft`).
    #[prost(string, tag = "4")]
    pub engine: String,
}

/// Second handshake frame: the signature over the peer's nonce.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Auth {
    #[prost(bytes = "vec", tag = "1")]
    pub signature: Vec<u8>,
}
