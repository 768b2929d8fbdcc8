//! A gRPC server speaking the node API that accepts every tx and reports it committed within
//! `commit_every`: it measures the generator itself (its maximum send rate, the cost of its
//! commit tracking), and, rate-limited, plays a deliberately slow node in tests.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Mutex};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tpslab_api::proto::node_server::{Node, NodeServer};
use tpslab_api::proto::{
    Account, BroadcastTxRequest, BroadcastTxResponse, CommitEvent, GetAccountRequest,
    GetBlockRequest, ShutdownRequest, ShutdownResponse, StatusRequest, StatusResponse,
    SubscribeCommitsRequest,
};
use tpslab_types::tx::tx_hash;
use tpslab_types::{pb, AppKind};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// How the sink behaves.
#[derive(Clone, Debug)]
pub struct SinkOptions {
    /// Commit what was accepted this often.
    pub commit_every: Duration,
    /// Accept at most this many txs per second (None: as fast as they come). The stream is
    /// read no faster, so a generator offering more sees its latency grow.
    pub max_rate: Option<f64>,
    /// The app reported by Status.
    pub app: AppKind,
}

#[derive(Clone)]
struct Sink {
    opts: SinkOptions,
    accepted: Arc<Mutex<Vec<Vec<u8>>>>,
    commits: broadcast::Sender<CommitEvent>,
    started: Instant,
}

/// Serves a sink on `127.0.0.1:0`; returns its address. It runs until the runtime stops.
pub async fn serve(opts: SinkOptions) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (commits, _) = broadcast::channel(1024);
    let sink = Sink {
        opts: opts.clone(),
        accepted: Arc::default(),
        commits,
        started: Instant::now(),
    };
    let s = sink.clone();
    tokio::spawn(async move {
        let mut height = 0u64;
        let mut tick = tokio::time::interval(s.opts.commit_every);
        loop {
            tick.tick().await;
            let hashes = std::mem::take(&mut *s.accepted.lock().await);
            if hashes.is_empty() {
                continue;
            }
            height += 1;
            let _ = s.commits.send(CommitEvent {
                height,
                tx_hashes: hashes,
                ..Default::default()
            });
        }
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(NodeServer::new(sink))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Ok(addr)
}

#[tonic::async_trait]
impl Node for Sink {
    async fn broadcast_tx(
        &self,
        req: Request<BroadcastTxRequest>,
    ) -> Result<Response<BroadcastTxResponse>, Status> {
        let r = req.into_inner();
        let hash = tx_hash(&r.tx).to_vec();
        self.accepted.lock().await.push(hash.clone());
        Ok(Response::new(BroadcastTxResponse {
            hash,
            code: 0,
            log: String::new(),
            id: r.id,
        }))
    }

    type BroadcastTxStreamStream = BoxStream<BroadcastTxResponse>;

    async fn broadcast_tx_stream(
        &self,
        req: Request<Streaming<BroadcastTxRequest>>,
    ) -> Result<Response<Self::BroadcastTxStreamStream>, Status> {
        let mut input = req.into_inner();
        let (tx_out, rx_out) = mpsc::channel(1024);
        let s = self.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            let t0 = Instant::now();
            while let Some(Ok(r)) = input.next().await {
                if let Some(rate) = s.opts.max_rate {
                    n += 1;
                    tokio::time::sleep_until(
                        (t0 + Duration::from_secs_f64(n as f64 / rate)).into(),
                    )
                    .await;
                }
                let hash = tx_hash(&r.tx).to_vec();
                s.accepted.lock().await.push(hash.clone());
                let resp = BroadcastTxResponse {
                    hash,
                    code: 0,
                    log: String::new(),
                    id: r.id,
                };
                if tx_out.send(Ok(resp)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx_out))))
    }

    type SubscribeCommitsStream = BoxStream<CommitEvent>;

    async fn subscribe_commits(
        &self,
        _req: Request<SubscribeCommitsRequest>,
    ) -> Result<Response<Self::SubscribeCommitsStream>, Status> {
        let mut rx = self.commits.subscribe();
        let (tx_out, rx_out) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Ok(ev) = rx.recv().await {
                if tx_out.send(Ok(ev)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx_out))))
    }

    async fn get_account(
        &self,
        req: Request<GetAccountRequest>,
    ) -> Result<Response<Account>, Status> {
        Ok(Response::new(Account {
            address: req.into_inner().address,
            ..Default::default()
        }))
    }

    async fn get_block(
        &self,
        _req: Request<GetBlockRequest>,
    ) -> Result<Response<pb::BlockRecord>, Status> {
        Err(Status::unimplemented("the sink keeps no blocks"))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(StatusResponse {
            chain_id: "sink".into(),
            version: format!("sink, up {:?}", self.started.elapsed()),
            app: self.opts.app.to_string(),
            ..Default::default()
        }))
    }

    async fn shutdown(
        &self,
        _req: Request<ShutdownRequest>,
    ) -> Result<Response<ShutdownResponse>, Status> {
        Err(Status::unimplemented("the sink stops with its generator"))
    }
}
