//! A minimal steady-rate load for a running testnet, used to quote blocks/s and committed
//! txs/s until the real load generator (`tpslab load`) lands:
//! `cargo run --release --example steady_load -- TESTNET_DIR RATE SECONDS`.
//! Signs every tx up front, streams them round-robin to all validators at RATE tx/s, and counts
//! blocks and txs committed (seen on node0) during the window.

use std::time::{Duration, Instant};
use tokio_stream::StreamExt;
use tpslab_node::client::connect;
use tpslab_node::proto::{BroadcastTxRequest, SubscribeCommitsRequest};
use tpslab_node::testnet::TestnetFile;
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::tx::{encode_transfer, Transfer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 4,
        "usage: steady_load TESTNET_DIR RATE SECONDS"
    );
    let dir = std::path::PathBuf::from(&args[1]);
    let rate: u64 = args[2].parse()?;
    let secs: u64 = args[3].parse()?;
    let file: TestnetFile =
        serde_json::from_str(&std::fs::read_to_string(dir.join("testnet.json"))?)?;
    let genesis = tpslab_node::genesis::Genesis::load(&file.nodes[0].home.join("genesis.json"))?;
    let total = rate * secs;
    let senders = genesis.accounts.count.min(total).max(1);
    let keys: Vec<_> = (0..senders)
        .map(|i| account_key(&genesis.accounts.seed, i))
        .collect();
    let txs: Vec<Vec<u8>> = (0..total)
        .map(|i| {
            let s = (i % senders) as usize;
            encode_transfer(
                &keys[s],
                Transfer {
                    chain_id: genesis.chain_id.clone(),
                    to: address_of(&keys[(s + 1) % keys.len()]),
                    amount: 1,
                    nonce: i / senders,
                    fee: 1,
                    payload: vec![0; 100],
                },
            )
        })
        .collect();
    let mut sub = connect(&file.nodes[0].grpc_addr)
        .await?
        .subscribe_commits(SubscribeCommitsRequest {})
        .await?
        .into_inner();
    let n = file.nodes.len();
    let mut senders_tx = Vec::new();
    for node in &file.nodes {
        let (tx, rx) = tokio::sync::mpsc::channel::<BroadcastTxRequest>(10_000);
        let mut c = connect(&node.grpc_addr).await?;
        tokio::spawn(async move {
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
            if let Ok(r) = c.broadcast_tx_stream(stream).await {
                let mut r = r.into_inner();
                while r.next().await.is_some() {}
            }
        });
        senders_tx.push(tx);
    }
    let start = Instant::now();
    let feeder = tokio::spawn(async move {
        for (i, tx) in txs.into_iter().enumerate() {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
            let _ = senders_tx[i % n]
                .send(BroadcastTxRequest { tx, id: i as u64 })
                .await;
        }
    });
    let (mut blocks, mut committed) = (0u64, 0u64);
    let end = start + Duration::from_secs(secs);
    while let Ok(Some(Ok(ev))) = tokio::time::timeout_at(end.into(), sub.next()).await {
        blocks += 1;
        committed += ev.tx_hashes.len() as u64;
    }
    feeder.abort();
    let el = start.elapsed().as_secs_f64();
    println!(
        "offered {rate} tx/s for {secs}s: {blocks} blocks ({:.1} blocks/s), {committed} txs committed ({:.0} tx/s)",
        blocks as f64 / el,
        committed as f64 / el
    );
    Ok(())
}
