//! The finalized chain's state: what every node derives from genesis and the
//! finalized blocks alone. Block validity against the parent, the epoch's
//! weights and the proposer rotation live here.

use crate::certificate::{self, CertError};
use crate::evidence::{self, EvidenceError, EvidenceKey};
use crate::genesis::Genesis;
use crate::merkle;
use crate::messages::block_hash;
use crate::proposer::ProposerPriority;
use crate::types::{epoch_of, hash_bytes, hash_from_slice, Hash, Height, Round};
use crate::validators::EpochWeights;
use crate::weights::{self, EpochAccumulator};
use bizra_proto::{Block, BlockHeader, CommitCertificate, Envelope, Evidence, PoiAttestation};
use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};

/// Most attestations one block may carry.
pub const MAX_BLOCK_ATTESTATIONS: usize = 20_000;
/// A block's time may run at most this far past its parent's. Deterministic,
/// so all nodes agree; without it one Byzantine proposer could stamp
/// `u64::MAX` and no block could ever follow (found by fuzzing).
pub const MAX_BLOCK_TIME_GAP_MS: u64 = 3_600_000;

/// Why a block is not a valid next block ([`ChainState::validate_block`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    /// The block has no header.
    #[error("block has no header")]
    NoHeader,
    /// The header's `chain_id` (given) is not the genesis chain id.
    #[error("block chain id {0:?} is not this chain's")]
    ChainId(String),
    /// The header's height is not the one after the finalized head.
    #[error("block height {found}, expected {expected}")]
    Height {
        /// The next height (finalized height + 1).
        expected: Height,
        /// The header's `height`.
        found: Height,
    },
    /// `parent_hash` is not the hash of the finalized head (the genesis hash at height 1).
    #[error("parent hash does not match the finalized head")]
    Parent,
    /// The header's `epoch` is not `epoch_of(height)` (docs/PROTOCOL.md §5).
    #[error("header epoch {found}, expected {expected}")]
    Epoch {
        /// The epoch of the block's height.
        expected: u64,
        /// The header's `epoch`.
        found: u64,
    },
    /// The block time is not strictly after the parent's, or more than
    /// [`MAX_BLOCK_TIME_GAP_MS`] after it.
    #[error("block time {found} ms is not after the parent's {parent} ms, or more than an hour after it")]
    Time {
        /// The parent's block time (the genesis time at height 1), Unix ms.
        parent: u64,
        /// The header's `time_ms`.
        found: u64,
    },
    /// Attestation at this index (from 0): its payload type is not the PoI
    /// type, or it has not exactly one signature whose `keyid` is the
    /// payload's `attester`. The Merkle leaf does not cover these, so a relay
    /// could otherwise rewrite them.
    #[error("attestation #{0}: envelope metadata (payload type, keyid) does not match its payload")]
    AttestationMetadata(usize),
    /// The header's `proposer` (given) is not a genesis member.
    #[error("proposer {0} is not a validator")]
    Proposer(String),
    /// `payload_root` is not the Merkle root of the block's attestations.
    #[error("payload root does not match the attestations")]
    PayloadRoot,
    /// Attestation at this index (from 0) does not carry exactly one
    /// signature of 64 bytes, so it has no Merkle leaf.
    #[error("attestation #{0} must carry exactly one 64-byte signature")]
    AttestationShape(usize),
    /// The block carries this many attestations, above [`MAX_BLOCK_ATTESTATIONS`].
    #[error("block carries {0} attestations, above the limit")]
    TooManyAttestations(usize),
    /// The embedded last commit is missing above height 1, or present at
    /// height 1 (where `last_commit_hash` must be empty too), or the BLAKE3 of
    /// its encoding is not `last_commit_hash`.
    #[error("last commit is missing, unexpected, or does not match last_commit_hash")]
    LastCommitHash,
    /// The embedded last commit is not a valid certificate for the parent
    /// under the parent's epoch weights.
    #[error("last commit: {0}")]
    LastCommit(#[from] CertError),
    /// `evidence_root` does not match the evidence (empty when there is none).
    #[error("evidence root does not match the evidence")]
    EvidenceRoot,
    /// More evidence than `params.evidence.max_per_block` (an
    /// [`EvidenceError::TooMany`]).
    #[error("{0}")]
    TooMuchEvidence(EvidenceError),
    /// A piece of evidence breaks a rule of docs/PROTOCOL.md §11.
    #[error("evidence #{index}: {err}")]
    Evidence {
        /// Its position in the block's evidence, from 0.
        index: usize,
        /// The rule it breaks.
        err: EvidenceError,
    },
}

/// The state after the last finalized block; serializable so the node can
/// persist it atomically with that block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    /// Last finalized height (0 = genesis only).
    pub height: Height,
    /// Hash of the block at `height`; the genesis hash (BLAKE3 of the
    /// genesis file) at height 0. The next block's `parent_hash`.
    pub last_hash: Hash,
    /// Block time of the block at `height` (the genesis time at height 0),
    /// Unix ms. The next block's time must be above it.
    pub last_time_ms: u64,
    /// Weights of the epoch of `height` (certifies the last block).
    pub last_weights: EpochWeights,
    /// Weights of the epoch of `height + 1` (votes for the next block).
    pub weights: EpochWeights,
    /// What the current epoch's blocks contributed so far.
    pub acc: EpochAccumulator,
    /// Proposer priorities at the start of `height + 1`.
    pub priorities: ProposerPriority,
    /// Keys of committed evidence still young enough to be included again
    /// ([`evidence::oldest_includable`]): each offence is committed once.
    #[serde(default)]
    pub committed_evidence: BTreeSet<EvidenceKey>,
}

impl ChainState {
    /// The state before block 1: epoch 0 weights from stake alone (rep 10000,
    /// PoI 0), zero priorities, the genesis hash and time as the head.
    pub fn genesis(g: &Genesis) -> Self {
        let stakes: Vec<u64> = g.members.iter().map(|m| m.stake).collect();
        let comps = weights::genesis_components(&stakes);
        let w = EpochWeights::new(0, comps.clone(), weights::weights_of(&g.params().weights, &comps));
        ChainState {
            height: 0,
            last_hash: g.hash,
            last_time_ms: g.doc.genesis_time_ms,
            last_weights: w.clone(),
            weights: w,
            acc: EpochAccumulator::new(g.members.len()),
            priorities: ProposerPriority::new(g.members.len()),
            committed_evidence: BTreeSet::new(),
        }
    }

    /// The height of the next block: `height + 1`.
    pub fn next_height(&self) -> Height {
        self.height + 1
    }

    /// Index of the proposer of `round` at the next height.
    pub fn proposer(&self, round: Round) -> usize {
        self.priorities.proposer_for_round(&self.weights.weights, round)
    }

    /// The JSON encoding the node stores with the head block ([`ChainState::from_bytes`] reads it).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("chain state serializes")
    }

    /// Parses [`ChainState::to_bytes`]; the error names what did not parse.
    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(b).map_err(|e| format!("chain state: {e}"))
    }

    /// Full validity of a block as the next block: header against the parent,
    /// payload root, and the embedded last commit against the parent's epoch
    /// weights. Attestation *content* rules are checked at the node's edge.
    pub fn validate_block(&self, g: &Genesis, block: &Block) -> Result<Hash, BlockError> {
        self.validate_block_trusting(g, block, None)
    }

    /// [`ChainState::validate_block`], where `verified_parent_commit` is a
    /// certificate for the parent that the caller already verified in full
    /// (against these weights, for this parent): an embedded last commit
    /// equal to it is not verified again. Anything else is.
    pub fn validate_block_trusting(
        &self,
        g: &Genesis,
        block: &Block,
        verified_parent_commit: Option<&CommitCertificate>,
    ) -> Result<Hash, BlockError> {
        self.validate_block_with(g, block, verified_parent_commit, |_, _| false)
    }

    /// [`ChainState::validate_block_trusting`], where the embedded last
    /// commit's precommits that `known` vouches for (this exact signed vote
    /// already passed the signature check here) are not verified again. At
    /// 100 validators that is ~67 Ed25519 checks per proposal a node already
    /// made when the precommits arrived.
    pub fn validate_block_with(
        &self,
        g: &Genesis,
        block: &Block,
        verified_parent_commit: Option<&CommitCertificate>,
        known: impl Fn(usize, &bizra_proto::SignedVote) -> bool,
    ) -> Result<Hash, BlockError> {
        let h = block.header.as_ref().ok_or(BlockError::NoHeader)?;
        let p = g.params();
        if h.chain_id != g.chain_id() {
            return Err(BlockError::ChainId(h.chain_id.clone()));
        }
        let expected = self.next_height();
        if h.height != expected {
            return Err(BlockError::Height {
                expected,
                found: h.height,
            });
        }
        if hash_from_slice(&h.parent_hash).ok().flatten() != Some(self.last_hash) {
            return Err(BlockError::Parent);
        }
        let epoch = epoch_of(h.height, p.epoch_length);
        if h.epoch != epoch {
            return Err(BlockError::Epoch {
                expected: epoch,
                found: h.epoch,
            });
        }
        let latest = self.last_time_ms.saturating_add(MAX_BLOCK_TIME_GAP_MS);
        if h.time_ms <= self.last_time_ms || h.time_ms > latest {
            return Err(BlockError::Time {
                parent: self.last_time_ms,
                found: h.time_ms,
            });
        }
        if g.members.index_of(&h.proposer).is_none() {
            return Err(BlockError::Proposer(h.proposer.clone()));
        }
        if block.attestations.len() > MAX_BLOCK_ATTESTATIONS {
            return Err(BlockError::TooManyAttestations(block.attestations.len()));
        }
        // The Merkle leaf commits to the payload and signature; the rest of the
        // envelope must follow from them, or a relay could rewrite it.
        for (i, e) in block.attestations.iter().enumerate() {
            let attester = PoiAttestation::decode(e.payload.as_slice())
                .map(|a| a.attester)
                .unwrap_or_default();
            if e.payload_type != bizra_proto::payload_type::POI
                || e.signatures.len() != 1
                || e.signatures[0].keyid != attester
            {
                return Err(BlockError::AttestationMetadata(i));
            }
        }
        if payload_root(&block.attestations)? != h.payload_root.as_slice() {
            return Err(BlockError::PayloadRoot);
        }
        self.check_evidence(g, h.height, block)?;
        match (&block.last_commit, self.height) {
            (None, 0) if h.last_commit_hash.is_empty() => {}
            (Some(c), parent) if parent > 0 => {
                if hash_bytes(&c.encode_to_vec()).as_slice() != h.last_commit_hash.as_slice() {
                    return Err(BlockError::LastCommitHash);
                }
                let trusted = verified_parent_commit
                    .is_some_and(|k| k == c && k.height == parent && k.block_hash.as_slice() == self.last_hash);
                if !trusted {
                    certificate::verify_with(
                        g.chain_id(),
                        &g.members,
                        &self.last_weights,
                        p.fast_threshold_bps,
                        c,
                        Some((parent, self.last_hash)),
                        known,
                    )?;
                }
            }
            _ => return Err(BlockError::LastCommitHash),
        }
        Ok(block_hash(block).expect("header present"))
    }

    /// The block's evidence (ADR 0014): count, root, then per piece the
    /// cheap rules (shape, age, once) for all, and only then the signatures.
    pub fn check_evidence(&self, g: &Genesis, height: Height, block: &Block) -> Result<(), BlockError> {
        let h = block.header.as_ref().ok_or(BlockError::NoHeader)?;
        let p = g.params();
        let max = p.evidence.max_per_block;
        if block.evidence.len() > max as usize {
            return Err(BlockError::TooMuchEvidence(EvidenceError::TooMany {
                found: block.evidence.len(),
                max,
            }));
        }
        if evidence::evidence_root(&block.evidence) != h.evidence_root {
            return Err(BlockError::EvidenceRoot);
        }
        let mut keys = HashSet::new();
        let mut shaped = Vec::with_capacity(block.evidence.len());
        for (index, e) in block.evidence.iter().enumerate() {
            let err = |err| BlockError::Evidence { index, err };
            let s = evidence::check_shape(g.chain_id(), &g.members, e).map_err(err)?;
            evidence::check_age(&p.evidence, p.epoch_length, s.key.height, height).map_err(err)?;
            if self.committed_evidence.contains(&s.key) {
                return Err(err(EvidenceError::AlreadyCommitted));
            }
            if !keys.insert(s.key) {
                return Err(err(EvidenceError::DuplicateInBlock));
            }
            shaped.push(s);
        }
        for (index, s) in shaped.iter().enumerate() {
            evidence::verify_signatures(&g.members, s).map_err(|err| BlockError::Evidence { index, err })?;
        }
        Ok(())
    }

    /// Whether `e` could go into the next block on its own: every rule of
    /// [`ChainState::check_evidence`] but the signatures (for the pool).
    pub fn evidence_includable(&self, g: &Genesis, e: &Evidence) -> Result<EvidenceKey, EvidenceError> {
        let p = g.params();
        let s = evidence::check_shape(g.chain_id(), &g.members, e)?;
        evidence::check_age(&p.evidence, p.epoch_length, s.key.height, self.next_height())?;
        if self.committed_evidence.contains(&s.key) {
            return Err(EvidenceError::AlreadyCommitted);
        }
        Ok(s.key)
    }

    /// Applies a finalized block (already validated) and advances the epoch
    /// at its boundary. Deterministic: depends on genesis and the block only.
    ///
    /// An attestation credits its subject's PoI only when the subject is a
    /// validator other than the attester: a self-attestation stays valid (it
    /// is in the block and the payload root) but earns nothing (issue 14 S1,
    /// ADR 0003 amendment).
    pub fn apply(&mut self, g: &Genesis, block: &Block, hash: Hash) {
        let h = block.header.as_ref().expect("validated block");
        for env in &block.attestations {
            if let Ok(att) = PoiAttestation::decode(env.payload.as_slice()) {
                if att.subject == att.attester {
                    continue;
                }
                if let Some(s) = g.members.index_of(&att.subject) {
                    self.acc.add_impact(s, att.impact_bps as u64);
                }
            }
        }
        if let Some(c) = &block.last_commit {
            let t = certificate::tally_trusted(&g.members, &self.last_weights, c);
            self.acc.add_commit(t.signers);
        }
        for e in &block.evidence {
            if let Ok(s) = evidence::check_shape(g.chain_id(), &g.members, e) {
                self.committed_evidence.insert(s.key);
                self.acc.offenders.insert(s.validator());
            }
        }
        self.height = h.height;
        self.last_hash = hash;
        self.last_time_ms = h.time_ms;
        self.last_weights = self.weights.clone();
        let p = g.params();
        let len = p.epoch_length;
        if !self.committed_evidence.is_empty() {
            // Keys too old to be included again cannot be committed twice.
            let oldest = evidence::oldest_includable(&p.evidence, len, self.height + 1);
            self.committed_evidence = self.committed_evidence.split_off(&EvidenceKey {
                height: oldest,
                validator: 0,
                round: 0,
                kind: i32::MIN,
            });
        }
        if self.height.is_multiple_of(len) {
            self.weights = next_epoch_weights(g, &self.weights, &self.acc, epoch_of(self.height + 1, len));
            self.acc = EpochAccumulator::new(g.members.len());
            self.priorities = ProposerPriority::new(g.members.len());
        } else {
            self.priorities.step(&self.weights.weights);
        }
    }

    /// Builds the next block's header around a payload.
    pub fn build_block(
        &self,
        g: &Genesis,
        proposer: &str,
        now_ms: u64,
        last_commit: Option<CommitCertificate>,
        attestations: Vec<Envelope>,
    ) -> Block {
        self.build_block_with(g, proposer, now_ms, last_commit, attestations, Vec::new())
    }

    /// [`ChainState::build_block`] with evidence (the caller keeps it within
    /// the rules: [`ChainState::evidence_includable`], `max_per_block`).
    pub fn build_block_with(
        &self,
        g: &Genesis,
        proposer: &str,
        now_ms: u64,
        last_commit: Option<CommitCertificate>,
        attestations: Vec<Envelope>,
        evidence: Vec<Evidence>,
    ) -> Block {
        let height = self.next_height();
        let root = payload_root(&attestations).unwrap_or_else(|_| merkle::root(&[]));
        let header = BlockHeader {
            chain_id: g.chain_id().to_string(),
            height,
            parent_hash: self.last_hash.to_vec(),
            proposer: proposer.to_string(),
            time_ms: now_ms
                .max(self.last_time_ms.saturating_add(1))
                .min(self.last_time_ms.saturating_add(MAX_BLOCK_TIME_GAP_MS)),
            payload_root: root.to_vec(),
            last_commit_hash: last_commit
                .as_ref()
                .map(|c| hash_bytes(&c.encode_to_vec()).to_vec())
                .unwrap_or_default(),
            epoch: epoch_of(height, g.params().epoch_length),
            evidence_root: evidence::evidence_root(&evidence),
        };
        Block {
            header: Some(header),
            last_commit,
            attestations,
            evidence,
        }
    }
}

/// The weights of epoch `epoch` (starting at a boundary): the components
/// from the ending epoch's accumulator, then the jail rule of ADR 0014. A
/// validator with evidence committed in the ending epoch loses its PoI carry
/// and is jailed (weight 0) for `jail_epochs` epochs from `epoch`; a longer
/// term already running is kept. Jailing never takes every validator: if it
/// would, nobody is jailed in this epoch (the chain could not go on).
pub fn next_epoch_weights(g: &Genesis, prev: &EpochWeights, acc: &EpochAccumulator, epoch: u64) -> EpochWeights {
    let p = g.params();
    let n = g.members.len();
    let mut comps = weights::next_components(&p.weights, &prev.components, acc);
    let mut until: Vec<u64> = (0..n).map(|i| prev.jailed_until(i)).collect();
    for &i in &acc.offenders {
        comps[i].poi = 0;
        if p.evidence.jail_epochs > 0 {
            until[i] = until[i].max(epoch.saturating_add(p.evidence.jail_epochs));
        }
    }
    for u in until.iter_mut() {
        if *u <= epoch {
            *u = 0;
        }
    }
    if until.iter().all(|&u| u > epoch) {
        until = vec![0; n];
    }
    let w = weights::weights_of(&p.weights, &comps);
    EpochWeights::with_jail(epoch, comps, w, until)
}

/// The leaves of a block's attestation tree.
pub fn attestation_leaves(atts: &[Envelope]) -> Result<Vec<Hash>, BlockError> {
    atts.iter()
        .enumerate()
        .map(|(i, e)| match e.signatures.as_slice() {
            [s] if s.sig.len() == 64 => Ok(merkle::leaf_hash(&hash_bytes(&e.payload), &s.sig)),
            _ => Err(BlockError::AttestationShape(i)),
        })
        .collect()
}

/// The header's `payload_root`: the Merkle root over [`attestation_leaves`]
/// (BLAKE3("") for none). Fails like [`attestation_leaves`].
pub fn payload_root(atts: &[Envelope]) -> Result<Hash, BlockError> {
    Ok(merkle::root(&attestation_leaves(atts)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{GenesisDoc, GenesisParams, GenesisValidator};
    use crate::poi;
    use crate::signing::Signer;

    fn genesis(n: usize) -> (Genesis, Vec<Signer>) {
        let signers: Vec<Signer> = (0..n).map(|i| Signer::from_secret([i as u8 + 1; 32])).collect();
        let doc = GenesisDoc {
            chain_id: "bizra-test".into(),
            genesis_time_ms: 1_000_000,
            params: GenesisParams {
                epoch_length: 1,
                ..GenesisParams::default()
            },
            validators: signers
                .iter()
                .enumerate()
                .map(|(i, s)| GenesisValidator {
                    id: s.id().to_string(),
                    stake: 1000,
                    name: format!("v{i}"),
                })
                .collect(),
        };
        (Genesis::from_doc(&doc).expect("genesis").0, signers)
    }

    fn attest(g: &Genesis, by: &Signer, subject: &str, nonce: u8) -> Envelope {
        poi::build(
            by,
            poi::Draft {
                chain_id: g.chain_id().to_string(),
                subject: subject.to_string(),
                evidence_digest: [7; 32],
                evidence_len: 1,
                dimensions: [("impact".to_string(), 10_000)].into(),
                weights: [("impact".to_string(), 10_000)].into(),
                window_start_ms: 0,
                window_end_ms: 1,
                nonce: vec![nonce; 16],
            },
        )
        .expect("attestation")
    }

    /// Issue 14 S1: a validator attesting itself at 10000 bps gains no PoI; an
    /// attestation of another validator still credits its subject. Both stay
    /// in the block.
    #[test]
    fn self_attestations_earn_no_poi() {
        let (g, signers) = genesis(4);
        let id = |i: usize| signers[i].id().to_string();
        let atts = vec![attest(&g, &signers[0], &id(0), 1), attest(&g, &signers[1], &id(2), 2)];
        let mut state = ChainState::genesis(&g);
        let block = state.build_block(&g, &id(0), 2_000_000, None, atts);
        let hash = state.validate_block(&g, &block).expect("valid block");
        state.apply(&g, &block, hash);
        assert_eq!(state.weights.epoch, 1, "epoch_length 1: the next epoch's weights");
        assert_eq!(state.weights.components[0].poi, 0, "self-attestation credited");
        assert_eq!(state.weights.components[2].poi, 10_000);
        assert_eq!(state.weights.components[1].poi, 0);
    }

    fn equivocation(g: &Genesis, by: &Signer, height: u64, round: u32) -> Evidence {
        use crate::messages::{new_vote, sign_vote};
        use bizra_proto::VoteKind;
        let v = |b: u8| {
            sign_vote(
                by,
                new_vote(g.chain_id(), height, round, VoteKind::Precommit, Some([b; 32]), by.id()),
            )
        };
        evidence::duplicate_vote(v(1), v(2)).expect("conflict")
    }

    /// Builds, validates and applies the next block with `evidence`.
    fn extend(
        g: &Genesis,
        signers: &[Signer],
        state: &mut ChainState,
        evidence: Vec<Evidence>,
    ) -> Result<(), BlockError> {
        let block = state.build_block_with(g, signers[0].id(), state.last_time_ms + 1000, None, vec![], evidence);
        let hash = state.validate_block(g, &block)?;
        state.apply(g, &block, hash);
        Ok(())
    }

    fn genesis_with(n: usize, epoch_length: u64, ev: evidence::EvidenceParams) -> (Genesis, Vec<Signer>) {
        let (g, signers) = genesis(n);
        let mut doc = g.doc.clone();
        doc.params.epoch_length = epoch_length;
        doc.params.evidence = ev;
        (Genesis::from_doc(&doc).expect("genesis").0, signers)
    }

    /// ADR 0014: evidence committed in epoch e jails its validator (weight 0,
    /// PoI carry reset) for jail_epochs epochs from the boundary, then it is
    /// free again with its weight back; the same offence cannot be committed
    /// twice, and the others are unaffected.
    #[test]
    fn committed_evidence_jails_from_the_next_boundary() {
        let (g, signers) = genesis_with(
            4,
            1,
            evidence::EvidenceParams {
                jail_epochs: 2,
                ..Default::default()
            },
        );
        // epoch_length 1: block 1 ends epoch 0.
        let mut state = ChainState::genesis(&g);
        let ev = equivocation(&g, &signers[2], 1, 0);
        extend(&g, &signers, &mut state, vec![ev.clone()]).expect("block 1 with evidence");
        assert_eq!(state.weights.epoch, 1);
        assert!(state.weights.is_jailed(2));
        assert_eq!(state.weights.weight(2), 0);
        assert_eq!(state.weights.jailed_until(2), 3);
        assert_eq!(state.weights.components[2].poi, 0);
        for i in [0, 1, 3] {
            assert!(!state.weights.is_jailed(i));
            assert!(state.weights.weight(i) > 0);
        }
        assert_eq!(
            state.weights.total,
            (0..4).map(|i| state.weights.weight(i)).sum::<u128>()
        );
        // Epoch 2: still jailed; epoch 3: free (apply the boundary directly).
        let mut acc = EpochAccumulator::new(4);
        acc.add_commit([0, 1, 3]);
        let e2 = next_epoch_weights(&g, &state.weights, &acc, 2);
        assert!(e2.is_jailed(2) && e2.weight(2) == 0);
        let e3 = next_epoch_weights(&g, &e2, &acc, 3);
        assert!(!e3.is_jailed(2));
        assert!(e3.weight(2) > 0);
        assert_eq!(e3.jailed_until(2), 0);
        // The same offence again: refused, in a block and for the pool.
        let block = state.build_block_with(
            &g,
            signers[0].id(),
            state.last_time_ms + 1000,
            None,
            vec![],
            vec![ev.clone()],
        );
        assert_eq!(state.evidence_includable(&g, &ev), Err(EvidenceError::AlreadyCommitted));
        let err = state.check_evidence(&g, 2, &block).unwrap_err();
        assert_eq!(
            err,
            BlockError::Evidence {
                index: 0,
                err: EvidenceError::AlreadyCommitted
            }
        );
    }

    #[test]
    fn blocks_refuse_bad_evidence() {
        let (g, signers) = genesis_with(
            4,
            100,
            evidence::EvidenceParams {
                max_per_block: 2,
                ..Default::default()
            },
        );
        let state = ChainState::genesis(&g);
        let block = |evs: Vec<Evidence>| state.build_block_with(&g, signers[0].id(), 2_000_000, None, vec![], evs);
        let a = equivocation(&g, &signers[1], 1, 0);
        let b = equivocation(&g, &signers[2], 1, 0);
        let c = equivocation(&g, &signers[3], 1, 0);
        assert!(state.validate_block(&g, &block(vec![a.clone(), b.clone()])).is_ok());
        // Over the cap.
        assert!(matches!(
            state.validate_block(&g, &block(vec![a.clone(), b.clone(), c.clone()])),
            Err(BlockError::TooMuchEvidence(EvidenceError::TooMany { found: 3, max: 2 }))
        ));
        // One offence twice.
        assert_eq!(
            state.validate_block(&g, &block(vec![a.clone(), a.clone()])),
            Err(BlockError::Evidence {
                index: 1,
                err: EvidenceError::DuplicateInBlock
            })
        );
        // Evidence the header does not commit to.
        let mut bad = block(vec![a.clone()]);
        bad.evidence.push(b.clone());
        assert_eq!(state.validate_block(&g, &bad), Err(BlockError::EvidenceRoot));
        let mut bad = block(vec![a.clone()]);
        bad.evidence.clear();
        assert_eq!(state.validate_block(&g, &bad), Err(BlockError::EvidenceRoot));
        // From the future (height 2 evidence in block 1).
        assert!(matches!(
            state.validate_block(&g, &block(vec![equivocation(&g, &signers[1], 2, 0)])),
            Err(BlockError::Evidence {
                err: EvidenceError::Future { .. },
                ..
            })
        ));
        // A forged signature (checked after the cheap rules).
        let mut forged = a.clone();
        if let Some(bizra_proto::evidence::Kind::DuplicateVote(d)) = &mut forged.kind {
            d.second.as_mut().unwrap().signature[5] ^= 1;
        }
        assert!(matches!(
            state.validate_block(&g, &block(vec![forged])),
            Err(BlockError::Evidence {
                err: EvidenceError::Signature { .. },
                ..
            })
        ));
        // A block without evidence hashes as before (no evidence_root field).
        let plain = block(vec![]);
        assert!(plain.header.as_ref().unwrap().evidence_root.is_empty());
    }

    /// Evidence too old for the age limits is refused at the including height.
    #[test]
    fn blocks_refuse_old_evidence() {
        let (g, signers) = genesis_with(
            4,
            1,
            evidence::EvidenceParams {
                max_age_blocks: 2,
                max_age_epochs: 100,
                ..Default::default()
            },
        );
        let mut state = ChainState::genesis(&g);
        for _ in 0..3 {
            // No certificates here: apply() alone (validity is tested above).
            let block = state.build_block(&g, signers[0].id(), state.last_time_ms + 1000, None, vec![]);
            let hash = block_hash(&block).unwrap();
            state.apply(&g, &block, hash);
        }
        // Now at height 3: the next block is 4; evidence from height 1 is 3 blocks old.
        let old = equivocation(&g, &signers[1], 1, 0);
        assert!(matches!(
            state.evidence_includable(&g, &old),
            Err(EvidenceError::TooOld { .. })
        ));
        assert!(state
            .evidence_includable(&g, &equivocation(&g, &signers[1], 2, 0))
            .is_ok());
    }

    /// Jailing never takes every validator's weight.
    #[test]
    fn jailing_everyone_jails_nobody() {
        let (g, _) = genesis_with(2, 1, evidence::EvidenceParams::default());
        let state = ChainState::genesis(&g);
        let mut acc = EpochAccumulator::new(2);
        acc.offenders.extend([0, 1]);
        let w = next_epoch_weights(&g, &state.weights, &acc, 1);
        assert!(!w.is_jailed(0) && !w.is_jailed(1));
        assert!(w.total > 0);
        assert_eq!(w.components[0].poi, 0, "the PoI carry is still reset");
        acc.offenders.remove(&1);
        let w = next_epoch_weights(&g, &state.weights, &acc, 1);
        assert!(w.is_jailed(0) && !w.is_jailed(1));
    }
}
