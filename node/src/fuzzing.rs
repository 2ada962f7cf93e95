//! Fuzzing entry points: one function per decoder of outside bytes.
//!
//! The cargo-fuzz targets in `fuzz/fuzz_targets/` and the regression test
//! `node/tests/fuzz_regressions.rs` both call these functions, so an input
//! that once crashed a fuzz target keeps being replayed by `cargo test`.
//!
//! Every function takes the raw bytes as they arrive (a gossip message, a sync
//! frame's payload, a file) and runs the same checks the node runs on them,
//! against a fixed [`World`]: a 4-validator genesis and a 3-block finalized
//! chain signed with deterministic keys. Attestation admission and proposal
//! payload checks (`crate::admission`) and synced ranges
//! (`engine::sync::check_range` / `apply_range`) are the engine's own
//! functions; the rest of the engine's glue (`check_gossip`, `serve_sync`)
//! is mirrored here step by step, calling the same public library functions
//! in the same order; the library code
//! (decoding, `check_vote`, `check_proposal`, `validate_block`,
//! `poi::check`, the driver, the store, the verifiers) is the real thing.
//!
//! A function returns an [`Outcome`] (what the node would do with the
//! input) and panics only when the code under test panics or when one of the
//! invariants asserted here breaks. The invariants rely on the fuzzer not
//! being able to forge Ed25519 signatures: anything accepted must be
//! something the world's validators signed. The exception is
//! [`fuzz_driver_byzantine`], which re-signs the fuzzer's messages with the
//! keys of validators 1..=3 (a Byzantine super-majority) and checks that the
//! honest validator 0 never equivocates and never decides an invalid or
//! uncertified block.
//!
//! Seeds (valid messages for every target) come from [`seed_corpus`]; the
//! ignored test `write_seeds` in `node/tests/fuzz_regressions.rs` writes them
//! to `fuzz/seeds/<target>/`.

use crate::admission;
use crate::cli::proof::{
    self, build_proof, sign_envelope, signed_vote_envelope, CommitPart, HeadPart, ProofParts, Telemetry, TelemetryPart,
};
use crate::cli::verify;
use crate::cli::Failure;
use crate::config::{parse_peer, NodeConfig};
use crate::engine::sync::{self, BATCH};
use crate::pool::{AttestationPool, FinalizedKey};
use bizra_consensus::chain::{self, ChainState};
use bizra_consensus::driver::{Driver, Effect, Input, Timeout, Timeouts, FUTURE_HEIGHTS};
use bizra_consensus::genesis::{Genesis, GenesisDoc, GenesisParams, GenesisValidator};
use bizra_consensus::messages::{block_hash, check_proposal, check_vote, new_vote, sign_proposal, sign_vote};
use bizra_consensus::poi;
use bizra_consensus::signing::Signer;
use bizra_consensus::types::{epoch_of, hash_bytes, Hash, Round, SignPosition, SignStep};
use bizra_consensus::{certificate, merkle, quorum};
use bizra_proto::{
    consensus_message::Msg, payload_type, sync_request::Req, sync_response::Resp, AttestationBatch, Block, BlockHeader,
    BlockRange, BlockRangeRequest, ChainStatus, CommitCertificate, ConsensusMessage, Envelope, EnvelopeSignature,
    FinalizedBlock, HeadReport, InclusionProof, PoiAttestation, Proposal, SignedProposal, SignedVote, StatusRequest,
    SyncRequest, SyncResponse, VoteKind,
};
use bizra_storage::{MemStore, Store};
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};

// ---------------------------------------------------------------------------
// The fixed world
// ---------------------------------------------------------------------------

/// Chain id of the fuzzing world.
pub const CHAIN_ID: &str = "bizra-fuzz";
/// `genesis_time_ms` of the fuzzing world.
pub const GENESIS_TIME_MS: u64 = 1_700_000_000_000;
/// Block `h` of the world chain has `time_ms = GENESIS_TIME_MS + h * BLOCK_SPACING_MS`.
pub const BLOCK_SPACING_MS: u64 = 1_000;
/// The clock every target runs at (after the world chain's last block).
pub const NOW_MS: u64 = GENESIS_TIME_MS + 60_000;
/// Validators of the world genesis.
pub const VALIDATORS: usize = 4;
/// Epoch length of the world genesis: small, so the 3-block chain crosses an epoch boundary.
pub const EPOCH_LENGTH: u64 = 2;
/// Finalized blocks of the world chain (heights 1..=CHAIN_LEN).
pub const CHAIN_LEN: u64 = 3;
/// Most records [`fuzz_driver_byzantine`] processes from one input.
pub const MAX_BYZANTINE_RECORDS: usize = 64;
/// The sync frame cap of the default configuration (`p2p.max_message_bytes`).
pub const MAX_MESSAGE_BYTES: usize = bizra_p2p::DEFAULT_MAX_MESSAGE_BYTES;

/// A deterministic genesis, its signers and a finalized chain.
pub struct World {
    pub genesis_bytes: Vec<u8>,
    pub genesis: Arc<Genesis>,
    pub signers: Vec<Signer>,
    /// `blocks[i]` is the finalized block at height `i + 1`, its hash and its commit.
    pub blocks: Vec<(Block, Hash, CommitCertificate)>,
    /// `states[h]` is the chain state after height `h` (`states[0]` is genesis).
    pub states: Vec<ChainState>,
    /// The world chain, as a node's store holds it.
    pub store: MemStore,
    /// Valid attestations that no block carries yet.
    pub pending: Vec<Envelope>,
    /// Signed proposals for the next height (round 0 without, round 1 with a proof-of-lock round).
    pub next_proposals: Vec<SignedProposal>,
}

/// The signing key of world validator `i`.
pub fn world_signer(i: usize) -> Signer {
    Signer::from_secret([0x51 + i as u8; 32])
}

/// A valid attestation by validator `attester` about validator `subject`, window ending at genesis time.
pub fn world_attestation(signers: &[Signer], attester: usize, subject: usize, nonce: u8) -> Envelope {
    let names = ["accuracy", "latency"];
    let dimensions: BTreeMap<String, u32> = names.iter().map(|n| n.to_string()).zip([9000, 7001]).collect();
    let weights: BTreeMap<String, u32> = names.iter().map(|n| n.to_string()).zip([6000, 4000]).collect();
    poi::build(
        &signers[attester],
        poi::Draft {
            chain_id: CHAIN_ID.to_string(),
            subject: signers[subject].id().to_string(),
            evidence_digest: hash_bytes(&[nonce]),
            evidence_len: 1,
            dimensions,
            weights,
            window_start_ms: GENESIS_TIME_MS - 3_600_000,
            window_end_ms: GENESIS_TIME_MS,
            nonce: vec![nonce; 16],
        },
    )
    .expect("world attestation draft is valid")
}

/// A commit certificate for `hash` at (`height`, `round`) signed by `who`.
pub fn world_commit(signers: &[Signer], height: u64, round: Round, hash: Hash, who: &[usize]) -> CommitCertificate {
    CommitCertificate {
        height,
        round,
        block_hash: hash.to_vec(),
        precommits: who
            .iter()
            .map(|&i| {
                let s = &signers[i];
                sign_vote(
                    s,
                    new_vote(CHAIN_ID, height, round, VoteKind::Precommit, Some(hash), s.id()),
                )
            })
            .collect(),
    }
}

fn build_world() -> World {
    let signers: Vec<Signer> = (0..VALIDATORS).map(world_signer).collect();
    let doc = GenesisDoc {
        chain_id: CHAIN_ID.to_string(),
        genesis_time_ms: GENESIS_TIME_MS,
        params: GenesisParams {
            epoch_length: EPOCH_LENGTH,
            ..GenesisParams::default()
        },
        validators: signers
            .iter()
            .enumerate()
            .map(|(i, s)| GenesisValidator {
                id: s.id().to_string(),
                stake: 1_000 + 3_000 * i as u64,
                name: format!("fuzz-{i}"),
            })
            .collect(),
    };
    let (genesis, genesis_bytes) = Genesis::from_doc(&doc).expect("world genesis is valid");
    let g = Arc::new(genesis);
    let store = MemStore::new();
    let mut states = vec![ChainState::genesis(&g)];
    let mut blocks: Vec<(Block, Hash, CommitCertificate)> = Vec::new();
    for h in 1..=CHAIN_LEN {
        let st = states.last().expect("state");
        let atts = match h {
            2 => vec![world_attestation(&signers, 0, 1, 2)],
            3 => vec![
                world_attestation(&signers, 2, 3, 3),
                world_attestation(&signers, 1, 0, 4),
            ],
            _ => Vec::new(),
        };
        let proposer = signers[st.proposer(0)].id();
        let last_commit = blocks.last().map(|b| b.2.clone());
        let block = st.build_block(&g, proposer, GENESIS_TIME_MS + h * BLOCK_SPACING_MS, last_commit, atts);
        let hash = st.validate_block(&g, &block).expect("world block is valid");
        let commit = world_commit(&signers, h, 0, hash, &[0, 1, 2, 3]);
        certificate::verify(
            CHAIN_ID,
            &g.members,
            &st.weights,
            g.params().fast_threshold_bps,
            &commit,
            Some((h, hash)),
        )
        .expect("world commit is valid");
        let mut next = st.clone();
        next.apply(&g, &block, hash);
        store
            .put_finalized(&block, &commit, &next.to_bytes())
            .expect("world store");
        states.push(next);
        blocks.push((block, hash, commit));
    }
    let pending = vec![
        world_attestation(&signers, 3, 2, 7),
        world_attestation(&signers, 0, 2, 8),
    ];
    let head = states.last().expect("head");
    let head_commit = blocks.last().map(|b| b.2.clone());
    let next_proposals = [(0u32, -1i64), (1, 0)]
        .iter()
        .map(|&(round, pol_round)| {
            let p = head.proposer(round);
            let block = head.build_block(&g, signers[p].id(), NOW_MS, head_commit.clone(), pending.clone());
            let hash = block_hash(&block).expect("header");
            let proposal = Proposal {
                chain_id: CHAIN_ID.to_string(),
                height: head.next_height(),
                round,
                pol_round,
                block_hash: hash.to_vec(),
                proposer: signers[p].id().to_string(),
            };
            sign_proposal(&signers[p], proposal, block)
        })
        .collect();
    World {
        genesis_bytes,
        genesis: g,
        signers,
        blocks,
        states,
        store,
        pending,
        next_proposals,
    }
}

/// The world (built once per process).
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(build_world)
}

impl World {
    /// The chain state after the last world block.
    pub fn head(&self) -> &ChainState {
        self.states.last().expect("head state")
    }

    /// The commit certificate of the last world block.
    pub fn head_commit(&self) -> &CommitCertificate {
        &self.blocks.last().expect("head block").2
    }

    /// A driver at genesis, without a key: a node about to sync the world chain.
    pub fn genesis_driver(&self) -> Driver {
        Driver::new(
            self.genesis.clone(),
            ChainState::genesis(&self.genesis),
            None,
            None,
            None,
            Timeouts::default(),
        )
    }

    /// A driver at the height after the world chain, as a restarted node has it.
    pub fn driver(&self, signer: Option<Signer>) -> Driver {
        Driver::new(
            self.genesis.clone(),
            self.head().clone(),
            Some(self.head_commit().clone()),
            signer,
            None,
            Timeouts::default(),
        )
    }

    /// A signed vote of validator `i`.
    pub fn vote(&self, i: usize, height: u64, round: Round, kind: VoteKind, value: Option<Hash>) -> SignedVote {
        let s = &self.signers[i];
        sign_vote(s, new_vote(CHAIN_ID, height, round, kind, value, s.id()))
    }

    /// Every (height, block hash) that the world's validators precommitted.
    pub fn precommitted(&self) -> BTreeSet<(u64, Hash)> {
        let mut set: BTreeSet<(u64, Hash)> = self.blocks.iter().map(|(b, h, _)| (header_height(b), *h)).collect();
        for p in &self.next_proposals {
            if let Some(b) = &p.block {
                set.insert((header_height(b), block_hash(b).expect("header")));
            }
        }
        set
    }

    /// The block the world signed with this (height, hash), if any.
    pub fn signed_block(&self, height: u64, hash: &Hash) -> Option<&Block> {
        self.blocks
            .iter()
            .find(|(b, h, _)| header_height(b) == height && h == hash)
            .map(|(b, _, _)| b)
            .or_else(|| {
                self.next_proposals
                    .iter()
                    .filter_map(|p| p.block.as_ref())
                    .find(|b| header_height(b) == height && block_hash(b).as_ref() == Some(hash))
            })
    }

    /// A fresh attestation pool that remembers the world chain's finalized attestations.
    pub fn pool(&self) -> AttestationPool {
        let mut pool = AttestationPool::new(crate::pool::DEFAULT_CAPACITY);
        for (b, _, _) in &self.blocks {
            pool.remove_finalized(
                b.attestations
                    .iter()
                    .map(|e| FinalizedKey::from_envelope(e, &self.genesis.members)),
            );
        }
        pool
    }
}

fn header_height(b: &Block) -> u64 {
    b.header.as_ref().map(|h| h.height).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------

/// What the node does with an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: forwarded, applied, served or loaded.
    Accepted,
    /// Dropped without penalty (stale, duplicate, out of window), with the reason.
    Ignored(String),
    /// Refused with an error (and, on the network, a strike against the sender).
    Rejected(String),
}

impl Outcome {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Outcome::Accepted)
    }
}

fn rejected(e: impl std::fmt::Display) -> Outcome {
    Outcome::Rejected(e.to_string())
}

/// A fuzz entry point.
pub type Target = fn(&[u8]) -> Outcome;

/// Every target, by the name of its fuzz binary and seed directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("gossip_vote", fuzz_gossip_vote),
    ("gossip_proposal", fuzz_gossip_proposal),
    ("gossip_attestation", fuzz_gossip_attestation),
    ("gossip_evidence", fuzz_gossip_evidence),
    ("poi_payload", fuzz_poi_payload),
    ("sync_request", fuzz_sync_request),
    ("sync_response", fuzz_sync_response),
    ("genesis", fuzz_genesis),
    ("config", fuzz_config),
    ("verify_wq_proof", fuzz_verify_wq_proof),
    ("verify_attestation", fuzz_verify_attestation),
    ("driver_byzantine", fuzz_driver_byzantine),
];

// ---------------------------------------------------------------------------
// 1. Gossip: votes, proposals, attestations
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Topic {
    Votes,
    Proposals,
}

/// A `ConsensusMessage` received on the votes topic (engine `check_gossip`,
/// then the driver).
pub fn fuzz_gossip_vote(data: &[u8]) -> Outcome {
    gossip(Topic::Votes, data)
}

/// A `ConsensusMessage` received on the proposals topic (engine
/// `check_gossip` with `check_payload`, then the driver, which runs
/// `ChainState::validate_block`).
pub fn fuzz_gossip_proposal(data: &[u8]) -> Outcome {
    gossip(Topic::Proposals, data)
}

fn gossip(topic: Topic, data: &[u8]) -> Outcome {
    let w = world();
    let g = &w.genesis;
    let Ok(msg) = ConsensusMessage::decode(data) else {
        return rejected("malformed");
    };
    let input = match (&msg.msg, topic) {
        (Some(Msg::Vote(sv)), Topic::Votes) => match check_vote(g.chain_id(), &g.members, sv) {
            Ok(v) => {
                let vote = v.vote();
                assert_eq!(
                    g.members.get(v.validator).id,
                    vote.validator,
                    "checked vote names its signer"
                );
                assert_eq!(
                    v.value.map(|h| h.to_vec()).unwrap_or_default(),
                    vote.block_hash,
                    "checked vote value is its block hash"
                );
                assert!(matches!(v.kind, VoteKind::Prevote | VoteKind::Precommit));
                Input::Vote(v)
            }
            Err(e) => return rejected(e),
        },
        (Some(Msg::Proposal(sp)), Topic::Proposals) => match check_proposal(g.chain_id(), &g.members, sp) {
            Ok(p) => {
                assert_eq!(
                    block_hash(p.block()),
                    Some(p.block_hash),
                    "checked proposal hashes to its block"
                );
                assert_eq!(g.members.get(p.proposer).id, p.proposal().proposer);
                if let Err(e) = check_payload(w, &w.pool(), p.block()) {
                    return Outcome::Ignored(format!("invalid payload: {e}"));
                }
                // What the driver will decide about the block, computed here too
                // so that a panic in validate_block is attributed to it.
                let _ = w.head().validate_block(g, p.block());
                Input::Proposal(p)
            }
            Err(e) => return rejected(e),
        },
        _ => return rejected("wrong topic"),
    };
    let h = match &input {
        Input::Vote(v) => v.height(),
        Input::Proposal(p) => p.proposal().height,
        _ => unreachable!(),
    };
    let ours = w.head().next_height();
    // engine/mod.rs check_gossip computes `h + 1 < ours`; saturating here, see
    // docs/HOSTILE-INPUT.md (a validator-signed vote at height u64::MAX).
    let in_window = !(h.saturating_add(1) < ours || h > ours + FUTURE_HEIGHTS);
    let mut d = w.driver(None);
    let _ = d.start(NOW_MS);
    let fx = d
        .handle(NOW_MS, input)
        .expect("votes and proposals are never driver errors");
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::Decided { .. })),
        "one gossip message cannot decide a block"
    );
    if in_window {
        Outcome::Accepted
    } else {
        Outcome::Ignored("out of window".into())
    }
}

/// The engine's `check_payload` (`admission::check_payload`) against the world.
pub fn check_payload(w: &World, pool: &AttestationPool, block: &Block) -> Result<(), String> {
    admission::check_payload(
        &w.genesis,
        &w.store,
        pool,
        &mut admission::VerifiedPayloads::default(),
        block,
    )
}

/// An `AttestationBatch` received on the attestations topic, through the
/// engine's own `admission::admit_batch` (`poi::check` per envelope, store
/// and pool duplicates, the pool); every envelope it admitted is re-checked
/// against CONTRACT section 7 independently.
pub fn fuzz_gossip_attestation(data: &[u8]) -> Outcome {
    let w = world();
    let mut pool = w.pool();
    let before = pool.len();
    let verdict = admission::admit_batch(&w.genesis, &w.store, &mut pool, data, NOW_MS);
    let admitted = match &verdict {
        admission::BatchVerdict::Accept { admitted } | admission::BatchVerdict::Reject { admitted, .. } => *admitted,
        admission::BatchVerdict::Ignore { .. } => 0,
    };
    assert_eq!(pool.len(), before + admitted, "the pool grew by what was admitted");
    if admitted > 0 {
        let batch = AttestationBatch::decode(data).expect("an admitted batch decodes");
        let mut checked = 0;
        let mut seen = HashSet::new();
        for env in &batch.envelopes {
            let id = poi::attestation_id(&env.payload);
            if pool.get(&id) == Some(env) && seen.insert(id) {
                let c = poi::check(env, CHAIN_ID, &w.genesis.members, NOW_MS).expect("an admitted envelope is valid");
                assert_attestation_rules(w, env, &c, NOW_MS);
                checked += 1;
            }
        }
        assert_eq!(checked, admitted, "every admitted envelope is in the batch");
    }
    match verdict {
        admission::BatchVerdict::Accept { .. } => Outcome::Accepted,
        admission::BatchVerdict::Ignore { reason } => Outcome::Ignored(reason),
        admission::BatchVerdict::Reject { reason, .. } => rejected(reason),
    }
}

/// Evidence received on the evidence topic, through the engine's own
/// `engine::evidence::check_gossip`. What it accepts must pass every rule
/// again (`evidence::check` and the chain's age and once rules), and the
/// next block may carry it: a proposal with it validates.
pub fn fuzz_gossip_evidence(data: &[u8]) -> Outcome {
    let w = world();
    let g = &w.genesis;
    let head = w.head();
    let pool = crate::evidence_pool::EvidencePool::new();
    match crate::engine::evidence::check_gossip(g, head, &pool, data) {
        Ok((ev, key)) => {
            assert_eq!(ev.encode_to_vec(), data, "accepted evidence is canonical");
            assert_eq!(bizra_consensus::evidence::check(CHAIN_ID, &g.members, &ev), Ok(key));
            assert_eq!(head.evidence_includable(g, &ev), Ok(key));
            let commit = w.blocks.last().map(|b| b.2.clone());
            let p = head.proposer(0);
            let block = head.build_block_with(g, w.signers[p].id(), NOW_MS, commit, vec![], vec![ev]);
            head.validate_block(g, &block)
                .expect("a block carrying accepted evidence is valid");
            Outcome::Accepted
        }
        Err((bizra_p2p::Validation::Reject, why)) => rejected(why),
        Err((_, why)) => Outcome::Ignored(why.to_string()),
    }
}

/// CONTRACT section 7, re-checked independently of `poi::check` for an
/// attestation it accepted, plus: what the node accepts, `bizra verify`'s
/// field rules accept too.
fn assert_attestation_rules(w: &World, env: &Envelope, c: &poi::CheckedAttestation, now_ms: u64) {
    let a = &c.att;
    assert_eq!(c.id, hash_bytes(&env.payload), "id is BLAKE3 of the payload");
    assert_eq!(PoiAttestation::decode(env.payload.as_slice()).ok().as_ref(), Some(a));
    assert!(env.encoded_len() <= poi::MAX_ATTESTATION_BYTES);
    assert_eq!(env.payload_type, payload_type::POI);
    assert_eq!(env.signatures.len(), 1);
    assert_eq!(env.signatures[0].keyid, a.attester);
    assert_eq!(a.version, "poi/1");
    assert_eq!(a.chain_id, CHAIN_ID);
    assert_eq!(w.genesis.members.get(c.attester).id, a.attester);
    assert_eq!(a.evidence_digest.len(), 32);
    assert!(!a.subject.is_empty() && a.subject.len() <= poi::MAX_SUBJECT_BYTES);
    assert!(a.dimensions.len() <= poi::MAX_DIMENSIONS);
    assert!(a.dimensions.keys().eq(a.weights.keys()), "same names");
    assert!(a.dimensions.values().all(|&v| v <= 10_000));
    assert_eq!(a.weights.values().map(|&v| v as u128).sum::<u128>(), 10_000);
    let weighted: u128 = a
        .dimensions
        .iter()
        .map(|(k, &v)| v as u128 * a.weights[k] as u128)
        .sum();
    assert_eq!(
        a.impact_bps as u128,
        weighted / 10_000,
        "impact is the weighted sum, rounded down"
    );
    assert!(a.window_start_ms <= a.window_end_ms);
    assert!(a.window_end_ms as u128 <= now_ms as u128 + poi::MAX_CLOCK_SKEW_MS as u128);
    assert!((poi::MIN_NONCE_BYTES..=poi::MAX_NONCE_BYTES).contains(&a.nonce.len()));
    if let Err(e) = verify::check_poi_fields(a, &w.genesis, &env.signatures[0].keyid, "envelope.payload") {
        panic!("the node accepts an attestation that bizra verify's field rules refuse: {e}");
    }
}

/// A `PoiAttestation` payload, signed by the validator it names as attester
/// (validator 0 if it names none), then `poi::check`: the content rules behind
/// a valid signature.
pub fn fuzz_poi_payload(data: &[u8]) -> Outcome {
    let w = world();
    let g = &w.genesis;
    let (signer, keyid) = match PoiAttestation::decode(data) {
        Ok(a) => match g.members.index_of(&a.attester) {
            Some(i) => (i, a.attester),
            None => (0, a.attester),
        },
        Err(_) => (0, w.signers[0].id().to_string()),
    };
    let env = Envelope {
        payload_type: payload_type::POI.to_string(),
        payload: data.to_vec(),
        signatures: vec![EnvelopeSignature {
            keyid,
            sig: w.signers[signer].sign(payload_type::POI, data).to_vec(),
        }],
    };
    match poi::check(&env, g.chain_id(), &g.members, NOW_MS) {
        Ok(c) => {
            assert_attestation_rules(w, &env, &c, NOW_MS);
            Outcome::Accepted
        }
        Err(e) => rejected(e),
    }
}

// ---------------------------------------------------------------------------
// 2. Sync requests and responses
// ---------------------------------------------------------------------------

/// A `SyncRequest` frame payload, served from the world chain (engine `serve_sync`).
pub fn fuzz_sync_request(data: &[u8]) -> Outcome {
    let Ok(req) = SyncRequest::decode(data) else {
        return rejected("malformed sync request");
    };
    let w = world();
    let resp = match &req.req {
        Some(Req::Status(_)) => Resp::Status(ChainStatus {
            chain_id: CHAIN_ID.to_string(),
            genesis_hash: w.genesis.hash.to_vec(),
            height: w.head().height,
            head_hash: w.head().last_hash.to_vec(),
        }),
        Some(Req::Blocks(r)) => {
            let max = r.max_blocks.clamp(1, BATCH) as usize;
            let from = r.from_height.max(1);
            match w.store.blocks_range(from, max, MAX_MESSAGE_BYTES * 3 / 4) {
                Ok(blocks) => {
                    assert!(blocks.len() <= max);
                    for (i, (b, c)) in blocks.iter().enumerate() {
                        let h = from + i as u64;
                        let (wb, _, wc) = &w.blocks[(h - 1) as usize];
                        assert_eq!((b, c), (wb, wc), "served block {h} is the stored one");
                    }
                    let expected = (CHAIN_LEN + 1).saturating_sub(from).min(max as u64);
                    assert_eq!(blocks.len() as u64, expected, "a range is served up to the head");
                    Resp::Blocks(BlockRange {
                        blocks: blocks
                            .into_iter()
                            .map(|(b, c)| FinalizedBlock {
                                block: Some(b),
                                commit: Some(c),
                            })
                            .collect(),
                    })
                }
                Err(e) => Resp::Error(format!("store: {e}")),
            }
        }
        None => Resp::Error("empty request".into()),
    };
    let resp = SyncResponse { resp: Some(resp) };
    assert!(resp.encoded_len() <= MAX_MESSAGE_BYTES, "a served range fits one frame");
    match resp.resp {
        Some(Resp::Error(e)) => Outcome::Ignored(e),
        _ => Outcome::Accepted,
    }
}

/// A `SyncResponse` frame payload, handled as engine `on_sync_response` does:
/// a foreign status is penalized, each block of a range goes to a driver at
/// genesis as `Input::SyncedBlock` until the first error.
pub fn fuzz_sync_response(data: &[u8]) -> Outcome {
    let Ok(resp) = SyncResponse::decode(data) else {
        return rejected("malformed sync response");
    };
    let w = world();
    match resp.resp {
        Some(Resp::Status(s)) => {
            if s.chain_id != CHAIN_ID || s.genesis_hash != w.genesis.hash {
                rejected("peer is on another chain or genesis")
            } else {
                Outcome::Accepted
            }
        }
        Some(Resp::Blocks(range)) => {
            let mut d = w.genesis_driver();
            let mut audit = Audit::new(w, ChainState::genesis(&w.genesis), None);
            // The engine's own two steps (engine::sync): signatures, then
            // the driver, in order.
            let (checked, bad_sig) = sync::check_range(&w.genesis, range.blocks, d.height(), 2);
            let (fx, _, refused) = sync::apply_range(&mut d, NOW_MS, checked);
            audit.effects(&mut d, fx);
            let outcome = match refused.or(bad_sig) {
                Some(e) => rejected(format!("invalid synced block: {}", e.reason)),
                None => Outcome::Accepted,
            };
            for (i, (h, hash)) in audit.decided.iter().enumerate() {
                let (wb, wh, _) = w
                    .blocks
                    .get((*h - 1) as usize)
                    .expect("a decided height of the world chain");
                assert_eq!(
                    hash, wh,
                    "a synced block must be the world's block: nobody else can certify one"
                );
                // Same hash, so same header and last commit; the attestation
                // envelopes are bound only by (payload, signature): keyid and
                // payloadType can differ (known bug, docs/HOSTILE-INPUT.md).
                let mut got = audit.blocks[i].clone();
                for (e, we) in got.attestations.iter_mut().zip(&wb.attestations) {
                    e.payload_type.clone_from(&we.payload_type);
                    for (s, ws) in e.signatures.iter_mut().zip(&we.signatures) {
                        s.keyid.clone_from(&ws.keyid);
                    }
                }
                assert_eq!(
                    &got, wb,
                    "a synced block differs from the certified one beyond keyid/payloadType"
                );
            }
            outcome
        }
        Some(Resp::Error(e)) => Outcome::Ignored(e),
        None => rejected("empty sync response"),
    }
}

// ---------------------------------------------------------------------------
// 4. Genesis and config
// ---------------------------------------------------------------------------

/// `genesis.json` bytes: `Genesis::from_bytes`, then what a node computes from
/// a genesis at start (chain state, proposer, a driver).
pub fn fuzz_genesis(data: &[u8]) -> Outcome {
    let g = match Genesis::from_bytes(data) {
        Ok(g) => g,
        Err(e) => return rejected(e),
    };
    let p = g.params();
    assert_eq!(g.hash, hash_bytes(data), "genesis_hash is BLAKE3 of the exact bytes");
    assert!(p.fast_threshold_bps >= quorum::MIN_SAFE_THRESHOLD_BPS && p.fast_threshold_bps <= 10_000);
    assert!(p.economic_threshold_bps >= p.fast_threshold_bps && p.economic_threshold_bps <= 10_000);
    assert!(p.epoch_length >= 1);
    assert!(!g.members.is_empty() && g.members.len() == g.doc.validators.len());
    let ids: HashSet<&str> = g.members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), g.members.len(), "no duplicate validators");
    let state = ChainState::genesis(&g);
    assert_eq!(state.weights.weights.len(), g.members.len());
    assert!(
        state.weights.weights.iter().all(|&w| w > 0),
        "every validator has weight"
    );
    assert_eq!(
        ChainState::from_bytes(&state.to_bytes()).as_ref(),
        Ok(&state),
        "chain state round-trips"
    );
    for r in 0..4 {
        assert!(state.proposer(r) < g.members.len());
    }
    let mut d = Driver::new(Arc::new(g), state, None, None, None, Timeouts::default());
    let _ = d.start(0);
    Outcome::Accepted
}

/// `config.toml` text: `NodeConfig::from_toml_with_env(text, &[])`; a loaded
/// config validates and round-trips through `to_toml`.
pub fn fuzz_config(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return rejected("not UTF-8");
    };
    let cfg = match NodeConfig::from_toml_with_env(text, &[]) {
        Ok(c) => c,
        Err(e) => return rejected(e),
    };
    cfg.validate().expect("a loaded config validates");
    for p in &cfg.p2p.peers {
        parse_peer(p).expect("a loaded config's peers parse");
    }
    let again = NodeConfig::from_toml_with_env(&cfg.to_toml(), &[]).expect("a loaded config's TOML loads");
    assert_eq!(again, cfg, "config round-trips through to_toml");
    // What the engine derives from a loaded config. engine/mod.rs serve_sync
    // computes `max_message_bytes * 3 / 4` for every block range it serves.
    assert!(
        cfg.p2p.max_message_bytes.checked_mul(3).is_some(),
        "engine serve_sync: max_message_bytes * 3 overflows for p2p.max_message_bytes = {}",
        cfg.p2p.max_message_bytes
    );
    // The driver with the configured timeouts (engine run_engine), taken
    // through a few rounds by precommit timeouts: each round schedules
    // `timeout + delta * round`.
    let c = &cfg.consensus;
    let timeouts = Timeouts {
        propose_ms: c.propose_timeout_ms,
        prevote_ms: c.prevote_timeout_ms,
        precommit_ms: c.precommit_timeout_ms,
        delta_ms: c.timeout_delta_ms,
        commit_ms: c.block_interval_ms,
    };
    let w = world();
    let mut d = Driver::new(
        w.genesis.clone(),
        w.head().clone(),
        Some(w.head_commit().clone()),
        None,
        None,
        timeouts,
    );
    let _ = d.start(NOW_MS);
    for round in 0..4 {
        let t = Timeout {
            height: d.height(),
            round,
            kind: bizra_consensus::driver::TimeoutKind::Precommit,
        };
        for e in d
            .handle(NOW_MS, Input::Timeout(t))
            .expect("timeouts are never driver errors")
        {
            if let Effect::ScheduleTimeout { after_ms, .. } = e {
                // engine/mod.rs execute: `Instant::now() + Duration::from_millis(after_ms)`.
                let _ = std::time::Instant::now() + std::time::Duration::from_millis(after_ms);
            }
        }
    }
    Outcome::Accepted
}

// ---------------------------------------------------------------------------
// 5. wq_proof.json and attestation.json
// ---------------------------------------------------------------------------

fn failure(f: Failure) -> Outcome {
    match f {
        Failure::Check(m) => Outcome::Rejected(format!("invalid (exit 1): {m}")),
        Failure::Usage(m) => Outcome::Rejected(format!("bad input (exit 2): {m}")),
    }
}

/// A `wq_proof.json` checked against the world genesis (`check_wq_proof`).
pub fn fuzz_verify_wq_proof(data: &[u8]) -> Outcome {
    let w = world();
    match verify::check_wq_proof(data, &w.genesis_bytes) {
        Ok(_) => {
            let p: proof::WqProof = serde_json::from_slice(data).expect("an accepted proof parses");
            let hash = proof::unhex_hash(&p.block_hash).expect("an accepted proof has a hash");
            assert!(
                w.precommitted().contains(&(p.height, hash)),
                "accepted a proof for a block the world's validators never precommitted"
            );
            assert!(
                verify::verify_document(data, &w.genesis_bytes).is_ok(),
                "verify_document agrees"
            );
            Outcome::Accepted
        }
        Err(f) => failure(f),
    }
}

/// An `attestation.json` checked against the world genesis (`verify_attestation`).
pub fn fuzz_verify_attestation(data: &[u8]) -> Outcome {
    let w = world();
    match verify::verify_attestation(data, &w.genesis_bytes) {
        Ok(_) => {
            let d: proof::AttestationDoc = serde_json::from_slice(data).expect("an accepted document parses");
            let hash = proof::unhex_hash(&d.inclusion.block_hash).expect("an accepted document has a hash");
            let block = w
                .signed_block(d.inclusion.height, &hash)
                .expect("accepted an inclusion in a block the world's validators never precommitted");
            let payload = proof::unb64(&d.envelope.payload).expect("payload");
            assert!(
                block.attestations.iter().any(|e| e.payload == payload),
                "accepted an attestation that its block does not carry"
            );
            assert!(
                verify::verify_document(data, &w.genesis_bytes).is_ok(),
                "verify_document agrees"
            );
            Outcome::Accepted
        }
        Err(f) => failure(f),
    }
}

// ---------------------------------------------------------------------------
// The driver under Byzantine validators
// ---------------------------------------------------------------------------

/// Audits a driver's effects: the honest validator's signatures never
/// conflict, and every decision is a valid, certified next block.
struct Audit<'w> {
    w: &'w World,
    state: ChainState,
    me: Option<String>,
    last_persisted: Option<SignPosition>,
    /// What we signed at each position (encoded message).
    own: BTreeMap<SignPosition, Vec<u8>>,
    timeouts: Vec<Timeout>,
    decided: Vec<(u64, Hash)>,
    /// The decided blocks, in order.
    blocks: Vec<Block>,
}

impl<'w> Audit<'w> {
    fn new(w: &'w World, state: ChainState, me: Option<&Signer>) -> Self {
        Audit {
            w,
            state,
            me: me.map(|s| s.id().to_string()),
            last_persisted: None,
            own: BTreeMap::new(),
            timeouts: Vec::new(),
            decided: Vec::new(),
            blocks: Vec::new(),
        }
    }

    /// The sign position of one of our own messages.
    fn own_position(&self, msg: &ConsensusMessage) -> Option<SignPosition> {
        let me = self.me.as_deref()?;
        match &msg.msg {
            Some(Msg::Vote(sv)) => {
                let v = sv.vote.as_ref()?;
                (v.validator == me).then_some(SignPosition {
                    height: v.height,
                    round: v.round,
                    step: if v.kind == VoteKind::Precommit as i32 {
                        SignStep::Precommit
                    } else {
                        SignStep::Prevote
                    },
                })
            }
            Some(Msg::Proposal(sp)) => {
                let p = sp.proposal.as_ref()?;
                (p.proposer == me).then_some(SignPosition {
                    height: p.height,
                    round: p.round,
                    step: SignStep::Proposal,
                })
            }
            None => None,
        }
    }

    fn signed_content(msg: &ConsensusMessage) -> Vec<u8> {
        let mut m = msg.clone();
        m.attempt = 0;
        m.encode_to_vec()
    }

    /// Executes effects as the engine does (answering `RequestValue` with the
    /// world's pending attestations) and checks them.
    fn effects(&mut self, d: &mut Driver, fx: Vec<Effect>) {
        let mut queue: VecDeque<Effect> = fx.into();
        while let Some(e) = queue.pop_front() {
            match e {
                Effect::PersistOwn { position, msg } => {
                    assert!(
                        self.last_persisted.is_none_or(|p| position > p),
                        "sign guard moved from {:?} to {position:?}",
                        self.last_persisted
                    );
                    assert_eq!(
                        self.own_position(&msg),
                        Some(position),
                        "persisted message is ours, at its position"
                    );
                    self.last_persisted = Some(position);
                    self.own.insert(position, Self::signed_content(&msg));
                }
                Effect::Broadcast(msg) => {
                    if let Some(pos) = self.own_position(&msg) {
                        match self.own.get(&pos) {
                            Some(signed) => assert_eq!(
                                signed,
                                &Self::signed_content(&msg),
                                "equivocation: two different messages signed at {pos:?}"
                            ),
                            None => panic!("broadcast of an own message at {pos:?} that was never persisted"),
                        }
                    }
                }
                Effect::ScheduleTimeout { timeout, .. } => {
                    if self.timeouts.len() < 256 {
                        self.timeouts.push(timeout);
                    }
                }
                Effect::RequestValue { height, round } => {
                    if self.state.last_time_ms == u64::MAX {
                        // Known bug (test chain_continues_after_a_byzantine_block_time):
                        // build_block overflows on `last_time_ms + 1`. Leave the
                        // request unanswered so the fuzzer keeps exploring.
                        continue;
                    }
                    let more = d
                        .handle(
                            NOW_MS,
                            Input::ProposeValue {
                                height,
                                round,
                                attestations: self.w.pending.clone(),
                                evidence: vec![],
                            },
                        )
                        .expect("ProposeValue is never a driver error");
                    queue.extend(more);
                }
                Effect::Decided {
                    block,
                    hash,
                    commit,
                    state,
                    ..
                } => {
                    let g = &self.w.genesis;
                    let h = self.state.next_height();
                    assert_eq!(header_height(&block), h, "decisions are consecutive");
                    assert_eq!(
                        self.state.validate_block(g, &block),
                        Ok(hash),
                        "decided block is valid on its parent"
                    );
                    if let Err(e) = certificate::verify(
                        g.chain_id(),
                        &g.members,
                        &self.state.weights,
                        g.params().fast_threshold_bps,
                        &commit,
                        Some((h, hash)),
                    ) {
                        panic!("decided block {h} without a valid commit: {e}");
                    }
                    self.state.apply(g, &block, hash);
                    assert_eq!(*state, self.state, "decided chain state is the parent's plus the block");
                    self.decided.push((h, hash));
                    self.blocks.push(block);
                }
                Effect::CommitUpdated(c) => {
                    let g = &self.w.genesis;
                    assert_eq!(
                        c.height, self.state.height,
                        "late precommits are for the last decided block"
                    );
                    if let Err(e) = certificate::verify(
                        g.chain_id(),
                        &g.members,
                        &self.state.last_weights,
                        g.params().fast_threshold_bps,
                        &c,
                        Some((self.state.height, self.state.last_hash)),
                    ) {
                        panic!("updated commit does not verify: {e}");
                    }
                }
                Effect::Evidence(_) | Effect::SyncNeeded { .. } | Effect::Kept | Effect::Known => {}
            }
        }
    }
}

/// Records of `[op, arg, len_lo, len_hi, body...]` fed to the driver of
/// validator 0 (honest) at the height after the world chain:
///
/// * op 0: `body` is a `ConsensusMessage`; unless `arg & 0x80`, its vote's
///   `validator` / proposal's `proposer` and `chain_id` are set, and a
///   proposal's `block_hash` is set to its block's, for validator
///   `1 + arg % 3`, which then signs it; with `arg & 0x40` a vote's
///   `block_hash` is set to the last checked proposal's (so the fuzzer can
///   vote for blocks it made up). Checked as gossip, then handled.
/// * op 1: fires the scheduled timeout number `arg` (of those the driver asked for).
/// * op 2: `body` is a `FinalizedBlock`, handled as a synced block.
///
/// Invariants: validator 0 never signs two different messages at one position
/// and its guard only moves forward; every decision is a valid next block with
/// a valid commit, and the decided chain state is the parent's plus the block.
pub fn fuzz_driver_byzantine(data: &[u8]) -> Outcome {
    let w = world();
    let me = w.signers[0].clone();
    let mut d = w.driver(Some(me.clone()));
    let mut audit = Audit::new(w, w.head().clone(), Some(&me));
    let fx = d.start(NOW_MS);
    audit.effects(&mut d, fx);
    let mut last_proposal: Option<Hash> = None;
    let mut rest = data;
    let mut records = 0;
    while rest.len() >= 4 && records < MAX_BYZANTINE_RECORDS {
        records += 1;
        let (op, arg) = (rest[0], rest[1]);
        let len = u16::from_le_bytes([rest[2], rest[3]]) as usize;
        let body = &rest[4..(4 + len).min(rest.len())];
        rest = &rest[4 + body.len()..];
        match op % 3 {
            0 => {
                let Ok(mut msg) = ConsensusMessage::decode(body) else {
                    continue;
                };
                let signer = &w.signers[1 + (arg % 3) as usize];
                let fix = arg & 0x80 == 0;
                let vote_for = if fix && arg & 0x40 != 0 { last_proposal } else { None };
                resign(&mut msg, signer, fix, vote_for);
                let input = match &msg.msg {
                    Some(Msg::Vote(sv)) => d.check_vote(sv).ok().map(Input::Vote),
                    Some(Msg::Proposal(sp)) => d.check_proposal(sp).ok().map(|p| {
                        last_proposal = Some(p.block_hash);
                        Input::Proposal(p)
                    }),
                    None => None,
                };
                if let Some(input) = input {
                    let fx = d
                        .handle(NOW_MS, input)
                        .expect("votes and proposals are never driver errors");
                    audit.effects(&mut d, fx);
                }
            }
            1 => {
                if audit.timeouts.is_empty() {
                    continue;
                }
                let t = audit.timeouts[arg as usize % audit.timeouts.len()];
                if t.height != d.height() {
                    continue; // the engine drops timers of past heights
                }
                let fx = d
                    .handle(NOW_MS, Input::Timeout(t))
                    .expect("timeouts are never driver errors");
                audit.effects(&mut d, fx);
            }
            _ => {
                let Ok(fb) = FinalizedBlock::decode(body) else { continue };
                let (Some(block), Some(commit)) = (fb.block, fb.commit) else {
                    continue;
                };
                let Ok(commit) = d.check_commit(commit) else { continue };
                if let Ok(fx) = d.handle(NOW_MS, Input::SyncedBlock { block, commit }) {
                    audit.effects(&mut d, fx);
                }
            }
        }
    }
    if audit.decided.is_empty() {
        Outcome::Ignored("nothing decided".into())
    } else {
        Outcome::Accepted
    }
}

/// Makes `msg` a message of `signer` and signs it (a Byzantine validator can
/// sign anything). With `fix`, also sets the chain id and a proposal's block
/// hash; with `vote_for`, a vote's block hash.
fn resign(msg: &mut ConsensusMessage, signer: &Signer, fix: bool, vote_for: Option<Hash>) {
    match &mut msg.msg {
        Some(Msg::Vote(sv)) => {
            let mut v = sv.vote.clone().unwrap_or_default();
            if fix {
                v.validator = signer.id().to_string();
                v.chain_id = CHAIN_ID.to_string();
            }
            if let Some(h) = vote_for {
                v.block_hash = h.to_vec();
            }
            *sv = sign_vote(signer, v);
        }
        Some(Msg::Proposal(sp)) => {
            let mut p = sp.proposal.clone().unwrap_or_default();
            let block = sp.block.clone().unwrap_or_default();
            if fix {
                p.proposer = signer.id().to_string();
                p.chain_id = CHAIN_ID.to_string();
                if let Some(h) = block_hash(&block) {
                    p.block_hash = h.to_vec();
                }
            }
            *sp = sign_proposal(signer, p, block);
        }
        None => {}
    }
}

// ---------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------

fn gossip_bytes(msg: Msg) -> Vec<u8> {
    ConsensusMessage {
        msg: Some(msg),
        attempt: 0,
    }
    .encode_to_vec()
}

fn record(op: u8, arg: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![op, arg];
    r.extend_from_slice(&(body.len() as u16).to_le_bytes());
    r.extend_from_slice(body);
    r
}

/// The commit part of a proof for world block `h` (1-based), signed by everyone.
fn commit_part(w: &World, h: u64) -> CommitPart {
    let (_, _, commit) = &w.blocks[(h - 1) as usize];
    let weights = &w.states[(h - 1) as usize].weights;
    let g = &w.genesis;
    let t = certificate::tally_trusted(&g.members, weights, commit);
    let p = g.params();
    CommitPart {
        signers: t.signers.iter().map(|&i| g.members.get(i).id.clone()).collect(),
        signatures: commit.precommits.iter().map(signed_vote_envelope).collect(),
        signed_weight: t.signed_weight,
        total_weight: t.total_weight,
        share_bps: t.share_bps(),
        fast_final: quorum::reaches(t.signed_weight, t.total_weight, p.fast_threshold_bps),
        economic_final: quorum::reaches(t.signed_weight, t.total_weight, p.economic_threshold_bps),
    }
}

/// Telemetry of the weights that certify world block `h`.
fn telemetry_parts(w: &World, h: u64) -> Vec<TelemetryPart> {
    let weights = &w.states[(h - 1) as usize].weights;
    w.genesis
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| TelemetryPart {
            id: m.id.clone(),
            wq_weight: weights.weights[i],
            components: weights.components[i],
            jailed_until: weights.is_jailed(i).then(|| weights.jailed_until(i)),
        })
        .collect()
}

fn wq_proof_seed(w: &World, h: u64) -> Vec<u8> {
    let (_, hash, _) = &w.blocks[(h - 1) as usize];
    let heads = (0..3)
        .map(|i| {
            let s = &w.signers[i];
            let report = HeadReport {
                chain_id: CHAIN_ID.to_string(),
                genesis_hash: w.genesis.hash.to_vec(),
                height: h,
                block_hash: hash.to_vec(),
                validator: s.id().to_string(),
                time_ms: NOW_MS,
            };
            HeadPart {
                id: s.id().to_string(),
                endpoint: format!("http://127.0.0.1:{}", 7500 + i),
                block_hash: *hash,
                envelope: sign_envelope(s, payload_type::HEAD_REPORT, report.encode_to_vec()),
            }
        })
        .collect();
    let parts = ProofParts {
        chain_id: CHAIN_ID.to_string(),
        genesis_hash: w.genesis.hash,
        height: h,
        block_hash: *hash,
        heads,
        commit: commit_part(w, h),
        telemetry: telemetry_parts(w, h),
        telemetry_epoch: Some(epoch_of(h, EPOCH_LENGTH)),
        telemetry_note: None,
    };
    build_proof(&parts).to_json_pretty().into_bytes()
}

fn attestation_seed(w: &World, h: u64, index: usize) -> Vec<u8> {
    let (block, _, _) = &w.blocks[(h - 1) as usize];
    let leaves = chain::attestation_leaves(&block.attestations).expect("world block leaves");
    let proof = InclusionProof {
        leaf_index: index as u64,
        leaf_count: leaves.len() as u64,
        siblings: merkle::proof(&leaves, index)
            .expect("leaf")
            .iter()
            .map(|s| s.to_vec())
            .collect(),
    };
    let header: BlockHeader = block.header.clone().expect("header");
    let telemetry = (epoch_of(h, EPOCH_LENGTH) > 0).then(|| {
        let parts = telemetry_parts(w, h);
        Telemetry {
            wq_weight: parts
                .iter()
                .map(|t| (t.id.clone(), proof::Weight(t.wq_weight)))
                .collect(),
            components: parts.iter().map(|t| (t.id.clone(), t.components.into())).collect(),
            jailed: parts
                .iter()
                .filter_map(|t| Some((t.id.clone(), t.jailed_until?)))
                .collect(),
        }
    });
    let doc = proof::build_attestation_doc(
        &block.attestations[index],
        h,
        &header,
        &proof,
        &commit_part(w, h),
        telemetry,
    )
    .expect("world attestation document");
    doc.to_json_pretty().into_bytes()
}

/// Valid inputs for every target: `(target, file name, bytes)`.
pub fn seed_corpus() -> Vec<(&'static str, String, Vec<u8>)> {
    let w = world();
    let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let next = w.head().next_height();
    let p0 = &w.next_proposals[0];
    let h0 = block_hash(p0.block.as_ref().expect("block")).expect("header");

    // gossip_vote: prevotes and precommits of the next height, a nil prevote,
    // and a late precommit of the head.
    for i in 0..VALIDATORS {
        let v = w.vote(i, next, 0, VoteKind::Prevote, Some(h0));
        out.push(("gossip_vote", format!("prevote-v{i}"), gossip_bytes(Msg::Vote(v))));
    }
    let v = w.vote(1, next, 0, VoteKind::Precommit, Some(h0));
    out.push(("gossip_vote", "precommit-v1".into(), gossip_bytes(Msg::Vote(v))));
    let v = w.vote(2, next, 1, VoteKind::Prevote, None);
    out.push(("gossip_vote", "prevote-nil-r1".into(), gossip_bytes(Msg::Vote(v))));
    let late = w.head_commit().precommits[3].clone();
    out.push(("gossip_vote", "late-precommit".into(), gossip_bytes(Msg::Vote(late))));

    // gossip_proposal: round 0 and a round-1 re-proposal with a proof-of-lock round.
    for (i, p) in w.next_proposals.iter().enumerate() {
        out.push((
            "gossip_proposal",
            format!("proposal-r{i}"),
            gossip_bytes(Msg::Proposal(p.clone())),
        ));
    }

    // gossip_attestation and poi_payload: the pending attestations.
    for (i, env) in w.pending.iter().enumerate() {
        let batch = AttestationBatch {
            envelopes: vec![env.clone()],
        };
        out.push(("gossip_attestation", format!("attestation-{i}"), batch.encode_to_vec()));
        out.push(("poi_payload", format!("payload-{i}"), env.payload.clone()));
    }

    // gossip_evidence: a validator's two prevotes at the next height, and nil
    // against a block at the head's height.
    {
        let head = w.head();
        let s = &w.signers[2];
        let vote =
            |h: u64, v: Option<Hash>| sign_vote(s, new_vote(CHAIN_ID, h, 0, bizra_proto::VoteKind::Prevote, v, s.id()));
        let next = bizra_consensus::evidence::duplicate_vote(
            vote(head.next_height(), Some([1; 32])),
            vote(head.next_height(), Some([2; 32])),
        )
        .expect("conflict");
        let nil = bizra_consensus::evidence::duplicate_vote(vote(head.height, None), vote(head.height, Some([3; 32])))
            .expect("conflict");
        out.push(("gossip_evidence", "prevotes-next-height".into(), next.encode_to_vec()));
        out.push(("gossip_evidence", "nil-vs-block".into(), nil.encode_to_vec()));
    }

    // sync_request.
    let reqs = [
        ("status", Req::Status(StatusRequest {})),
        (
            "blocks-from-1",
            Req::Blocks(BlockRangeRequest {
                from_height: 1,
                max_blocks: BATCH,
            }),
        ),
        (
            "blocks-3-one",
            Req::Blocks(BlockRangeRequest {
                from_height: 3,
                max_blocks: 1,
            }),
        ),
    ];
    for (name, req) in reqs {
        out.push((
            "sync_request",
            name.into(),
            SyncRequest { req: Some(req) }.encode_to_vec(),
        ));
    }

    // sync_response: the head status and the whole chain.
    let status = SyncResponse {
        resp: Some(Resp::Status(ChainStatus {
            chain_id: CHAIN_ID.into(),
            genesis_hash: w.genesis.hash.to_vec(),
            height: w.head().height,
            head_hash: w.head().last_hash.to_vec(),
        })),
    };
    out.push(("sync_response", "status".into(), status.encode_to_vec()));
    let range = SyncResponse {
        resp: Some(Resp::Blocks(BlockRange {
            blocks: w
                .blocks
                .iter()
                .map(|(b, _, c)| FinalizedBlock {
                    block: Some(b.clone()),
                    commit: Some(c.clone()),
                })
                .collect(),
        })),
    };
    out.push(("sync_response", "blocks-1-3".into(), range.encode_to_vec()));

    // genesis: the world's, and a minimal one with every parameter written out.
    out.push(("genesis", "world".into(), w.genesis_bytes.clone()));
    let minimal = format!(
        r#"{{"chain_id":"c","genesis_time_ms":0,"params":{{"fast_threshold_bps":6667,"economic_threshold_bps":8000,"epoch_length":1,"base":1,"poi_gain":0,"rep_gain":0,"stake_gain":0,"poi_decay_bps":0,"poi_cap":0}},"validators":[{{"id":"{}","stake":0}}]}}"#,
        w.signers[0].id()
    );
    out.push(("genesis", "minimal".into(), minimal.into_bytes()));

    // config: the defaults and a layout like `bizra testnet init` writes.
    out.push(("config", "default".into(), NodeConfig::default().to_toml().into_bytes()));
    let defaults = NodeConfig::default();
    let cfg = NodeConfig {
        moniker: "node1".into(),
        p2p: crate::config::P2pSection {
            listen: "127.0.0.1:7401".into(),
            peers: vec![
                format!("{}@127.0.0.1:7400", w.signers[0].id()),
                format!("{}@node2:7402", w.signers[2].id()),
            ],
            ..defaults.p2p.clone()
        },
        log: crate::config::LogSection {
            format: "json".into(),
            level: "bizra=debug,libp2p=warn".into(),
        },
        grpc: crate::config::GrpcSection {
            rate_limit_per_client: 0,
            ..defaults.grpc.clone()
        },
        ..defaults
    };
    out.push(("config", "testnet-node1".into(), cfg.to_toml().into_bytes()));

    // verify: proofs in epoch 0 (height 2) and epoch 1 (height 3, telemetry checked
    // against the formula), attestations in both epochs.
    out.push(("verify_wq_proof", "height-2-epoch-0".into(), wq_proof_seed(w, 2)));
    out.push(("verify_wq_proof", "height-3-epoch-1".into(), wq_proof_seed(w, 3)));
    out.push((
        "verify_attestation",
        "height-2-epoch-0".into(),
        attestation_seed(w, 2, 0),
    ));
    out.push((
        "verify_attestation",
        "height-3-epoch-1".into(),
        attestation_seed(w, 3, 1),
    ));

    // driver_byzantine: a full height decided by validators 1..=3 (and 0).
    let mut script = Vec::new();
    let proposer = w.head().proposer(0);
    if proposer != 0 {
        script.extend(record(
            0,
            (proposer - 1) as u8,
            &gossip_bytes(Msg::Proposal(p0.clone())),
        ));
    }
    for kind in [VoteKind::Prevote, VoteKind::Precommit] {
        for i in 1..VALIDATORS {
            let v = w.vote(i, next, 0, kind, Some(h0));
            script.extend(record(0, (i - 1) as u8, &gossip_bytes(Msg::Vote(v))));
        }
    }
    out.push(("driver_byzantine", "height-4-decided".into(), script));
    out
}
