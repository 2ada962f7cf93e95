//! `wq_weight` (CONTRACT section 4): a pure function of genesis and the
//! finalized chain, in integer arithmetic, so all honest nodes agree.
//!
//! ```text
//! wq_weight = base + poi_gain * poi + rep_gain * rep + stake_gain * isqrt(stake)
//! ```
//! * `poi`: Proof-of-Impact carry, in impact basis points. At the end of epoch
//!   `e` it becomes `min(poi_cap, poi * poi_decay_bps / 10000 + I)`, where `I` is
//!   the sum of `impact_bps` of the attestations about the validator finalized
//!   in epoch `e`.
//! * `rep`: participation, in basis points: the share of the commit
//!   certificates carried by epoch `e`'s blocks that hold the validator's
//!   precommit. Epoch 0 uses `rep = 10000` (no history yet).
//! * `stake`: bonded stake from genesis.
//!
//! Defaults keep `base` dominant: with the defaults a validator's weight moves
//! by at most about 25% between the best and worst components (ADR 0003).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightParams {
    #[serde(default = "d_base")]
    pub base: u64,
    #[serde(default = "d_poi_gain")]
    pub poi_gain: u64,
    #[serde(default = "d_rep_gain")]
    pub rep_gain: u64,
    #[serde(default = "d_stake_gain")]
    pub stake_gain: u64,
    /// Share of the PoI carry kept from one epoch to the next, in bps.
    #[serde(default = "d_decay")]
    pub poi_decay_bps: u32,
    /// Upper bound of the PoI carry.
    #[serde(default = "d_cap")]
    pub poi_cap: u64,
}

fn d_base() -> u64 {
    1_000_000
}
fn d_poi_gain() -> u64 {
    10
}
fn d_rep_gain() -> u64 {
    10
}
fn d_stake_gain() -> u64 {
    100
}
fn d_decay() -> u32 {
    5_000
}
fn d_cap() -> u64 {
    10_000
}

impl Default for WeightParams {
    fn default() -> Self {
        WeightParams {
            base: d_base(),
            poi_gain: d_poi_gain(),
            rep_gain: d_rep_gain(),
            stake_gain: d_stake_gain(),
            poi_decay_bps: d_decay(),
            poi_cap: d_cap(),
        }
    }
}

impl WeightParams {
    pub fn validate(&self) -> Result<(), String> {
        if self.base == 0 {
            return Err("base must be positive, so every validator has weight".into());
        }
        if self.poi_decay_bps > 10_000 {
            return Err(format!("poi_decay_bps = {} is above 10000", self.poi_decay_bps));
        }
        Ok(())
    }
}

/// The components of one validator's weight for an epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Components {
    pub stake: u64,
    pub poi: u64,
    pub rep: u64,
}

/// Integer square root, rounded down.
pub fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let mut x = (n as f64).sqrt() as u64;
    // Correct any floating-point error in either direction.
    while x.checked_mul(x).is_none_or(|sq| sq > n) {
        x -= 1;
    }
    while (x + 1).checked_mul(x + 1).is_some_and(|sq| sq <= n) {
        x += 1;
    }
    x
}

/// `wq_weight` from its components, in u128.
pub fn wq_weight(p: &WeightParams, c: &Components) -> u128 {
    p.base as u128
        + p.poi_gain as u128 * c.poi as u128
        + p.rep_gain as u128 * c.rep as u128
        + p.stake_gain as u128 * isqrt(c.stake) as u128
}

/// What an epoch's finalized blocks contribute to the next epoch's weights.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochAccumulator {
    /// Sum of finalized `impact_bps` per subject validator.
    pub impact: Vec<u64>,
    /// Commit certificates seen in this epoch's blocks.
    pub commits: u64,
    /// Of those, how many carry each validator's precommit.
    pub signed: Vec<u64>,
}

impl EpochAccumulator {
    pub fn new(n: usize) -> Self {
        EpochAccumulator {
            impact: vec![0; n],
            commits: 0,
            signed: vec![0; n],
        }
    }
    pub fn add_impact(&mut self, subject: usize, impact_bps: u64) {
        self.impact[subject] = self.impact[subject].saturating_add(impact_bps);
    }
    /// `signers` are validator indices of one commit certificate (distinct).
    pub fn add_commit(&mut self, signers: impl IntoIterator<Item = usize>) {
        self.commits += 1;
        for s in signers {
            self.signed[s] += 1;
        }
    }
}

/// Components for epoch 0, from genesis alone.
pub fn genesis_components(stakes: &[u64]) -> Vec<Components> {
    stakes
        .iter()
        .map(|&stake| Components {
            stake,
            poi: 0,
            rep: 10_000,
        })
        .collect()
}

/// Components for the next epoch from the previous components and what the
/// epoch's blocks accumulated.
pub fn next_components(p: &WeightParams, prev: &[Components], acc: &EpochAccumulator) -> Vec<Components> {
    prev.iter()
        .enumerate()
        .map(|(i, c)| {
            let decayed = (c.poi as u128 * p.poi_decay_bps as u128 / 10_000) as u64;
            let poi = decayed.saturating_add(acc.impact[i]).min(p.poi_cap);
            let rep = (acc.signed[i] * 10_000).checked_div(acc.commits).unwrap_or(10_000);
            Components {
                stake: c.stake,
                poi,
                rep,
            }
        })
        .collect()
}

pub fn weights_of(p: &WeightParams, comps: &[Components]) -> Vec<u128> {
    comps.iter().map(|c| wq_weight(p, c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_known_values() {
        for (n, r) in [
            (0, 0),
            (1, 1),
            (2, 1),
            (3, 1),
            (4, 2),
            (15, 3),
            (16, 4),
            (1_000_000, 1000),
            (999_999, 999),
        ] {
            assert_eq!(isqrt(n), r, "isqrt({n})");
        }
        assert_eq!(isqrt(u64::MAX), 4_294_967_295);
        for n in [u64::MAX - 1, (1u64 << 52) + 1, 4_294_967_295u64 * 4_294_967_295 + 1] {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1).checked_mul(r + 1).is_none_or(|s| s > n));
        }
    }

    #[test]
    fn wq_weight_known_value() {
        let p = WeightParams::default();
        // 1_000_000 + 10*2500 + 10*7500 + 100*isqrt(1_000_000)=100*1000
        let c = Components {
            stake: 1_000_000,
            poi: 2500,
            rep: 7500,
        };
        assert_eq!(wq_weight(&p, &c), 1_000_000 + 25_000 + 75_000 + 100_000);
        let zero = Components {
            stake: 0,
            poi: 0,
            rep: 0,
        };
        assert_eq!(wq_weight(&p, &zero), 1_000_000);
    }

    #[test]
    fn epoch_transition_known_values() {
        let p = WeightParams::default();
        let prev = vec![
            Components {
                stake: 100,
                poi: 0,
                rep: 10_000,
            },
            Components {
                stake: 100,
                poi: 8000,
                rep: 10_000,
            },
            Components {
                stake: 400,
                poi: 10_000,
                rep: 10_000,
            },
        ];
        let mut acc = EpochAccumulator::new(3);
        acc.add_impact(0, 3000);
        acc.add_impact(2, 9000);
        acc.add_commit([0, 1, 2]);
        acc.add_commit([0, 2]);
        acc.add_commit([0, 2]);
        acc.add_commit([2]);
        let next = next_components(&p, &prev, &acc);
        // poi: 0*0.5+3000 ; 8000*0.5+0 ; min(10000, 5000+9000)
        // rep: 3/4, 1/4, 4/4
        assert_eq!(
            next[0],
            Components {
                stake: 100,
                poi: 3000,
                rep: 7500
            }
        );
        assert_eq!(
            next[1],
            Components {
                stake: 100,
                poi: 4000,
                rep: 2500
            }
        );
        assert_eq!(
            next[2],
            Components {
                stake: 400,
                poi: 10_000,
                rep: 10_000
            }
        );
        let w = weights_of(&p, &next);
        assert_eq!(w[0], 1_000_000 + 30_000 + 75_000 + 1_000);
        assert_eq!(w[1], 1_000_000 + 40_000 + 25_000 + 1_000);
        assert_eq!(w[2], 1_000_000 + 100_000 + 100_000 + 2_000);
    }

    #[test]
    fn empty_epoch_keeps_full_rep_and_decays_poi() {
        let p = WeightParams::default();
        let prev = vec![Components {
            stake: 9,
            poi: 1001,
            rep: 3,
        }];
        let next = next_components(&p, &prev, &EpochAccumulator::new(1));
        assert_eq!(
            next[0],
            Components {
                stake: 9,
                poi: 500,
                rep: 10_000
            }
        );
    }

    #[test]
    fn base_is_dominant_with_defaults() {
        let p = WeightParams::default();
        let best = wq_weight(
            &p,
            &Components {
                stake: 1_000_000,
                poi: p.poi_cap,
                rep: 10_000,
            },
        );
        let worst = wq_weight(
            &p,
            &Components {
                stake: 1_000_000,
                poi: 0,
                rep: 0,
            },
        );
        assert!(worst * 100 / best >= 75, "worst {worst} best {best}");
    }
}
