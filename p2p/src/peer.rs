//! One live connection: a reader forwarding frames to the node, a writer draining the three
//! channel queues consensus-first, and the counters both keep.

use crate::codec::{FrameCodec, Outgoing};
use crate::config::Event;
use crate::error::P2pError;
use crate::metrics::P2pMetrics;
use crate::shaper::Shaper;
use crate::wire::{Channel, Envelope, PeerId, Queued};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use prost::Message;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Traffic counters of one peer.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub sent_bytes: AtomicU64,
    pub recv_bytes: AtomicU64,
    pub sent_msgs: AtomicU64,
    pub recv_msgs: AtomicU64,
    pub dropped: AtomicU64,
}

/// What the network keeps of a live peer.
pub(crate) struct PeerHandle {
    pub conn_id: u64,
    pub queues: [mpsc::Sender<Queued>; 3],
    pub counters: Arc<Counters>,
    pub task: AbortHandle,
}

/// What a connection needs from the network: its limits, the metrics, where events go.
pub(crate) struct Link {
    pub max_frame_bytes: usize,
    pub queue_capacity: usize,
    pub zero_copy: bool,
    pub metrics: P2pMetrics,
    pub events: mpsc::Sender<Event>,
    /// The emulated link to this peer, if any (see [`crate::shaper`]).
    pub shape: Option<tpslab_types::link::LinkSpec>,
}

fn first8(peer: &PeerId) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&peer.0[..8]);
    b
}

/// Most queued frames written with one flush on the zero-copy-net path.
const COALESCE_MAX: usize = 64;

/// Starts the peer's task and returns its handle; `on_end` runs with the reason when the connection ends.
pub(crate) fn spawn<F, Fut>(
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    peer: PeerId,
    conn_id: u64,
    link: Link,
    on_end: F,
) -> PeerHandle
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let max_frame = link.max_frame_bytes;
    let framed = framed.map_codec(|c| FrameCodec::new(c, max_frame));
    let cap = link.queue_capacity.max(1);
    let (tx_c, rx_c) = mpsc::channel(cap);
    let (tx_s, rx_s) = mpsc::channel(cap);
    let (tx_m, rx_m) = mpsc::channel(cap);
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let task = tokio::spawn(async move {
        let (sink, stream) = framed.split();
        let mut queues = [rx_c, rx_s, rx_m];
        let mut shaped = None;
        if let Some(spec) = link.shape {
            // The writer drains what the link lets through, when it arrives.
            let (tx_c, rx_c) = mpsc::channel(cap);
            let (tx_s, rx_s) = mpsc::channel(cap);
            let (tx_m, rx_m) = mpsc::channel(cap);
            let input = std::mem::replace(&mut queues, [rx_c, rx_s, rx_m]);
            let shaper = Shaper::new(spec, conn_id ^ u64::from_le_bytes(first8(&peer)));
            let lost = link.metrics.emulated_lost.clone();
            shaped = Some(crate::shaper::run(shaper, input, [tx_c, tx_s, tx_m], lost));
        }
        let shaping = async move {
            match shaped {
                Some(run) => run.await,
                None => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            r = read_loop(stream, peer, &link, &c) => r,
            r = write_loop(sink, queues, &c, &link) => r,
            r = shaping => r,
        };
        on_end(reason).await;
    });
    PeerHandle {
        conn_id,
        queues: [tx_c, tx_s, tx_m],
        counters,
        task: task.abort_handle(),
    }
}

async fn read_loop(
    mut stream: futures::stream::SplitStream<Framed<TcpStream, FrameCodec>>,
    peer: PeerId,
    link: &Link,
    c: &Counters,
) -> String {
    while let Some(frame) = stream.next().await {
        let frame = match frame {
            Ok(f) => f,
            // Oversize frames surface here ("frame size too big").
            Err(e) => return format!("read error: {e}"),
        };
        c.recv_bytes
            .fetch_add(frame.len() as u64 + 4, Ordering::Relaxed);
        link.metrics.recv_bytes.inc_by(frame.len() as u64 + 4);
        c.recv_msgs.fetch_add(1, Ordering::Relaxed);
        let violation = |reason: String| {
            P2pError::Protocol {
                peer: peer.to_string(),
                reason,
            }
            .to_string()
        };
        let env = match Envelope::decode(frame.freeze()) {
            Ok(e) => e,
            Err(e) => return violation(format!("malformed frame: {e}")),
        };
        let Some(channel) = Channel::from_u32(env.channel) else {
            return violation(format!("unknown channel {}", env.channel));
        };
        let ev = Event::Message {
            peer,
            channel,
            payload: env.payload,
        };
        if link.events.send(ev).await.is_err() {
            return "node stopped".into();
        }
    }
    "connection closed by peer".into()
}

async fn write_loop(
    mut sink: futures::stream::SplitSink<Framed<TcpStream, FrameCodec>, Outgoing>,
    queues: [mpsc::Receiver<Queued>; 3],
    c: &Counters,
    link: &Link,
) -> String {
    let [mut rx_c, mut rx_s, mut rx_m] = queues;
    let zero_copy = link.zero_copy;
    loop {
        let (channel, payload) = tokio::select! {
            biased;
            Some(m) = rx_c.recv() => m,
            Some(m) = rx_s.recv() => m,
            Some(m) = rx_m.recv() => m,
            else => return "send queues closed".into(),
        };
        if !zero_copy {
            // Naive: the frame in its own buffer (copied again into the connection's), one
            // write per frame.
            let env = Envelope {
                channel: channel as u32,
                payload,
            };
            let n = env.encoded_len() as u64 + 4;
            if let Err(e) = sink
                .send(Outgoing::Encoded(Bytes::from(env.encode_to_vec())))
                .await
            {
                return format!("write error: {e}");
            }
            count_sent(c, link, n);
            continue;
        }
        // Tuned: encoded in place; frames already queued go out with the same flush.
        let mut next = Some((channel, payload));
        let mut fed = 0;
        while let Some((channel, payload)) = next {
            if let Err(e) = feed(&mut sink, channel, payload, c, link).await {
                return e;
            }
            fed += 1;
            next = (fed < COALESCE_MAX)
                .then(|| {
                    rx_c.try_recv()
                        .or_else(|_| rx_s.try_recv())
                        .or_else(|_| rx_m.try_recv())
                        .ok()
                })
                .flatten();
        }
        if let Err(e) = sink.flush().await {
            return format!("write error: {e}");
        }
    }
}

/// Encodes one frame into the connection's write buffer (no flush) and counts it.
async fn feed(
    sink: &mut futures::stream::SplitSink<Framed<TcpStream, FrameCodec>, Outgoing>,
    channel: Channel,
    payload: Bytes,
    c: &Counters,
    link: &Link,
) -> Result<(), String> {
    let env = Envelope {
        channel: channel as u32,
        payload,
    };
    let n = env.encoded_len() as u64 + 4;
    sink.feed(Outgoing::Parts(env))
        .await
        .map_err(|e| format!("write error: {e}"))?;
    count_sent(c, link, n);
    Ok(())
}

fn count_sent(c: &Counters, link: &Link, n: u64) {
    c.sent_bytes.fetch_add(n, Ordering::Relaxed);
    link.metrics.send_bytes.inc_by(n);
    c.sent_msgs.fetch_add(1, Ordering::Relaxed);
}
