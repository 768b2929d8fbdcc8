//! The Tendermint round state machine, pure: `apply(state, input) -> outputs`.
//!
//! Line numbers refer to Algorithm 1 of "The latest gossip on BFT consensus" (Buchman, Kwon,
//! Milosevic, 2018). Inputs are already-aggregated events (a proposal together with the polka
//! it needs, a quorum, a timeout); the driver derives them from messages and vote tallies and
//! guarantees each "upon ... for the first time" input is delivered once per round.

use tpslab_types::Hash;

/// Where in a round the validator is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Before the first round starts.
    Unstarted,
    /// Waiting for a proposal.
    Propose,
    /// Prevoted.
    Prevote,
    /// Precommitted.
    Precommit,
    /// Decided.
    Commit,
}

/// A value with the round it was locked or seen valid in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundValue {
    /// The block hash.
    pub value: Hash,
    /// The round.
    pub round: u32,
}

/// Per-height consensus state (the paper's `round_p`, `step_p`, `lockedValue_p`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// Height being decided.
    pub height: u64,
    /// Current round.
    pub round: u32,
    /// Current step.
    pub step: Step,
    /// Locked value and round (lines 38-39).
    pub locked: Option<RoundValue>,
    /// Latest value seen with a polka and proposal (lines 42-43).
    pub valid: Option<RoundValue>,
    /// The decision, once made.
    pub decision: Option<RoundValue>,
}

impl State {
    /// Fresh state for `height`, before round 0.
    pub fn new(height: u64) -> State {
        State {
            height,
            round: 0,
            step: Step::Unstarted,
            locked: None,
            valid: None,
            decision: None,
        }
    }
}

/// Where a restarted validator picks a height up again: the round it last signed in, how far
/// it got in that round, and the lock its last non-nil precommit implies (a precommit for `v`
/// in round `r` follows a polka for `v` in `r`: lines 36-43 set both `locked` and `valid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// Highest round signed in.
    pub round: u32,
    /// [`Step::Propose`] (proposed only), [`Step::Prevote`] or [`Step::Precommit`].
    pub step: Step,
    /// The lock, if a non-nil precommit was signed.
    pub locked: Option<RoundValue>,
}

/// Kinds of timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// Waiting for a proposal.
    Propose,
    /// Waiting for prevotes to converge.
    Prevote,
    /// Waiting for precommits to converge.
    Precommit,
}

/// Events the state machine reacts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Start round `round` (line 11); `proposer` says whether we propose in it.
    NewRound {
        /// The round.
        round: u32,
        /// True if this validator proposes.
        proposer: bool,
    },
    /// Our own block to propose arrived (the `getValue()` of line 18).
    ProposeValue(Hash),
    /// Proposal with `validRound = -1` from the round's proposer (line 22).
    Proposal {
        /// Proposed block.
        value: Hash,
        /// Whether the block is valid (`valid(v)`).
        valid: bool,
    },
    /// Proposal with `validRound = vr >= 0` plus +2/3 prevotes for it in `vr` (line 28).
    ProposalAndPolkaPrevious {
        /// Proposed block.
        value: Hash,
        /// Its proof-of-lock round.
        pol_round: u32,
        /// `valid(v)`.
        valid: bool,
    },
    /// +2/3 prevotes for anything in the current round (line 34).
    PolkaAny,
    /// Proposal plus +2/3 prevotes for it in the current round (line 36), valid block.
    ProposalAndPolkaCurrent(Hash),
    /// +2/3 prevotes for nil in the current round (line 44).
    PolkaNil,
    /// +2/3 precommits for anything in the current round (line 47).
    PrecommitAny,
    /// Proposal plus +2/3 precommits for it in round `round` (line 49), valid block.
    ProposalAndPrecommitValue {
        /// The block.
        value: Hash,
        /// The round of the precommits.
        round: u32,
    },
    /// +1/3 of power is in a higher round (line 55).
    SkipRound(u32),
    /// Instead of round 0: continue where the WAL says we stopped (see [`Resume`]).
    Resume(Resume),
    /// A timeout of `kind` for `round` fired (lines 57, 61, 65).
    Timeout {
        /// Which timeout.
        kind: TimeoutKind,
        /// Its round.
        round: u32,
    },
}

/// What the state machine asks the node to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Build a block to propose in `round` (line 18).
    GetValue {
        /// The round.
        round: u32,
    },
    /// Broadcast a proposal (line 19).
    Propose {
        /// The round.
        round: u32,
        /// Block hash.
        value: Hash,
        /// `validRound`, None for -1.
        pol_round: Option<u32>,
    },
    /// Sign and broadcast a prevote (`None` = nil).
    Prevote {
        /// The round.
        round: u32,
        /// Block hash or nil.
        value: Option<Hash>,
    },
    /// Sign and broadcast a precommit (`None` = nil).
    Precommit {
        /// The round.
        round: u32,
        /// Block hash or nil.
        value: Option<Hash>,
    },
    /// Schedule a timeout.
    ScheduleTimeout {
        /// Which.
        kind: TimeoutKind,
        /// For which round.
        round: u32,
    },
    /// The height is decided (line 49).
    Decide {
        /// The round of the deciding precommits.
        round: u32,
        /// The block hash.
        value: Hash,
    },
}

/// Line 11-21: StartRound.
fn start_round(s: &mut State, round: u32, proposer: bool) -> Vec<Output> {
    if s.step != Step::Unstarted && round <= s.round {
        return vec![];
    }
    s.round = round;
    s.step = Step::Propose;
    if !proposer {
        // Line 21.
        return vec![Output::ScheduleTimeout {
            kind: TimeoutKind::Propose,
            round,
        }];
    }
    match s.valid {
        // Line 15-16: re-propose the valid value with its round.
        Some(v) => vec![Output::Propose {
            round,
            value: v.value,
            pol_round: Some(v.round),
        }],
        None => vec![Output::GetValue { round }],
    }
}

/// Restores a restarted validator's round, step and lock, so that it neither signs a second,
/// different vote for a step it already signed nor forgets a lock (which would let it prevote
/// a conflicting block in a later round). It does not skip ahead: peers may still wait in
/// that round for its next vote.
fn resume(s: &mut State, r: Resume) -> Vec<Output> {
    if s.step != Step::Unstarted {
        return vec![];
    }
    s.round = r.round;
    s.step = r.step.clamp(Step::Propose, Step::Precommit);
    s.locked = r.locked;
    s.valid = r.locked;
    if s.step == Step::Propose {
        // We proposed already; a proposer waits for its own proposal like anyone (line 21).
        return vec![Output::ScheduleTimeout {
            kind: TimeoutKind::Propose,
            round: r.round,
        }];
    }
    vec![]
}

/// Line 36-43: a proposal and a polka for it in the current round.
fn polka_current(s: &mut State, value: Hash) -> Vec<Output> {
    if s.step < Step::Prevote {
        return vec![];
    }
    let round = s.round;
    let mut out = vec![];
    if s.step == Step::Prevote {
        s.locked = Some(RoundValue { value, round });
        s.step = Step::Precommit;
        out.push(Output::Precommit {
            round,
            value: Some(value),
        });
    }
    s.valid = Some(RoundValue { value, round });
    out
}

/// Line 57-67: the timeouts of the current round.
fn timeout(s: &mut State, kind: TimeoutKind, round: u32) -> Vec<Output> {
    if round != s.round {
        return vec![];
    }
    match kind {
        // Line 57-60.
        TimeoutKind::Propose if s.step == Step::Propose => prevote(s, None),
        // Line 61-64.
        TimeoutKind::Prevote if s.step == Step::Prevote => precommit_nil(s),
        // Line 65-67: the driver starts round + 1.
        _ => vec![],
    }
}

/// Applies `input` to `s`, returning the outputs. Inputs that do not apply in the current
/// round or step change nothing and return no outputs.
pub fn apply(s: &mut State, input: Input) -> Vec<Output> {
    if s.step == Step::Commit {
        return vec![];
    }
    match input {
        // Line 11-21: StartRound.
        Input::NewRound { round, proposer } => start_round(s, round, proposer),
        Input::ProposeValue(value) => {
            if s.step != Step::Propose {
                return vec![];
            }
            vec![Output::Propose {
                round: s.round,
                value,
                pol_round: None,
            }]
        }
        // Line 22-27.
        Input::Proposal { value, valid } => {
            if s.step != Step::Propose {
                return vec![];
            }
            let ok = valid && s.locked.is_none_or(|l| l.value == value);
            prevote(s, ok.then_some(value))
        }
        // Line 28-33.
        Input::ProposalAndPolkaPrevious {
            value,
            pol_round,
            valid,
        } => {
            if s.step != Step::Propose || pol_round >= s.round {
                return vec![];
            }
            let ok = valid
                && s.locked
                    .is_none_or(|l| l.round <= pol_round || l.value == value);
            prevote(s, ok.then_some(value))
        }
        // Line 34-35.
        Input::PolkaAny => {
            if s.step != Step::Prevote {
                return vec![];
            }
            vec![Output::ScheduleTimeout {
                kind: TimeoutKind::Prevote,
                round: s.round,
            }]
        }
        // Line 36-43.
        Input::ProposalAndPolkaCurrent(value) => polka_current(s, value),
        // Line 44-46.
        Input::PolkaNil => {
            if s.step != Step::Prevote {
                return vec![];
            }
            precommit_nil(s)
        }
        // Line 47-48.
        Input::PrecommitAny => vec![Output::ScheduleTimeout {
            kind: TimeoutKind::Precommit,
            round: s.round,
        }],
        // Line 49-54: decide, in any round.
        Input::ProposalAndPrecommitValue { value, round } => {
            s.decision = Some(RoundValue { value, round });
            s.step = Step::Commit;
            vec![Output::Decide { round, value }]
        }
        // Line 55-56: the driver then starts the round (NewRound).
        Input::SkipRound(_) => vec![],
        Input::Resume(r) => resume(s, r),
        Input::Timeout { kind, round } => timeout(s, kind, round),
    }
}

fn prevote(s: &mut State, value: Option<Hash>) -> Vec<Output> {
    s.step = Step::Prevote;
    vec![Output::Prevote {
        round: s.round,
        value,
    }]
}

fn precommit_nil(s: &mut State) -> Vec<Output> {
    s.step = Step::Precommit;
    vec![Output::Precommit {
        round: s.round,
        value: None,
    }]
}
