//! Testnet ports that cannot race with the machine's outgoing connections.
//!
//! A port picked "free" by binding port 0 lies in the kernel's ephemeral range (32768-60999
//! on Linux), and once released any outgoing connection may take it as its source port
//! before the node binds it; a busy load generator opens thousands. So testnet ports come
//! from a project-owned range below the ephemeral one (default 20000-32767, clipped to stay
//! below `/proc/sys/net/ipv4/ip_local_port_range`; `TPSLAB_PORT_RANGE=LO-HI` overrides),
//! where the kernel never hands out source ports. A random start inside the range, a bind
//! check of every port, and a reservation file per port (in `$TMPDIR/tpslab-ports`, so two
//! `testnet init`s at once do not pick the same block before either starts) do the rest.
//! A port stays the node's for its whole life, so a restarted node comes back on it.

use rand::Rng;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Why no ports could be had.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// `TPSLAB_PORT_RANGE` is not `LO-HI` with 1024 <= LO < HI.
    #[error("TPSLAB_PORT_RANGE must be LO-HI with 1024 <= LO < HI, got {0:?}")]
    BadRange(String),
    /// Too few free ports in the range.
    #[error("fewer than {wanted} free ports in the range {lo}-{hi}")]
    Exhausted {
        /// Ports asked for.
        wanted: usize,
        /// Range start.
        lo: u16,
        /// Range end.
        hi: u16,
    },
}

/// Default project range (inclusive), before clipping to the ephemeral range.
const DEFAULT_RANGE: (u16, u16) = (20000, 32767);
/// A reservation older than this no longer holds the port (by then the node has bound it,
/// or the testnet was never started).
const RESERVATION_TTL: Duration = Duration::from_secs(600);

/// The kernel's ephemeral range, if readable.
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// `LO-HI` with 1024 <= LO < HI.
fn parse_range(v: &str) -> Result<(u16, u16), PortError> {
    let parsed = v
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)));
    match parsed {
        Some((lo, hi)) if lo >= 1024 && hi > lo => Ok((lo, hi)),
        _ => Err(PortError::BadRange(v.to_string())),
    }
}

/// The range testnet ports come from (inclusive).
pub fn project_range() -> Result<(u16, u16), PortError> {
    if let Ok(v) = std::env::var("TPSLAB_PORT_RANGE") {
        return parse_range(&v);
    }
    let (lo, hi) = DEFAULT_RANGE;
    Ok(match ephemeral_range() {
        None => (lo, hi),
        Some((eph_lo, _)) if eph_lo > lo + 1000 => (lo, hi.min(eph_lo - 1)),
        // The ephemeral range starts low: below it if there is room, else above it.
        Some((eph_lo, _)) if eph_lo > 3072 => (1024, eph_lo - 1),
        Some((_, eph_hi)) => (eph_hi.saturating_add(1).max(1024), u16::MAX),
    })
}

fn reservation_dir() -> PathBuf {
    std::env::temp_dir().join("tpslab-ports")
}

/// Claims `port` for a while: false if another process claimed it recently.
fn reserve(port: u16) -> bool {
    let dir = reservation_dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(port.to_string());
    let fresh = |p: &PathBuf| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < RESERVATION_TTL)
    };
    if path.exists() {
        if fresh(&path) {
            return false;
        }
        let _ = std::fs::remove_file(&path);
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .is_ok()
}

fn unreserve(port: u16) {
    let _ = std::fs::remove_file(reservation_dir().join(port.to_string()));
}

/// Whether nothing listens on (or holds) 127.0.0.1:`port` right now.
fn bindable(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `n` distinct ports from the project range, each bindable now and reserved for
/// [`RESERVATION_TTL`].
pub fn allocate(n: usize) -> Result<Vec<u16>, PortError> {
    let (lo, hi) = project_range()?;
    let span = usize::from(hi - lo) + 1;
    let exhausted = PortError::Exhausted { wanted: n, lo, hi };
    if n > span {
        return Err(exhausted);
    }
    let mut rng = rand::thread_rng();
    let mut out = Vec::with_capacity(n);
    // Consecutive ports from a random start, skipping taken ones: a whole testnet's ports in
    // one block, and two inits rarely start at the same place.
    let start = rng.gen_range(0..span);
    for k in 0..span {
        if out.len() == n {
            break;
        }
        let port = lo + ((start + k) % span) as u16;
        if !reserve(port) {
            continue;
        }
        if bindable(port) {
            out.push(port);
        } else {
            unreserve(port);
        }
    }
    if out.len() < n {
        for p in out {
            unreserve(p);
        }
        return Err(exhausted);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_are_parsed_strictly() {
        assert_eq!(parse_range("20000-21000").unwrap(), (20000, 21000));
        assert_eq!(parse_range(" 2000 - 3000 ").unwrap(), (2000, 3000));
        for bad in [
            "",
            "20000",
            "21000-20000",
            "80-9000",
            "a-b",
            "20000-70000",
            "1-2-3",
        ] {
            assert!(parse_range(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports = allocate(12).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 12);
        if let Some((eph_lo, eph_hi)) = ephemeral_range() {
            assert!(
                ports.iter().all(|p| *p < eph_lo || *p > eph_hi),
                "{ports:?}"
            );
        }
        assert!(ports.iter().all(|p| bindable(*p)));
        // Reserved: a second allocation does not hand them out again.
        let more = allocate(12).unwrap();
        assert!(more.iter().all(|p| !ports.contains(p)));
        for p in ports.into_iter().chain(more) {
            unreserve(p);
        }
    }
}
