//! Why a message from a peer was refused. Every check of a proposal, vote, block, commit or
//! block-sync record ends in one of these: typed, so a caller (the reactor disconnecting a
//! peer, a test, a fuzz target) can tell the faults apart, and carrying the height, round and
//! peer so a log line says which message of whom.

use std::fmt;
use thiserror::Error;
use tpslab_p2p::PeerId;

/// What is wrong with a message.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Invalid {
    /// Signed by a key not in the validator set.
    #[error("from an unknown validator")]
    UnknownValidator,
    /// A required field is absent.
    #[error("without {0}")]
    Missing(&'static str),
    /// A field does not decode (a hash of the wrong length, ...).
    #[error("malformed {field}: {reason}")]
    Malformed {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A vote type that is neither prevote nor precommit.
    #[error("vote of unknown type")]
    UnknownVoteType,
    /// The signature does not verify under the one signature rule.
    #[error("invalid signature: {0}")]
    Signature(String),
    /// The block is not a well-formed successor of our last committed block.
    #[error("block: {0}")]
    Block(#[from] BlockFault),
    /// The commit does not finalise the block it should.
    #[error("commit: {0}")]
    Commit(#[from] CommitFault),
    /// Our own state could not be read to check it (not the peer's fault; the message is
    /// dropped all the same).
    #[error("cannot check it: {0}")]
    Unverifiable(String),
}

/// Ways a block fails to extend our chain.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum BlockFault {
    /// A header is required.
    #[error("no header")]
    NoHeader,
    /// Made for another chain.
    #[error("wrong chain id")]
    WrongChain,
    /// Not the next height.
    #[error("height {got}, expected {expected}")]
    WrongHeight {
        /// The block's height.
        got: u64,
        /// Ours plus one.
        expected: u64,
    },
    /// `prev_block_hash` is not our last block's hash.
    #[error("prev_block_hash does not link")]
    PrevHash,
    /// `app_hash` is not the app hash after our last block.
    #[error("app_hash differs from ours")]
    AppHash,
    /// The time is not after our last block's.
    #[error("time not after the last block")]
    Time,
    /// `num_txs` disagrees with the txs carried.
    #[error("num_txs differs from txs")]
    NumTxs,
    /// More txs than `consensus.max_block_txs`.
    #[error("{txs} txs, over max_block_txs ({max})")]
    TooManyTxs {
        /// Txs in the block.
        txs: usize,
        /// The limit.
        max: usize,
    },
    /// More tx bytes than `consensus.max_block_bytes`.
    #[error("{bytes} bytes of txs, over max_block_bytes ({max})")]
    TooManyBytes {
        /// Tx bytes in the block.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// `tx_root` is not the merkle root of the txs.
    #[error("tx_root differs")]
    TxRoot,
    /// `last_commit_hash` is not the hash of `last_commit`.
    #[error("last_commit_hash differs")]
    LastCommitHash,
    /// The hash claimed for the block is not its header's.
    #[error("hash does not match its header")]
    Hash,
}

/// Ways a commit fails to finalise a block.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CommitFault {
    /// For another height.
    #[error("for height {got}, expected {expected}")]
    WrongHeight {
        /// The commit's height.
        got: u64,
        /// The block's.
        expected: u64,
    },
    /// For another block.
    #[error("for another block")]
    OtherBlock,
    /// A signature by a key not in the validator set.
    #[error("signed by an unknown validator")]
    UnknownSigner,
    /// One validator's signature twice.
    #[error("validator {0} signed twice")]
    SignedTwice(usize),
    /// A signature that does not verify.
    #[error("signature of validator {validator}: {reason}")]
    Signature {
        /// The validator's index.
        validator: usize,
        /// Why it does not verify.
        reason: String,
    },
    /// Not more than 2/3 of the voting power.
    #[error("{power} of {total} voting power, needs more than 2/3")]
    NoQuorum {
        /// Power of the valid signatures.
        power: u64,
        /// The validator set's total.
        total: u64,
    },
}

/// The kinds of message a peer sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// A consensus or block-sync frame that does not decode.
    Frame,
    /// A signed proposal with its block.
    Proposal,
    /// A prevote or precommit.
    Vote,
    /// A committed block with its commit, from block sync.
    SyncRecord,
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageKind::Frame => "frame",
            MessageKind::Proposal => "proposal",
            MessageKind::Vote => "vote",
            MessageKind::SyncRecord => "block-sync record",
        })
    }
}

/// A refused message: what it was, from whom, where in the chain, and why.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("invalid {kind} from {peer} at height {height}{}: {reason}", round.map(|r| format!(" round {r}")).unwrap_or_default())]
pub struct InvalidMessage {
    /// The message's kind.
    pub kind: MessageKind,
    /// The peer that sent it.
    pub peer: PeerId,
    /// The height it claims (or the height being synced).
    pub height: u64,
    /// Its round, for proposals and votes.
    pub round: Option<u32>,
    /// What is wrong.
    #[source]
    pub reason: Invalid,
}
