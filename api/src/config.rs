//! `config.toml`: the node's settings, with defaults, strict parsing and validation.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use thiserror::Error;
use tpslab_types::byzantine::{Behaviour, Forgery};
use tpslab_types::link::{LinkSpec, LinkSpecError};
use tpslab_types::{AppKind, Tuning};

/// Smallest `p2p.max_frame_bytes` accepted.
pub const MIN_FRAME_BYTES: usize = 64 << 10;

/// Why a config file was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown field, or a value of the wrong type; toml's message names
    /// the field and line.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, and where.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid config file {path}: field `{field}` {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Dotted field name, e.g. `mempool.max_txs`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The whole config file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A human name for this node, used in logs.
    pub moniker: String,
    /// The state machine: `transfer` (signed balance transfers) or `kvstore` (unsigned
    /// `key=value` writes). Every validator of a chain must run the same app.
    pub app: AppKind,
    /// The gRPC API.
    pub api: ApiConfig,
    /// Mempool limits.
    pub mempool: MempoolSection,
    /// Block production.
    pub consensus: ConsensusSection,
    /// The Raft engine (a Raft chain only).
    pub raft: crate::raft_config::RaftSection,
    /// Links to the other validators.
    pub p2p: P2pSection,
    /// The state database.
    pub storage: StorageSection,
    /// Logging.
    pub log: LogSection,
    /// The tuning toggles (`tpslab opts` lists them); every one defaults to its tuned path.
    pub tuning: Tuning,
    /// Test only: makes this validator misbehave. A node refuses to start with it unless
    /// given `--allow-byzantine`, so a copied test config cannot make a real validator lie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byzantine: Option<ByzantineSection>,
}

/// `[byzantine]` (test only).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ByzantineSection {
    /// equivocate, double-propose, invalid-block, silent, garbage, withhold-txs or
    /// flood-tx-requests.
    pub behaviour: Behaviour,
    /// For invalid-block: the forgeries cycled through, one per proposal (default: all of
    /// tx-root, app-hash, height, time, oversize, bad-sig-tx).
    #[serde(default = "all_forgeries")]
    pub forgeries: Vec<Forgery>,
}

fn all_forgeries() -> Vec<Forgery> {
    Forgery::ALL.to_vec()
}

/// `[api]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address the gRPC server binds; port 0 picks a free port (the chosen address is written
    /// to `<home>/grpc.addr`).
    pub grpc_addr: String,
    /// Address of the HTTP server with `GET /metrics` (Prometheus text); port 0 picks a free
    /// port (written to `<home>/metrics.addr`).
    pub metrics_addr: String,
    /// Token of the admin RPC (`Shutdown`): at least 32 hex chars; unset, the RPC is off and
    /// stopping the node is the service manager's job. `testnet init --hosts` writes one per
    /// validator and keeps it in the testnet's manifest for `testnet down`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            grpc_addr: "127.0.0.1:26657".into(),
            metrics_addr: "127.0.0.1:26660".into(),
            admin_token: None,
        }
    }
}

/// `[mempool]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolSection {
    /// Most pending txs.
    pub max_txs: usize,
    /// Most pending bytes.
    pub max_bytes: usize,
    /// Largest accepted tx.
    pub max_tx_bytes: usize,
    /// Recently accepted tx hashes remembered for dedup.
    pub cache_size: usize,
}

impl Default for MempoolSection {
    fn default() -> Self {
        MempoolSection {
            max_txs: 50_000,
            max_bytes: 64 << 20,
            max_tx_bytes: 16 << 10,
            cache_size: 200_000,
        }
    }
}

/// `[consensus]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    /// Most txs per block; a block is cut as soon as this many are pending.
    pub max_block_txs: usize,
    /// Most tx bytes per block.
    pub max_block_bytes: usize,
    /// A block is cut this long after the previous one if any tx is pending.
    pub block_interval_ms: u64,
    /// Cut empty blocks every interval too (single-validator mode; BFT always makes a block
    /// per height, possibly empty).
    pub create_empty_blocks: bool,
    /// BFT: propose timeout at round 0 (CometBFT's timeout_propose).
    pub timeout_propose_ms: u64,
    /// BFT: added to the propose timeout per round.
    pub timeout_propose_delta_ms: u64,
    /// BFT: prevote timeout at round 0.
    pub timeout_prevote_ms: u64,
    /// BFT: added per round.
    pub timeout_prevote_delta_ms: u64,
    /// BFT: precommit timeout at round 0.
    pub timeout_precommit_ms: u64,
    /// BFT: added per round.
    pub timeout_precommit_delta_ms: u64,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection {
            // A 4-validator kvstore chain of 512 B txs cut ~1.4 blocks/s at 50k tx/s offered
            // on 2 cores (scripts/bench-kvstore): 5,000-tx blocks capped it at 16k TPS with
            // the nodes at 17-37 % CPU, 20,000 reached 29k with the machine's CPU the limit.
            // 12 MiB keeps a whole block (and its sync record) inside the 16 MiB frame.
            max_block_txs: 20_000,
            max_block_bytes: 12 << 20,
            block_interval_ms: 200,
            create_empty_blocks: false,
            timeout_propose_ms: 3000,
            timeout_propose_delta_ms: 500,
            timeout_prevote_ms: 1000,
            timeout_prevote_delta_ms: 500,
            timeout_precommit_ms: 1000,
            timeout_precommit_delta_ms: 500,
        }
    }
}

impl ConsensusSection {
    /// The block interval as a Duration.
    pub fn block_interval(&self) -> Duration {
        Duration::from_millis(self.block_interval_ms)
    }
}

/// `[p2p]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct P2pSection {
    /// Address other validators connect to.
    pub listen_addr: String,
    /// The other validators, as `PUBKEY_HEX@IP:PORT` or `PUBKEY_HEX@HOST:PORT`.
    pub peers: Vec<String>,
    /// Largest accepted frame; a bigger one disconnects the sender.
    pub max_frame_bytes: usize,
    /// Frames queued per peer and channel.
    pub send_queue: usize,
    /// Emulated link to every peer, e.g. `delay=50ms,jitter=5ms,bw=100mbit,loss=1%`; empty:
    /// real links. Only validator links are shaped (see `tpslab_types::link`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub link: String,
    /// Per-peer links by public key hex (overriding `link`), as `testnet init
    /// --latency-matrix` writes them.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub links: std::collections::BTreeMap<String, String>,
}

impl Default for P2pSection {
    fn default() -> Self {
        P2pSection {
            listen_addr: "127.0.0.1:26656".into(),
            peers: Vec::new(),
            max_frame_bytes: 16 << 20,
            send_queue: 4096,
            link: String::new(),
            links: std::collections::BTreeMap::new(),
        }
    }
}

impl P2pSection {
    /// The emulated link to each peer (by public key) that has one; the error names the entry.
    pub fn parse_links(
        &self,
    ) -> Result<std::collections::BTreeMap<[u8; 32], LinkSpec>, (&'static str, String)> {
        let all: LinkSpec = self
            .link
            .parse()
            .map_err(|e: LinkSpecError| ("p2p.link", e.to_string()))?;
        let mut out = std::collections::BTreeMap::new();
        for (k, _) in self.parse_peers().map_err(|e| ("p2p.peers", e))? {
            if all.is_shaped() {
                out.insert(k, all);
            }
        }
        for (k, v) in &self.links {
            let key: [u8; 32] = hex::decode(k)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    (
                        "p2p.links",
                        format!("{k:?}: a public key must be 64 hex chars"),
                    )
                })?;
            let spec: LinkSpec = v
                .parse()
                .map_err(|e: LinkSpecError| ("p2p.links", format!("{k}: {e}")))?;
            out.insert(key, spec);
        }
        Ok(out)
    }

    /// Parses `peers` (`PUBKEY_HEX@IP:PORT` or `PUBKEY_HEX@HOST:PORT`); the error names the
    /// entry. A host name is kept as written: the network resolves it at every dial.
    pub fn parse_peers(&self) -> Result<Vec<([u8; 32], String)>, String> {
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (k, a) = p.split_once('@').ok_or_else(|| {
                    format!("p2p.peers[{i}] must be PUBKEY_HEX@HOST:PORT, got {p:?}")
                })?;
                let key: [u8; 32] = hex::decode(k)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| format!("p2p.peers[{i}]: public key must be 64 hex chars"))?;
                if !is_host_port(a) {
                    return Err(format!("p2p.peers[{i}]: {a:?} is not IP:PORT or HOST:PORT"));
                }
                Ok((key, a.to_string()))
            })
            .collect()
    }
}

/// `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT` with a DNS name (letters, digits, `-`, `.`) and a
/// port other than 0.
pub fn is_host_port(a: &str) -> bool {
    if a.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = a.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    let host_ok = host.len() <= 253
        && host.split('.').all(label_ok)
        && !host.chars().all(|c| c.is_ascii_digit() || c == '.');
    port_ok && host_ok
}

/// `[storage]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// fsync the RocksDB WAL at every block commit.
    pub sync_writes: bool,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection { sync_writes: true }
    }
}

/// `[log]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A tracing filter, e.g. `info` or `tpslab_consensus=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
        }
    }
}

fn invalid(path: &str, field: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_string(),
        field,
        reason,
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Config::parse(&text, &p)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let invalid = |field, reason| invalid(path, field, reason);
        let addrs: [(&'static str, &str); 3] = [
            ("api.grpc_addr", &self.api.grpc_addr),
            ("api.metrics_addr", &self.api.metrics_addr),
            ("p2p.listen_addr", &self.p2p.listen_addr),
        ];
        for (field, a) in addrs {
            if a.parse::<std::net::SocketAddr>().is_err() {
                return Err(invalid(field, format!("must be IP:PORT, got {a:?}")));
            }
        }
        let positive: [(&'static str, usize); 6] = [
            ("mempool.max_txs", self.mempool.max_txs),
            ("mempool.max_bytes", self.mempool.max_bytes),
            ("mempool.max_tx_bytes", self.mempool.max_tx_bytes),
            ("consensus.max_block_txs", self.consensus.max_block_txs),
            ("consensus.max_block_bytes", self.consensus.max_block_bytes),
            (
                "consensus.block_interval_ms",
                self.consensus.block_interval_ms as usize,
            ),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(invalid(field, "must be greater than 0".into()));
            }
        }
        if let Err(reason) = self.p2p.parse_peers() {
            return Err(invalid("p2p.peers", reason));
        }
        if let Some(t) = &self.api.admin_token {
            if t.len() < 32 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(invalid(
                    "api.admin_token",
                    "must be at least 32 hex chars (a guessable token would let anyone stop the node)".into(),
                ));
            }
        }
        if let Err((field, reason)) = self.p2p.parse_links() {
            return Err(invalid(field, reason));
        }
        if self
            .byzantine
            .as_ref()
            .is_some_and(|b| b.forgeries.is_empty())
        {
            return Err(invalid(
                "byzantine.forgeries",
                "must name at least one forgery".into(),
            ));
        }
        self.validate_combinations(path)
    }

    /// The checks across fields, and the limits the node's protocols impose.
    fn validate_combinations(&self, path: &str) -> Result<(), ConfigError> {
        let invalid = |field, reason| invalid(path, field, reason);
        if self.mempool.max_tx_bytes > self.consensus.max_block_bytes {
            return Err(invalid(
                "mempool.max_tx_bytes",
                format!(
                    "({}) must not exceed consensus.max_block_bytes ({}), or a valid tx could never be included",
                    self.mempool.max_tx_bytes, self.consensus.max_block_bytes
                ),
            ));
        }
        if self.mempool.max_tx_bytes > self.mempool.max_bytes {
            return Err(invalid(
                "mempool.max_tx_bytes",
                format!(
                    "({}) must not exceed mempool.max_bytes ({}), or the largest tx could never be admitted",
                    self.mempool.max_tx_bytes, self.mempool.max_bytes
                ),
            ));
        }
        let c = &self.consensus;
        let timeouts: [(&'static str, u64); 3] = [
            ("consensus.timeout_propose_ms", c.timeout_propose_ms),
            ("consensus.timeout_prevote_ms", c.timeout_prevote_ms),
            ("consensus.timeout_precommit_ms", c.timeout_precommit_ms),
        ];
        for (field, v) in timeouts {
            // A zero timeout ends every round before a proposal or vote can arrive.
            if v == 0 {
                return Err(invalid(field, "must be greater than 0".into()));
            }
        }
        if let Err((field, reason)) = self.raft.check() {
            return Err(invalid(field, reason));
        }
        if self.p2p.send_queue == 0 {
            return Err(invalid("p2p.send_queue", "must be greater than 0".into()));
        }
        if self.p2p.max_frame_bytes < MIN_FRAME_BYTES {
            return Err(invalid(
                "p2p.max_frame_bytes",
                format!(
                    "({}) must be at least {MIN_FRAME_BYTES} (handshake, votes and sync status frames need room)",
                    self.p2p.max_frame_bytes
                ),
            ));
        }
        if self.mempool.max_tx_bytes > 4 << 20 {
            return Err(invalid(
                "mempool.max_tx_bytes",
                "must be at most 4 MiB (the gRPC message limit)".into(),
            ));
        }
        Ok(())
    }

    /// The file as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_roundtrip() {
        let c = Config::default();
        assert_eq!(Config::parse(&c.to_toml(), "x").unwrap(), c);
        assert_eq!(Config::parse("", "x").unwrap(), c);
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::parse("[mempool]\nmax_txs = \"lots\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("max_txs"), "{e}");
        let e = Config::parse("[mempool]\nmax_txz = 5\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("max_txz"), "{e}");
        let e = Config::parse("[consensus]\nmax_block_txs = 0\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("consensus.max_block_txs"), "{e}");
        let e = Config::parse("[api]\ngrpc_addr = \"nowhere\"\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("api.grpc_addr"), "{e}");
        let e = Config::parse("[mempool\n", "c.toml").unwrap_err();
        assert!(e.to_string().contains("c.toml"), "{e}");
    }

    #[test]
    fn peers_may_be_named_by_host_and_bad_addresses_are_refused() {
        let k = "aa".repeat(32);
        for ok in [
            "127.0.0.1:1",
            "[::1]:26656",
            "tpslab-2.tpslab:26656",
            "h3:26656",
            "node-1.example.org:9",
        ] {
            let text = format!("[p2p]\npeers = [\"{k}@{ok}\"]\n");
            let c = Config::parse(&text, "c.toml").unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(c.p2p.parse_peers().unwrap()[0].1, ok);
        }
        for bad in [
            "h3", "h3:0", "h3:70000", ":26656", "-h:1", "h_3:1", "a..b:1", "1.2.3:4", "h3:1:2",
        ] {
            let text = format!("[p2p]\npeers = [\"{k}@{bad}\"]\n");
            let e = Config::parse(&text, "c.toml").unwrap_err().to_string();
            assert!(e.contains("p2p.peers[0]"), "{bad}: {e}");
        }
    }

    #[test]
    fn admin_token_must_be_long_hex() {
        let good = format!("[api]\nadmin_token = \"{}\"\n", "ab".repeat(16));
        assert!(Config::parse(&good, "c.toml").is_ok());
        for bad in ["\"\"", "\"secret\"", &format!("\"{}\"", "zz".repeat(16))] {
            let e = Config::parse(&format!("[api]\nadmin_token = {bad}\n"), "c.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains("api.admin_token"), "{bad}: {e}");
        }
    }

    #[test]
    fn links_apply_to_every_peer_and_per_peer_entries_override() {
        let (a, b) = ("aa".repeat(32), "bb".repeat(32));
        let text = format!(
            "[p2p]\npeers = [\"{a}@127.0.0.1:1\", \"{b}@127.0.0.1:2\"]\nlink = \"delay=50ms\"\n[p2p.links]\n\"{b}\" = \"delay=80ms,bw=100mbit\"\n"
        );
        let c = Config::parse(&text, "c.toml").unwrap();
        let links = c.p2p.parse_links().unwrap();
        assert_eq!(links[&[0xaa; 32]].to_string(), "delay=50ms");
        assert_eq!(links[&[0xbb; 32]].to_string(), "delay=80ms,bw=100mbit");
        assert_eq!(Config::parse(&c.to_toml(), "x").unwrap(), c);
        assert!(Config::default().p2p.parse_links().unwrap().is_empty());
    }

    #[test]
    fn impossible_combinations_are_refused_naming_the_fields() {
        for (text, field) in [
            (
                "[consensus]\ntimeout_prevote_ms = 0\n",
                "consensus.timeout_prevote_ms",
            ),
            ("[p2p]\nsend_queue = 0\n", "p2p.send_queue"),
            ("[p2p]\nmax_frame_bytes = 1000\n", "p2p.max_frame_bytes"),
            ("[p2p]\nlink = \"delay=fast\"\n", "p2p.link"),
            ("[p2p.links]\nnode1 = \"delay=5ms\"\n", "p2p.links"),
            (
                "[p2p.links]\n\"0000000000000000000000000000000000000000000000000000000000000000\" = \"loss=200%\"\n",
                "p2p.links",
            ),
            (
                "[mempool]\nmax_bytes = 100\nmax_tx_bytes = 200\n",
                "mempool.max_tx_bytes",
            ),
        ] {
            let e = Config::parse(text, "c.toml").unwrap_err();
            assert!(e.to_string().contains(field), "{text}: {e}");
        }
    }
}
