//! The txs a run sends, made before the measured window so their cost never pollutes it.
//!
//! `transfer`: signed transfers from the genesis test accounts, signed in parallel on every
//! core. `kvstore`: unsigned `key=value` writes with a per-run key prefix, so repeated runs
//! against one chain never collide with earlier txs.

use anyhow::{Context, Result};
use tpslab_api::client::connect;
use tpslab_api::genesis::Genesis;
use tpslab_api::proto::GetAccountRequest;
use tpslab_types::keys::{account_key, address_of};
use tpslab_types::tx::{encode_transfer, Transfer};
use tpslab_types::AppKind;

/// A transfer without payload encodes to about this many bytes.
const TRANSFER_OVERHEAD: usize = 140;

/// The txs of a run, in send order, and how senders map onto them.
pub struct TxSet {
    /// Encoded txs.
    pub txs: Vec<Vec<u8>>,
    /// Number of distinct senders; tx `i` is from sender `i % senders`. A sender's txs must
    /// reach one node in nonce order, so the generator sends all of one sender's txs to the
    /// same target. kvstore txs have no sender and no order: each is its own, so they spread
    /// over every target (with one "sender", every tx went to the first target, which then
    /// gossiped the whole load alone).
    pub senders: u64,
}

/// Makes `n` txs of `workload`, each about `tx_size` bytes.
pub async fn make(
    workload: AppKind,
    genesis: &Genesis,
    target: &str,
    n: u64,
    tx_size: usize,
) -> Result<TxSet> {
    match workload {
        AppKind::Transfer => presign(genesis, target, n, tx_size).await,
        AppKind::KvStore => Ok(TxSet {
            txs: kv_txs(n, tx_size),
            senders: n.max(1),
        }),
    }
}

/// `n` kvstore txs `r<run>-<i>=<padding>` of `tx_size` bytes (or just the key if longer).
pub fn kv_txs(n: u64, tx_size: usize) -> Vec<Vec<u8>> {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (0..n)
        .map(|i| {
            let mut tx = format!("r{run:x}-{i}=").into_bytes();
            let pad = tx_size.saturating_sub(tx.len());
            tx.resize(tx.len() + pad, b'v');
            tx
        })
        .collect()
}

/// `n` signed transfers: sender `i % senders` at its next nonces, to the next account.
async fn presign(genesis: &Genesis, target: &str, n: u64, tx_size: usize) -> Result<TxSet> {
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
    let payload = tx_size.saturating_sub(TRANSFER_OVERHEAD);
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get());
    let chunk = (n as usize).div_ceil(threads).max(1);
    let chain = genesis.chain_id.clone();
    let txs: Vec<Vec<u8>> = std::thread::scope(|s| {
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
    Ok(TxSet { txs, senders })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_txs_have_the_size_and_are_distinct() {
        let txs = kv_txs(1000, 512);
        assert!(txs.iter().all(|t| t.len() == 512));
        let set: std::collections::HashSet<_> = txs.iter().collect();
        assert_eq!(set.len(), 1000);
        assert!(tpslab_app::kvstore::parse_kv(&txs[0]).is_ok());
    }
}
