//! The gRPC API (`proto/api.proto`), served by tonic.

use crate::gather::Gatherer;
use crate::gossip::TxGossip;
use crate::paths::CheckPlace;
use crate::telemetry::Telemetry;
use futures::FutureExt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status, Streaming};
use tpslab_api::proto::node_server::Node;
use tpslab_api::proto::{
    Account as PbAccount, BroadcastTxRequest, BroadcastTxResponse, CommitEvent as PbCommitEvent,
    GetAccountRequest, GetBlockRequest, ShutdownRequest, ShutdownResponse, StatusRequest,
    StatusResponse, SubscribeCommitsRequest,
};
use tpslab_consensus::CommitEvent;
use tpslab_mempool::{CheckTxError, Mempool, RejectReason};
use tpslab_statedb::StateDb;
use tpslab_types::stages::{now_unix_nanos, since_unix_nanos, Stage};
use tpslab_types::tx::tx_hash;
use tpslab_types::{pb, Address};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The API's view of the node.
#[derive(Clone)]
pub struct NodeApi {
    /// Where broadcast txs go.
    pub mempool: Arc<Mempool<StateDb>>,
    /// Committed state and blocks.
    pub db: StateDb,
    /// Commit announcements.
    pub commits: broadcast::Sender<Arc<CommitEvent>>,
    /// Chain id.
    pub chain_id: String,
    /// This validator's public key.
    pub validator: Vec<u8>,
    /// The chain's consensus engine.
    pub consensus: tpslab_types::EngineKind,
    /// Where accepted txs are gossiped (multi-validator chains).
    pub gossip: Option<TxGossip>,
    /// crypto-pool toggle: where CheckTx of streamed txs runs (each chunk of what has
    /// arrived: inline on the I/O thread, or on the blocking pool).
    pub check_place: CheckPlace,
    /// sig-batch: how long a stream's chunk may gather txs (with crypto-pool's pool; None:
    /// what has arrived).
    pub check_gather: Option<Duration>,
    /// Where the API times the check_tx and notify stages, reads the current round, and
    /// monitors the tasks it spawns (stream handlers, subscriptions).
    pub telemetry: Telemetry,
    /// The admin RPC's token check and the stop it asks for.
    pub admin: crate::admin::Admin,
}

/// Most streamed txs checked in one go (one blocking-pool task with crypto-pool on).
const CHECK_CHUNK: usize = 1024;

/// The gRPC status of a CheckTx rejection (the table in `proto/api.proto`).
pub fn status_code(e: &CheckTxError) -> Code {
    match e.reason() {
        RejectReason::TooLarge
        | RejectReason::Malformed
        | RejectReason::WrongChainId
        | RejectReason::BadSignature => Code::InvalidArgument,
        RejectReason::NonceTooLow
        | RejectReason::NonceTooHigh
        | RejectReason::InsufficientFunds => Code::FailedPrecondition,
        RejectReason::Duplicate => Code::AlreadyExists,
        RejectReason::MempoolFull => Code::ResourceExhausted,
        RejectReason::Internal => Code::Internal,
    }
}

/// Raft's state as its gauges hold it.
fn raft_status(m: &tpslab_consensus::raft::metrics::RaftMetrics) -> tpslab_api::proto::RaftStatus {
    let n = |g: &prometheus_client::metrics::gauge::Gauge| u64::try_from(g.get()).unwrap_or(0);
    tpslab_api::proto::RaftStatus {
        role: match m.role.get() {
            2 => "leader",
            1 => "candidate",
            3 => "pre-candidate",
            _ => "follower",
        }
        .to_string(),
        term: n(&m.term),
        leader: n(&m.leader),
        commit_index: n(&m.commit_index),
        applied_index: n(&m.applied_index),
    }
}

impl NodeApi {
    /// CheckTx of one request received at `received`.
    fn check(&self, req: &BroadcastTxRequest, received: Instant) -> BroadcastTxResponse {
        let r = self.mempool.check_tx(&req.tx);
        if r.is_ok() {
            let stages = &self.telemetry.stages;
            stages.record(Stage::CheckTx, received.elapsed());
        }
        self.respond(req, r)
    }

    /// CheckTx of several requests at once (signatures batched with the sig-batch toggle);
    /// `received[i]` is when `reqs[i]` arrived.
    fn check_many(
        &self,
        reqs: &[BroadcastTxRequest],
        received: &[Instant],
    ) -> Vec<BroadcastTxResponse> {
        let raws: Vec<&[u8]> = reqs.iter().map(|r| r.tx.as_slice()).collect();
        let results = self.mempool.check_txs(&raws);
        // One histogram lock for the chunk, not one per tx.
        let waits = received
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(at, _)| at.elapsed());
        self.telemetry.stages.record_all(Stage::CheckTx, waits);
        reqs.iter()
            .zip(results)
            .map(|(req, r)| self.respond(req, r))
            .collect()
    }

    fn respond(
        &self,
        req: &BroadcastTxRequest,
        r: Result<tpslab_types::Hash, CheckTxError>,
    ) -> BroadcastTxResponse {
        match r {
            Ok(hash) => {
                if let Some(g) = &self.gossip {
                    g.send(req.tx.clone(), now_unix_nanos());
                }
                BroadcastTxResponse {
                    hash: hash.to_vec(),
                    code: 0,
                    log: String::new(),
                    id: req.id,
                }
            }
            Err(e) => BroadcastTxResponse {
                hash: tx_hash(&req.tx).to_vec(),
                code: status_code(&e) as u32,
                log: e.to_string(),
                id: req.id,
            },
        }
    }
}

fn event_to_pb(e: &CommitEvent) -> PbCommitEvent {
    PbCommitEvent {
        height: e.height,
        block_hash: e.block_hash.to_vec(),
        app_hash: e.app_hash.to_vec(),
        tx_hashes: e.tx_hashes.iter().map(|h| h.to_vec()).collect(),
        block_time_unix_nanos: e.block_time_unix_nanos,
        commit_time_unix_nanos: e.commit_time_unix_nanos,
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl Node for NodeApi {
    async fn broadcast_tx(
        &self,
        req: Request<BroadcastTxRequest>,
    ) -> Result<Response<BroadcastTxResponse>, Status> {
        let received = Instant::now();
        let req = req.into_inner();
        let resp = self.check(&req, received);
        if resp.code == 0 {
            Ok(Response::new(resp))
        } else {
            Err(Status::new(Code::from(resp.code as i32), resp.log))
        }
    }

    type BroadcastTxStreamStream = BoxStream<BroadcastTxResponse>;

    async fn broadcast_tx_stream(
        &self,
        req: Request<Streaming<BroadcastTxRequest>>,
    ) -> Result<Response<Self::BroadcastTxStreamStream>, Status> {
        let mut input = req.into_inner();
        let (tx_out, rx_out) = mpsc::channel(1024);
        let api = self.clone();
        let monitor = self.telemetry.tasks.api_stream.clone();
        let place = self.check_place;
        // Inline, each tx is checked as it arrives; a pool task takes what has arrived, or
        // what arrives within the gather window.
        let (limit, gather) = match place {
            CheckPlace::IoThread => (1, None),
            CheckPlace::Pool => (CHECK_CHUNK, self.check_gather),
        };
        tokio::spawn(monitor.instrument(async move {
            let mut gatherer = gather.map(Gatherer::new);
            while let Some(item) = input.next().await {
                let until = gatherer
                    .as_ref()
                    .and_then(|g| g.until(tokio::time::Instant::now()));
                let mut chunk = Vec::new();
                let mut received = Vec::new();
                let mut failed = None;
                let mut next = Some(item);
                while let Some(item) = next.take() {
                    match item {
                        Ok(r) => {
                            chunk.push(r);
                            received.push(Instant::now());
                        }
                        Err(status) => {
                            failed = Some(status);
                            break;
                        }
                    }
                    if chunk.len() < limit {
                        next = match until {
                            Some(t) => tokio::time::timeout_at(t, input.next())
                                .await
                                .ok()
                                .flatten(),
                            None => input.next().now_or_never().flatten(),
                        };
                    }
                }
                if let Some(g) = gatherer.as_mut() {
                    g.taken(chunk.len(), tokio::time::Instant::now());
                }
                let a = api.clone();
                let check = move || match chunk.as_slice() {
                    [one] => vec![a.check(one, received[0])],
                    many => a.check_many(many, &received),
                };
                let Some(resps) = place.run(check).await else {
                    break;
                };
                for r in resps {
                    if tx_out.send(Ok(r)).await.is_err() {
                        return;
                    }
                }
                if let Some(status) = failed {
                    let _ = tx_out.send(Err(status)).await;
                    return;
                }
            }
        }));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx_out))))
    }

    type SubscribeCommitsStream = BoxStream<PbCommitEvent>;

    async fn subscribe_commits(
        &self,
        _req: Request<SubscribeCommitsRequest>,
    ) -> Result<Response<Self::SubscribeCommitsStream>, Status> {
        let mut rx = self.commits.subscribe();
        let (tx_out, rx_out) = mpsc::channel(64);
        let stages = self.telemetry.stages.clone();
        tokio::spawn(self.telemetry.tasks.subscribe.instrument(async move {
            loop {
                let mut delivered = None;
                // A client that went away ends the task now, not at the next commit.
                let ev = tokio::select! {
                    ev = rx.recv() => ev,
                    _ = tx_out.closed() => break,
                };
                let msg = match ev {
                    Ok(e) => {
                        delivered = Some((e.commit_time_unix_nanos, e.tx_hashes.len() as u64));
                        Ok(event_to_pb(&e))
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => Err(Status::data_loss(format!(
                        "subscriber fell behind and missed {n} commit events; resubscribe and \
                         fetch the gap with GetBlock"
                    ))),
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let stop = msg.is_err();
                if tx_out.send(msg).await.is_err() || stop {
                    break;
                }
                // Handed to the client's stream: the notify stage ends here.
                if let Some((at, n)) = delivered {
                    if let Some(d) = since_unix_nanos(at) {
                        stages.record_n(Stage::Notify, d, n);
                    }
                }
            }
        }));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx_out))))
    }

    async fn get_account(
        &self,
        req: Request<GetAccountRequest>,
    ) -> Result<Response<PbAccount>, Status> {
        let req = req.into_inner();
        let addr = Address::from_slice("address", &req.address)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Height first: a commit landing in between makes the account newer, never older.
        let height = self.db.last_committed().map_err(internal)?.height;
        let acc = self.db.get_account(&addr).map_err(internal)?;
        Ok(Response::new(PbAccount {
            address: req.address,
            balance: acc.balance,
            nonce: acc.nonce,
            height,
        }))
    }

    async fn get_block(
        &self,
        req: Request<GetBlockRequest>,
    ) -> Result<Response<pb::BlockRecord>, Status> {
        let last = self.db.last_committed().map_err(internal)?.height;
        let height = match req.into_inner().height {
            0 => last,
            h => h,
        };
        if height == 0 {
            return Err(Status::not_found("no block committed yet"));
        }
        match self.db.block(height).map_err(internal)? {
            Some(b) => Ok(Response::new(b)),
            None => Err(Status::not_found(format!(
                "no block at height {height} (latest is {last})"
            ))),
        }
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let last = self.db.last_committed().map_err(internal)?;
        Ok(Response::new(StatusResponse {
            chain_id: self.chain_id.clone(),
            height: last.height,
            last_block_hash: last.block_hash.to_vec(),
            app_hash: last.app_hash.to_vec(),
            last_block_time_unix_nanos: last.time_unix_nanos,
            mempool_txs: self.mempool.size() as u64,
            mempool_bytes: self.mempool.bytes() as u64,
            validator: self.validator.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            peers: self
                .gossip
                .as_ref()
                .map_or(0, |g| g.network().peers().len() as u64),
            round: u32::try_from(self.telemetry.consensus.round.get()).unwrap_or(0),
            app: self.mempool.config().app.to_string(),
            consensus: self.consensus.to_string(),
            raft: (self.consensus == tpslab_types::EngineKind::Raft && self.gossip.is_some())
                .then(|| raft_status(&self.telemetry.raft)),
        }))
    }

    async fn shutdown(
        &self,
        req: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownResponse>, Status> {
        let peer = req.remote_addr();
        if let Err(e) = self.admin.authorize(&req.get_ref().token) {
            tracing::warn!(?peer, reason = e.message(), "admin shutdown refused");
            return Err(e);
        }
        let height = self.db.last_committed().map_err(internal)?.height;
        tracing::info!(?peer, height, "admin shutdown asked");
        self.admin.request_stop();
        Ok(Response::new(ShutdownResponse { height }))
    }
}
