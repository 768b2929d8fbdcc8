//! The node's consensus engines: alone (one validator), BFT rounds, or Raft. Each gets the
//! same block pipeline and the p2p network through the consensus crate's ports; the node
//! picks one by the genesis's `consensus` and the validator count.

use anyhow::{Context, Result};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, watch};
use tpslab_api::config::Config;
use tpslab_api::genesis::Genesis;
use tpslab_api::home::Home;
use tpslab_consensus::bft::{Timeouts, Validator, ValidatorSet};
use tpslab_consensus::raft::metrics::RaftMetrics;
use tpslab_consensus::raft::{RaftConfig, RaftEngine};
use tpslab_consensus::signer::PrivValidator;
use tpslab_consensus::{
    BlockPipeline, Byzantine, CommitEvent, Reactor, ReactorConfig, SoloProducer,
};
use tpslab_p2p::{Event, Network, NetworkConfig, PeerId, PeerInfo};
use tpslab_statedb::StateDb;
use tpslab_types::keys::SigningKey;
use tracing::info;

/// How blocks get decided: alone, by BFT rounds, or by Raft. Boxed: each holds the whole
/// block pipeline.
pub(crate) enum Engine {
    Solo(Box<SoloProducer>),
    Bft {
        reactor: Box<Reactor>,
        net: Network,
        /// Consensus and block-sync traffic (tx gossip is routed to CheckTx).
        rx_engine: mpsc::Receiver<Event>,
    },
    Raft {
        engine: Box<RaftEngine>,
        net: Network,
        rx_engine: mpsc::Receiver<Event>,
    },
}

pub(crate) type EngineTask = tokio::task::JoinHandle<Result<(), tpslab_consensus::ConsensusError>>;

/// Starts the consensus engine's task; returns it with the network (multi-validator).
pub(crate) fn spawn_engine(
    engine: Engine,
    monitor: &tokio_metrics::TaskMonitor,
    rx_shutdown: watch::Receiver<bool>,
) -> (EngineTask, Option<Network>) {
    match engine {
        Engine::Solo(producer) => (
            tokio::spawn(monitor.instrument((*producer).run(rx_shutdown))),
            None,
        ),
        Engine::Bft {
            reactor,
            net,
            rx_engine,
        } => (
            tokio::spawn(monitor.instrument((*reactor).run(rx_engine, rx_shutdown))),
            Some(net),
        ),
        Engine::Raft {
            engine,
            net,
            rx_engine,
        } => (
            tokio::spawn(monitor.instrument((*engine).run(rx_engine, rx_shutdown))),
            Some(net),
        ),
    }
}

/// Validator public keys in genesis order (validated when the genesis was loaded).
fn validator_keys(genesis: &Genesis) -> Vec<[u8; 32]> {
    genesis
        .validators
        .iter()
        .map(|v| {
            let mut pubkey = [0u8; 32];
            if let Ok(b) = hex::decode(&v.pub_key) {
                if b.len() == 32 {
                    pubkey.copy_from_slice(&b);
                }
            }
            pubkey
        })
        .collect()
}

/// Starts the p2p network to the other validators (the handshake names the chain's engine).
pub(crate) async fn start_network(
    cfg: &Config,
    genesis: &Genesis,
    key: &SigningKey,
) -> Result<(Network, mpsc::Receiver<Event>)> {
    let me = key.verifying_key().to_bytes();
    let peers = cfg
        .p2p
        .parse_peers()
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .filter(|(k, _)| *k != me)
        .map(|(k, addr)| PeerInfo {
            id: PeerId(k),
            addr,
        })
        .collect();
    let listen = cfg.p2p.listen_addr.parse().context("p2p.listen_addr")?;
    let mut ncfg = NetworkConfig::new(genesis.chain_id.clone(), key.clone(), listen, peers);
    ncfg.engine = genesis.consensus.as_str().to_string();
    ncfg.max_frame_bytes = cfg.p2p.max_frame_bytes;
    ncfg.queue_capacity = cfg.p2p.send_queue;
    ncfg.zero_copy = crate::paths::zero_copy_net(cfg);
    let links = cfg
        .p2p
        .parse_links()
        .map_err(|(field, reason)| anyhow::anyhow!("{field}: {reason}"))?;
    ncfg.links = links.into_iter().map(|(k, s)| (PeerId(k), s)).collect();
    let (net, rx_net) = Network::start(ncfg)
        .await
        .with_context(|| format!("cannot start p2p on {}", cfg.p2p.listen_addr))?;
    info!(addr = %net.local_addr(), engine = %genesis.consensus, "p2p listening");
    Ok((net, rx_net))
}

/// The BFT reactor of a multi-validator chain.
pub(crate) fn bft_reactor(
    home: &Home,
    cfg: &Config,
    genesis: &Genesis,
    key: SigningKey,
    pipeline: BlockPipeline,
    net: Network,
    tx_commits: broadcast::Sender<Arc<CommitEvent>>,
) -> Result<Reactor> {
    let vals = Arc::new(ValidatorSet::new(
        validator_keys(genesis)
            .into_iter()
            .zip(&genesis.validators)
            .map(|(pubkey, v)| Validator {
                pubkey,
                power: v.power,
            })
            .collect(),
    ));
    let signer = PrivValidator::open(key.clone(), genesis.chain_id.clone(), &home.wal())
        .context("cannot open the consensus wal")?;
    let c = &cfg.consensus;
    let ms = std::time::Duration::from_millis;
    Ok(Reactor::new(
        ReactorConfig {
            timeouts: Timeouts {
                propose: ms(c.timeout_propose_ms),
                propose_delta: ms(c.timeout_propose_delta_ms),
                prevote: ms(c.timeout_prevote_ms),
                prevote_delta: ms(c.timeout_prevote_delta_ms),
                precommit: ms(c.timeout_precommit_ms),
                precommit_delta: ms(c.timeout_precommit_delta_ms),
            },
            commit_pause: c.block_interval(),
            adaptive_pause: crate::paths::adaptive_pause(cfg),
            max_frame_bytes: cfg.p2p.max_frame_bytes,
            compact_blocks: crate::paths::compact_blocks(cfg),
            byzantine: cfg.byzantine.as_ref().map(|b| Byzantine {
                behaviour: b.behaviour,
                forgeries: b.forgeries.clone(),
                key: key.clone(),
            }),
        },
        vals,
        signer,
        pipeline,
        Arc::new(net),
        tx_commits,
    )?)
}

/// The Raft engine of a multi-validator Raft chain; its log lives in the state DB.
#[allow(clippy::too_many_arguments)]
pub(crate) fn raft_engine(
    cfg: &Config,
    genesis: &Genesis,
    key: &SigningKey,
    db: &StateDb,
    pipeline: BlockPipeline,
    net: Network,
    metrics: RaftMetrics,
    tx_commits: broadcast::Sender<Arc<CommitEvent>>,
) -> Result<RaftEngine> {
    let keys = validator_keys(genesis);
    let me = key.verifying_key().to_bytes();
    let index = keys
        .iter()
        .position(|k| *k == me)
        .context("this node's key is not a validator in the genesis")?;
    Ok(RaftEngine::new(
        RaftConfig {
            tick: cfg.raft.tick(),
            election_ticks: cfg.raft.election_ticks,
            heartbeat_ticks: cfg.raft.heartbeat_ticks,
            linger: cfg.raft.linger(),
            max_block_txs: cfg.consensus.max_block_txs,
            seed: None,
            log_keep: cfg.raft.log_keep,
            max_frame_bytes: cfg.p2p.max_frame_bytes,
        },
        keys.into_iter().map(PeerId).collect(),
        index,
        Arc::new(db.clone()),
        pipeline,
        Arc::new(net),
        metrics,
        tx_commits,
    )?)
}
