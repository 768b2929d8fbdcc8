//! The tuning toggles: each optimization is a named runtime flag with a naive path (code a real
//! project plausibly ships) and a tuned path. Both paths commit the same state and app hash.
//!
//! `Tuning` travels in config.toml's `[tuning]` section (one bool per toggle, default tuned);
//! `tpslab opts` prints [`CATALOGUE`].

use serde::{Deserialize, Serialize};

/// One entry of the catalogue, for `tpslab opts` and the experiment report.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Toggle {
    /// The flag name (`--opt NAME`).
    pub name: &'static str,
    /// What the naive path does.
    pub naive: &'static str,
    /// What the tuned path does.
    pub tuned: &'static str,
    /// The real-world pattern the naive path models, and where it comes from.
    pub models: &'static str,
    /// Which measurement should move when the toggle is on.
    pub moves: &'static str,
}

/// Every toggle, in the experiment's ladder order (biggest expected effect first is not the
/// point: the order follows the seed article's "fix the hot spot the profile shows" sequence).
pub const CATALOGUE: &[Toggle] = &[
    Toggle {
        name: "write-batch",
        naive: "each tx's account writes are put to RocksDB as they execute, one synced write per tx; the block's commit writes only its record and meta (not crash-atomic)",
        tuned: "one WriteBatch per block (state, block record, meta), one sync",
        models: "apps that persist every state change immediately (per-tx Put with WAL sync); the seed's batched-writes lever, LevelDB/RocksDB write-batch guidance",
        moves: "fsync per committed tx, block commit time (state_block_processing_time), TPS",
    },
    Toggle {
        name: "read-cache",
        naive: "every account read (CheckTx, execution, recheck) goes to RocksDB",
        tuned: "committed accounts cached in memory, updated with each write; misses fill it unless a write raced",
        models: "state access straight to the KV store (Cosmos SDK without the IAVL node cache / inter-block cache)",
        moves: "RocksDB gets per tx (CPU profile: memtable lookups), block processing time",
    },
    Toggle {
        name: "sharded-state",
        naive: "the state read cache sits behind one global RwLock: a block commit holds it while writing every touched account, and CheckTx reads and miss-fills queue behind it",
        tuned: "64 lock shards chosen by address, each taken only for its own accounts",
        models: "a state map guarded by one sync.RWMutex (the seed's contended-lock finding); lock striping as in Java's ConcurrentHashMap, dashmap",
        moves: "state_lock_wait_seconds per tx, futex wait time; no effect without read-cache",
    },
    Toggle {
        name: "sig-cache",
        naive: "every tx signature is verified again when its block executes",
        tuned: "a verified-tx cache keyed by tx hash, filled by CheckTx, consulted at execution",
        models: "Cosmos SDK's re-run of the ante handler's signature check in DeliverTx; geth/Cosmos signature caches",
        moves: "ed25519 verifications per committed tx (tpslab_signature_verifications_total; CPU profile: ed25519_zebra verify), TPS",
    },
    Toggle {
        name: "sig-batch",
        naive: "ed25519 signatures verified one by one",
        tuned: "one cofactored ZIP-215 batch verification (zebra's equation, sender keys kept decompressed across batches) of the txs CheckTx gathers (gossip frames from every peer and streamed API txs, for up to 20 ms while txs come fast) and of the uncached txs of a block; a failed batch falls back to one-by-one to name the bad tx; same verdict as one by one for every input",
        models: "per-message verification in most node implementations; batch verification as in Solana/ed25519-zebra",
        moves: "CPU per verified signature (~37 us one by one, ~17 us in batches of 16, ~12 us of 1024 on this CPU: types/benches/verify.rs)",
    },
    Toggle {
        name: "gossip-batch",
        naive: "each tx accepted by the API is sent to every peer as its own message",
        tuned: "accepted txs are gathered for up to 5 ms (or 512 txs) and sent as one TxBatch",
        models: "CometBFT's per-tx mempool gossip (one p2p message per tx per peer)",
        moves: "p2p messages and write syscalls per tx, CPU % of the receiving nodes",
    },
    Toggle {
        name: "recheck-incremental",
        naive: "after each block every pending sender is rechecked against the state db",
        tuned: "only senders whose accounts the block wrote are rechecked",
        models: "CometBFT's mempool recheck of the whole mempool after every block",
        moves: "state reads per block, mempool lock hold time, commit-to-next-proposal gap",
    },
    Toggle {
        name: "quiet-log",
        naive: "debug level with a per-tx log line (accepted, executed), written synchronously",
        tuned: "the configured level (info) through a non-blocking writer",
        models: "nodes run with debug logs in production; the seed's logging lever",
        moves: "write syscalls per tx, CPU in fmt/write",
    },
    Toggle {
        name: "crypto-pool",
        naive: "CheckTx (decode, signature verify) runs inline on the async I/O threads that read the gRPC stream",
        tuned: "CheckTx runs on the blocking pool in chunks of the requests already received, so I/O threads keep reading",
        models: "verification on network/event-loop threads; moving CPU work off the reactor (tokio spawn_blocking/rayon guidance)",
        moves: "API receive latency, run-queue latency of the I/O threads, TPS at saturation",
    },
    Toggle {
        name: "buffer-pool",
        naive: "every tx decode allocates a fresh message (chain id, keys, signature, payload buffers) and every signature check a fresh sign-bytes buffer",
        tuned: "decoded tx messages come from a pool and go back when the tx is dropped, cleared before reuse; sign-bytes are built in a per-thread scratch buffer (one buffer per verification batch)",
        models: "Go's sync.Pool for decode buffers (and its misuse lesson: reset before reuse); Rust nodes reusing BytesMut/prost messages instead of decoding into new ones",
        moves: "allocations per committed tx (process_allocations), CPU in malloc/free",
    },
    Toggle {
        name: "zero-copy-net",
        naive: "each p2p frame is encoded into its own buffer, copied into the connection's write buffer and written with its own flush (one write syscall per frame)",
        tuned: "frames are encoded straight into the connection's write buffer (one copy of the payload) and every frame already queued for the peer goes out with one flush",
        models: "prost encode_to_vec + Framed::send per message, the plain way to write a framed protocol; tokio-util's feed-then-flush batching and in-place encoding (CometBFT's MConnection also batches packets per flush)",
        moves: "write syscalls per p2p frame (eBPF syscalls probe), memcpy in the p2p writer, CPU % of the senders",
    },
    Toggle {
        name: "compact-blocks",
        naive: "a BFT proposal carries every tx of its block, whole, to every peer",
        tuned: "a BFT proposal carries the block's header, last commit and tx hashes; peers rebuild it from their mempools and fetch only the txs they lack (from the sender, then every peer every 200 ms); same block hash and tx root",
        models: "CometBFT's block parts of whole txs, which every peer already received by mempool gossip; the digest ordering of hotstuff/narwhal and Bitcoin's compact blocks (BIP 152)",
        moves: "p2p bytes sent per committed tx (p2p_message_send_bytes), consensus stage latency; txs fetched vs found (consensus_compact_txs_*)",
    },
    Toggle {
        name: "parallel-exec",
        naive: "a block's signatures are verified in one batch, then its txs deliver one after another, on one thread",
        tuned: "when a block has 64+ signatures left to verify (not in the sig cache), its txs are grouped by the state they touch (sender and recipient accounts, kvstore keys; union-find) and the groups dealt to one worker per core, each verifying and delivering its own in block order; the writes are replayed in block order for the app hash (a tx touching an undeclared key voids the run: sequential). With every signature cached, delivery stays sequential (cheaper than grouping, statedb/benches/execute.rs); same codes, writes and app hash either way",
        models: "sequential DeliverTx (Cosmos SDK, CometBFT's ABCI); conflict-set scheduling (Solana's Sealevel account locks) and Aptos Block-STM's parallel execution with ordered commit",
        moves: "block processing time of blocks with unverified txs (1000 transfers: 17.6 -> 10.5 ms on 2 cores), consensus stage latency; nothing when every tx was verified at CheckTx",
    },
    Toggle {
        name: "adaptive-pause",
        naive: "after every commit a BFT validator waits block_interval_ms (200 ms) before the next height, however long the height took and however many txs wait",
        tuned: "the pause lasts as long as the height it follows took (its start to its commit), between 10 ms and block_interval_ms, and ends as soon as the mempool holds a full block: short on an idle chain, as long as the work on a busy one (blocks stay large), none while full blocks wait",
        models: "CometBFT's fixed timeout_commit (1 s by default, tuned by hand per chain); proposing once a block is full (the solo and Raft engines, Narwhal's batch size trigger) and batch windows that follow the service time (Nagle-style adaptive batching)",
        moves: "mempool stage latency below capacity (the pause is most of it), blocks per second when the mempool holds full blocks (kvstore near capacity); BFT only (Raft proposes as txs arrive)",
    },
];

/// Which toggles are on. Field names are the toggle names with `_`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tuning {
    /// See [`CATALOGUE`].
    pub write_batch: bool,
    /// See [`CATALOGUE`].
    pub read_cache: bool,
    /// See [`CATALOGUE`].
    pub sharded_state: bool,
    /// See [`CATALOGUE`].
    pub sig_cache: bool,
    /// See [`CATALOGUE`].
    pub sig_batch: bool,
    /// See [`CATALOGUE`].
    pub gossip_batch: bool,
    /// See [`CATALOGUE`].
    pub recheck_incremental: bool,
    /// See [`CATALOGUE`].
    pub quiet_log: bool,
    /// See [`CATALOGUE`].
    pub crypto_pool: bool,
    /// See [`CATALOGUE`].
    pub buffer_pool: bool,
    /// See [`CATALOGUE`].
    pub zero_copy_net: bool,
    /// See [`CATALOGUE`].
    pub compact_blocks: bool,
    /// See [`CATALOGUE`].
    pub parallel_exec: bool,
    /// See [`CATALOGUE`].
    pub adaptive_pause: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning::tuned()
    }
}

/// An unknown toggle name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown optimization `{0}` (see `tpslab opts`)")]
pub struct UnknownToggle(pub String);

impl Tuning {
    /// Every toggle off: the naive paths.
    pub fn baseline() -> Tuning {
        Tuning {
            write_batch: false,
            read_cache: false,
            sharded_state: false,
            sig_cache: false,
            sig_batch: false,
            gossip_batch: false,
            recheck_incremental: false,
            quiet_log: false,
            crypto_pool: false,
            buffer_pool: false,
            zero_copy_net: false,
            compact_blocks: false,
            parallel_exec: false,
            adaptive_pause: false,
        }
    }

    /// Every toggle on.
    pub fn tuned() -> Tuning {
        Tuning {
            write_batch: true,
            read_cache: true,
            sharded_state: true,
            sig_cache: true,
            sig_batch: true,
            gossip_batch: true,
            recheck_incremental: true,
            quiet_log: true,
            crypto_pool: true,
            buffer_pool: true,
            zero_copy_net: true,
            compact_blocks: true,
            parallel_exec: true,
            adaptive_pause: true,
        }
    }

    fn flag(&mut self, name: &str) -> Result<&mut bool, UnknownToggle> {
        Ok(match name {
            "write-batch" => &mut self.write_batch,
            "read-cache" => &mut self.read_cache,
            "sharded-state" => &mut self.sharded_state,
            "sig-cache" => &mut self.sig_cache,
            "sig-batch" => &mut self.sig_batch,
            "gossip-batch" => &mut self.gossip_batch,
            "recheck-incremental" => &mut self.recheck_incremental,
            "quiet-log" => &mut self.quiet_log,
            "crypto-pool" => &mut self.crypto_pool,
            "buffer-pool" => &mut self.buffer_pool,
            "zero-copy-net" => &mut self.zero_copy_net,
            "compact-blocks" => &mut self.compact_blocks,
            "parallel-exec" => &mut self.parallel_exec,
            "adaptive-pause" => &mut self.adaptive_pause,
            other => return Err(UnknownToggle(other.to_string())),
        })
    }

    /// Turns `name` on or off.
    pub fn set(&mut self, name: &str, on: bool) -> Result<(), UnknownToggle> {
        *self.flag(name)? = on;
        Ok(())
    }

    /// Whether `name` is on.
    pub fn get(&self, name: &str) -> Result<bool, UnknownToggle> {
        let mut copy = *self;
        Ok(*copy.flag(name)?)
    }

    /// The names of the toggles that are on, in catalogue order.
    pub fn enabled(&self) -> Vec<&'static str> {
        CATALOGUE
            .iter()
            .filter(|t| self.get(t.name).unwrap_or(false))
            .map(|t| t.name)
            .collect()
    }

    /// The baseline plus the named toggles (`--baseline --opt a --opt b`).
    pub fn with(names: &[String]) -> Result<Tuning, UnknownToggle> {
        let mut t = Tuning::baseline();
        for n in names {
            t.set(n, true)?;
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_entry_is_a_flag_and_back() {
        let mut t = Tuning::baseline();
        for entry in CATALOGUE {
            assert!(!t.get(entry.name).unwrap());
            t.set(entry.name, true).unwrap();
        }
        assert_eq!(t, Tuning::tuned());
        assert_eq!(t.enabled().len(), CATALOGUE.len());
        assert_eq!(Tuning::baseline().enabled(), Vec::<&str>::new());
    }

    #[test]
    fn unknown_names_are_refused() {
        assert_eq!(
            Tuning::with(&["sig-cache".into(), "turbo".into()]),
            Err(UnknownToggle("turbo".into()))
        );
        let t = Tuning::with(&["sig-cache".into()]).unwrap();
        assert_eq!(t.enabled(), vec!["sig-cache"]);
    }
}
