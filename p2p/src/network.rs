//! The handle to the running network: start it, send and broadcast on a channel, disconnect
//! a misbehaving peer, read traffic counters.

use crate::config::{Event, NetworkConfig, PeerStats};
use crate::error::{P2pError, P2pResult};
use crate::metrics::P2pMetrics;
use crate::peer::Counters;
use crate::peer_set::PeerSet;
use crate::wire::{Channel, PeerId};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tracing::warn;

/// Handle to the running network (cheap to clone).
#[derive(Clone)]
pub struct Network {
    shared: Arc<PeerSet>,
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
        let metrics = P2pMetrics::default();
        for (peer, spec) in cfg.links.iter().filter(|(_, s)| s.is_shaped()) {
            let labels = vec![
                ("peer".to_string(), peer.to_string()),
                ("link".to_string(), spec.to_string()),
            ];
            metrics.emulated_links.get_or_create(&labels).set(1);
            warn!(%peer, link = %spec, "emulated link: frames to this peer are shaped");
        }
        let shared = Arc::new(PeerSet {
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
            metrics,
            isolated_until: Mutex::new(None),
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
    ) -> P2pResult<(mpsc::Sender<crate::wire::Queued>, Arc<Counters>)> {
        let peers = self.shared.peers.lock();
        let h = peers.get(&peer).ok_or_else(|| P2pError::NotConnected {
            peer: peer.to_string(),
        })?;
        Ok((h.queues[channel.queue()].clone(), h.counters.clone()))
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
        q.try_send((channel, payload)).map_err(|e| match e {
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
        q.send((channel, payload))
            .await
            .map_err(|_| P2pError::NotConnected {
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

    /// Fault injection: drops every peer link and refuses new ones (inbound before the
    /// handshake, outbound by not dialing) for `d`; links come back by themselves after it.
    pub async fn isolate(&self, d: Duration) {
        *self.shared.isolated_until.lock() = Some(tokio::time::Instant::now() + d);
        tracing::warn!(
            secs = d.as_secs_f64(),
            "isolating this node from its peers (fault injection)"
        );
        for peer in self.peers() {
            self.disconnect(
                peer,
                format!("isolated for {:.1} s (fault injection)", d.as_secs_f64()),
            )
            .await;
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
