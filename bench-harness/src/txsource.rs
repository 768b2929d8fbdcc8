//! The txs a run sends, made before the measured window so their cost never pollutes it.
//!
//! `transfer`: signed transfers from the genesis test accounts, signed in parallel on every
//! core. `kvstore`: unsigned `key=value` writes with a per-run key prefix, so repeated runs
//! against one chain never collide with earlier txs.
//!
//! Contention: by default no two senders' txs touch the same state (each sender pays its own
//! recipient, an account past the funded ones; each kvstore tx writes its own key), so the
//! txs of a block fall into as many conflict groups as it has senders. `hot_accounts = N`
//! makes every tx pay one of N recipients (kvstore: write one of N keys), so a block has at
//! most N groups: what parallel execution can and cannot overlap.

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
    hot_accounts: Option<u64>,
) -> Result<TxSet> {
    if hot_accounts == Some(0) {
        anyhow::bail!("--hot-accounts must be at least 1");
    }
    match workload {
        AppKind::Transfer => presign(genesis, target, n, tx_size, hot_accounts).await,
        AppKind::KvStore => Ok(TxSet {
            txs: match hot_accounts {
                None => kv_txs(n, tx_size),
                Some(hot) => kv_hot_txs(n, tx_size, hot),
            },
            senders: n.max(1),
        }),
    }
}

fn run_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Pads `tx` with `v` up to `tx_size` bytes.
fn padded(mut tx: Vec<u8>, tx_size: usize) -> Vec<u8> {
    let pad = tx_size.saturating_sub(tx.len());
    tx.resize(tx.len() + pad, b'v');
    tx
}

/// `n` kvstore txs `r<run>-<i>=<padding>` of `tx_size` bytes (or just the key if longer).
pub fn kv_txs(n: u64, tx_size: usize) -> Vec<Vec<u8>> {
    let run = run_id();
    (0..n)
        .map(|i| padded(format!("r{run:x}-{i}=").into_bytes(), tx_size))
        .collect()
}

/// `n` kvstore txs writing `r<run>-hot<i % hot>`: the value starts with `i`, so each tx is
/// distinct (a repeated tx would be refused as a duplicate).
fn kv_hot_txs(n: u64, tx_size: usize, hot: u64) -> Vec<Vec<u8>> {
    let run = run_id();
    (0..n)
        .map(|i| {
            padded(
                format!("r{run:x}-hot{}={i}-", i % hot).into_bytes(),
                tx_size,
            )
        })
        .collect()
}

/// `n` signed transfers: sender `i % senders` at its next nonces, to its own recipient or to
/// hot recipient `i % hot`. Recipients are the seed's accounts after the funded ones (never a
/// sender), so they share state with no other sender.
async fn presign(
    genesis: &Genesis,
    target: &str,
    n: u64,
    tx_size: usize,
    hot: Option<u64>,
) -> Result<TxSet> {
    let senders = genesis.accounts.count.min(n).max(1);
    let keys: Vec<_> = (0..senders)
        .map(|i| account_key(&genesis.accounts.seed, i))
        .collect();
    let funded = genesis.accounts.count;
    let recipients: Vec<_> = (0..hot.unwrap_or(senders))
        .map(|i| address_of(&account_key(&genesis.accounts.seed, funded + i)))
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
                let (keys, nonces, chain, recipients) = (&keys, &nonces, &chain, &recipients);
                s.spawn(move || {
                    (start..(start + chunk).min(n as usize))
                        .map(|i| {
                            let s = i % keys.len();
                            let to = match hot {
                                Some(_) => recipients[i % recipients.len()],
                                None => recipients[s],
                            };
                            encode_transfer(
                                &keys[s],
                                Transfer {
                                    chain_id: chain.clone(),
                                    to,
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

    #[test]
    fn hot_kv_txs_share_their_keys_and_stay_distinct() {
        let txs = kv_hot_txs(1000, 512, 3);
        assert!(txs.iter().all(|t| t.len() == 512));
        let set: std::collections::HashSet<_> = txs.iter().collect();
        assert_eq!(set.len(), 1000);
        let keys: std::collections::HashSet<_> = txs
            .iter()
            .map(|t| tpslab_app::kvstore::parse_kv(t).unwrap().0.to_vec())
            .collect();
        assert_eq!(keys.len(), 3);
    }
}
