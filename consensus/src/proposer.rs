//! Deterministic weighted proposer selection (ADR 0002).
//!
//! CometBFT's proposer-priority rotation: every step adds each validator's
//! weight to its priority, the highest priority proposes (ties go to the
//! lowest index), and the proposer's priority drops by the total weight. Over a
//! window a validator proposes in proportion to its weight.
//!
//! Priorities reset to zero at each epoch start (weights change there). For
//! height `h` at offset `k = h - first_height(epoch)` the priorities are `S_h`:
//! `k` steps from zero. Round `r` of `h` is proposed by the pick of step `r+1`
//! applied to a copy of `S_h`. It is a pure function of the epoch's weights,
//! `k` and `r`, so every node agrees without exchanging anything.

use serde::{Deserialize, Serialize};

/// The proposer priorities of every validator, indexed like the membership
/// (genesis order). Part of the chain state: the priorities at the start of
/// the next height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposerPriority {
    priorities: Vec<i128>,
}

impl ProposerPriority {
    /// All `n` priorities at zero, as at each epoch start.
    pub fn new(n: usize) -> Self {
        ProposerPriority { priorities: vec![0; n] }
    }

    /// One rotation step; returns the chosen index.
    pub fn step(&mut self, weights: &[u128]) -> usize {
        let total: i128 = weights.iter().map(|&w| w as i128).sum();
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            self.priorities[i] += *w as i128;
            if self.priorities[i] > self.priorities[best] {
                best = i;
            }
        }
        self.priorities[best] -= total;
        best
    }

    /// Proposer of round `round` from these (height-start) priorities.
    pub fn proposer_for_round(&self, weights: &[u128], round: u32) -> usize {
        let mut p = self.clone();
        let mut chosen = 0;
        // Bound the work for absurd rounds: round r takes (r mod 256n) + 1 steps.
        // Still a pure function of (weights, r), so every node agrees.
        let steps = (round as u64 % (256 * weights.len() as u64).max(1)) + 1;
        for _ in 0..steps {
            chosen = p.step(weights);
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_round_robin() {
        let w = vec![10u128; 4];
        let mut p = ProposerPriority::new(4);
        let picks: Vec<usize> = (0..8).map(|_| p.step(&w)).collect();
        assert_eq!(picks, vec![0, 1, 2, 3, 0, 1, 2, 3]);
    }

    #[test]
    fn proportional_to_weight() {
        let w = vec![1u128, 2, 7];
        let mut p = ProposerPriority::new(3);
        let mut counts = [0; 3];
        for _ in 0..1000 {
            counts[p.step(&w)] += 1;
        }
        assert_eq!(counts, [100, 200, 700]);
    }

    #[test]
    fn rounds_rotate_from_height_state() {
        let w = vec![5u128; 3];
        let p = ProposerPriority::new(3);
        assert_eq!(p.proposer_for_round(&w, 0), 0);
        assert_eq!(p.proposer_for_round(&w, 1), 1);
        assert_eq!(p.proposer_for_round(&w, 2), 2);
        assert_eq!(p.proposer_for_round(&w, 3), 0);
        // Huge rounds stay cheap and deterministic.
        let a = p.proposer_for_round(&w, u32::MAX);
        assert_eq!(a, p.proposer_for_round(&w, u32::MAX));
    }
}
