//! The evidence pool: checked misbehaviour evidence waiting for a block
//! (issue 15, ADR 0014).
//!
//! A plain, bounded data structure (no async, no I/O); the engine owns it.
//!
//! * Deduplicated per offence ([`EvidenceKey`]: validator, height, round,
//!   kind): the first evidence of an offence is kept, later ones are
//!   duplicates however they differ.
//! * Bounded: at most [`PER_VALIDATOR`] offences per validator (one proves
//!   the point: the rest could only be spam from the validator itself) and
//!   [`CAPACITY`] in all. What does not fit is refused, never evicting.
//! * [`EvidencePool::take_for_block`] hands out one offence per validator
//!   (lowest key first) up to the block's cap, without removing.
//! * [`EvidencePool::prune`] drops what the chain no longer needs: committed
//!   offences, offences too old to be included, and the evidence of
//!   validators that already have evidence committed in the current epoch
//!   (their jail term is set at the boundary; more changes nothing).

use bizra_consensus::chain::ChainState;
use bizra_consensus::evidence::EvidenceKey;
use bizra_consensus::genesis::Genesis;
use bizra_proto::Evidence;
use std::collections::BTreeMap;

/// Pending offences kept per validator.
pub const PER_VALIDATOR: usize = 4;
/// Pending offences kept in all.
pub const CAPACITY: usize = 1024;

/// Why the pool did not take a piece of evidence.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolRefusal {
    /// Evidence of this offence (validator, height, round, kind) is already
    /// pending.
    #[error("evidence for this offence is already pending")]
    Duplicate,
    /// The validator already has [`PER_VALIDATOR`] offences pending.
    #[error("validator already has {PER_VALIDATOR} offences pending")]
    ValidatorQuota,
    /// [`CAPACITY`] offences are pending.
    #[error("evidence pool is full ({CAPACITY})")]
    Full,
}

/// Pending evidence, one piece per offence, bounded as the module docs say.
#[derive(Default)]
pub struct EvidencePool {
    entries: BTreeMap<EvidenceKey, Evidence>,
    per_validator: BTreeMap<u32, usize>,
}

impl EvidencePool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `key` could be inserted now (duplicates and quotas), before
    /// anyone spends a signature check on it.
    pub fn room_for(&self, key: &EvidenceKey) -> Result<(), PoolRefusal> {
        if self.entries.contains_key(key) {
            return Err(PoolRefusal::Duplicate);
        }
        if self.per_validator.get(&key.validator).copied().unwrap_or(0) >= PER_VALIDATOR {
            return Err(PoolRefusal::ValidatorQuota);
        }
        if self.entries.len() >= CAPACITY {
            return Err(PoolRefusal::Full);
        }
        Ok(())
    }

    /// Adds evidence the caller checked in full (shape, age, signatures).
    pub fn insert(&mut self, key: EvidenceKey, evidence: Evidence) -> Result<(), PoolRefusal> {
        self.room_for(&key)?;
        *self.per_validator.entry(key.validator).or_default() += 1;
        self.entries.insert(key, evidence);
        Ok(())
    }

    /// One offence per validator, lowest key first, at most `max`.
    pub fn take_for_block(&self, max: usize) -> Vec<Evidence> {
        let mut seen = std::collections::BTreeSet::new();
        self.entries
            .iter()
            .filter(|(k, _)| seen.insert(k.validator))
            .map(|(_, e)| e.clone())
            .take(max)
            .collect()
    }

    /// Every pending piece (for re-gossip).
    pub fn pending(&self) -> impl Iterator<Item = &Evidence> {
        self.entries.values()
    }

    /// Drops what `state` (the chain after the last finalized block) makes
    /// useless: see the module docs. Returns how many were dropped.
    pub fn prune(&mut self, g: &Genesis, state: &ChainState) -> usize {
        let before = self.entries.len();
        let offenders = &state.acc.offenders;
        self.entries
            .retain(|k, e| !offenders.contains(&(k.validator as usize)) && state.evidence_includable(g, e).is_ok());
        self.per_validator.clear();
        for k in self.entries.keys() {
            *self.per_validator.entry(k.validator).or_default() += 1;
        }
        before - self.entries.len()
    }

    /// Whether evidence of this offence is pending.
    pub fn contains(&self, key: &EvidenceKey) -> bool {
        self.entries.contains_key(key)
    }

    /// Number of pending offences (`bizra_evidence_pending`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no evidence is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bizra_consensus::evidence;
    use bizra_consensus::genesis::{GenesisDoc, GenesisParams, GenesisValidator};
    use bizra_consensus::messages::{new_vote, sign_vote};
    use bizra_consensus::signing::Signer;
    use bizra_proto::VoteKind;

    fn setup() -> (Genesis, Vec<Signer>) {
        let signers: Vec<Signer> = (0..4u8).map(|i| Signer::from_secret([i + 1; 32])).collect();
        let doc = GenesisDoc {
            chain_id: "pool-test".into(),
            genesis_time_ms: 1_000,
            params: GenesisParams {
                epoch_length: 1,
                ..GenesisParams::default()
            },
            validators: signers
                .iter()
                .map(|s| GenesisValidator {
                    id: s.id().into(),
                    stake: 1,
                    name: String::new(),
                })
                .collect(),
        };
        (Genesis::from_doc(&doc).unwrap().0, signers)
    }

    fn ev(g: &Genesis, s: &Signer, h: u64, r: u32) -> (EvidenceKey, Evidence) {
        let v = |b: u8| {
            sign_vote(
                s,
                new_vote(g.chain_id(), h, r, VoteKind::Prevote, Some([b; 32]), s.id()),
            )
        };
        let e = evidence::duplicate_vote(v(1), v(2)).unwrap();
        (evidence::check(g.chain_id(), &g.members, &e).unwrap(), e)
    }

    #[test]
    fn dedup_quota_and_one_per_validator_in_blocks() {
        let (g, s) = setup();
        let mut pool = EvidencePool::new();
        let (k, e) = ev(&g, &s[1], 1, 0);
        pool.insert(k, e.clone()).unwrap();
        assert_eq!(pool.insert(k, e), Err(PoolRefusal::Duplicate));
        for r in 1..PER_VALIDATOR as u32 {
            let (k, e) = ev(&g, &s[1], 1, r);
            pool.insert(k, e).unwrap();
        }
        let (k, e) = ev(&g, &s[1], 1, 99);
        assert_eq!(pool.room_for(&k), Err(PoolRefusal::ValidatorQuota));
        assert_eq!(pool.insert(k, e), Err(PoolRefusal::ValidatorQuota));
        let (k, e) = ev(&g, &s[2], 1, 0);
        pool.insert(k, e).unwrap();
        assert_eq!(pool.len(), PER_VALIDATOR + 1);
        let block = pool.take_for_block(8);
        assert_eq!(block.len(), 2, "one offence per validator");
        assert_eq!(pool.take_for_block(1).len(), 1);
    }

    #[test]
    fn prune_drops_committed_and_convicted() {
        let (g, s) = setup();
        let mut pool = EvidencePool::new();
        let (k1, e1) = ev(&g, &s[1], 1, 0);
        let (k2, e2) = ev(&g, &s[2], 1, 0);
        pool.insert(k1, e1.clone()).unwrap();
        pool.insert(k2, e2).unwrap();
        // A chain state whose last block committed e1 (epoch_length 1: the
        // offender set is cleared at the boundary, the committed key is not).
        let mut state = ChainState::genesis(&g);
        let block = state.build_block_with(&g, s[0].id(), 2_000, None, vec![], vec![e1]);
        let hash = state.validate_block(&g, &block).unwrap();
        state.apply(&g, &block, hash);
        assert_eq!(pool.prune(&g, &state), 1);
        assert!(!pool.contains(&k1) && pool.contains(&k2));
        // Convicted in the current epoch: dropped too.
        state.acc.offenders.insert(2);
        assert_eq!(pool.prune(&g, &state), 1);
        assert!(pool.is_empty());
    }
}
