//! Real TCP on 127.0.0.1: authenticated mesh, channels, refusal of unknown keys, disconnects
//! on garbage and oversize frames, reconnect after a restart.

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use futures::SinkExt;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tpslab_p2p::handshake::handshake;
use tpslab_p2p::{Channel, Event, Network, NetworkConfig, PeerId, PeerInfo};

const CHAIN: &str = "p2p-test";

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

fn id(k: &SigningKey) -> PeerId {
    PeerId(k.verifying_key().to_bytes())
}

/// Ports from the project's range (never the ephemeral one, where an outgoing connection
/// could take a released port before the network binds it).
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    tpslab_p2p::ports::allocate(n)
        .unwrap()
        .into_iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect()
}

fn config(i: usize, keys: &[SigningKey], addrs: &[SocketAddr]) -> NetworkConfig {
    let peers = (0..keys.len())
        .filter(|&j| j != i)
        .map(|j| PeerInfo {
            id: id(&keys[j]),
            addr: addrs[j].to_string(),
        })
        .collect();
    let mut c = NetworkConfig::new(CHAIN.into(), keys[i].clone(), addrs[i], peers);
    c.max_frame_bytes = 64 * 1024;
    c.max_backoff = Duration::from_millis(200);
    c
}

async fn next_event(rx: &mut mpsc::Receiver<Event>, pred: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = rx.recv().await.expect("network running");
            if pred(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event in time")
}

async fn wait_peers(net: &Network, n: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while net.peers().len() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("peers connected in time");
}

/// `n` networks on 127.0.0.1, each connected to all others.
async fn mesh(n: usize) -> (Vec<SigningKey>, Vec<(Network, mpsc::Receiver<Event>)>) {
    let keys: Vec<_> = (0..n as u8).map(key).collect();
    let addrs = free_addrs(n);
    let mut nets = Vec::new();
    for i in 0..n {
        nets.push(Network::start(config(i, &keys, &addrs)).await.unwrap());
    }
    for (net, _) in &nets {
        wait_peers(net, n - 1).await;
    }
    (keys, nets)
}

#[tokio::test]
async fn mesh_connects_and_delivers_per_channel() {
    let (keys, mut nets) = mesh(3).await;
    let (n0, _) = &nets[0];
    assert_eq!(
        n0.broadcast(Channel::Consensus, Bytes::from_static(b"vote")),
        2
    );
    n0.send(id(&keys[2]), Channel::Mempool, Bytes::from_static(b"tx"))
        .await
        .unwrap();
    let from0 = id(&keys[0]);
    let (_, rx2) = &mut nets[2];
    let mut got = HashSet::new();
    while got.len() < 2 {
        if let Event::Message {
            peer,
            channel,
            payload,
        } = next_event(rx2, |e| matches!(e, Event::Message { .. })).await
        {
            assert_eq!(peer, from0);
            got.insert((channel, payload));
        }
    }
    assert!(got.contains(&(Channel::Consensus, Bytes::from_static(b"vote"))));
    assert!(got.contains(&(Channel::Mempool, Bytes::from_static(b"tx"))));
    let stats = nets[0].0.stats();
    assert_eq!(stats.len(), 2);
    assert!(stats.iter().map(|s| s.sent_msgs).sum::<u64>() >= 3);
}

/// Opens a raw authenticated connection to `addr` as `k`.
async fn raw_peer(
    k: &SigningKey,
    server: &SigningKey,
    addr: SocketAddr,
) -> Result<Framed<TcpStream, LengthDelimitedCodec>, tpslab_p2p::P2pError> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    let allowed: HashSet<_> = [id(server)].into();
    handshake(&mut framed, k, CHAIN, "bft", &allowed, &addr.to_string()).await?;
    Ok(framed)
}

#[tokio::test]
async fn unknown_key_is_refused() {
    let keys: Vec<_> = (0..2).map(key).collect();
    let addrs = free_addrs(2);
    let (n0, _rx) = Network::start(config(0, &keys, &addrs)).await.unwrap();
    let stranger = key(99);
    let r = raw_peer(&stranger, &keys[0], n0.local_addr()).await;
    assert!(r.is_err(), "a stranger must not complete the handshake");
    assert!(n0.peers().is_empty());
}

#[tokio::test]
async fn garbage_and_oversize_frames_disconnect_the_sender() {
    let keys: Vec<_> = (0..3).map(key).collect();
    let addrs = free_addrs(3);
    // Only node 0 runs; keys 1 and 2 act as raw (misbehaving) validators.
    let (n0, mut rx) = Network::start(config(0, &keys, &addrs)).await.unwrap();

    let mut bad = raw_peer(&keys[1], &keys[0], n0.local_addr()).await.unwrap();
    next_event(&mut rx, |e| matches!(e, Event::PeerUp(_))).await;
    bad.send(Bytes::from_static(&[0xff, 0xff, 0xff, 0x07]))
        .await
        .unwrap();
    let Event::PeerDown { peer, reason } =
        next_event(&mut rx, |e| matches!(e, Event::PeerDown { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(peer, id(&keys[1]));
    assert!(reason.contains("malformed frame"), "{reason}");

    let mut big = raw_peer(&keys[2], &keys[0], n0.local_addr()).await.unwrap();
    next_event(&mut rx, |e| matches!(e, Event::PeerUp(_))).await;
    big.send(Bytes::from(vec![0u8; 100 * 1024])).await.unwrap();
    let Event::PeerDown { peer, reason } =
        next_event(&mut rx, |e| matches!(e, Event::PeerDown { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(peer, id(&keys[2]));
    assert!(reason.contains("frame size too big"), "{reason}");
    assert!(n0.peers().is_empty());
}

#[tokio::test]
async fn dialer_reconnects_after_peer_restart_and_disconnect_reports_reason() {
    let keys: Vec<_> = (0..2).map(key).collect();
    let addrs = free_addrs(2);
    let (n0, mut rx0) = Network::start(config(0, &keys, &addrs)).await.unwrap();
    let (n1, rx1) = Network::start(config(1, &keys, &addrs)).await.unwrap();
    wait_peers(&n0, 1).await;
    n1.shutdown();
    drop(rx1);
    next_event(&mut rx0, |e| matches!(e, Event::PeerDown { .. })).await;
    let (n1, _rx1) = Network::start(config(1, &keys, &addrs)).await.unwrap();
    wait_peers(&n0, 1).await;
    wait_peers(&n1, 1).await;

    n0.disconnect(id(&keys[1]), "invalid vote signature".into())
        .await;
    let Event::PeerDown { reason, .. } =
        next_event(&mut rx0, |e| matches!(e, Event::PeerDown { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(reason, "invalid vote signature");
}

/// A naive-path writer (zero-copy-net off) and a tuned one talk to each other: the wire bytes
/// are the same, so every frame arrives, in order per channel, with its payload intact.
#[tokio::test]
async fn naive_and_zero_copy_writers_interoperate() {
    let keys: Vec<_> = (0..2).map(key).collect();
    let addrs = free_addrs(2);
    let mut c0 = config(0, &keys, &addrs);
    c0.zero_copy = false;
    let c1 = config(1, &keys, &addrs);
    let (n0, mut rx0) = Network::start(c0).await.unwrap();
    let (n1, mut rx1) = Network::start(c1).await.unwrap();
    wait_peers(&n0, 1).await;
    wait_peers(&n1, 1).await;
    let (p0, p1) = (id(&keys[0]), id(&keys[1]));
    let payload = |i: usize| Bytes::from(vec![(i % 251) as u8; 1 + i * 37 % 5000]);
    let channels = [Channel::Consensus, Channel::Sync, Channel::Mempool];
    for i in 0..600 {
        let ch = channels[i % 3];
        n0.try_send(p1, ch, payload(i)).unwrap();
        n1.try_send(p0, ch, payload(i)).unwrap();
    }
    for (rx, from) in [(&mut rx1, p0), (&mut rx0, p1)] {
        let mut next = [0usize, 1, 2];
        for _ in 0..600 {
            let Event::Message {
                peer,
                channel,
                payload: got,
            } = next_event(rx, |e| matches!(e, Event::Message { .. })).await
            else {
                unreachable!()
            };
            assert_eq!(peer, from);
            let k = channels.iter().position(|c| *c == channel).unwrap();
            assert_eq!(got, payload(next[k]), "frame {} on {channel:?}", next[k]);
            next[k] += 3;
        }
    }
    n0.shutdown();
    n1.shutdown();
}

#[tokio::test]
async fn a_message_over_the_frame_limit_is_refused_locally_and_the_link_stays_up() {
    let keys: Vec<_> = (0..2).map(key).collect();
    let addrs = free_addrs(2);
    let (n0, _rx0) = Network::start(config(0, &keys, &addrs)).await.unwrap();
    let (_n1, mut rx1) = Network::start(config(1, &keys, &addrs)).await.unwrap();
    wait_peers(&n0, 1).await;
    let limit = 64 * 1024;
    let fits = tpslab_p2p::max_payload_len(limit);
    assert_eq!(tpslab_p2p::frame_len(fits), limit);
    let err = n0
        .try_send(
            id(&keys[1]),
            Channel::Sync,
            Bytes::from(vec![1u8; fits + 1]),
        )
        .unwrap_err();
    assert!(
        matches!(err, tpslab_p2p::P2pError::FrameTooLarge { .. }),
        "{err}"
    );
    assert_eq!(
        n0.broadcast(Channel::Sync, Bytes::from(vec![1u8; fits + 1])),
        0
    );
    // The largest payload that fits arrives, on the same link.
    n0.try_send(id(&keys[1]), Channel::Sync, Bytes::from(vec![2u8; fits]))
        .unwrap();
    let e = next_event(&mut rx1, |e| {
        matches!(e, Event::Message { .. } | Event::PeerDown { .. })
    })
    .await;
    match e {
        Event::Message { payload, .. } => assert_eq!(payload.len(), fits),
        other => panic!("{other:?}"),
    }
    assert_eq!(n0.peers().len(), 1);
}

/// `isolate` (the fault endpoint's disconnect) drops every link of the isolated node, keeps
/// its peers out for the interval (both the links it dials and the ones dialed to it), and
/// the links come back by themselves after it.
#[tokio::test]
async fn an_isolated_node_drops_and_refuses_links_until_the_interval_ends() {
    let (keys, mut nets) = mesh(3).await;
    let started = std::time::Instant::now();
    nets[1].0.isolate(Duration::from_millis(1500)).await;
    assert!(nets[1].0.peers().is_empty());
    // Through most of the interval nobody gets back in, though peers keep redialing.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(nets[1].0.peers().is_empty(), "{:?}", nets[1].0.peers());
    assert_eq!(nets[0].0.peers(), vec![id(&keys[2])]);
    wait_peers(&nets[1].0, 2).await;
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let Event::PeerDown { reason, .. } =
        next_event(&mut nets[1].1, |e| matches!(e, Event::PeerDown { .. })).await
    else {
        unreachable!()
    };
    assert!(reason.contains("fault injection"), "{reason}");
}

/// An emulated link in real time (the exact timing is the shaper's unit tests, under paused
/// time): node 0's frames to node 1 arrive no sooner than the configured delay, and not much
/// later; node 1's frames to node 0 (not shaped) arrive at once. Payloads arrive intact and
/// in order per channel, and the link is reported on the metrics.
#[tokio::test]
async fn a_shaped_link_delays_what_its_node_sends() {
    let keys: Vec<_> = (0..2).map(key).collect();
    let addrs = free_addrs(2);
    let mut c0 = config(0, &keys, &addrs);
    let spec: tpslab_types::link::LinkSpec = "delay=80ms,jitter=10ms,bw=100mbit".parse().unwrap();
    c0.links.insert(id(&keys[1]), spec);
    let (n0, mut rx0) = Network::start(c0).await.unwrap();
    let (n1, mut rx1) = Network::start(config(1, &keys, &addrs)).await.unwrap();
    wait_peers(&n0, 1).await;
    wait_peers(&n1, 1).await;
    let (p0, p1) = (id(&keys[0]), id(&keys[1]));
    let is_msg = |e: &Event| matches!(e, Event::Message { .. });
    for round in 0..5u8 {
        let sent = std::time::Instant::now();
        n0.try_send(p1, Channel::Consensus, Bytes::from(vec![round; 1000]))
            .unwrap();
        let Event::Message { payload, .. } = next_event(&mut rx1, is_msg).await else {
            unreachable!()
        };
        let took = sent.elapsed();
        assert_eq!(payload, Bytes::from(vec![round; 1000]));
        assert!(
            took >= Duration::from_millis(70),
            "{took:?} < delay - jitter"
        );
        assert!(
            took < Duration::from_millis(600),
            "{took:?}: far over the delay"
        );

        let sent = std::time::Instant::now();
        n1.try_send(p0, Channel::Consensus, Bytes::from_static(b"back"))
            .unwrap();
        next_event(&mut rx0, is_msg).await;
        assert!(
            sent.elapsed() < Duration::from_millis(60),
            "unshaped direction delayed"
        );
    }
    let mut text = String::new();
    let mut reg = prometheus_client::registry::Registry::default();
    n0.metrics().register(&mut reg);
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    assert!(
        text.contains("link=\"delay=80ms,jitter=10ms,bw=100mbit\""),
        "{text}"
    );
    n0.shutdown();
    n1.shutdown();
}
