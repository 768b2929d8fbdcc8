//! The config checks that need the genesis and the consensus wire format: the largest block
//! the limits allow must travel in one p2p frame, as a proposal and as a block-sync response.
//! They live with the node (not with the file format in tpslab-api) because the sizes come
//! from consensus's frame budget.

use tpslab_api::config::{Config, ConfigError};
use tpslab_consensus::frame_budget::{self, WireLimits};

/// Start checks of a [`Config`] against the chain it joins.
pub trait FrameCheck {
    /// A proposal over the frame limit is dropped by every peer, and the chain never commits
    /// again; so a config whose largest block could not travel is refused. `path` is only
    /// used in messages.
    fn check_against_genesis(
        &self,
        path: &str,
        chain_id: &str,
        validators: usize,
    ) -> Result<(), ConfigError>;
    /// The frame sizes (proposal, block-sync response) of the largest block these block
    /// limits allow on a chain with `chain_id` and `validators`; `p2p.max_frame_bytes` must
    /// hold the larger.
    fn largest_frames(&self, chain_id: &str, validators: usize) -> (usize, usize);
}

impl FrameCheck for Config {
    fn check_against_genesis(
        &self,
        path: &str,
        chain_id: &str,
        validators: usize,
    ) -> Result<(), ConfigError> {
        let max = self.p2p.max_frame_bytes;
        let (proposal, sync) = self.largest_frames(chain_id, validators);
        let need = proposal.max(sync);
        if need > max {
            return Err(ConfigError::Invalid {
                path: path.to_string(),
                field: "p2p.max_frame_bytes",
                reason: format!(
                    "({max}) is too small for the largest block consensus.max_block_bytes ({}) \
                     and consensus.max_block_txs ({}) allow with {validators} validators: its \
                     proposal takes up to {proposal} bytes on the wire and its block-sync \
                     response up to {sync}; raise p2p.max_frame_bytes to at least {need} or \
                     lower the block limits",
                    self.consensus.max_block_bytes, self.consensus.max_block_txs
                ),
            });
        }
        Ok(())
    }

    fn largest_frames(&self, chain_id: &str, validators: usize) -> (usize, usize) {
        let limits = WireLimits {
            chain_id_len: chain_id.len(),
            validators,
            max_block_txs: self.consensus.max_block_txs,
            max_block_bytes: self.consensus.max_block_bytes,
        };
        (
            tpslab_p2p::frame_len(frame_budget::max_proposal_payload(&limits)),
            tpslab_p2p::frame_len(frame_budget::max_one_block_sync_payload(&limits)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_that_cannot_travel_is_refused() {
        // The case: 16 MiB blocks in 16 MiB frames.
        let text = "[consensus]\nmax_block_bytes = 16777216\nmax_block_txs = 50000\n";
        let c = Config::parse(text, "c.toml").unwrap();
        let e = c
            .check_against_genesis("c.toml", "tpslab-test", 4)
            .unwrap_err();
        let msg = e.to_string();
        for f in [
            "p2p.max_frame_bytes",
            "consensus.max_block_bytes",
            "consensus.max_block_txs",
        ] {
            assert!(msg.contains(f), "{msg}");
        }
        // The defaults fit with room to spare, and so does a frame of exactly what it asks.
        Config::default()
            .check_against_genesis("c.toml", "tpslab-test", 4)
            .unwrap();
        let need: usize = msg
            .split("at least ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        let mut c = c;
        c.p2p.max_frame_bytes = need;
        c.check_against_genesis("c.toml", "tpslab-test", 4).unwrap();
        c.p2p.max_frame_bytes = need - 1;
        assert!(c.check_against_genesis("c.toml", "tpslab-test", 4).is_err());
    }
}
