//! Receiving: p2p events are routed by channel. Tx gossip frames go to a CheckTx task of
//! their own; consensus and block-sync traffic goes on to the consensus engine. The engine's
//! loop is busy while a block executes and commits, and tx gossip must not queue behind that
//! (the stage table showed it waiting for whole block commits); signature checks are slow,
//! so they stay off the engine's task too.

use crate::gather::Gatherer;
use crate::paths::CheckPlace;
use bytes::Bytes;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tpslab_mempool::Mempool;
use tpslab_p2p::{Channel, Event};
use tpslab_statedb::StateDb;
use tpslab_types::pb;
use tpslab_types::stages::{since_unix_nanos, Stage, StageLatencies};

/// Gossip frames queued for CheckTx; past this a batch is dropped (gossip is best-effort,
/// and the proposer's block carries the txs anyway).
const INGEST_QUEUE: usize = 4096;
/// Events queued for the consensus engine.
const ENGINE_QUEUE: usize = 1024;
/// Most gossiped txs checked in one go (when frames are gathered).
const INGEST_CHUNK: usize = 1024;

/// Splits `rx_net`: tx gossip to `mempool`'s CheckTx (on the blocking pool when
/// `crypto_pool`; the frames of `gather` checked together when set, sig-batch's tuned path,
/// else each alone), the rest to the returned receiver, for the consensus engine.
pub fn route(
    mut rx_net: mpsc::Receiver<Event>,
    mempool: Arc<Mempool<StateDb>>,
    stages: Arc<StageLatencies>,
    place: CheckPlace,
    gather: Option<Duration>,
) -> mpsc::Receiver<Event> {
    let (tx_ingest, rx_ingest) = mpsc::channel::<Bytes>(INGEST_QUEUE);
    tokio::spawn(ingest(rx_ingest, mempool, stages, place, gather));
    let (tx, rx) = mpsc::channel(ENGINE_QUEUE);
    tokio::spawn(async move {
        while let Some(ev) = rx_net.recv().await {
            match ev {
                Event::Message {
                    channel: Channel::Mempool,
                    payload,
                    ..
                } => {
                    let _ = tx_ingest.try_send(payload);
                }
                other => {
                    if tx.send(other).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Checks gossiped frames: each alone, or (`gather`) those queued and, while txs come fast,
/// those arriving within the window of the first, together. Duplicates and txs this node
/// already has are expected, not errors; a frame that does not decode is dropped.
async fn ingest(
    mut rx: mpsc::Receiver<Bytes>,
    mempool: Arc<Mempool<StateDb>>,
    stages: Arc<StageLatencies>,
    place: CheckPlace,
    gather: Option<Duration>,
) {
    let mut gatherer = gather.map(Gatherer::new);
    while let Some(payload) = rx.recv().await {
        let mut batch = pb::TxBatch::default();
        append(&mut batch, payload);
        if let Some(g) = gatherer.as_mut() {
            if let Some(until) = g.until(Instant::now()) {
                while batch.txs.len() < INGEST_CHUNK {
                    let Ok(Some(payload)) = tokio::time::timeout_at(until, rx.recv()).await else {
                        break;
                    };
                    append(&mut batch, payload);
                }
            }
            // What queued meanwhile goes along too, waited or not.
            while batch.txs.len() < INGEST_CHUNK {
                let Ok(payload) = rx.try_recv() else { break };
                append(&mut batch, payload);
            }
            g.taken(batch.txs.len(), Instant::now());
        }
        if batch.txs.is_empty() {
            continue;
        }
        let (mp, st) = (mempool.clone(), stages.clone());
        let _ = place.run(move || check(&mp, &st, &batch)).await;
    }
}

/// Appends the txs of the frame `payload` to `batch` (nothing if it does not decode), one
/// CheckTx-done stamp per tx: a peer may send fewer or more stamps than txs (0 is "unknown"),
/// and every stamp must stay with its own tx.
fn append(batch: &mut pb::TxBatch, payload: Bytes) {
    let Ok(mut frame) = pb::TxBatch::decode(payload) else {
        return;
    };
    frame.checked_unix_nanos.resize(frame.txs.len(), 0);
    batch.txs.append(&mut frame.txs);
    batch
        .checked_unix_nanos
        .append(&mut frame.checked_unix_nanos);
}

fn check(mempool: &Mempool<StateDb>, stages: &StageLatencies, batch: &pb::TxBatch) {
    let raws: Vec<&[u8]> = batch.txs.iter().map(|t| t.as_slice()).collect();
    let results = mempool.check_txs(&raws);
    mempool.keep_refused(&raws, &results);
    // Gossip stage: the sender's CheckTx-done time to admission here.
    let waits = results
        .iter()
        .zip(batch.checked_unix_nanos.iter())
        .filter(|(r, _)| r.is_ok())
        .filter_map(|(_, &t)| since_unix_nanos(t));
    stages.record_all(Stage::Gossip, waits);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(txs: &[&[u8]], stamps: &[u64]) -> Bytes {
        let f = pb::TxBatch {
            txs: txs.iter().map(|t| t.to_vec()).collect(),
            checked_unix_nanos: stamps.to_vec(),
        };
        Bytes::from(f.encode_to_vec())
    }

    /// A frame with missing or extra stamps cannot shift the stamps of the frames merged
    /// after it, and one that does not decode adds nothing.
    #[test]
    fn merged_frames_keep_each_tx_with_its_own_stamp() {
        let mut batch = pb::TxBatch::default();
        append(&mut batch, frame(&[b"a", b"b"], &[1]));
        append(&mut batch, frame(&[b"c"], &[3, 99, 98]));
        append(&mut batch, Bytes::from_static(b"\xff\xff\xff"));
        append(&mut batch, frame(&[b"d"], &[4]));
        assert_eq!(
            batch.txs,
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
        assert_eq!(batch.checked_unix_nanos, vec![1, 0, 3, 4]);
    }
}
