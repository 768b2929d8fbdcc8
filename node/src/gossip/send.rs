//! Sending: txs accepted by the API go to every peer, one message per tx (the gossip-batch
//! toggle's naive path, as CometBFT's mempool reactor does) or in batches gathered for a few
//! milliseconds.

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prost::Message;
use std::time::Duration;
use tokio::sync::mpsc;
use tpslab_p2p::{Channel, Network};
use tpslab_types::pb;

/// Longest a tx waits in a batch before it is sent.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Most txs in one batch message (fewer when their bytes reach the frame limit).
const BATCH_MAX: usize = 512;
/// What a tx costs in a `TxBatch` besides its bytes: its tag and length varint, and its
/// `checked_unix_nanos` (a packed u64 of up to 10 bytes).
const ITEM_OVERHEAD: usize = 1 + 5 + 10;
/// The batch's own overhead: the packed timestamps' tag and length.
const BATCH_OVERHEAD: usize = 1 + 5;

/// A tx and when this node's CheckTx finished with it (unix nanoseconds; peers time the
/// gossip stage from it).
type Gossiped = (Vec<u8>, u64);

/// Sends txs accepted by the API to every peer.
#[derive(Clone)]
pub struct TxGossip {
    net: Network,
    batcher: Option<mpsc::Sender<Gossiped>>,
    dropped: Counter,
}

impl TxGossip {
    /// Gossip over `net`; `batch` turns on the gossip-batch toggle's tuned path (its batcher
    /// task runs under `monitor`). A batch never makes a frame over `max_frame_bytes`. Sends
    /// a peer's full queue refused are counted in `dropped` (per tx and peer).
    pub fn new(
        net: Network,
        batch: bool,
        max_frame_bytes: usize,
        monitor: &tokio_metrics::TaskMonitor,
        dropped: Counter,
    ) -> TxGossip {
        let budget = tpslab_p2p::max_payload_len(max_frame_bytes).saturating_sub(BATCH_OVERHEAD);
        let batcher = batch.then(|| {
            let (tx, rx) = mpsc::channel(65_536);
            let task = run_batcher(net.clone(), rx, budget, dropped.clone());
            tokio::spawn(monitor.instrument(task));
            tx
        });
        TxGossip {
            net,
            batcher,
            dropped,
        }
    }

    /// The network the txs go over.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// Gossips one accepted tx whose CheckTx finished at `checked_unix_nanos`.
    pub fn send(&self, tx: Vec<u8>, checked_unix_nanos: u64) {
        let item = (tx, checked_unix_nanos);
        match &self.batcher {
            // A full batcher means the peers cannot keep up; sending the tx on its own keeps
            // it flowing rather than dropping it.
            Some(b) => {
                if let Err(mpsc::error::TrySendError::Full(item)) = b.try_send(item) {
                    broadcast(&self.net, vec![item], &self.dropped);
                }
            }
            None => broadcast(&self.net, vec![item], &self.dropped),
        }
    }
}

fn broadcast(net: &Network, items: Vec<Gossiped>, dropped: &Counter) {
    let n = items.len() as u64;
    let (txs, checked_unix_nanos) = items.into_iter().unzip();
    let batch = pb::TxBatch {
        txs,
        checked_unix_nanos,
    };
    let peers = net.peers().len();
    let reached = net.broadcast(Channel::Mempool, Bytes::from(batch.encode_to_vec()));
    dropped.inc_by(n * peers.saturating_sub(reached) as u64);
}

async fn run_batcher(
    net: Network,
    mut rx: mpsc::Receiver<Gossiped>,
    budget: usize,
    dropped: Counter,
) {
    let cost = |t: &Gossiped| t.0.len() + ITEM_OVERHEAD;
    let mut next = None;
    loop {
        let first = match next.take() {
            Some(t) => t,
            None => match rx.recv().await {
                Some(t) => t,
                None => return,
            },
        };
        let mut bytes = cost(&first);
        let mut txs = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while txs.len() < BATCH_MAX {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(tx)) if bytes + cost(&tx) > budget => {
                    // Starts the next batch: this one is as big as a frame allows.
                    next = Some(tx);
                    break;
                }
                Ok(Some(tx)) => {
                    bytes += cost(&tx);
                    txs.push(tx);
                }
                Ok(None) | Err(_) => break,
            }
        }
        broadcast(&net, txs, &dropped);
    }
}
