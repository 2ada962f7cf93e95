//! The validator set: fixed membership from genesis, and per-epoch weights.

use crate::quorum;
use crate::weights::Components;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One member of the validator set, from genesis.
#[derive(Clone, Debug)]
pub struct Member {
    /// Validator id: lower-case hex of the Ed25519 public key (docs/PROTOCOL.md §3).
    pub id: String,
    /// Display name from genesis (may be empty); no rule depends on it.
    pub name: String,
    /// Bonded stake from genesis, the `stake` component of `wq_weight` (§5).
    pub stake: u64,
    /// The public key parsed from `id`; valid and not of small order (checked at genesis).
    pub key: VerifyingKey,
}

/// The members, in genesis order. Membership never changes; weights do.
#[derive(Clone, Debug)]
pub struct Membership {
    members: Vec<Member>,
    index: HashMap<String, usize>,
}

impl Membership {
    /// The set of `members`, in the given (genesis) order; ids are assumed
    /// distinct (genesis refuses duplicates).
    pub fn new(members: Vec<Member>) -> Self {
        let index = members.iter().enumerate().map(|(i, m)| (m.id.clone(), i)).collect();
        Membership { members, index }
    }
    /// Number of validators.
    pub fn len(&self) -> usize {
        self.members.len()
    }
    /// Whether there are no validators (never for a validated genesis).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    /// Genesis index of the validator with this id; `None` if it is not a member.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }
    /// Member `i` in genesis order. Panics if `i >= len()`.
    pub fn get(&self, i: usize) -> &Member {
        &self.members[i]
    }
    /// The members in genesis order.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.members.iter()
    }
}

/// The weights of one epoch, indexed like [`Membership`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochWeights {
    /// The epoch these weights hold for (docs/PROTOCOL.md §5).
    pub epoch: u64,
    /// Per validator, the stake, PoI and rep the weight was computed from
    /// (kept for a jailed validator too, though its weight is 0).
    pub components: Vec<Components>,
    /// `wq_weight` per validator.
    pub weights: Vec<u128>,
    /// Sum of `weights`: the denominator of every quorum of the epoch.
    pub total: u128,
    /// Per validator, the first epoch it is free again; it is jailed (weight
    /// 0) in this epoch when that is above `epoch`. Empty: nobody is jailed.
    #[serde(default)]
    pub jailed_until: Vec<u64>,
}

impl EpochWeights {
    /// Weights of `epoch` with nobody jailed; `total` is their sum.
    pub fn new(epoch: u64, components: Vec<Components>, weights: Vec<u128>) -> Self {
        let total = weights.iter().sum();
        EpochWeights {
            epoch,
            components,
            weights,
            total,
            jailed_until: Vec::new(),
        }
    }

    /// As [`EpochWeights::new`], with the jail terms of the epoch: a validator
    /// jailed in `epoch` gets weight 0 (ADR 0014). Callers keep at least one
    /// validator unjailed.
    pub fn with_jail(epoch: u64, components: Vec<Components>, mut weights: Vec<u128>, jailed_until: Vec<u64>) -> Self {
        for (w, &until) in weights.iter_mut().zip(&jailed_until) {
            if until > epoch {
                *w = 0;
            }
        }
        let mut w = Self::new(epoch, components, weights);
        if jailed_until.iter().any(|&u| u > 0) {
            w.jailed_until = jailed_until;
        }
        w
    }

    /// Whether validator `i` is jailed in this epoch.
    pub fn is_jailed(&self, i: usize) -> bool {
        self.jailed_until.get(i).is_some_and(|&u| u > self.epoch)
    }

    /// The first epoch validator `i` is free again (0: never jailed).
    pub fn jailed_until(&self, i: usize) -> u64 {
        self.jailed_until.get(i).copied().unwrap_or(0)
    }
    /// `wq_weight` of validator `i` in this epoch (0 while jailed). Panics if
    /// `i` is not a member index.
    pub fn weight(&self, i: usize) -> u128 {
        self.weights[i]
    }
    /// Validator `i`'s share of the total weight, in bps, rounded down.
    pub fn share_bps(&self, i: usize) -> u32 {
        quorum::share_bps(self.weights[i], self.total)
    }
}
