//! The finalized chain's state: what every node derives from genesis and the
//! finalized blocks alone. Block validity against the parent, the epoch's
//! weights and the proposer rotation live here.

use crate::certificate::{self, CertError};
use crate::genesis::Genesis;
use crate::merkle;
use crate::messages::block_hash;
use crate::proposer::ProposerPriority;
use crate::types::{epoch_of, hash_bytes, hash_from_slice, Hash, Height, Round};
use crate::validators::EpochWeights;
use crate::weights::{self, EpochAccumulator};
use bizra_proto::{Block, BlockHeader, CommitCertificate, Envelope, PoiAttestation};
use prost::Message;
use serde::{Deserialize, Serialize};

/// Most attestations one block may carry.
pub const MAX_BLOCK_ATTESTATIONS: usize = 20_000;
/// A block's time may run at most this far past its parent's. Deterministic,
/// so all nodes agree; without it one Byzantine proposer could stamp
/// `u64::MAX` and no block could ever follow (found by fuzzing).
pub const MAX_BLOCK_TIME_GAP_MS: u64 = 3_600_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    #[error("block has no header")]
    NoHeader,
    #[error("block chain id {0:?} is not this chain's")]
    ChainId(String),
    #[error("block height {found}, expected {expected}")]
    Height { expected: Height, found: Height },
    #[error("parent hash does not match the finalized head")]
    Parent,
    #[error("header epoch {found}, expected {expected}")]
    Epoch { expected: u64, found: u64 },
    #[error("block time {found} ms is not after the parent's {parent} ms, or more than an hour after it")]
    Time { parent: u64, found: u64 },
    #[error("attestation #{0}: envelope metadata (payload type, keyid) does not match its payload")]
    AttestationMetadata(usize),
    #[error("proposer {0} is not a validator")]
    Proposer(String),
    #[error("payload root does not match the attestations")]
    PayloadRoot,
    #[error("attestation #{0} must carry exactly one 64-byte signature")]
    AttestationShape(usize),
    #[error("block carries {0} attestations, above the limit")]
    TooManyAttestations(usize),
    #[error("last commit is missing, unexpected, or does not match last_commit_hash")]
    LastCommitHash,
    #[error("last commit: {0}")]
    LastCommit(#[from] CertError),
}

/// The state after the last finalized block; serializable so the node can
/// persist it atomically with that block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    /// Last finalized height (0 = genesis only).
    pub height: Height,
    pub last_hash: Hash,
    pub last_time_ms: u64,
    /// Weights of the epoch of `height` (certifies the last block).
    pub last_weights: EpochWeights,
    /// Weights of the epoch of `height + 1` (votes for the next block).
    pub weights: EpochWeights,
    /// What the current epoch's blocks contributed so far.
    pub acc: EpochAccumulator,
    /// Proposer priorities at the start of `height + 1`.
    pub priorities: ProposerPriority,
}

impl ChainState {
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
        }
    }

    pub fn next_height(&self) -> Height {
        self.height + 1
    }

    /// Index of the proposer of `round` at the next height.
    pub fn proposer(&self, round: Round) -> usize {
        self.priorities.proposer_for_round(&self.weights.weights, round)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("chain state serializes")
    }

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
        self.height = h.height;
        self.last_hash = hash;
        self.last_time_ms = h.time_ms;
        self.last_weights = self.weights.clone();
        let len = g.params().epoch_length;
        if self.height.is_multiple_of(len) {
            let comps = weights::next_components(&g.params().weights, &self.weights.components, &self.acc);
            let w = weights::weights_of(&g.params().weights, &comps);
            self.weights = EpochWeights::new(epoch_of(self.height + 1, len), comps, w);
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
        };
        Block {
            header: Some(header),
            last_commit,
            attestations,
        }
    }
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
}
