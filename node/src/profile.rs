//! `GET /debug/pprof/profile?seconds=N&frequency=F[&format=svg]` on the metrics server: a CPU
//! profile of the node taken with pprof-rs (TiKV's interface). The default answer is a pprof
//! protobuf (`go tool pprof` and other pprof tooling read it); `format=svg` returns a flame
//! graph. One profile at a time (the sampler is process-wide); a second request gets 409.

use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static BUSY: AtomicBool = AtomicBool::new(false);

/// What a profile request asked for.
#[derive(Debug, PartialEq)]
pub struct ProfileRequest {
    /// How long to sample.
    pub seconds: u64,
    /// Samples per second.
    pub frequency: i32,
    /// Flame graph instead of protobuf.
    pub svg: bool,
}

/// Parses the query string; errors name the bad parameter.
pub fn parse_query(q: Option<&str>) -> Result<ProfileRequest, String> {
    let mut r = ProfileRequest {
        seconds: 10,
        frequency: 99,
        svg: false,
    };
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "seconds" => {
                r.seconds = v
                    .parse()
                    .ok()
                    .filter(|s| (1..=300).contains(s))
                    .ok_or_else(|| format!("seconds must be 1..=300, got {v:?}"))?
            }
            "frequency" => {
                r.frequency = v
                    .parse()
                    .ok()
                    .filter(|f| (1..=1000).contains(f))
                    .ok_or_else(|| format!("frequency must be 1..=1000 Hz, got {v:?}"))?
            }
            "format" => match v {
                "svg" => r.svg = true,
                "proto" | "pb" | "protobuf" => r.svg = false,
                other => return Err(format!("format must be svg or proto, got {other:?}")),
            },
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(r)
}

/// The route handler.
pub async fn handler(RawQuery(q): RawQuery) -> Response {
    let req = match parse_query(q.as_deref()) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    if BUSY.swap(true, Ordering::AcqRel) {
        return (StatusCode::CONFLICT, "a profile is already being taken").into_response();
    }
    let out = take(&req).await;
    BUSY.store(false, Ordering::Release);
    match out {
        Ok((ctype, body)) => ([("content-type", ctype)], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn take(req: &ProfileRequest) -> Result<(&'static str, Vec<u8>), String> {
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(req.frequency)
        // Unwinding through these from a signal handler can deadlock (pprof-rs's advice).
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| format!("cannot start the profiler: {e}"))?;
    tokio::time::sleep(Duration::from_secs(req.seconds)).await;
    let report = guard
        .report()
        .build()
        .map_err(|e| format!("cannot build the report: {e}"))?;
    drop(guard);
    if report.data.is_empty() {
        // pprof-rs draws nothing for an empty report; say why instead of a blank 200.
        return Err(format!(
            "no CPU samples in {} s at {} Hz (was the node idle?)",
            req.seconds, req.frequency
        ));
    }
    if req.svg {
        let mut body = Vec::new();
        report
            .flamegraph(&mut body)
            .map_err(|e| format!("cannot draw the flame graph: {e}"))?;
        return Ok(("image/svg+xml", body));
    }
    let profile = report
        .pprof()
        .map_err(|e| format!("cannot encode the profile: {e}"))?;
    let mut body = Vec::new();
    pprof::protos::Message::encode(&profile, &mut body)
        .map_err(|e| format!("cannot encode the profile: {e}"))?;
    Ok(("application/octet-stream", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_parsed_and_bad_ones_named() {
        assert_eq!(
            parse_query(Some("seconds=3&frequency=199&format=svg")).unwrap(),
            ProfileRequest {
                seconds: 3,
                frequency: 199,
                svg: true
            }
        );
        assert_eq!(parse_query(None).unwrap().seconds, 10);
        assert!(parse_query(Some("seconds=0"))
            .unwrap_err()
            .contains("seconds"));
        assert!(parse_query(Some("frequency=abc"))
            .unwrap_err()
            .contains("frequency"));
        assert!(parse_query(Some("format=png"))
            .unwrap_err()
            .contains("format"));
        assert!(parse_query(Some("x=1")).unwrap_err().contains("unknown"));
    }
}
