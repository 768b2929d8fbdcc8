//! `GET /debug/pprof/heap`: a heap profile in pprof format (gzipped protobuf), from jemalloc's
//! sampling profiler through jemalloc_pprof. Only a binary built with the `jemalloc` feature
//! has one (the allocator is fixed at compile time); others answer 501 saying so.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The allocator this build's Rust heap uses, for `/metrics` and reports.
pub fn allocator() -> &'static str {
    if cfg!(feature = "jemalloc") {
        "jemalloc"
    } else {
        "system"
    }
}

/// The route handler.
pub async fn handler() -> Response {
    match dump().await {
        Ok(body) => ([("content-type", "application/octet-stream")], body).into_response(),
        Err((code, e)) => (code, e).into_response(),
    }
}

#[cfg(feature = "jemalloc")]
async fn dump() -> Result<Vec<u8>, (StatusCode, String)> {
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

#[cfg(not(feature = "jemalloc"))]
async fn dump() -> Result<Vec<u8>, (StatusCode, String)> {
    Err((
        StatusCode::NOT_IMPLEMENTED,
        "heap profiles need the jemalloc build: cargo build --release --features \
         tpslab-cli/jemalloc (this binary uses the system allocator)"
            .into(),
    ))
}
