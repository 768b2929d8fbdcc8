//! The validator set: voting power, quorum thresholds and the weighted round-robin proposer.

use std::collections::HashMap;

/// One validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// ed25519 public key.
    pub pubkey: [u8; 32],
    /// Voting power (> 0).
    pub power: u64,
}

/// A fixed validator set (no validator set changes yet).
#[derive(Clone, Debug)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    by_key: HashMap<[u8; 32], usize>,
    total: u64,
    /// One full proposer cycle of smooth weighted round-robin (each validator appears
    /// `power / gcd` times, spread out, as Tendermint's proposer-priority algorithm does).
    cycle: Vec<usize>,
}

/// Longest proposer cycle precomputed; larger power sums are scaled down proportionally.
const MAX_CYCLE: u64 = 10_000;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl ValidatorSet {
    /// A set from validators in a fixed (genesis) order. Zero-power validators are dropped.
    pub fn new(validators: Vec<Validator>) -> ValidatorSet {
        let validators: Vec<Validator> = validators.into_iter().filter(|v| v.power > 0).collect();
        let by_key = validators
            .iter()
            .enumerate()
            .map(|(i, v)| (v.pubkey, i))
            .collect();
        let total: u64 = validators.iter().map(|v| v.power).sum();
        let g = validators.iter().fold(0u64, |g, v| gcd(g, v.power)).max(1);
        let scale = (total / g).div_ceil(MAX_CYCLE).max(1);
        let weights: Vec<i64> = validators
            .iter()
            .map(|v| ((v.power / g) / scale).max(1) as i64)
            .collect();
        let sum: i64 = weights.iter().sum();
        // Smooth weighted round-robin: add weights, pick the max, subtract the sum.
        let mut prio = vec![0i64; weights.len()];
        let mut cycle = Vec::with_capacity(sum as usize);
        for _ in 0..sum {
            for (p, w) in prio.iter_mut().zip(&weights) {
                *p += w;
            }
            let mut best = 0;
            for i in 1..prio.len() {
                if prio[i] > prio[best] {
                    best = i;
                }
            }
            prio[best] -= sum;
            cycle.push(best);
        }
        ValidatorSet {
            validators,
            by_key,
            total,
            cycle,
        }
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// True if the set is empty.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// Validator by index.
    pub fn get(&self, i: usize) -> Option<&Validator> {
        self.validators.get(i)
    }

    /// Index of a public key.
    pub fn index_of(&self, pubkey: &[u8]) -> Option<usize> {
        let k: [u8; 32] = pubkey.try_into().ok()?;
        self.by_key.get(&k).copied()
    }

    /// Power of validator `i` (0 if unknown).
    pub fn power(&self, i: usize) -> u64 {
        self.validators.get(i).map_or(0, |v| v.power)
    }

    /// Total voting power.
    pub fn total_power(&self) -> u64 {
        self.total
    }

    /// True if `power` is more than two thirds of the total (a quorum).
    pub fn is_quorum(&self, power: u64) -> bool {
        3 * power as u128 > 2 * self.total as u128
    }

    /// True if `power` is more than one third (at least one honest validator among them).
    pub fn is_one_third(&self, power: u64) -> bool {
        3 * power as u128 > self.total as u128
    }

    /// Index of the proposer of `round` at `height`.
    pub fn proposer(&self, height: u64, round: u32) -> usize {
        if self.cycle.is_empty() {
            return 0;
        }
        let slot = (height as u128 + round as u128) % self.cycle.len() as u128;
        self.cycle[slot as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(powers: &[u64]) -> ValidatorSet {
        ValidatorSet::new(
            powers
                .iter()
                .enumerate()
                .map(|(i, &p)| Validator {
                    pubkey: [i as u8; 32],
                    power: p,
                })
                .collect(),
        )
    }

    #[test]
    fn equal_powers_rotate_round_robin() {
        let s = set(&[10, 10, 10, 10]);
        let seq: Vec<usize> = (0..8).map(|h| s.proposer(h, 0)).collect();
        assert_eq!(seq, vec![0, 1, 2, 3, 0, 1, 2, 3]);
        assert_eq!(s.proposer(1, 1), s.proposer(2, 0));
    }

    #[test]
    fn weighted_proposers_match_power_share() {
        let s = set(&[3, 1]);
        let seq: Vec<usize> = (0..4).map(|h| s.proposer(h, 0)).collect();
        assert_eq!(seq.iter().filter(|&&i| i == 0).count(), 3);
        assert_eq!(seq, vec![0, 0, 1, 0]);
    }

    #[test]
    fn thresholds_are_strict() {
        let s = set(&[1, 1, 1, 1]);
        assert!(!s.is_quorum(2));
        assert!(s.is_quorum(3));
        assert!(!s.is_one_third(1));
        assert!(s.is_one_third(2));
    }
}
