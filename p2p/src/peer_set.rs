//! The set of live peers: accepting and dialing (with backoff), authenticating, registering
//! one connection per validator, and what happens when a connection ends.

use crate::config::{Event, NetworkConfig, PeerInfo};
use crate::error::{P2pError, P2pResult};
use crate::handshake::handshake;
use crate::metrics::P2pMetrics;
use crate::peer::{self, Link, PeerHandle};
use crate::wire::PeerId;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{debug, info, warn};

/// The live peers and what every connection needs: who may connect, where events go, the
/// metrics. Owns each peer's lifecycle (accept or dial, authenticate, register, end).
pub(crate) struct PeerSet {
    pub cfg: NetworkConfig,
    pub me: PeerId,
    pub allowed: HashSet<PeerId>,
    pub peers: Mutex<HashMap<PeerId, PeerHandle>>,
    pub tx_events: mpsc::Sender<Event>,
    pub next_conn: AtomicU64,
    pub metrics: P2pMetrics,
    /// Wakes a peer's dialer when the peer disconnects.
    pub down: HashMap<PeerId, Arc<Notify>>,
    /// Until when this node drops and refuses every peer link (fault injection).
    pub isolated_until: Mutex<Option<tokio::time::Instant>>,
}

impl PeerSet {
    /// When the current isolation ends, if the node is isolated now.
    pub(crate) fn isolation_end(&self) -> Option<tokio::time::Instant> {
        let until = *self.isolated_until.lock();
        until.filter(|u| *u > tokio::time::Instant::now())
    }

    fn register(
        self: &Arc<Self>,
        peer: PeerId,
        framed: Framed<TcpStream, LengthDelimitedCodec>,
    ) -> bool {
        if self.isolation_end().is_some() {
            debug!(%peer, "isolated: refusing the link");
            return false;
        }
        let mut peers = self.peers.lock();
        if peers.contains_key(&peer) {
            debug!(%peer, "already connected; dropping the second connection");
            return false;
        }
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let link = Link {
            max_frame_bytes: self.cfg.max_frame_bytes,
            queue_capacity: self.cfg.queue_capacity,
            zero_copy: self.cfg.zero_copy,
            metrics: self.metrics.clone(),
            events: self.tx_events.clone(),
            shape: self.cfg.links.get(&peer).copied().filter(|s| s.is_shaped()),
        };
        let set = self.clone();
        let handle = peer::spawn(framed, peer, conn_id, link, move |reason| async move {
            set.peer_ended(peer, conn_id, reason).await;
        });
        peers.insert(peer, handle);
        self.metrics.peers.set(peers.len() as i64);
        drop(peers);
        info!(%peer, "peer connected");
        let _ = self.tx_events.try_send(Event::PeerUp(peer));
        true
    }

    /// Called when a peer's task ends.
    async fn peer_ended(&self, peer: PeerId, conn_id: u64, reason: String) {
        let removed = {
            let mut peers = self.peers.lock();
            match peers.get(&peer) {
                Some(h) if h.conn_id == conn_id => peers.remove(&peer).is_some(),
                _ => false,
            }
        };
        if removed {
            self.peer_down(peer, reason).await;
        }
    }

    pub(crate) async fn peer_down(&self, peer: PeerId, reason: String) {
        self.metrics.peers.set(self.peers.lock().len() as i64);
        warn!(%peer, %reason, "peer disconnected");
        if let Some(n) = self.down.get(&peer) {
            n.notify_one();
        }
        let _ = self.tx_events.send(Event::PeerDown { peer, reason }).await;
    }

    pub(crate) async fn accept_one(self: Arc<Self>, stream: TcpStream, addr: SocketAddr) {
        if self.isolation_end().is_some() {
            // Dropped before the handshake: to the dialer this is a link that is down.
            return;
        }
        match self.authenticate(stream, &addr.to_string()).await {
            Ok((peer, framed)) => {
                self.register(peer, framed);
            }
            Err(e) => warn!(%addr, error = %e, "refused inbound connection"),
        }
    }

    async fn authenticate(
        &self,
        stream: TcpStream,
        addr: &str,
    ) -> P2pResult<(PeerId, Framed<TcpStream, LengthDelimitedCodec>)> {
        let _ = stream.set_nodelay(true);
        let codec = LengthDelimitedCodec::builder()
            .max_frame_length(self.cfg.max_frame_bytes)
            .new_codec();
        let mut framed = Framed::new(stream, codec);
        let peer = tokio::time::timeout(
            self.cfg.handshake_timeout,
            handshake(
                &mut framed,
                &self.cfg.key,
                &self.cfg.chain_id,
                &self.cfg.engine,
                &self.allowed,
                addr,
            ),
        )
        .await
        .map_err(|_| P2pError::Handshake {
            peer: addr.to_string(),
            reason: "timed out".into(),
        })??;
        Ok((peer, framed))
    }

    pub(crate) async fn dial_loop(self: Arc<Self>, info: PeerInfo) {
        let Some(down) = self.down.get(&info.id).cloned() else {
            return;
        };
        let mut backoff = Duration::from_millis(100);
        let mut failures = 0u32;
        loop {
            if let Some(end) = self.isolation_end() {
                tokio::time::sleep_until(end).await;
                backoff = Duration::from_millis(100);
            }
            let addr = info.addr.clone();
            let attempt = async {
                let stream =
                    TcpStream::connect(addr.as_str())
                        .await
                        .map_err(|source| P2pError::Io {
                            peer: addr.clone(),
                            source,
                        })?;
                self.authenticate(stream, &addr).await
            };
            match attempt.await {
                Ok((peer, framed)) if peer == info.id => {
                    backoff = Duration::from_millis(100);
                    failures = 0;
                    if self.register(peer, framed) {
                        down.notified().await;
                    }
                }
                Ok((peer, _)) => {
                    warn!(%addr, %peer, expected = %info.id, "dialed a different validator")
                }
                Err(e) => {
                    failures += 1;
                    // The first failure and then every tenth: a down peer should not flood logs.
                    if failures == 1 || failures.is_multiple_of(10) {
                        warn!(peer = %info.id, %addr, error = %e, failures, "dial failed");
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.cfg.max_backoff);
        }
    }
}
