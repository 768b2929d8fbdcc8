//! Validators on other hosts (`testnet init --hosts h1,h2,...`): fixed, well-known ports
//! (each host's firewall and the peers' configs name them), the address each validator binds
//! and the one its peers and the harness use.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use tpslab_api::config::is_host_port;

/// p2p port of the first validator on a host (CometBFT's).
pub const P2P_PORT: u16 = 26656;
/// gRPC port of the first validator on a host (the Cosmos SDK's).
pub const GRPC_PORT: u16 = 9090;
/// Metrics port of the first validator on a host (CometBFT's Prometheus port).
pub const METRICS_PORT: u16 = 26660;
/// Each further validator on the same host adds this to its ports.
pub const PORT_STEP: u16 = 100;
/// Validators one host may hold (so the ports stay below the ephemeral range).
const MAX_PER_HOST: usize = 10;

/// Where one validator runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The host as given (`10.0.0.2`, `[fd00::2]` or `val2.example.org`).
    pub host: String,
    /// gRPC, p2p and metrics ports.
    pub grpc: u16,
    /// p2p port.
    pub p2p: u16,
    /// Metrics port.
    pub metrics: u16,
}

impl Placement {
    /// `host:port`, as peers and the harness dial it.
    pub fn addr(&self, port: u16) -> String {
        format!("{}:{port}", self.host)
    }

    /// `ip:port` the validator binds for `port` (see [`bind`]).
    pub fn bind(&self, port: u16) -> String {
        bind(&self.host, port)
    }
}

/// `ip:port` a validator on `host` binds: the host's own address when it was given as an IP
/// (it may have others), every address when it was given by name (a node cannot bind a name,
/// and resolving it here could give the wrong one).
pub fn bind(host: &str, port: u16) -> String {
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    match ip.parse::<std::net::IpAddr>() {
        Ok(_) => format!("{host}:{port}"),
        Err(_) => format!("0.0.0.0:{port}"),
    }
}

/// The directory of everything `host` needs.
pub fn host_dir(out: &Path, host: &str) -> PathBuf {
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.join("hosts").join(safe)
}

/// One placement per host, in order; a host named twice gets its second validator on the
/// ports plus [`PORT_STEP`], and so on.
pub fn plan(hosts: &[String]) -> Result<Vec<Placement>> {
    if hosts.is_empty() {
        bail!("--hosts needs at least one host");
    }
    let mut out: Vec<Placement> = Vec::new();
    for h in hosts {
        let h = h.trim();
        if !is_host_port(&format!("{h}:1")) {
            bail!("--hosts: {h:?} is not an IP address or a host name");
        }
        let before = out.iter().filter(|p| p.host == h).count();
        if before >= MAX_PER_HOST {
            bail!("--hosts names {h} more than {MAX_PER_HOST} times");
        }
        let step = PORT_STEP * before as u16;
        out.push(Placement {
            host: h.to_string(),
            grpc: GRPC_PORT + step,
            p2p: P2P_PORT + step,
            metrics: METRICS_PORT + step,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(s: &str) -> Vec<String> {
        s.split(',').map(String::from).collect()
    }

    #[test]
    fn each_host_gets_the_fixed_ports_and_a_shared_host_the_next_block() {
        let p = plan(&hosts("10.0.0.2,val.example.org,10.0.0.2,[fd00::7]")).unwrap();
        assert_eq!(p[0].addr(p[0].p2p), "10.0.0.2:26656");
        assert_eq!(p[0].bind(p[0].grpc), "10.0.0.2:9090");
        assert_eq!(p[1].addr(p[1].metrics), "val.example.org:26660");
        assert_eq!(p[1].bind(p[1].p2p), "0.0.0.0:26656");
        assert_eq!((p[2].grpc, p[2].p2p, p[2].metrics), (9190, 26756, 26760));
        assert_eq!(p[3].bind(p[3].p2p), "[fd00::7]:26656");
    }

    #[test]
    fn bad_hosts_are_refused() {
        for bad in ["", "h_1", "10.0.0.2:26656", "a..b", "-x"] {
            assert!(plan(&hosts(bad)).is_err(), "{bad:?}");
        }
        assert!(plan(&[]).is_err());
        assert!(plan(&vec!["h".to_string(); 11]).is_err());
    }
}
