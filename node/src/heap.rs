//! `GET /debug/pprof/heap`: a heap profile in pprof format (gzipped protobuf), from jemalloc's
//! sampling profiler through jemalloc_pprof. Only the `tpslab-jemalloc` binary has one (its
//! `main` sets jemalloc as the global allocator and says so here with [`set_allocator`]); the
//! system-allocator binary answers 501 saying which binary to run.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

/// The global allocator of the Rust heap, fixed by the binary (`tpslab` or `tpslab-jemalloc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// glibc malloc (`std::alloc::System`).
    System,
    /// jemalloc (prefixed build) with its sampling heap profiler on.
    Jemalloc,
}

impl Allocator {
    /// The name used on `/metrics`, in reports and by `experiment --allocators`.
    pub fn name(self) -> &'static str {
        match self {
            Allocator::System => "system",
            Allocator::Jemalloc => "jemalloc",
        }
    }
}

static ALLOCATOR: OnceLock<Allocator> = OnceLock::new();

/// Called once by the binary's `main`, before anything asks; later calls are ignored (the
/// global allocator cannot change while the process runs).
pub fn set_allocator(a: Allocator) {
    let _ = ALLOCATOR.set(a);
}

/// The allocator this process's Rust heap uses (system unless the binary said otherwise).
pub fn allocator() -> Allocator {
    *ALLOCATOR.get().unwrap_or(&Allocator::System)
}

/// The route handler.
pub async fn handler() -> Response {
    match dump().await {
        Ok(body) => ([("content-type", "application/octet-stream")], body).into_response(),
        Err((code, e)) => (code, e).into_response(),
    }
}

async fn dump() -> Result<Vec<u8>, (StatusCode, String)> {
    if allocator() != Allocator::Jemalloc {
        // jemalloc_pprof's controller would read a jemalloc that holds none of this heap.
        return Err((
            StatusCode::NOT_IMPLEMENTED,
            "heap profiles need the jemalloc binary: run the node with tpslab-jemalloc (built \
             next to tpslab; this binary uses the system allocator)"
                .into(),
        ));
    }
    let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref() else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "jemalloc profiling is off (the binary's malloc_conf sets prof:true)".into(),
        ));
    };
    let mut ctl = ctl.lock().await;
    if !ctl.activated() {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "jemalloc heap profiling is not active".into(),
        ));
    }
    // Writes a temp file and symbolises: keep it off the async workers.
    tokio::task::block_in_place(|| ctl.dump_pprof()).map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("heap dump failed: {e}"),
        )
    })
}
