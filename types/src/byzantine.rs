//! The test-only misbehaviours a validator can be told to show (config `[byzantine]`, honoured
//! only when the node is started with `--allow-byzantine`): the faults a BFT chain must
//! survive, named so the config, the testnet manifest and the consensus engine agree.

use crate::error::{TypesError, TypesResult};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a byzantine validator lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Signs two different votes for every step it votes in (and proposes two blocks when it
    /// is the proposer), showing each half of its peers a different one first.
    Equivocate,
    /// As proposer, signs two different valid blocks for one height and round.
    DoublePropose,
    /// As proposer, signs blocks that break one rule each (see [`Forgery`]).
    InvalidBlock,
    /// Never proposes or votes (still follows the chain).
    Silent,
    /// Sends random bytes instead of every message, and more of them, on all its links.
    Garbage,
    /// As proposer, sends compact blocks (tx hashes, compact-blocks) holding one tx no one
    /// else has, and never answers a peer's request for it: honest validators cannot
    /// rebuild the block, prevote nil when `timeout_propose` ends and go to the next round.
    WithholdTxs,
    /// Asks the sender of every proposal, and every other peer, for all of the block's txs
    /// eight times over (compact-blocks requests): honest validators serve each peer at most
    /// four times a block's txs per block and ignore the rest, so the liar cannot use them
    /// to amplify traffic.
    FloodTxRequests,
}

impl Behaviour {
    /// Every behaviour, in documentation order.
    pub const ALL: [Behaviour; 7] = [
        Behaviour::Equivocate,
        Behaviour::DoublePropose,
        Behaviour::InvalidBlock,
        Behaviour::Silent,
        Behaviour::Garbage,
        Behaviour::WithholdTxs,
        Behaviour::FloodTxRequests,
    ];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Equivocate => "equivocate",
            Behaviour::DoublePropose => "double-propose",
            Behaviour::InvalidBlock => "invalid-block",
            Behaviour::Silent => "silent",
            Behaviour::Garbage => "garbage",
            Behaviour::WithholdTxs => "withhold-txs",
            Behaviour::FloodTxRequests => "flood-tx-requests",
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Behaviour {
    type Err = TypesError;
    fn from_str(s: &str) -> TypesResult<Behaviour> {
        Behaviour::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| TypesError::Malformed {
                what: "byzantine behaviour",
                reason: format!(
                    "unknown behaviour `{s}` (expected one of: {})",
                    Behaviour::ALL.map(Behaviour::name).join(", ")
                ),
            })
    }
}

/// One way an `invalid-block` proposer breaks a block. Each but [`Forgery::BadSigTx`] makes
/// the block invalid (honest validators prevote nil); a block holding a tx with a bad
/// signature stays valid and the tx gets a failure code, as in CometBFT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Forgery {
    /// A tx root that is not the merkle root of the txs.
    TxRoot,
    /// An app hash other than the one after the previous block.
    AppHash,
    /// The height after the next one.
    Height,
    /// The previous block's time (not after it).
    Time,
    /// More tx bytes than `consensus.max_block_bytes`.
    Oversize,
    /// A tx whose signature does not verify (the block stays valid).
    BadSigTx,
}

impl Forgery {
    /// Every forgery, in the order an `invalid-block` proposer cycles through them.
    pub const ALL: [Forgery; 6] = [
        Forgery::TxRoot,
        Forgery::AppHash,
        Forgery::Height,
        Forgery::Time,
        Forgery::Oversize,
        Forgery::BadSigTx,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_names_round_trip_and_unknown_ones_are_refused() {
        for b in Behaviour::ALL {
            assert_eq!(b.name().parse::<Behaviour>().unwrap(), b);
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(json, format!("\"{}\"", b.name()));
        }
        let e = "lie".parse::<Behaviour>().unwrap_err().to_string();
        assert!(e.contains("equivocate, double-propose"), "{e}");
    }
}
