//! The driver around the pure state machine: it keeps the validator set, the proposals and
//! the votes of one height, turns messages into the state machine's aggregated inputs (each
//! "for the first time" rule once per round), and returns the node's to-do list. No I/O, no
//! clock, no signing: the node signs and persists votes, then feeds them back as inputs.

use super::state::{apply, Input, Output, Resume, State, Step, TimeoutKind};
use super::validators::ValidatorSet;
use super::votes::{AddVote, Equivocation, SignedVote, Threshold, VoteKeeper};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tpslab_types::pb::VoteType;
use tpslab_types::Hash;

/// Timeouts grow linearly with the round so that a slow network eventually fits in one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Propose timeout at round 0.
    pub propose: Duration,
    /// Added per round.
    pub propose_delta: Duration,
    /// Prevote timeout at round 0.
    pub prevote: Duration,
    /// Added per round.
    pub prevote_delta: Duration,
    /// Precommit timeout at round 0.
    pub precommit: Duration,
    /// Added per round.
    pub precommit_delta: Duration,
}

impl Default for Timeouts {
    /// CometBFT's defaults.
    fn default() -> Self {
        Timeouts {
            propose: Duration::from_millis(3000),
            propose_delta: Duration::from_millis(500),
            prevote: Duration::from_millis(1000),
            prevote_delta: Duration::from_millis(500),
            precommit: Duration::from_millis(1000),
            precommit_delta: Duration::from_millis(500),
        }
    }
}

impl Timeouts {
    /// Duration of a `kind` timeout in `round`.
    pub fn duration(&self, kind: TimeoutKind, round: u32) -> Duration {
        let (base, delta) = match kind {
            TimeoutKind::Propose => (self.propose, self.propose_delta),
            TimeoutKind::Prevote => (self.prevote, self.prevote_delta),
            TimeoutKind::Precommit => (self.precommit, self.precommit_delta),
        };
        base + delta * round
    }
}

/// A proposal whose signature and block the node has checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalInput {
    /// Height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// Block hash.
    pub value: Hash,
    /// Proof-of-lock round (`validRound`), None for -1.
    pub pol_round: Option<u32>,
    /// Index of the signer.
    pub proposer: usize,
    /// Whether the block is valid (executes on our state, links to our chain).
    pub valid: bool,
}

/// Inputs of the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriverInput {
    /// Start round 0 of the height.
    Start,
    /// Start where a restart left off instead (the WAL's round, step and lock).
    Resume(Resume),
    /// The block we were asked to build (after [`DriverOutput::GetValue`]).
    ProposeValue {
        /// The round it was requested for.
        round: u32,
        /// Its hash.
        value: Hash,
    },
    /// A proposal.
    Proposal(ProposalInput),
    /// A vote (ours included, once signed).
    Vote(SignedVote),
    /// A timeout scheduled earlier fired.
    Timeout {
        /// Which.
        kind: TimeoutKind,
        /// For which round.
        round: u32,
    },
}

/// What the node must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriverOutput {
    /// Build a block for `round` and answer with [`DriverInput::ProposeValue`].
    GetValue {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
    },
    /// Sign and broadcast a proposal of the block with hash `value`.
    Propose {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// Block hash.
        value: Hash,
        /// `validRound`.
        pol_round: Option<u32>,
    },
    /// Sign, persist (WAL), broadcast, and feed back a vote.
    Vote {
        /// Prevote or precommit.
        vote_type: VoteType,
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// Block hash, or nil.
        value: Option<Hash>,
    },
    /// Fire [`DriverInput::Timeout`] after `after`.
    ScheduleTimeout {
        /// Which.
        kind: TimeoutKind,
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// Delay.
        after: Duration,
    },
    /// The height is decided: commit the block with these +2/3 precommits.
    Decide {
        /// Height.
        height: u64,
        /// Round of the precommits.
        round: u32,
        /// Block hash.
        value: Hash,
        /// The precommits, sorted by validator index.
        precommits: Vec<SignedVote>,
    },
    /// A validator signed two different votes for one height/round/type.
    Equivocation(Box<Equivocation>),
    /// The round's proposer signed a second, different proposal (evidence against it).
    DoubleProposal {
        /// Round of the proposals.
        round: u32,
        /// Who signed them.
        proposer: usize,
    },
    /// A proposal came from a validator that is not the round's proposer; ignored.
    WrongProposer {
        /// Round of the proposal.
        round: u32,
        /// Who signed it.
        proposer: usize,
    },
}

/// "Upon ... for the first time" rules, fired once per round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Once {
    PolkaAny,
    PolkaCurrent,
    PrecommitAny,
}

/// Consensus for one height.
pub struct Driver {
    vals: Arc<ValidatorSet>,
    me: Option<usize>,
    timeouts: Timeouts,
    state: State,
    votes: VoteKeeper,
    proposals: HashMap<u32, ProposalInput>,
    /// A second, different proposal of a round (a byzantine proposer's): it does not replace
    /// the first for the propose step, but a polka or commit for it still counts (lines 36
    /// and 49 accept any proposal of the round's proposer).
    second: HashMap<u32, ProposalInput>,
    fired: HashSet<(u32, Once)>,
}

impl Driver {
    /// A driver for `height`; `me` is our validator index (None for a non-validator).
    pub fn new(
        height: u64,
        vals: Arc<ValidatorSet>,
        me: Option<usize>,
        timeouts: Timeouts,
    ) -> Self {
        Driver {
            vals,
            me,
            timeouts,
            state: State::new(height),
            votes: VoteKeeper::new(height),
            proposals: HashMap::new(),
            second: HashMap::new(),
            fired: HashSet::new(),
        }
    }

    /// The round state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The votes of this height.
    pub fn votes(&self) -> &VoteKeeper {
        &self.votes
    }

    /// Processes one input and everything it unlocks.
    pub fn process(&mut self, input: DriverInput) -> Vec<DriverOutput> {
        let mut out = Vec::new();
        let h = self.state.height;
        match input {
            DriverInput::Start => self.start_round(0, &mut out),
            DriverInput::Resume(r) => self.step(Input::Resume(r), &mut out),
            DriverInput::ProposeValue { round, value } => {
                if round == self.state.round {
                    self.step(Input::ProposeValue(value), &mut out);
                }
            }
            DriverInput::Proposal(p) => {
                if p.height != h {
                    return out;
                }
                if p.proposer != self.vals.proposer(h, p.round) {
                    out.push(DriverOutput::WrongProposer {
                        round: p.round,
                        proposer: p.proposer,
                    });
                    return out;
                }
                // The first proposal of a round is the one the propose step follows; a second,
                // different one is evidence and is kept only for the polka and commit rules.
                match self.proposals.get(&p.round) {
                    None => {
                        self.proposals.insert(p.round, p);
                    }
                    Some(first) if first.value == p.value => {}
                    Some(_) => {
                        if let std::collections::hash_map::Entry::Vacant(e) =
                            self.second.entry(p.round)
                        {
                            out.push(DriverOutput::DoubleProposal {
                                round: p.round,
                                proposer: p.proposer,
                            });
                            e.insert(p);
                        }
                    }
                }
            }
            DriverInput::Vote(v) => {
                if let AddVote::Equivocation(e) = self.votes.add(&self.vals, v) {
                    out.push(DriverOutput::Equivocation(e));
                }
            }
            DriverInput::Timeout { kind, round } => {
                if kind == TimeoutKind::Precommit && round == self.state.round {
                    // Line 65-67.
                    self.start_round(round + 1, &mut out);
                } else {
                    self.step(Input::Timeout { kind, round }, &mut out);
                }
            }
        }
        self.reevaluate(&mut out);
        out
    }

    fn start_round(&mut self, round: u32, out: &mut Vec<DriverOutput>) {
        let proposer = self.me == Some(self.vals.proposer(self.state.height, round));
        self.step(Input::NewRound { round, proposer }, out);
    }

    /// Applies one input to the state machine and translates its outputs.
    fn step(&mut self, input: Input, out: &mut Vec<DriverOutput>) {
        let height = self.state.height;
        for o in apply(&mut self.state, input) {
            out.push(match o {
                Output::GetValue { round } => DriverOutput::GetValue { height, round },
                Output::Propose {
                    round,
                    value,
                    pol_round,
                } => DriverOutput::Propose {
                    height,
                    round,
                    value,
                    pol_round,
                },
                Output::Prevote { round, value } => DriverOutput::Vote {
                    vote_type: VoteType::Prevote,
                    height,
                    round,
                    value,
                },
                Output::Precommit { round, value } => DriverOutput::Vote {
                    vote_type: VoteType::Precommit,
                    height,
                    round,
                    value,
                },
                Output::ScheduleTimeout { kind, round } => DriverOutput::ScheduleTimeout {
                    kind,
                    height,
                    round,
                    after: self.timeouts.duration(kind, round),
                },
                Output::Decide { round, value } => DriverOutput::Decide {
                    height,
                    round,
                    value,
                    precommits: self.votes.precommits_for(round, &value),
                },
            });
        }
    }

    fn once(&mut self, rule: Once) -> bool {
        self.fired.insert((self.state.round, rule))
    }

    /// Feeds the state machine every rule whose condition now holds, until none does.
    fn reevaluate(&mut self, out: &mut Vec<DriverOutput>) {
        loop {
            if self.state.step == Step::Commit || self.state.step == Step::Unstarted {
                return;
            }
            let before = (self.state.clone(), out.len(), self.fired.len());
            self.evaluate_once(out);
            if before == (self.state.clone(), out.len(), self.fired.len()) {
                return;
            }
        }
    }

    /// The value of a valid proposal of round `r` (first or second) that `prevotes` is a
    /// polka for.
    fn valid_proposal_with_polka(&self, r: u32, prevotes: Threshold) -> Option<Hash> {
        let Threshold::Value(v) = prevotes else {
            return None;
        };
        [self.proposals.get(&r), self.second.get(&r)]
            .into_iter()
            .flatten()
            .find(|p| p.value == v && p.valid)
            .map(|p| p.value)
    }

    fn evaluate_once(&mut self, out: &mut Vec<DriverOutput>) {
        let vals = self.vals.clone();
        let r = self.state.round;

        // Line 49: a proposal with +2/3 precommits for it, in any round, decides (an
        // equivocator's signed precommit for it counts: see `VoteKeeper::has_commit_for`).
        let decided = self
            .proposals
            .values()
            .chain(self.second.values())
            .find(|p| p.valid && self.votes.has_commit_for(&vals, p.round, &p.value));
        if let Some(p) = decided {
            let (value, round) = (p.value, p.round);
            self.step(Input::ProposalAndPrecommitValue { value, round }, out);
            return;
        }

        // Line 55: +1/3 of power in a higher round.
        if let Some(higher) = self.votes.skip_round(&vals, r) {
            self.step(Input::SkipRound(higher), out);
            self.start_round(higher, out);
            return;
        }

        let proposal = self.proposals.get(&r).cloned();
        if self.state.step == Step::Propose {
            if let Some(p) = &proposal {
                match p.pol_round {
                    // Line 22.
                    None => self.step(
                        Input::Proposal {
                            value: p.value,
                            valid: p.valid,
                        },
                        out,
                    ),
                    // Line 28.
                    Some(vr)
                        if vr < r
                            && self.votes.has_quorum_for(
                                &vals,
                                vr,
                                VoteType::Prevote,
                                &p.value,
                            ) =>
                    {
                        self.step(
                            Input::ProposalAndPolkaPrevious {
                                value: p.value,
                                pol_round: vr,
                                valid: p.valid,
                            },
                            out,
                        )
                    }
                    Some(_) => {}
                }
            }
        }

        let prevotes = self.votes.threshold(&vals, r, VoteType::Prevote);
        // Line 34.
        if self.state.step == Step::Prevote
            && prevotes != Threshold::None
            && self.once(Once::PolkaAny)
        {
            self.step(Input::PolkaAny, out);
        }
        // Line 36: the polka's value must be a (first or second) proposal of this round.
        if let Some(value) = self.valid_proposal_with_polka(r, prevotes) {
            if self.state.step >= Step::Prevote && self.once(Once::PolkaCurrent) {
                self.step(Input::ProposalAndPolkaCurrent(value), out);
            }
        }
        // Line 44.
        if self.state.step == Step::Prevote && prevotes == Threshold::Nil {
            self.step(Input::PolkaNil, out);
        }
        // Line 47.
        if self.votes.threshold(&vals, r, VoteType::Precommit) != Threshold::None
            && self.once(Once::PrecommitAny)
        {
            self.step(Input::PrecommitAny, out);
        }
    }
}
