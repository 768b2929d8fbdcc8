//! The port an engine sends through. The p2p [`Network`] implements it for real nodes; an
//! in-process simulated network can implement it for tests. Inbound traffic reaches an engine
//! as a channel of p2p [`tpslab_p2p::Event`]s, so neither direction names the concrete network.

use bytes::Bytes;
use tpslab_p2p::{Channel, Network, PeerId};

/// Fire-and-forget sends to a peer. A message that cannot be queued is dropped: both engines
/// retransmit (BFT gossip, Raft's heartbeats and append retries), so a drop costs time, not
/// safety.
pub trait Transport: Send + Sync + 'static {
    /// Queues `payload` for `peer` on `channel`; false when it was dropped.
    fn send(&self, peer: PeerId, channel: Channel, payload: Bytes) -> bool;

    /// The peers linked now.
    fn peers(&self) -> Vec<PeerId>;

    /// Queues `payload` for every linked peer on `channel`.
    fn broadcast(&self, channel: Channel, payload: Bytes) {
        for peer in self.peers() {
            self.send(peer, channel, payload.clone());
        }
    }

    /// Drops the link to `peer`, which misbehaved (`reason` is logged). Returns at once: the
    /// engine must not wait on the network, whose events it is itself draining.
    fn disconnect(&self, peer: PeerId, reason: String);
}

impl Transport for Network {
    fn send(&self, peer: PeerId, channel: Channel, payload: Bytes) -> bool {
        self.try_send(peer, channel, payload).is_ok()
    }

    fn peers(&self) -> Vec<PeerId> {
        Network::peers(self)
    }

    fn broadcast(&self, channel: Channel, payload: Bytes) {
        Network::broadcast(self, channel, payload);
    }

    fn disconnect(&self, peer: PeerId, reason: String) {
        let net = self.clone();
        tokio::spawn(async move { net.disconnect(peer, reason).await });
    }
}
