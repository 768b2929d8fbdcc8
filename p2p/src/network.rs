//! The peer set: listening, dialing with backoff, registering authenticated peers, sending.

use crate::error::{P2pError, P2pResult};
use crate::handshake::handshake;
use crate::metrics::P2pMetrics;
use crate::peer::{self, PeerHandle};
use crate::wire::{Channel, PeerId};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{debug, info, warn};

/// A validator to connect to.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Its public key.
    pub id: PeerId,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Settings of the network.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Chain id, checked in the handshake.
    pub chain_id: String,
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
            key,
            listen,
            peers,
            max_frame_bytes: 16 << 20,
            queue_capacity: 4096,
            handshake_timeout: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
            zero_copy: true,
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

pub(crate) struct Shared {
    pub cfg: NetworkConfig,
    me: PeerId,
    allowed: HashSet<PeerId>,
    peers: Mutex<HashMap<PeerId, PeerHandle>>,
    pub tx_events: mpsc::Sender<Event>,
    next_conn: AtomicU64,
    pub metrics: P2pMetrics,
    /// Wakes a peer's dialer when the peer disconnects.
    down: HashMap<PeerId, Arc<Notify>>,
}

impl Shared {
    fn register(
        self: &Arc<Self>,
        peer: PeerId,
        framed: Framed<TcpStream, LengthDelimitedCodec>,
    ) -> bool {
        let mut peers = self.peers.lock();
        if peers.contains_key(&peer) {
            debug!(%peer, "already connected; dropping the second connection");
            return false;
        }
        let conn_id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let handle = peer::spawn(framed, peer, conn_id, self.clone());
        peers.insert(peer, handle);
        self.metrics.peers.set(peers.len() as i64);
        drop(peers);
        info!(%peer, "peer connected");
        let _ = self.tx_events.try_send(Event::PeerUp(peer));
        true
    }

    /// Called by a peer's task when it ends.
    pub(crate) async fn peer_ended(&self, peer: PeerId, conn_id: u64, reason: String) {
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

    async fn peer_down(&self, peer: PeerId, reason: String) {
        self.metrics.peers.set(self.peers.lock().len() as i64);
        warn!(%peer, %reason, "peer disconnected");
        if let Some(n) = self.down.get(&peer) {
            n.notify_one();
        }
        let _ = self.tx_events.send(Event::PeerDown { peer, reason }).await;
    }

    async fn accept_one(self: Arc<Self>, stream: TcpStream, addr: SocketAddr) {
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

    async fn dial_loop(self: Arc<Self>, info: PeerInfo) {
        let Some(down) = self.down.get(&info.id).cloned() else {
            return;
        };
        let mut backoff = Duration::from_millis(100);
        let mut failures = 0u32;
        loop {
            let addr = info.addr.to_string();
            let attempt = async {
                let stream =
                    TcpStream::connect(info.addr)
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

/// Handle to the running network (cheap to clone).
#[derive(Clone)]
pub struct Network {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Network {
    /// Binds the listener and starts accepting and dialing. Events arrive on the receiver.
    pub async fn start(cfg: NetworkConfig) -> P2pResult<(Network, mpsc::Receiver<Event>)> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| P2pError::Io {
                peer: cfg.listen.to_string(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| P2pError::Io {
            peer: cfg.listen.to_string(),
            source,
        })?;
        let me = PeerId(cfg.key.verifying_key().to_bytes());
        let (tx_events, rx_events) = mpsc::channel(16_384);
        let shared = Arc::new(Shared {
            me,
            allowed: cfg.peers.iter().map(|p| p.id).collect(),
            down: cfg
                .peers
                .iter()
                .map(|p| (p.id, Arc::new(Notify::new())))
                .collect(),
            peers: Mutex::new(HashMap::new()),
            tx_events,
            next_conn: AtomicU64::new(0),
            metrics: P2pMetrics::default(),
            cfg,
        });
        let mut tasks = JoinSet::new();
        let s = shared.clone();
        tasks.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, addr)) => {
                        tokio::spawn(s.clone().accept_one(stream, addr));
                    }
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        // The smaller key dials, so two validators never race two connections at each other.
        for p in shared.cfg.peers.clone() {
            if shared.me < p.id {
                tasks.spawn(shared.clone().dial_loop(p));
            }
        }
        Ok((
            Network {
                shared,
                local_addr,
                tasks: Arc::new(Mutex::new(tasks)),
            },
            rx_events,
        ))
    }

    /// The bound listen address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Traffic metrics (network-wide, across reconnects).
    pub fn metrics(&self) -> &P2pMetrics {
        &self.shared.metrics
    }

    /// Our id.
    pub fn me(&self) -> PeerId {
        self.shared.me
    }

    /// Connected peers.
    pub fn peers(&self) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = self.shared.peers.lock().keys().copied().collect();
        v.sort();
        v
    }

    fn queue(
        &self,
        peer: PeerId,
        channel: Channel,
    ) -> P2pResult<(mpsc::Sender<Bytes>, Arc<crate::peer::Counters>)> {
        let peers = self.shared.peers.lock();
        let h = peers.get(&peer).ok_or_else(|| P2pError::NotConnected {
            peer: peer.to_string(),
        })?;
        Ok((h.queues[channel as usize].clone(), h.counters.clone()))
    }

    /// Refuses a payload whose frame the peers would refuse.
    fn check_size(&self, channel: Channel, payload: &Bytes) -> P2pResult<()> {
        let frame = crate::wire::frame_len(payload.len());
        let max = self.shared.cfg.max_frame_bytes;
        if frame > max {
            return Err(P2pError::FrameTooLarge {
                channel: channel.name(),
                payload: payload.len(),
                frame,
                max,
            });
        }
        Ok(())
    }

    /// Queues a message without waiting; fails if the queue is full or the message is over
    /// the frame limit.
    pub fn try_send(&self, peer: PeerId, channel: Channel, payload: Bytes) -> P2pResult<()> {
        self.check_size(channel, &payload)?;
        let (q, c) = self.queue(peer, channel)?;
        q.try_send(payload).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                self.shared.metrics.dropped.inc();
                P2pError::QueueFull {
                    peer: peer.to_string(),
                    channel: channel.name(),
                }
            }
            mpsc::error::TrySendError::Closed(_) => P2pError::NotConnected {
                peer: peer.to_string(),
            },
        })
    }

    /// Queues a message, waiting for room (backpressure).
    pub async fn send(&self, peer: PeerId, channel: Channel, payload: Bytes) -> P2pResult<()> {
        self.check_size(channel, &payload)?;
        let (q, _) = self.queue(peer, channel)?;
        q.send(payload).await.map_err(|_| P2pError::NotConnected {
            peer: peer.to_string(),
        })
    }

    /// Queues a message to every connected peer without waiting; returns how many queued it.
    /// A message over the frame limit goes to no one (logged: it is a bug in the caller).
    pub fn broadcast(&self, channel: Channel, payload: Bytes) -> usize {
        if let Err(e) = self.check_size(channel, &payload) {
            tracing::error!(error = %e, "not broadcast");
            return 0;
        }
        self.peers()
            .into_iter()
            .filter(|p| self.try_send(*p, channel, payload.clone()).is_ok())
            .count()
    }

    /// Drops a peer for misbehaving; the reason is logged and reported as [`Event::PeerDown`].
    pub async fn disconnect(&self, peer: PeerId, reason: String) {
        let handle = self.shared.peers.lock().remove(&peer);
        if let Some(h) = handle {
            h.task.abort();
            self.shared.peer_down(peer, reason).await;
        }
    }

    /// Per-peer traffic counters.
    pub fn stats(&self) -> Vec<PeerStats> {
        let peers = self.shared.peers.lock();
        let mut v: Vec<PeerStats> = peers
            .iter()
            .map(|(p, h)| PeerStats {
                peer: *p,
                sent_bytes: h.counters.sent_bytes.load(Ordering::Relaxed),
                recv_bytes: h.counters.recv_bytes.load(Ordering::Relaxed),
                sent_msgs: h.counters.sent_msgs.load(Ordering::Relaxed),
                recv_msgs: h.counters.recv_msgs.load(Ordering::Relaxed),
                dropped: h.counters.dropped.load(Ordering::Relaxed),
            })
            .collect();
        v.sort_by_key(|s| s.peer);
        v
    }

    /// Stops listening, dialing and every peer connection.
    pub fn shutdown(&self) {
        self.tasks.lock().abort_all();
        for (_, h) in self.shared.peers.lock().drain() {
            h.task.abort();
        }
    }
}
