//! `tpslab node`: [`Node::build`] wires the state DB, mempool, block pipeline, consensus
//! engine and p2p of one validator; [`Node::run`] serves the gRPC API and /metrics, and shuts
//! everything down in order on SIGINT/SIGTERM or when a component fails.

use crate::frame_check::FrameCheck;
use crate::gossip::{self, TxGossip};
use crate::service::NodeApi;
use crate::telemetry::Telemetry;
use anyhow::{bail, Context, Result};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tpslab_api::config::Config;
use tpslab_api::genesis::Genesis;
use tpslab_api::home::{write_atomic, Home};
use tpslab_api::keyfile;
use tpslab_api::proto::node_server::NodeServer;
use tpslab_consensus::bft::{Timeouts, Validator, ValidatorSet};
use tpslab_consensus::signer::PrivValidator;
use tpslab_consensus::{
    BlockLimits, BlockPipeline, CommitEvent, PipelineParts, Reactor, ReactorConfig, SoloConfig,
    SoloProducer,
};
use tpslab_mempool::{Mempool, MempoolConfig};
use tpslab_p2p::{Event, Network, NetworkConfig, PeerId, PeerInfo};
use tpslab_statedb::{StateDb, StateDbOptions};
use tpslab_types::keys::SigningKey;
use tpslab_types::sigcache::SigCache;
use tracing::{info, warn};

/// Commit events buffered per subscriber before it is told it lagged.
const COMMIT_EVENT_BUFFER: usize = 4096;

/// Command-line overrides of config values.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Replaces `api.grpc_addr`.
    pub grpc_addr: Option<String>,
}

/// Loads the home's config, applying overrides.
pub fn load_config(home: &Home, o: &Overrides) -> Result<Config> {
    let mut cfg = Config::load(&home.config())?;
    if let Some(a) = &o.grpc_addr {
        cfg.api.grpc_addr = a.clone();
    }
    Ok(cfg)
}

/// Runs the validator until a shutdown signal.
pub async fn run(home: Home, cfg: Config) -> Result<()> {
    Node::build(home, cfg).await?.run().await
}

/// How blocks get decided: alone, or by BFT rounds with the other validators. Both are
/// boxed: each holds the whole block pipeline.
enum Engine {
    Solo(Box<SoloProducer>),
    Bft {
        reactor: Box<Reactor>,
        net: Network,
        /// Consensus and block-sync traffic (tx gossip is routed to CheckTx).
        rx_engine: mpsc::Receiver<Event>,
    },
}

/// A validator with every component built and wired, not yet serving.
pub struct Node {
    home: Home,
    cfg: Config,
    chain_id: String,
    validator: Vec<u8>,
    db: StateDb,
    mempool: Arc<Mempool<StateDb>>,
    commits: broadcast::Sender<Arc<CommitEvent>>,
    telemetry: Telemetry,
    engine: Engine,
    tx_shutdown: watch::Sender<bool>,
}

impl Node {
    /// Checks the home's files against each other, opens the state (initialising it from the
    /// genesis on first start), and builds mempool, block pipeline and consensus engine (with
    /// the p2p network on a multi-validator chain, already listening and dialing).
    pub async fn build(home: Home, cfg: Config) -> Result<Node> {
        let (genesis, key) = load_identity(&home, &cfg)?;
        let solo = genesis.validators.len() == 1;
        let (db, last_commit) = open_state(&home, &cfg, &genesis)?;
        let telemetry = Telemetry::default();
        let sig_cache = Arc::new(SigCache::new(cfg.mempool.cache_size));
        info!(tuning = ?cfg.tuning.enabled(), "tuning toggles on");
        let mempool = Arc::new(
            Mempool::new(mempool_config(&cfg, &genesis.chain_id), db.clone())
                .with_sig_cache(sig_cache.clone())
                .with_stages(telemetry.stages.clone()),
        );
        let (commits, _) = broadcast::channel(COMMIT_EVENT_BUFFER);
        let (tx_shutdown, _) = watch::channel(false);
        let pipeline = BlockPipeline::new(PipelineParts {
            app: cfg.app,
            chain_id: genesis.chain_id.clone(),
            key: key.clone(),
            ledger: Arc::new(db.clone()),
            pool: mempool.clone(),
            limits: BlockLimits {
                max_txs: cfg.consensus.max_block_txs,
                max_bytes: cfg.consensus.max_block_bytes,
            },
            last_commit,
            metrics: telemetry.consensus.clone(),
            tuning: cfg.tuning,
            sig_cache,
            stages: telemetry.stages.clone(),
        });
        let engine = if solo {
            Engine::Solo(Box::new(SoloProducer::new(
                SoloConfig {
                    max_block_txs: cfg.consensus.max_block_txs,
                    block_interval: cfg.consensus.block_interval(),
                    create_empty_blocks: cfg.consensus.create_empty_blocks,
                },
                pipeline,
                commits.clone(),
            )))
        } else {
            let (reactor, net, rx_net) = start_bft(
                &home,
                &cfg,
                &genesis,
                key.clone(),
                pipeline,
                commits.clone(),
            )
            .await?;
            let rx_engine = gossip::route(
                rx_net,
                mempool.clone(),
                telemetry.stages.clone(),
                cfg.tuning.crypto_pool,
            );
            Engine::Bft {
                reactor: Box::new(reactor),
                net,
                rx_engine,
            }
        };
        Ok(Node {
            validator: key.verifying_key().to_bytes().to_vec(),
            chain_id: genesis.chain_id,
            home,
            cfg,
            db,
            mempool,
            commits,
            telemetry,
            engine,
            tx_shutdown,
        })
    }

    /// Serves the gRPC API and /metrics and runs consensus until a signal or a component
    /// failing; then stops them in order (the block in flight is finished first).
    pub async fn run(self) -> Result<()> {
        let Node {
            home,
            cfg,
            chain_id,
            validator,
            db,
            mempool,
            commits,
            telemetry,
            engine,
            tx_shutdown,
        } = self;
        let rx_shutdown = tx_shutdown.subscribe();
        let (mut engine_task, net) =
            spawn_engine(engine, &telemetry.tasks.consensus, rx_shutdown.clone());
        let api = NodeApi {
            mempool,
            db,
            commits,
            chain_id,
            validator,
            gossip: net.clone().map(|net| {
                TxGossip::new(
                    net,
                    cfg.tuning.gossip_batch,
                    cfg.p2p.max_frame_bytes,
                    &telemetry.tasks.gossip,
                )
            }),
            crypto_pool: cfg.tuning.crypto_pool,
            telemetry: telemetry.clone(),
        };
        let mut registry = Registry::default();
        telemetry.consensus.register(&mut registry);
        api.mempool.metrics().register(&mut registry);
        if let Some(net) = &net {
            net.metrics().register(&mut registry);
        }
        let metrics_task = crate::http::serve_metrics(
            &home,
            &cfg.api.metrics_addr,
            registry,
            api.db.clone(),
            &telemetry,
            rx_shutdown.clone(),
        )
        .await?;
        let mut server_task = serve_grpc(&home, &cfg, api, rx_shutdown).await?;

        // Whichever ends first: a signal, or a component failing.
        let outcome: Result<()> = tokio::select! {
            sig = shutdown_signal() => { info!(signal = sig, "shutting down"); Ok(()) }
            r = &mut engine_task => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("block producer failed")),
                Err(e) => Err(anyhow::anyhow!("block producer task died: {e}")),
            },
            r = &mut server_task => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("gRPC server failed")),
                Err(e) => Err(anyhow::anyhow!("gRPC server task died: {e}")),
            },
        };
        let _ = tx_shutdown.send(true);
        stop_in_order(engine_task, server_task, net.as_ref()).await;
        metrics_task.abort();
        let _ = std::fs::remove_file(home.metrics_addr_file());
        let _ = std::fs::remove_file(home.grpc_addr_file());
        info!("stopped");
        outcome
    }
}

type ServerTask = tokio::task::JoinHandle<Result<(), tonic::transport::Error>>;
type EngineTask = tokio::task::JoinHandle<Result<(), tpslab_consensus::ConsensusError>>;

/// Starts the consensus engine's task; returns it with the network (multi-validator).
fn spawn_engine(
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
    }
}

/// After shutdown was signalled: the engine finishes the block in flight (one atomic write)
/// before it returns; the gRPC server gets 5 s to drain; then the network closes.
async fn stop_in_order(engine: EngineTask, server: ServerTask, net: Option<&Network>) {
    if !engine.is_finished() {
        match engine.await {
            Ok(Err(e)) => warn!(error = %e, "block producer failed during shutdown"),
            Err(e) => warn!(error = %e, "block producer task died during shutdown"),
            Ok(Ok(())) => {}
        }
    }
    if !server.is_finished() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    }
    if let Some(net) = net {
        net.shutdown();
    }
}

/// Binds the gRPC address (written to `<home>/grpc.addr`) and serves `api` until shutdown.
async fn serve_grpc(
    home: &Home,
    cfg: &Config,
    api: NodeApi,
    mut rx_stop: watch::Receiver<bool>,
) -> Result<ServerTask> {
    let listener = TcpListener::bind(&cfg.api.grpc_addr)
        .await
        .with_context(|| format!("cannot bind gRPC address {}", cfg.api.grpc_addr))?;
    let addr = listener.local_addr()?;
    write_atomic(&home.grpc_addr_file(), &addr.to_string())?;
    info!(%addr, "gRPC API listening");
    let server = tonic::transport::Server::builder()
        .add_service(NodeServer::new(api))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = rx_stop.wait_for(|s| *s).await;
        });
    Ok(tokio::spawn(server))
}

/// The genesis and this validator's key, checked against each other and the config.
fn load_identity(home: &Home, cfg: &Config) -> Result<(Genesis, SigningKey)> {
    let genesis = Genesis::load(&home.genesis())?;
    let key = keyfile::load(&home.key())?;
    let pubkey = hex::encode(key.verifying_key().as_bytes());
    if !genesis.validators.iter().any(|v| v.pub_key == pubkey) {
        bail!("this node's key {pubkey} is not a validator in the genesis");
    }
    if genesis.validators.len() > 1 {
        cfg.check_against_genesis(
            &home.config().display().to_string(),
            &genesis.chain_id,
            genesis.validators.len(),
        )?;
    }
    Ok((genesis, key))
}

/// Opens the state DB and initialises it from the genesis on first start; returns it with
/// the last block's commit (the next block carries it).
fn open_state(
    home: &Home,
    cfg: &Config,
    genesis: &Genesis,
) -> Result<(StateDb, Option<tpslab_types::pb::Commit>)> {
    let db = StateDb::open(
        &home.data(),
        &StateDbOptions {
            sync_writes: cfg.storage.sync_writes,
            read_cache: cfg.tuning.read_cache,
            sharded_state: cfg.tuning.sharded_state,
        },
    )
    .with_context(|| format!("cannot open state db {}", home.data().display()))?;
    let last = db
        .init_genesis(
            cfg.app,
            &genesis.chain_id,
            genesis.genesis_time_unix_nanos,
            &genesis.account_map(),
        )
        .context("cannot initialise state from genesis")?;
    info!(
        chain_id = %genesis.chain_id,
        height = last.height,
        app_hash = %last.app_hash,
        "state loaded"
    );
    let last_commit = match last.height {
        0 => None,
        h => db.block(h)?.and_then(|r| r.commit),
    };
    Ok((db, last_commit))
}

/// The mempool's settings: the `[mempool]` section, with the chain and the toggles that
/// apply to admission.
fn mempool_config(cfg: &Config, chain_id: &str) -> MempoolConfig {
    MempoolConfig {
        app: cfg.app,
        chain_id: chain_id.to_string(),
        max_txs: cfg.mempool.max_txs,
        max_bytes: cfg.mempool.max_bytes,
        max_tx_bytes: cfg.mempool.max_tx_bytes,
        cache_size: cfg.mempool.cache_size,
        sig_batch: cfg.tuning.sig_batch,
        recheck_incremental: cfg.tuning.recheck_incremental,
        buffer_pool: cfg.tuning.buffer_pool,
    }
}

/// Starts the p2p network and the BFT reactor of a multi-validator chain.
async fn start_bft(
    home: &Home,
    cfg: &Config,
    genesis: &Genesis,
    key: SigningKey,
    pipeline: BlockPipeline,
    tx_commits: broadcast::Sender<Arc<CommitEvent>>,
) -> Result<(Reactor, Network, mpsc::Receiver<Event>)> {
    let vals = Arc::new(ValidatorSet::new(
        genesis
            .validators
            .iter()
            .map(|v| {
                let mut pubkey = [0u8; 32];
                // Validated when the genesis was loaded.
                if let Ok(b) = hex::decode(&v.pub_key) {
                    if b.len() == 32 {
                        pubkey.copy_from_slice(&b);
                    }
                }
                Validator {
                    pubkey,
                    power: v.power,
                }
            })
            .collect(),
    ));
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
    ncfg.max_frame_bytes = cfg.p2p.max_frame_bytes;
    ncfg.queue_capacity = cfg.p2p.send_queue;
    ncfg.zero_copy = cfg.tuning.zero_copy_net;
    let (net, rx_net) = Network::start(ncfg)
        .await
        .with_context(|| format!("cannot start p2p on {}", cfg.p2p.listen_addr))?;
    info!(addr = %net.local_addr(), "p2p listening");
    let signer = PrivValidator::open(key, genesis.chain_id.clone(), &home.wal())
        .context("cannot open the consensus wal")?;
    let c = &cfg.consensus;
    let ms = std::time::Duration::from_millis;
    let reactor = Reactor::new(
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
            max_frame_bytes: cfg.p2p.max_frame_bytes,
        },
        vals,
        signer,
        pipeline,
        net.clone(),
        tx_commits,
    )?;
    Ok((reactor, net, rx_net))
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[mempool]` defaults of the file format are the mempool's own defaults.
    #[test]
    fn mempool_section_defaults_match_the_mempool() {
        let c = mempool_config(&Config::default(), "tpslab");
        let d = MempoolConfig::default();
        assert_eq!(
            (c.max_txs, c.max_bytes, c.max_tx_bytes, c.cache_size),
            (d.max_txs, d.max_bytes, d.max_tx_bytes, d.cache_size)
        );
    }
}
