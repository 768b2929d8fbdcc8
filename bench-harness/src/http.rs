//! The little HTTP the harness needs from a node: GET a page (/metrics, /debug/stages,
//! /debug/pprof/...) over one `Connection: close` request, and read a Prometheus sample.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Fetches `path` from an HTTP server at `addr` (enough for a Prometheus /metrics page).
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let body = http_get_bytes(addr, path, Duration::from_secs(5)).await?;
    String::from_utf8(body).map_err(std::io::Error::other)
}

/// Fetches `path` as bytes, failing on a non-200 answer (with the server's message) or after
/// `timeout`. The node's HTTP server answers `Connection: close` requests with a plain body.
pub async fn http_get_bytes(addr: &str, path: &str, timeout: Duration) -> std::io::Result<Vec<u8>> {
    http_request("GET", addr, path, timeout).await
}

/// POSTs an empty body to `path` (the node's fault endpoint); the answer's body.
pub async fn http_post(addr: &str, path: &str) -> std::io::Result<String> {
    let body = http_request("POST", addr, path, Duration::from_secs(5)).await?;
    String::from_utf8(body).map_err(std::io::Error::other)
}

/// GET over HTTP/1.0: Go's HTTP server (Prometheus's API) chunks longer HTTP/1.1 answers,
/// and an HTTP/1.0 client gets a plain body ended by the close instead.
pub async fn http10_get(addr: &str, path: &str) -> std::io::Result<String> {
    let body = request("GET", "HTTP/1.0", addr, path, Duration::from_secs(5)).await?;
    String::from_utf8(body).map_err(std::io::Error::other)
}

async fn http_request(
    method: &str,
    addr: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    request(method, "HTTP/1.1", addr, path, timeout).await
}

async fn request(
    method: &str,
    version: &str,
    addr: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr.trim()).await?;
        let req = format!(
            "{method} {path} {version}\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let out = tokio::time::timeout(timeout, fut).await.map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{method} {addr}{path}"),
        )
    })??;
    let Some(i) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(std::io::Error::other(format!(
            "malformed response from {addr}{path}"
        )));
    };
    let (head, body) = (String::from_utf8_lossy(&out[..i]), &out[i + 4..]);
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(std::io::Error::other(format!(
            "chunked response from {addr}{path}"
        )));
    }
    if head.split_whitespace().nth(1) != Some("200") {
        return Err(std::io::Error::other(format!(
            "{} from {addr}{path}: {}",
            head.lines().next().unwrap_or(""),
            String::from_utf8_lossy(body)
        )));
    }
    Ok(body.to_vec())
}

/// The value of an unlabelled sample `name` in a Prometheus text page.
pub fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}
