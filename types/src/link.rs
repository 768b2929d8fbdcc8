//! An emulated network link between two validators: one-way delay, jitter, bandwidth and
//! gossip loss, written `delay=50ms,jitter=5ms,bw=100mbit,loss=1%`.
//!
//! This kernel family has no netem qdisc, so links are shaped in userspace by the p2p layer
//! (only validator <-> validator links; clients are never shaped). Shared here because the
//! config, the testnet tooling and the p2p shaper all speak it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Longest one-way delay accepted: beyond it every consensus timeout would have to grow too.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// Slowest link accepted (bits per second): a full 16 MiB block frame then takes ~2 min.
pub const MIN_BANDWIDTH_BPS: u64 = 1_000_000;

/// How one direction of a link behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkSpec {
    /// One-way delay added to every frame.
    pub delay: Duration,
    /// Each frame's delay is drawn uniformly from `delay ± jitter` (never below zero).
    /// Consensus and sync frames stay in order (as TCP would keep them); gossip may reorder.
    pub jitter: Duration,
    /// Link rate in bits per second (frames queue behind each other), or unlimited.
    pub bandwidth_bps: Option<u64>,
    /// Share of mempool gossip frames dropped (0.0..=1.0). Consensus and sync frames are
    /// never dropped: a lost vote is a retransmission on a real TCP link, i.e. a delay.
    pub gossip_loss: f64,
}

/// Why a link spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "link spec {spec:?}: {reason} (expected e.g. \"delay=50ms,jitter=5ms,bw=100mbit,loss=1%\")"
)]
pub struct LinkSpecError {
    spec: String,
    reason: String,
}

impl LinkSpec {
    /// Whether this spec changes anything (an all-zero spec is a plain link).
    pub fn is_shaped(&self) -> bool {
        *self != LinkSpec::default()
    }

    /// Time to put `bytes` on the wire at the link rate (zero when unlimited).
    pub fn serialisation(&self, bytes: usize) -> Duration {
        match self.bandwidth_bps {
            Some(bps) if bps > 0 => {
                Duration::from_nanos(((bytes as u128 * 8 * 1_000_000_000) / bps as u128) as u64)
            }
            _ => Duration::ZERO,
        }
    }
}

impl FromStr for LinkSpec {
    type Err = LinkSpecError;

    fn from_str(s: &str) -> Result<LinkSpec, LinkSpecError> {
        let err = |reason: String| LinkSpecError {
            spec: s.to_string(),
            reason,
        };
        let mut spec = LinkSpec::default();
        let mut seen = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| err(format!("{part:?} is not KEY=VALUE")))?;
            let (k, v) = (k.trim(), v.trim());
            if seen.contains(&k) {
                return Err(err(format!("{k} given twice")));
            }
            match k {
                "delay" => spec.delay = parse_duration(v).map_err(err)?,
                "jitter" => spec.jitter = parse_duration(v).map_err(err)?,
                "bw" | "bandwidth" => spec.bandwidth_bps = Some(parse_rate(v).map_err(err)?),
                "loss" => spec.gossip_loss = parse_share(v).map_err(err)?,
                other => {
                    return Err(err(format!(
                        "unknown key {other:?} (known: delay, jitter, bw, loss)"
                    )))
                }
            }
            seen.push(k);
        }
        if spec.delay > MAX_DELAY || spec.jitter > MAX_DELAY {
            return Err(err(format!(
                "delay and jitter must be at most {} s",
                MAX_DELAY.as_secs()
            )));
        }
        if spec.bandwidth_bps.is_some_and(|b| b < MIN_BANDWIDTH_BPS) {
            return Err(err("bw must be at least 1mbit".into()));
        }
        Ok(spec)
    }
}

impl fmt::Display for LinkSpec {
    /// The canonical form, parsed back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![format!("delay={}", fmt_duration(self.delay))];
        if !self.jitter.is_zero() {
            parts.push(format!("jitter={}", fmt_duration(self.jitter)));
        }
        if let Some(b) = self.bandwidth_bps {
            parts.push(format!("bw={}", fmt_rate(b)));
        }
        if self.gossip_loss > 0.0 {
            parts.push(format!("loss={}%", self.gossip_loss * 100.0));
        }
        write!(f, "{}", parts.join(","))
    }
}

fn split_unit(v: &str) -> (&str, &str) {
    let i = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    (&v[..i], &v[i..])
}

fn number(n: &str, v: &str) -> Result<f64, String> {
    n.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| format!("{v:?} does not start with a number"))
}

/// `50ms`, `1.5s`, `250us`.
fn parse_duration(v: &str) -> Result<Duration, String> {
    let (n, unit) = split_unit(v);
    let x = number(n, v)?;
    let secs = match unit {
        "s" => x,
        "ms" => x / 1e3,
        "us" => x / 1e6,
        _ => return Err(format!("{v:?}: the unit must be s, ms or us")),
    };
    if secs > MAX_DELAY.as_secs_f64() {
        return Err(format!(
            "{v:?} is over the {} s maximum",
            MAX_DELAY.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `100mbit`, `1gbit`, `500kbit`, `1000000bit` (bits per second).
fn parse_rate(v: &str) -> Result<u64, String> {
    let (n, unit) = split_unit(v);
    let x = number(n, v)?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => return Err(format!("{v:?}: the unit must be bit, kbit, mbit or gbit")),
    };
    let bps = x * mult;
    if bps > 1e12 {
        return Err(format!("{v:?} is over 1000gbit"));
    }
    Ok(bps as u64)
}

/// `1%` or `0.01`.
fn parse_share(v: &str) -> Result<f64, String> {
    let x = match v.strip_suffix('%') {
        Some(p) => number(p, v)? / 100.0,
        None => number(v, v)?,
    };
    if x > 1.0 {
        return Err(format!("{v:?}: loss must be between 0 and 100%"));
    }
    Ok(x)
}

fn fmt_duration(d: Duration) -> String {
    let us = d.as_micros();
    if !us.is_multiple_of(1000) {
        format!("{us}us")
    } else {
        format!("{}ms", us / 1000)
    }
}

fn fmt_rate(bps: u64) -> String {
    match bps {
        b if b.is_multiple_of(1_000_000_000) => format!("{}gbit", b / 1_000_000_000),
        b if b.is_multiple_of(1_000_000) => format!("{}mbit", b / 1_000_000),
        b if b.is_multiple_of(1_000) => format!("{}kbit", b / 1_000),
        b => format!("{b}bit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form() {
        let s: LinkSpec = "delay=50ms,jitter=5ms,bw=100mbit,loss=1%".parse().unwrap();
        assert_eq!(s.delay, Duration::from_millis(50));
        assert_eq!(s.jitter, Duration::from_millis(5));
        assert_eq!(s.bandwidth_bps, Some(100_000_000));
        assert!((s.gossip_loss - 0.01).abs() < 1e-12);
        assert_eq!(s.to_string().parse::<LinkSpec>().unwrap(), s);
        assert_eq!(s.to_string(), "delay=50ms,jitter=5ms,bw=100mbit,loss=1%");
    }

    #[test]
    fn partial_and_empty_specs() {
        let s: LinkSpec = "delay=1.5s".parse().unwrap();
        assert_eq!(s.delay, Duration::from_millis(1500));
        assert!(s.is_shaped());
        assert!(!"".parse::<LinkSpec>().unwrap().is_shaped());
        assert_eq!(
            "delay=250us".parse::<LinkSpec>().unwrap().to_string(),
            "delay=250us"
        );
    }

    #[test]
    fn hostile_specs_are_refused_with_the_reason() {
        for bad in [
            "delay",
            "delay=50",
            "delay=-5ms",
            "delay=11s",
            "delay=1e400s",
            "delay=NaNms",
            "bw=10",
            "bw=10kbit",
            "bw=999999999999999gbit",
            "loss=101%",
            "loss=2",
            "speed=1mbit",
            "delay=1ms,delay=2ms",
        ] {
            let e = bad.parse::<LinkSpec>().unwrap_err().to_string();
            assert!(e.contains("link spec"), "{bad}: {e}");
        }
    }

    #[test]
    fn serialisation_time_follows_the_rate() {
        let s: LinkSpec = "bw=8mbit".parse().unwrap();
        assert_eq!(s.serialisation(1000), Duration::from_millis(1));
        assert_eq!(LinkSpec::default().serialisation(1 << 20), Duration::ZERO);
    }
}
