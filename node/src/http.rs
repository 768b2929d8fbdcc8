//! The node's HTTP side: `/metrics` (Prometheus text, refreshed at scrape time from the
//! allocation counters, state lock wait, stage histograms and task monitors), the pprof CPU
//! and heap profiles, and `/debug/stages`.

use crate::stage_metrics::StageGauges;
use crate::telemetry::Telemetry;
use anyhow::{Context, Result};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tpslab_api::home::{write_atomic, Home};
use tpslab_statedb::StateDb;
use tpslab_types::stages::StageLatencies;
use tracing::{info, warn};

/// The values `/metrics` reads fresh at every scrape (counters kept outside the registry).
#[derive(Clone)]
struct ScrapeGauges {
    allocs: Gauge<u64, AtomicU64>,
    alloc_bytes: Gauge<u64, AtomicU64>,
    state_lock_wait: Gauge<f64, AtomicU64>,
    stages: StageGauges,
    tasks: crate::tasks::TaskGauges,
    sigs: crate::sig_metrics::SigCounters,
    process: crate::process_metrics::ProcessMetrics,
}

impl ScrapeGauges {
    fn register(registry: &mut Registry) -> ScrapeGauges {
        let g = ScrapeGauges {
            allocs: Gauge::default(),
            alloc_bytes: Gauge::default(),
            state_lock_wait: Gauge::default(),
            stages: StageGauges::default(),
            tasks: crate::tasks::TaskGauges::default(),
            sigs: crate::sig_metrics::SigCounters::default(),
            process: crate::process_metrics::ProcessMetrics::default(),
        };
        registry.register(
            "process_allocations",
            "Heap allocations since start (counted by the binary's global allocator)",
            g.allocs.clone(),
        );
        registry.register(
            "process_allocated_bytes",
            "Bytes allocated since start (not net of frees)",
            g.alloc_bytes.clone(),
        );
        registry.register(
            "state_lock_wait_seconds",
            "Time spent waiting for the state cache lock (read-cache toggle)",
            g.state_lock_wait.clone(),
        );
        let allocator: Family<Vec<(String, String)>, Gauge> = Family::default();
        allocator
            .get_or_create(&vec![(
                "allocator".to_string(),
                crate::heap::allocator().name().to_string(),
            )])
            .set(1);
        registry.register(
            "process_allocator",
            "The allocator of the Rust heap (fixed by the binary: tpslab or tpslab-jemalloc)",
            allocator,
        );
        g.stages.register(registry);
        g.tasks.register(registry);
        g.sigs.register(registry);
        g.process.register(registry);
        g
    }

    fn refresh(&self, db: &StateDb, stages: &StageLatencies, tasks: &crate::tasks::TaskMonitors) {
        self.allocs.set(crate::alloc::COUNTERS.allocations());
        self.alloc_bytes.set(crate::alloc::COUNTERS.bytes());
        self.state_lock_wait.set(db.lock_wait_seconds());
        self.stages.update(stages);
        self.tasks.update(tasks);
        self.sigs.update();
        self.process.update();
    }
}

/// The N of `POST /fault/isolate?ms=N` (drop and refuse every peer link for N ms; served
/// only by a node started with `--allow-fault-injection`, for a harness's `disconnect`).
fn isolate_ms(query: &str) -> Option<u64> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("ms="))
        .and_then(|v| v.parse().ok())
        .filter(|ms| (1..=3_600_000).contains(ms))
}

/// The fault endpoint's handler.
fn fault_route(net: tpslab_p2p::Network) -> axum::routing::MethodRouter {
    axum::routing::post(move |uri: axum::http::Uri| {
        let net = net.clone();
        async move {
            let Some(ms) = isolate_ms(uri.query().unwrap_or("")) else {
                return (
                    axum::http::StatusCode::BAD_REQUEST,
                    "want /fault/isolate?ms=N (1..=3600000)\n".to_string(),
                );
            };
            net.isolate(std::time::Duration::from_millis(ms)).await;
            (
                axum::http::StatusCode::OK,
                format!("isolated for {ms} ms\n"),
            )
        }
    })
}

/// Serves `GET /metrics` (Prometheus text) on `addr`; the bound address goes to
/// `<home>/metrics.addr`.
pub(crate) async fn serve_metrics(
    home: &Home,
    addr: &str,
    registry: Registry,
    db: StateDb,
    telemetry: &Telemetry,
    fault_net: Option<tpslab_p2p::Network>,
    mut rx_stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut registry = registry;
    let (stages, tasks) = (telemetry.stages.clone(), telemetry.tasks.clone());
    let gauges = ScrapeGauges::register(&mut registry);
    let registry = Arc::new(registry);
    let stages_json = stages.clone();
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let registry = registry.clone();
                gauges.refresh(&db, &stages, &tasks);
                async move {
                    let mut text = String::new();
                    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
                        text = "# metrics encoding failed\n".into();
                    }
                    let accept = headers.get("accept").and_then(|v| v.to_str().ok());
                    if crate::metrics_text::wants_openmetrics(accept) {
                        let om = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                        ([("content-type", om)], text)
                    } else {
                        let plain = "text/plain; version=0.0.4; charset=utf-8";
                        let text = crate::metrics_text::to_prometheus_text(&text);
                        ([("content-type", plain)], text)
                    }
                }
            }),
        )
        .route(
            "/debug/pprof/profile",
            axum::routing::get(crate::profile::handler),
        )
        .route(
            "/debug/pprof/heap",
            axum::routing::get(crate::heap::handler),
        )
        // The stage histograms' full content, so a harness can subtract two of them.
        .route(
            "/debug/stages",
            axum::routing::get(move || {
                let body = serde_json::to_string(&stages_json.snapshot()).unwrap_or_default();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
    let router = match fault_net {
        Some(net) => router.route("/fault/isolate", fault_route(net)),
        None => router,
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind metrics address {addr}"))?;
    let bound = listener.local_addr()?;
    write_atomic(&home.metrics_addr_file(), &bound.to_string())?;
    info!(addr = %bound, "metrics on http://{bound}/metrics");
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(tonic::service::Routes::from(router))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = rx_stop.wait_for(|s| *s).await;
        });
    Ok(tokio::spawn(async move {
        if let Err(e) = server.await {
            warn!(error = %e, "metrics server failed");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::isolate_ms;

    #[test]
    fn the_isolation_length_must_be_a_sane_number_of_ms() {
        assert_eq!(isolate_ms("ms=1500"), Some(1500));
        assert_eq!(isolate_ms("x=1&ms=20"), Some(20));
        for bad in [
            "",
            "ms=",
            "ms=-1",
            "ms=0",
            "ms=lots",
            "ms=99999999999",
            "secs=3",
        ] {
            assert_eq!(isolate_ms(bad), None, "{bad}");
        }
    }
}
