//! p2p metrics (CometBFT names).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Network-wide traffic, kept across disconnects.
#[derive(Clone, Debug, Default)]
pub struct P2pMetrics {
    /// Connected peers.
    pub peers: Gauge,
    /// Bytes written to peers (frames with length prefix).
    pub send_bytes: Counter,
    /// Bytes read from peers.
    pub recv_bytes: Counter,
    /// Frames dropped because a peer's queue was full.
    pub dropped: Counter,
    /// 1 per emulated link, labelled with the peer and the link spec (absent: real links).
    pub emulated_links: Family<Vec<(String, String)>, Gauge>,
    /// Gossip frames an emulated link's `loss` dropped (all peers).
    pub emulated_lost: Counter,
}

impl P2pMetrics {
    /// Adds the metrics to `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register("p2p_peers", "Connected peers", self.peers.clone());
        r.register(
            "p2p_message_send_bytes",
            "Bytes sent to peers",
            self.send_bytes.clone(),
        );
        r.register(
            "p2p_message_receive_bytes",
            "Bytes received from peers",
            self.recv_bytes.clone(),
        );
        r.register(
            "p2p_send_queue_dropped",
            "Frames dropped on a full send queue",
            self.dropped.clone(),
        );
        r.register(
            "p2p_emulated_link",
            "Links to peers shaped in userspace (delay, jitter, rate, gossip loss)",
            self.emulated_links.clone(),
        );
        r.register(
            "p2p_emulated_gossip_lost",
            "Mempool gossip frames dropped by an emulated link's loss",
            self.emulated_lost.clone(),
        );
    }
}
