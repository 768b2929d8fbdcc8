//! Receiving: p2p events are routed by channel. Tx gossip frames go to a CheckTx task of
//! their own; consensus and block-sync traffic goes on to the consensus engine. The engine's
//! loop is busy while a block executes and commits, and tx gossip must not queue behind that
//! (the stage table showed it waiting for whole block commits); signature checks are slow,
//! so they stay off the engine's task too.

use crate::paths::CheckPlace;
use bytes::Bytes;
use prost::Message;
use std::sync::Arc;
use tokio::sync::mpsc;
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

/// Splits `rx_net`: tx gossip to `mempool`'s CheckTx (on the blocking pool when
/// `crypto_pool`), the rest to the returned receiver, for the consensus engine.
pub fn route(
    mut rx_net: mpsc::Receiver<Event>,
    mempool: Arc<Mempool<StateDb>>,
    stages: Arc<StageLatencies>,
    place: CheckPlace,
) -> mpsc::Receiver<Event> {
    let (tx_ingest, rx_ingest) = mpsc::channel::<Bytes>(INGEST_QUEUE);
    tokio::spawn(ingest(rx_ingest, mempool, stages, place));
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

/// Checks each gossiped batch. Duplicates and txs this node already has are expected, not
/// errors; a frame that does not decode is dropped.
async fn ingest(
    mut rx: mpsc::Receiver<Bytes>,
    mempool: Arc<Mempool<StateDb>>,
    stages: Arc<StageLatencies>,
    place: CheckPlace,
) {
    while let Some(payload) = rx.recv().await {
        let Ok(batch) = pb::TxBatch::decode(payload) else {
            continue;
        };
        let (mp, st) = (mempool.clone(), stages.clone());
        let _ = place.run(move || check(&mp, &st, &batch)).await;
    }
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
