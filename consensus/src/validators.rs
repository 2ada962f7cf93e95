//! The validator set: fixed membership from genesis, and per-epoch weights.

use crate::quorum;
use crate::weights::Components;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One member of the validator set, from genesis.
#[derive(Clone, Debug)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub stake: u64,
    pub key: VerifyingKey,
}

/// The members, in genesis order. Membership never changes; weights do.
#[derive(Clone, Debug)]
pub struct Membership {
    members: Vec<Member>,
    index: HashMap<String, usize>,
}

impl Membership {
    pub fn new(members: Vec<Member>) -> Self {
        let index = members.iter().enumerate().map(|(i, m)| (m.id.clone(), i)).collect();
        Membership { members, index }
    }
    pub fn len(&self) -> usize {
        self.members.len()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }
    pub fn get(&self, i: usize) -> &Member {
        &self.members[i]
    }
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.members.iter()
    }
}

/// The weights of one epoch, indexed like [`Membership`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochWeights {
    pub epoch: u64,
    pub components: Vec<Components>,
    /// `wq_weight` per validator.
    pub weights: Vec<u128>,
    pub total: u128,
}

impl EpochWeights {
    pub fn new(epoch: u64, components: Vec<Components>, weights: Vec<u128>) -> Self {
        let total = weights.iter().sum();
        EpochWeights {
            epoch,
            components,
            weights,
            total,
        }
    }
    pub fn weight(&self, i: usize) -> u128 {
        self.weights[i]
    }
    pub fn share_bps(&self, i: usize) -> u32 {
        quorum::share_bps(self.weights[i], self.total)
    }
}
