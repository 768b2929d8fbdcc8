//! `tpslab node`: [`Node::build`] wires the state DB, mempool, block pipeline, consensus
//! engine and p2p of one validator; [`Node::run`] serves the gRPC API and /metrics, and shuts
//! everything down in order on SIGINT/SIGTERM or when a component fails.

use crate::engines::{bft_reactor, raft_engine, spawn_engine, start_network, Engine};
use crate::frame_check::FrameCheck;
use crate::gossip::{self, TxGossip};
use crate::paths;
use crate::service::NodeApi;
use crate::telemetry::Telemetry;
use anyhow::{bail, Context, Result};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tpslab_api::config::Config;
use tpslab_api::genesis::Genesis;
use tpslab_api::home::{write_atomic, Home};
use tpslab_api::keyfile;
use tpslab_api::proto::node_server::NodeServer;
use tpslab_consensus::{
    BlockLimits, BlockPipeline, CommitEvent, PipelineParts, SoloConfig, SoloProducer,
};
use tpslab_mempool::Mempool;
use tpslab_p2p::Network;
use tpslab_statedb::StateDb;
use tpslab_types::keys::SigningKey;
use tpslab_types::sigcache::SigCache;
use tpslab_types::EngineKind;
use tracing::{info, warn};

/// Commit events buffered per subscriber before it is told it lagged.
const COMMIT_EVENT_BUFFER: usize = 4096;

/// Command-line overrides of config values.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Replaces `api.grpc_addr`.
    pub grpc_addr: Option<String>,
    /// Honour a `[byzantine]` section (test only); without it such a config is refused.
    pub allow_byzantine: bool,
}

/// Loads the home's config, applying overrides.
pub fn load_config(home: &Home, o: &Overrides) -> Result<Config> {
    let mut cfg = Config::load(&home.config())?;
    if let Some(a) = &o.grpc_addr {
        cfg.api.grpc_addr = a.clone();
    }
    if let Some(b) = &cfg.byzantine {
        if !o.allow_byzantine {
            bail!(
                "{} has a [byzantine] section (behaviour = \"{}\"): a test-only mode that makes this validator lie; refusing to start without --allow-byzantine",
                home.config().display(),
                b.behaviour
            );
        }
    }
    Ok(cfg)
}

/// Runs the validator until a shutdown signal. `fault_injection` serves the fault endpoint
/// (`POST /fault/isolate`) for a test harness.
pub async fn run(home: Home, cfg: Config, fault_injection: bool) -> Result<()> {
    let mut node = Node::build(home, cfg).await?;
    node.fault_injection = fault_injection;
    node.run().await
}

/// A validator with every component built and wired, not yet serving.
pub struct Node {
    home: Home,
    cfg: Config,
    chain_id: String,
    consensus: EngineKind,
    validator: Vec<u8>,
    db: StateDb,
    mempool: Arc<Mempool<StateDb>>,
    commits: broadcast::Sender<Arc<CommitEvent>>,
    telemetry: Telemetry,
    engine: Engine,
    tx_shutdown: watch::Sender<bool>,
    /// The verified-signature cache, with sig-cache on (its lookups are on /metrics).
    sig_cache: Option<Arc<SigCache>>,
    /// Serve the fault-injection endpoint (test harnesses only).
    pub fault_injection: bool,
}

/// Every component's metrics, for `/metrics`.
fn registry(
    telemetry: &Telemetry,
    raft: bool,
    api: &NodeApi,
    sig_cache: Option<Arc<SigCache>>,
    net: Option<&tpslab_p2p::Network>,
    tuning: &tpslab_types::tuning::Tuning,
) -> Registry {
    let mut registry = Registry::default();
    register_tuning(&mut registry, tuning);
    telemetry.consensus.register(&mut registry);
    if raft {
        telemetry.raft.register(&mut registry);
    }
    api.mempool.metrics().register(&mut registry);
    if let Some(cache) = sig_cache {
        registry.register_collector(Box::new(crate::sig_cache_metrics::SigCacheCollector(cache)));
    }
    if let Some(net) = net {
        net.metrics().register(&mut registry);
    }
    registry
}

/// `tpslab_tuning_enabled{toggle}`: 1 for each toggle on, 0 for each off, so a dashboard
/// (and a rollout) sees which validators run which paths without reading their configs.
fn register_tuning(registry: &mut Registry, tuning: &tpslab_types::tuning::Tuning) {
    let family: Family<Vec<(String, String)>, Gauge> = Family::default();
    for t in tpslab_types::tuning::CATALOGUE {
        family
            .get_or_create(&vec![("toggle".to_string(), t.name.to_string())])
            .set(i64::from(tuning.get(t.name).unwrap_or(false)));
    }
    registry.register(
        "tpslab_tuning_enabled",
        "1 if the tuning toggle is on in this process ([tuning] in config.toml), 0 if off",
        family,
    );
}

/// A `[byzantine]` section only makes sense where someone can be lied to and the engine's
/// model covers liars.
fn check_byzantine(cfg: &Config, genesis: &Genesis) -> Result<()> {
    if cfg.byzantine.is_none() {
        return Ok(());
    }
    if genesis.validators.len() == 1 {
        bail!("[byzantine] needs a multi-validator chain: a single validator has no one to lie to");
    }
    if genesis.consensus == EngineKind::Raft {
        bail!("[byzantine] needs a BFT chain: Raft trusts every node, a lying one is outside its model");
    }
    Ok(())
}

fn mempool(
    cfg: &Config,
    genesis: &Genesis,
    db: &StateDb,
    sig_cache: Option<&Arc<SigCache>>,
    telemetry: &Telemetry,
) -> Arc<Mempool<StateDb>> {
    let mut pool = Mempool::new(paths::mempool(cfg, &genesis.chain_id), db.clone())
        .with_stages(telemetry.stages.clone());
    if let Some(cache) = sig_cache {
        pool = pool.with_sig_cache(cache.clone());
    }
    Arc::new(pool)
}

fn block_limits(cfg: &Config) -> BlockLimits {
    BlockLimits {
        max_txs: cfg.consensus.max_block_txs,
        max_bytes: cfg.consensus.max_block_bytes,
    }
}

fn solo_engine(
    cfg: &Config,
    pipeline: BlockPipeline,
    commits: broadcast::Sender<Arc<CommitEvent>>,
) -> Engine {
    Engine::Solo(Box::new(SoloProducer::new(
        SoloConfig {
            max_block_txs: cfg.consensus.max_block_txs,
            block_interval: cfg.consensus.block_interval(),
            create_empty_blocks: cfg.consensus.create_empty_blocks,
        },
        pipeline,
        commits,
    )))
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
        let sig_cache = paths::sig_cache(&cfg);
        info!(tuning = ?cfg.tuning.enabled(), "tuning toggles on");
        let mempool = mempool(&cfg, &genesis, &db, sig_cache.as_ref(), &telemetry);
        let (commits, _) = broadcast::channel(COMMIT_EVENT_BUFFER);
        let (tx_shutdown, _) = watch::channel(false);
        let pipeline = BlockPipeline::new(PipelineParts {
            exec: paths::exec(&cfg, &genesis.chain_id, sig_cache.clone()),
            key: key.clone(),
            ledger: Arc::new(db.clone()),
            pool: mempool.clone(),
            limits: block_limits(&cfg),
            last_commit,
            metrics: telemetry.consensus.clone(),
            stages: telemetry.stages.clone(),
        });
        check_byzantine(&cfg, &genesis)?;
        let engine = if solo {
            solo_engine(&cfg, pipeline, commits.clone())
        } else {
            let (net, rx_net) = start_network(&cfg, &genesis, &key).await?;
            let rx_engine = gossip::route(
                rx_net,
                mempool.clone(),
                telemetry.stages.clone(),
                paths::CheckPlace::of(&cfg),
                paths::check_gather(&cfg),
            );
            match genesis.consensus {
                EngineKind::Bft => Engine::Bft {
                    reactor: Box::new(bft_reactor(
                        &home,
                        &cfg,
                        &genesis,
                        key.clone(),
                        pipeline,
                        net.clone(),
                        commits.clone(),
                    )?),
                    net,
                    rx_engine,
                },
                EngineKind::Raft => Engine::Raft {
                    engine: Box::new(raft_engine(
                        &cfg,
                        &genesis,
                        &key,
                        &db,
                        pipeline,
                        net.clone(),
                        telemetry.raft.clone(),
                        commits.clone(),
                    )?),
                    net,
                    rx_engine,
                },
            }
        };
        Ok(Node {
            validator: key.verifying_key().to_bytes().to_vec(),
            chain_id: genesis.chain_id,
            consensus: genesis.consensus,
            home,
            cfg,
            db,
            mempool,
            commits,
            telemetry,
            engine,
            tx_shutdown,
            sig_cache,
            fault_injection: false,
        })
    }

    /// Serves the gRPC API and /metrics and runs consensus until a signal or a component
    /// failing; then stops them in order (the block in flight is finished first).
    pub async fn run(self) -> Result<()> {
        let Node {
            home,
            cfg,
            chain_id,
            consensus,
            validator,
            db,
            mempool,
            commits,
            telemetry,
            engine,
            tx_shutdown,
            sig_cache,
            fault_injection,
        } = self;
        let rx_shutdown = tx_shutdown.subscribe();
        let raft = matches!(engine, Engine::Raft { .. });
        let (mut engine_task, net) =
            spawn_engine(engine, &telemetry.tasks.consensus, rx_shutdown.clone());
        let gossip_dropped = mempool.metrics().gossip_dropped.clone();
        let api = NodeApi {
            mempool,
            db,
            commits,
            chain_id,
            validator,
            consensus,
            gossip: net.clone().map(|net| {
                TxGossip::new(
                    net,
                    paths::gossip_batch(&cfg),
                    cfg.p2p.max_frame_bytes,
                    &telemetry.tasks.gossip,
                    gossip_dropped,
                )
            }),
            check_place: paths::CheckPlace::of(&cfg),
            check_gather: paths::check_gather(&cfg),
            telemetry: telemetry.clone(),
            admin: crate::admin::Admin::new(cfg.api.admin_token.clone()),
        };
        let admin = api.admin.clone();
        let registry = registry(&telemetry, raft, &api, sig_cache, net.as_ref(), &cfg.tuning);
        let metrics_task = crate::http::serve_metrics(
            &home,
            &cfg.api.metrics_addr,
            registry,
            api.db.clone(),
            &telemetry,
            net.clone().filter(|_| fault_injection),
            rx_shutdown.clone(),
        )
        .await?;
        let mut server_task = serve_grpc(&home, &cfg, api, rx_shutdown).await?;

        // Whichever ends first: a signal, or a component failing.
        let outcome: Result<()> = tokio::select! {
            sig = shutdown_signal() => { info!(signal = sig, "shutting down"); Ok(()) }
            _ = admin.stop_requested() => { info!("shutting down (admin RPC)"); Ok(()) }
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
use crate::engines::EngineTask;

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
    let db = StateDb::open(&home.data(), &paths::state_db(cfg))
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
