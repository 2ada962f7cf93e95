//! Signed artifacts built offline from deterministic keys, for tests and
//! tooling: a genesis of `n` validators, head reports, precommits, proofs and
//! a real two-block chain carrying evidence.

use crate::encoding::{sign_envelope, signed_vote_envelope};
use crate::evidence::{build_evidence_doc, EvidenceDoc};
use crate::wq_proof::{build_proof, CommitPart, HeadPart, ProofParts, TelemetryPart, WqProof};
use bizra_consensus::chain::ChainState;
use bizra_consensus::genesis::{Genesis, GenesisDoc, GenesisParams, GenesisValidator};
use bizra_consensus::messages::{new_vote, sign_vote};
use bizra_consensus::quorum;
use bizra_consensus::signing::Signer;
use bizra_consensus::types::Hash;
use bizra_consensus::weights::Components;
use bizra_proto::{payload_type, Envelope, InclusionProof};
use bizra_proto::{HeadReport, VoteKind};
use prost::Message;

/// Block 2 of [`Fixture::evidence_chain`], its evidence of interest and the
/// `GetEvidence` item for it.
pub struct EvidenceChain {
    /// Block 2 as built and validated, carrying two duplicate-vote evidences.
    pub block: bizra_proto::Block,
    /// The offender's duplicate-prevote evidence (leaf 1 of the block's evidence root).
    pub evidence: bizra_proto::Evidence,
    /// The `GetEvidence` answer for that evidence: header, Merkle proof and commit of block 2.
    pub committed: bizra_proto::CommittedEvidence,
}

/// A genesis of `n` validators with their signers, and one block.
pub struct Fixture {
    /// The canonical genesis file bytes.
    pub genesis_bytes: Vec<u8>,
    /// The parsed genesis.
    pub genesis: Genesis,
    /// Validator `i`'s signing key, in genesis order.
    pub signers: Vec<Signer>,
    /// The height proven by the fixture's head reports and precommits.
    pub height: u64,
    /// The block hash at `height` (synthetic, or block 2's after [`Fixture::evidence_chain`]).
    pub block_hash: Hash,
    /// The round of the fixture's precommits (0).
    pub round: u32,
}

impl Fixture {
    /// `n` validators with keys derived from `seed`, proving `height`.
    pub fn new(n: usize, height: u64, seed: u8) -> Self {
        let signers: Vec<Signer> = (0..n)
            .map(|i| {
                let mut s = [seed; 32];
                s[0] = i as u8;
                Signer::from_secret(s)
            })
            .collect();
        let doc = GenesisDoc {
            chain_id: format!("bizra-fixture-{seed}"),
            genesis_time_ms: 1_700_000_000_000,
            params: GenesisParams::default(),
            validators: signers
                .iter()
                .enumerate()
                .map(|(i, s)| GenesisValidator {
                    id: s.id().to_string(),
                    stake: 1000 + 500 * i as u64,
                    name: format!("validator-{i}"),
                })
                .collect(),
        };
        let (genesis, genesis_bytes) = Genesis::from_doc(&doc).expect("fixture genesis");
        let block_hash = bizra_consensus::types::hash_bytes(format!("block {height} of {seed}").as_bytes());
        Fixture {
            genesis_bytes,
            genesis,
            signers,
            height,
            block_hash,
            round: 0,
        }
    }

    /// The genesis chain id.
    pub fn chain_id(&self) -> &str {
        self.genesis.chain_id()
    }

    /// A head report of validator `i` for (`height`, `hash`).
    pub fn head_report(&self, i: usize, height: u64, hash: Hash) -> Envelope {
        let r = HeadReport {
            chain_id: self.chain_id().to_string(),
            genesis_hash: self.genesis.hash.to_vec(),
            height,
            block_hash: hash.to_vec(),
            validator: self.signers[i].id().to_string(),
            time_ms: 1_700_000_000_000 + height * 1000,
        };
        sign_envelope(&self.signers[i], payload_type::HEAD_REPORT, r.encode_to_vec())
    }

    /// A precommit of validator `i` for `hash` at the fixture height, as an envelope.
    pub fn precommit(&self, i: usize, hash: Hash) -> Envelope {
        let v = new_vote(
            self.chain_id(),
            self.height,
            self.round,
            VoteKind::Precommit,
            Some(hash),
            self.signers[i].id(),
        );
        signed_vote_envelope(&sign_vote(&self.signers[i], v))
    }

    /// Epoch-0 weights from genesis, per member in genesis order.
    pub fn weights(&self) -> Vec<(String, u128, Components)> {
        let w = ChainState::genesis(&self.genesis).weights;
        self.genesis
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), w.weights[i], w.components[i]))
            .collect()
    }

    /// The commit of `signers` (validator indices) for `hash` at the fixture
    /// height, tallied with the epoch-0 weights and genesis thresholds.
    pub fn commit_part(&self, signers: &[usize], hash: Hash) -> CommitPart {
        let weights = self.weights();
        let total: u128 = weights.iter().map(|w| w.1).sum();
        let signed: u128 = signers.iter().map(|&i| weights[i].1).sum();
        let p = self.genesis.params();
        CommitPart {
            signers: signers.iter().map(|&i| self.signers[i].id().to_string()).collect(),
            signatures: signers.iter().map(|&i| self.precommit(i, hash)).collect(),
            signed_weight: signed,
            total_weight: total,
            share_bps: quorum::share_bps(signed, total),
            fast_final: quorum::reaches(signed, total, p.fast_threshold_bps),
            economic_final: quorum::reaches(signed, total, p.economic_threshold_bps),
        }
    }

    /// Epoch-0 telemetry of every validator.
    pub fn telemetry_parts(&self) -> Vec<TelemetryPart> {
        self.weights()
            .into_iter()
            .map(|(id, wq_weight, components)| TelemetryPart {
                id,
                wq_weight,
                components,
                jailed_until: None,
            })
            .collect()
    }

    /// Parts of a proof queried from validators `queried` (with the given
    /// hashes, `None` = the fixture's block) and committed by `signers`.
    pub fn parts(&self, queried: &[(usize, Option<Hash>)], signers: &[usize]) -> ProofParts {
        ProofParts {
            chain_id: self.chain_id().to_string(),
            genesis_hash: self.genesis.hash,
            height: self.height,
            block_hash: self.block_hash,
            heads: queried
                .iter()
                .map(|&(i, h)| {
                    let h = h.unwrap_or(self.block_hash);
                    HeadPart {
                        id: self.signers[i].id().to_string(),
                        endpoint: format!("http://127.0.0.1:{}", 7600 + i),
                        block_hash: h,
                        envelope: self.head_report(i, self.height, h),
                    }
                })
                .collect(),
            commit: self.commit_part(signers, self.block_hash),
            telemetry: self.telemetry_parts(),
            telemetry_epoch: Some(bizra_consensus::types::epoch_of(
                self.height,
                self.genesis.params().epoch_length,
            )),
            telemetry_note: None,
        }
    }

    /// A real two-block chain on this genesis (each block validated by
    /// [`ChainState::validate_block`], block 2 on block 1's commit by all):
    /// block 2 carries two pieces of duplicate-vote evidence about height 1,
    /// validator 1's conflicting precommits (round 0), then `offender`'s
    /// conflicting prevotes (round 0). The fixture moves to height 2 and
    /// block 2's hash; the answer is what `GetEvidence` would serve for
    /// `offender`'s evidence (index 1 of 2 in the block), with block 2's
    /// commit certificate by all validators.
    pub fn evidence_chain(&mut self, offender: usize) -> EvidenceChain {
        use bizra_consensus::evidence;
        use bizra_proto::{CommitCertificate, CommittedEvidence};
        let g = &self.genesis;
        let mut state = ChainState::genesis(g);
        let proposer = |s: &ChainState| g.members.get(s.proposer(0)).id.clone();
        let b1 = state.build_block(g, &proposer(&state), g.doc.genesis_time_ms + 1000, None, vec![]);
        let h1 = state.validate_block(g, &b1).expect("fixture block 1 is valid");
        state.apply(g, &b1, h1);
        let cert = |height: u64, hash: Hash| CommitCertificate {
            height,
            round: 0,
            block_hash: hash.to_vec(),
            precommits: self
                .signers
                .iter()
                .map(|s| {
                    sign_vote(
                        s,
                        new_vote(self.chain_id(), height, 0, VoteKind::Precommit, Some(hash), s.id()),
                    )
                })
                .collect(),
        };
        let conflict = |who: usize, kind: VoteKind| {
            let s = &self.signers[who];
            let other = bizra_consensus::types::hash_bytes(format!("not block 1 ({who})").as_bytes());
            evidence::duplicate_vote(
                sign_vote(s, new_vote(self.chain_id(), 1, 0, kind, Some(h1), s.id())),
                sign_vote(s, new_vote(self.chain_id(), 1, 0, kind, Some(other), s.id())),
            )
            .expect("the hashes differ")
        };
        let evs = vec![conflict(1, VoteKind::Precommit), conflict(offender, VoteKind::Prevote)];
        let b2 = state.build_block_with(
            g,
            &proposer(&state),
            state.last_time_ms + 1000,
            Some(cert(1, h1)),
            vec![],
            evs.clone(),
        );
        let h2 = state
            .validate_block(g, &b2)
            .expect("fixture block 2 (with evidence) is valid");
        let leaves: Vec<Hash> = evs.iter().map(evidence::leaf).collect();
        let committed = CommittedEvidence {
            evidence: Some(evs[1].clone()),
            id: hex::encode(evidence::evidence_id(&evs[1])),
            validator: self.signers[offender].id().to_string(),
            height: 2,
            block_hash: h2.to_vec(),
            proof: Some(InclusionProof {
                leaf_index: 1,
                leaf_count: 2,
                siblings: bizra_consensus::merkle::proof(&leaves, 1)
                    .expect("leaf 1 of 2")
                    .iter()
                    .map(|s| s.to_vec())
                    .collect(),
            }),
            commit: Some(cert(2, h2)),
            header: b2.header.clone(),
        };
        self.height = 2;
        self.block_hash = h2;
        self.round = 0;
        EvidenceChain {
            block: b2,
            evidence: evs[1].clone(),
            committed,
        }
    }

    /// `evidence.json` of [`Fixture::evidence_chain`]'s evidence, committed by
    /// `signers` (validator indices) with epoch-0 telemetry.
    pub fn evidence_doc(&self, chain: &EvidenceChain, signers: &[usize]) -> EvidenceDoc {
        let commit = self.commit_part(signers, self.block_hash);
        let telemetry = build_proof(&self.parts(&[], signers)).telemetry;
        build_evidence_doc(&chain.committed, &commit, Some(telemetry)).expect("fixture evidence doc")
    }

    /// A valid proof: validators 0..3 queried and agreeing, all validators signing.
    pub fn valid_proof(&self) -> WqProof {
        let n = self.signers.len();
        let queried: Vec<(usize, Option<Hash>)> = (0..n.min(3)).map(|i| (i, None)).collect();
        let signers: Vec<usize> = (0..n).collect();
        build_proof(&self.parts(&queried, &signers))
    }
}
