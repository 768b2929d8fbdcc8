//! Which consensus engine a chain runs, by name: a property of the chain (in the genesis),
//! like its app. `bft` is Tendermint rounds (tolerates f byzantine of 3f+1); `raft` is
//! raft-rs (tolerates f crashed of 2f+1, trusts every node to follow the protocol).

use crate::{TypesError, TypesResult};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The consensus engine of a chain. Nodes of different engines refuse each other at the p2p
/// handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Tendermint BFT.
    #[default]
    Bft,
    /// Raft (crash-fault tolerant).
    Raft,
}

impl EngineKind {
    /// The genesis and command-line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Bft => "bft",
            EngineKind::Raft => "raft",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EngineKind {
    type Err = TypesError;
    fn from_str(s: &str) -> TypesResult<EngineKind> {
        match s {
            "bft" => Ok(EngineKind::Bft),
            "raft" => Ok(EngineKind::Raft),
            other => Err(TypesError::Malformed {
                what: "consensus",
                reason: format!("unknown consensus engine `{other}` (expected bft or raft)"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_names_round_trip() {
        for e in [EngineKind::Bft, EngineKind::Raft] {
            assert_eq!(e.as_str().parse::<EngineKind>().unwrap(), e);
        }
        assert!("paxos".parse::<EngineKind>().is_err());
    }
}
