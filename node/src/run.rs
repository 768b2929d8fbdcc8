//! `tpslab node`: wires the state DB, mempool, block producer and gRPC API of one validator,
//! and shuts them down in order on SIGINT/SIGTERM.

use crate::frame_check::FrameCheck;
use crate::gossip::TxGossip;
use crate::service::NodeApi;
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
use tpslab_consensus::metrics::ConsensusMetrics;
use tpslab_consensus::signer::PrivValidator;
use tpslab_consensus::{
    BlockLimits, BlockPipeline, CommitEvent, Reactor, ReactorConfig, SoloConfig, SoloProducer,
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
    let genesis = Genesis::load(&home.genesis())?;
    let key = keyfile::load(&home.key())?;
    let pubkey = hex::encode(key.verifying_key().as_bytes());
    if !genesis.validators.iter().any(|v| v.pub_key == pubkey) {
        bail!("this node's key {pubkey} is not a validator in the genesis");
    }
    let solo = genesis.validators.len() == 1;
    if !solo {
        cfg.check_against_genesis(
            &home.config().display().to_string(),
            &genesis.chain_id,
            genesis.validators.len(),
        )?;
    }

    let db = StateDb::open(
        &home.data(),
        &StateDbOptions {
            sync_writes: cfg.storage.sync_writes,
            read_cache: cfg.tuning.read_cache,
            sharded_state: cfg.tuning.sharded_state,
        },
    )
    .with_context(|| format!("cannot open state db {}", home.data().display()))?;
    let accounts = genesis.account_map();
    let last = db
        .init_genesis(
            cfg.app,
            &genesis.chain_id,
            genesis.genesis_time_unix_nanos,
            &accounts,
        )
        .context("cannot initialise state from genesis")?;
    drop(accounts);
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

    let sig_cache = Arc::new(SigCache::new(cfg.mempool.cache_size));
    info!(tuning = ?cfg.tuning.enabled(), "tuning toggles on");
    let mempool = Arc::new(
        Mempool::new(
            MempoolConfig {
                app: cfg.app,
                chain_id: genesis.chain_id.clone(),
                max_txs: cfg.mempool.max_txs,
                max_bytes: cfg.mempool.max_bytes,
                max_tx_bytes: cfg.mempool.max_tx_bytes,
                cache_size: cfg.mempool.cache_size,
                sig_batch: cfg.tuning.sig_batch,
                recheck_incremental: cfg.tuning.recheck_incremental,
                buffer_pool: cfg.tuning.buffer_pool,
            },
            db.clone(),
        )
        .with_sig_cache(sig_cache.clone()),
    );
    let (tx_commits, _) = broadcast::channel(COMMIT_EVENT_BUFFER);
    let (tx_shutdown, rx_shutdown) = watch::channel(false);

    let consensus_metrics = ConsensusMetrics::default();
    let tasks = crate::tasks::TaskMonitors::default();
    let pipeline = BlockPipeline {
        app: cfg.app,
        chain_id: genesis.chain_id.clone(),
        key: key.clone(),
        db: db.clone(),
        mempool: mempool.clone(),
        limits: BlockLimits {
            max_txs: cfg.consensus.max_block_txs,
            max_bytes: cfg.consensus.max_block_bytes,
        },
        last_commit,
        metrics: consensus_metrics.clone(),
        tuning: cfg.tuning,
        sig_cache,
    };
    let (mut producer_task, gossip) = if solo {
        let producer = SoloProducer::new(
            SoloConfig {
                max_block_txs: cfg.consensus.max_block_txs,
                block_interval: cfg.consensus.block_interval(),
                create_empty_blocks: cfg.consensus.create_empty_blocks,
            },
            pipeline,
            tx_commits.clone(),
        );
        (
            tokio::spawn(
                tasks
                    .consensus
                    .instrument(producer.run(rx_shutdown.clone())),
            ),
            None,
        )
    } else {
        let (reactor, net, rx_net) = start_bft(
            &home,
            &cfg,
            &genesis,
            key.clone(),
            pipeline,
            tx_commits.clone(),
        )
        .await?;
        (
            tokio::spawn(
                tasks
                    .consensus
                    .instrument(reactor.run(rx_net, rx_shutdown.clone())),
            ),
            Some(net),
        )
    };

    let api = NodeApi {
        mempool,
        db,
        commits: tx_commits,
        chain_id: genesis.chain_id.clone(),
        validator: key.verifying_key().to_bytes().to_vec(),
        gossip: gossip.clone().map(|net| {
            TxGossip::new(
                net,
                cfg.tuning.gossip_batch,
                cfg.p2p.max_frame_bytes,
                &tasks.gossip,
            )
        }),
        crypto_pool: cfg.tuning.crypto_pool,
        tasks: tasks.clone(),
        consensus: consensus_metrics.clone(),
    };
    let listener = TcpListener::bind(&cfg.api.grpc_addr)
        .await
        .with_context(|| format!("cannot bind gRPC address {}", cfg.api.grpc_addr))?;
    let addr = listener.local_addr()?;
    write_atomic(&home.grpc_addr_file(), &addr.to_string())?;
    info!(%addr, "gRPC API listening");

    let mut registry = Registry::default();
    consensus_metrics.register(&mut registry);
    api.mempool.metrics().register(&mut registry);
    if let Some(net) = &gossip {
        net.metrics().register(&mut registry);
    }
    let metrics_task = crate::http::serve_metrics(
        &home,
        &cfg.api.metrics_addr,
        registry,
        api.db.clone(),
        api.mempool.stages().clone(),
        tasks,
        rx_shutdown.clone(),
    )
    .await?;

    let mut rx_server_stop = rx_shutdown.clone();
    let server = tonic::transport::Server::builder()
        .add_service(NodeServer::new(api))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = rx_server_stop.wait_for(|s| *s).await;
        });
    let mut server_task = tokio::spawn(server);

    // Whichever ends first: a signal, or a component failing.
    let outcome: Result<()> = tokio::select! {
        sig = shutdown_signal() => { info!(signal = sig, "shutting down"); Ok(()) }
        r = &mut producer_task => match r {
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
    // The producer finishes the block in flight (one atomic write) before it returns.
    if !producer_task.is_finished() {
        match producer_task.await {
            Ok(Err(e)) => warn!(error = %e, "block producer failed during shutdown"),
            Err(e) => warn!(error = %e, "block producer task died during shutdown"),
            Ok(Ok(())) => {}
        }
    }
    if !server_task.is_finished() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server_task).await;
    }
    if let Some(net) = &gossip {
        net.shutdown();
    }
    metrics_task.abort();
    let _ = std::fs::remove_file(home.metrics_addr_file());
    let _ = std::fs::remove_file(home.grpc_addr_file());
    info!("stopped");
    outcome
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
