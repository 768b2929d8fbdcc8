//! Pre-signed transfers from the genesis test accounts. Signing happens before the measured
//! window, in parallel on every core, so signing cost never pollutes the measurement.

use anyhow::{Context, Result};
use tpslab_node::client::connect;
use tpslab_node::genesis::Genesis;
use tpslab_node::proto::GetAccountRequest;
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::tx::{encode_transfer, Transfer};

/// `n` signed transfers: sender `i % senders` at its next nonces, to the next account.
/// `tx_size` pads the payload so each encoded tx is about that many bytes.
pub async fn presign(
    genesis: &Genesis,
    target: &str,
    n: u64,
    tx_size: usize,
) -> Result<Vec<Vec<u8>>> {
    let senders = genesis.accounts.count.min(n).max(1);
    let keys: Vec<_> = (0..senders)
        .map(|i| account_key(&genesis.accounts.seed, i))
        .collect();
    // Continue from the chain's nonces, so repeated runs against one chain stay valid.
    let mut client = connect(target).await?;
    let mut nonces = Vec::with_capacity(keys.len());
    for k in &keys {
        let acc = client
            .get_account(GetAccountRequest {
                address: address_of(k).0.to_vec(),
            })
            .await
            .context("reading sender nonces")?
            .into_inner();
        nonces.push(acc.nonce);
    }
    // A transfer without payload encodes to about 140 bytes.
    let payload = tx_size.saturating_sub(140);
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get());
    let chunk = (n as usize).div_ceil(threads).max(1);
    let chain = genesis.chain_id.clone();
    let out: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n as usize)
            .step_by(chunk)
            .map(|start| {
                let (keys, nonces, chain) = (&keys, &nonces, &chain);
                s.spawn(move || {
                    (start..(start + chunk).min(n as usize))
                        .map(|i| {
                            let s = i % keys.len();
                            encode_transfer(
                                &keys[s],
                                Transfer {
                                    chain_id: chain.clone(),
                                    to: address_of(&keys[(s + 1) % keys.len()]),
                                    amount: 1,
                                    nonce: nonces[s] + (i / keys.len()) as u64,
                                    fee: 1,
                                    payload: vec![0; payload],
                                },
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    Ok(out)
}
