//! Vote bookkeeping for one height: votes by round and type, power tallies per value, and
//! equivocation detection. Pure data; the driver asks it which thresholds are met.

use super::validators::ValidatorSet;
use std::collections::{BTreeMap, HashMap};
use tpslab_types::pb::VoteType;
use tpslab_types::Hash;

/// A vote whose signature the caller has already verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedVote {
    /// Prevote or precommit.
    pub vote_type: VoteType,
    /// Height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// Block hash voted for; `None` is nil.
    pub value: Option<Hash>,
    /// Index of the voter in the validator set.
    pub validator: usize,
    /// Voter's timestamp (part of the signed bytes).
    pub timestamp_unix_nanos: u64,
    /// The signature, kept to build commits.
    pub signature: Vec<u8>,
}

/// Two different votes by one validator for the same height, round and type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Equivocation {
    /// The first vote seen.
    pub first: SignedVote,
    /// The conflicting one.
    pub second: SignedVote,
}

/// What adding a vote did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddVote {
    /// Counted.
    Added,
    /// Exactly this vote was already counted.
    Duplicate,
    /// The voter already voted differently: evidence returned. Its first conflicting vote
    /// counts for its value too (see [`Tally::conflicting`]).
    Equivocation(Box<Equivocation>),
    /// From an unknown validator or another height, or an equivocator's face past
    /// [`MAX_FACES`]: ignored.
    Ignored,
}

/// Most conflicting votes kept per equivocator, round and vote type. Honest validators vote
/// only for proposals they saw (a node keeps at most two per round) or nil, so an
/// equivocator's faces beyond these cannot complete anything an honest polka needs unless it
/// shows each node a different set; with more faces than this it can still delay a round.
pub const MAX_FACES: usize = 8;

#[derive(Default, Clone, Debug)]
struct Tally {
    votes: HashMap<usize, SignedVote>,
    /// The first vote of an equivocator that conflicts with its counted one. It counts for
    /// its value (not twice toward the total), as the Tendermint paper counts messages per
    /// value: otherwise an equivocator that sent one node its vote for v and another its vote
    /// for v' can hide a polka for v from the second node forever, and a validator locked on
    /// v never finds a proposal the others accept (found by the simulated network,
    /// consensus/tests/bft_sim.rs). Safe with at most f byzantine: two +2/3 sets share an
    /// honest validator, which never signs both. A signed precommit also belongs in a commit:
    /// 2f+1 signed precommits for a block decide it whoever else they also signed for, as a
    /// commit received by block sync does.
    ///
    /// Every distinct value an equivocator signed counts once, up to [`MAX_FACES`] values
    /// per validator, round and type (a bound on what one validator can make us store): an
    /// equivocator with three faces (block, nil, another block) would otherwise hide a polka
    /// the same way.
    conflicting: HashMap<usize, Vec<SignedVote>>,
    by_value: HashMap<Option<Hash>, u64>,
    total: u64,
}

/// The threshold a value reached, for the driver's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threshold {
    /// Nothing yet.
    None,
    /// +2/3 of power voted, for mixed values.
    Any,
    /// +2/3 for nil.
    Nil,
    /// +2/3 for this block.
    Value(Hash),
}

/// All votes of one height.
#[derive(Clone, Debug)]
pub struct VoteKeeper {
    height: u64,
    rounds: BTreeMap<(u32, i32), Tally>,
    /// Equivocations seen (each pair once).
    pub equivocations: Vec<Equivocation>,
}

impl VoteKeeper {
    /// Empty keeper for `height`.
    pub fn new(height: u64) -> VoteKeeper {
        VoteKeeper {
            height,
            rounds: BTreeMap::new(),
            equivocations: Vec::new(),
        }
    }

    /// Counts a vote.
    pub fn add(&mut self, vals: &ValidatorSet, vote: SignedVote) -> AddVote {
        let power = vals.power(vote.validator);
        if vote.height != self.height || power == 0 {
            return AddVote::Ignored;
        }
        let t = self
            .rounds
            .entry((vote.round, vote.vote_type as i32))
            .or_default();
        if let Some(prev) = t.votes.get(&vote.validator) {
            if prev.value == vote.value {
                return AddVote::Duplicate;
            }
            let faces = t.conflicting.entry(vote.validator).or_default();
            if faces.iter().any(|c| c.value == vote.value) {
                return AddVote::Duplicate;
            }
            if faces.len() >= MAX_FACES {
                // Known as an equivocator already; nothing more of it is stored.
                return AddVote::Ignored;
            }
            *t.by_value.entry(vote.value).or_default() += power;
            faces.push(vote.clone());
            let ev = Equivocation {
                first: prev.clone(),
                second: vote,
            };
            self.equivocations.push(ev.clone());
            return AddVote::Equivocation(Box::new(ev));
        }
        *t.by_value.entry(vote.value).or_default() += power;
        t.total += power;
        t.votes.insert(vote.validator, vote);
        AddVote::Added
    }

    fn tally(&self, round: u32, ty: VoteType) -> Option<&Tally> {
        self.rounds.get(&(round, ty as i32))
    }

    /// The strongest threshold reached by votes of `ty` in `round`.
    pub fn threshold(&self, vals: &ValidatorSet, round: u32, ty: VoteType) -> Threshold {
        let Some(t) = self.tally(round, ty) else {
            return Threshold::None;
        };
        for (v, p) in &t.by_value {
            if vals.is_quorum(*p) {
                return match v {
                    Some(h) => Threshold::Value(*h),
                    None => Threshold::Nil,
                };
            }
        }
        if vals.is_quorum(t.total) {
            Threshold::Any
        } else {
            Threshold::None
        }
    }

    /// True if +2/3 of `ty` votes in `round` are for `value`.
    pub fn has_quorum_for(
        &self,
        vals: &ValidatorSet,
        round: u32,
        ty: VoteType,
        value: &Hash,
    ) -> bool {
        self.tally(round, ty)
            .and_then(|t| t.by_value.get(&Some(*value)))
            .is_some_and(|p| vals.is_quorum(*p))
    }

    /// True if validators with +2/3 of the power signed a precommit for `value` in `round`,
    /// counting an equivocator's conflicting precommit too (the commit rule, line 49).
    pub fn has_commit_for(&self, vals: &ValidatorSet, round: u32, value: &Hash) -> bool {
        let power: u64 = self
            .precommits_for(round, value)
            .iter()
            .map(|v| vals.power(v.validator))
            .sum();
        vals.is_quorum(power)
    }

    /// The lowest round above `round` in which +1/3 of power has sent any vote (the round-skip
    /// rule), if any.
    pub fn skip_round(&self, vals: &ValidatorSet, round: u32) -> Option<u32> {
        let mut per_round: BTreeMap<u32, HashMap<usize, ()>> = BTreeMap::new();
        for ((r, _), t) in self.rounds.range((round + 1, i32::MIN)..) {
            let e = per_round.entry(*r).or_default();
            for v in t.votes.keys() {
                e.insert(*v, ());
            }
        }
        per_round.into_iter().find_map(|(r, voters)| {
            let p: u64 = voters.keys().map(|v| vals.power(*v)).sum();
            vals.is_one_third(p).then_some(r)
        })
    }

    /// Every vote of this height, an equivocator's conflicting one included (for re-gossip to
    /// peers that missed them: a lock taken on a polka that counted an equivocator's vote is
    /// visible to the others only if that vote reaches them too).
    pub fn all_votes(&self) -> impl Iterator<Item = &SignedVote> {
        self.rounds
            .values()
            .flat_map(|t| t.votes.values().chain(t.conflicting.values().flatten()))
    }

    /// The precommits for `value` in `round` (one per validator, conflicting ones included),
    /// for a commit.
    pub fn precommits_for(&self, round: u32, value: &Hash) -> Vec<SignedVote> {
        let mut v: Vec<SignedVote> = self
            .tally(round, VoteType::Precommit)
            .map(|t| {
                t.votes
                    .values()
                    .chain(t.conflicting.values().flatten())
                    .filter(|v| v.value == Some(*value))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by_key(|v| v.validator);
        v
    }
}
