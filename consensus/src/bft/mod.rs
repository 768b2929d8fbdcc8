//! Tendermint BFT, pure: the round state machine ([`state`]), vote bookkeeping ([`votes`]),
//! the validator set ([`validators`]) and the [`driver`] that ties them together. The node
//! performs the driver's outputs (sign, persist, broadcast, schedule timers, commit).

pub mod check;
pub mod commit;
pub mod driver;
pub mod state;
pub mod validators;
pub mod votes;

pub use driver::{Driver, DriverInput, DriverOutput, ProposalInput, Timeouts};
pub use state::{Resume, RoundValue, Step, TimeoutKind};
pub use validators::{Validator, ValidatorSet};
pub use votes::{Equivocation, SignedVote, Threshold, VoteKeeper, MAX_FACES};
