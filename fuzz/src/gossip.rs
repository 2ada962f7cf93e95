//! Gossip targets: votes and proposals, attestation batches, evidence, and
//! the content rules of an attestation payload, each through the engine's
//! own check (`engine::gossip`, `engine::evidence`).

use crate::world::{world, NodeWorld, World, CHAIN_ID, NOW_MS};
use crate::{rejected, Outcome};
use bizra_consensus::driver::{Effect, Input};
use bizra_consensus::messages::block_hash;
use bizra_consensus::poi;
use bizra_consensus::types::hash_bytes;
use bizra_node::admission;
use bizra_node::engine::gossip::{check_attestation_batch, check_consensus_gossip, GossipView, Then};
use bizra_p2p::{Topic, Validation};
use bizra_proof::verify;
use bizra_proto::{payload_type, AttestationBatch, Envelope, EnvelopeSignature, PoiAttestation, VoteKind};
use prost::Message;
use std::collections::{HashMap, HashSet};

/// A `ConsensusMessage` received on the votes topic (engine
/// `check_consensus_gossip`, then the driver).
pub fn fuzz_gossip_vote(data: &[u8]) -> Outcome {
    gossip(Topic::Votes, data)
}

/// A `ConsensusMessage` received on the proposals topic (engine
/// `check_consensus_gossip` with `check_payload`, then the driver, which runs
/// `ChainState::validate_block`).
pub fn fuzz_gossip_proposal(data: &[u8]) -> Outcome {
    gossip(Topic::Proposals, data)
}

/// The engine's gossip check of a consensus message, by a running node
/// at the height after the world chain (it synced the chain: see
/// `World::synced_driver`) that has forwarded nothing yet; what it shows the
/// driver, the driver handles.
fn gossip(topic: Topic, data: &[u8]) -> Outcome {
    let w = world();
    let g = &w.genesis;
    let mut d = w.synced_driver();
    let pool = w.pool();
    let forwarded = HashMap::new();
    let view = GossipView {
        driver: &d,
        genesis: g,
        store: &w.store,
        pool: &pool,
        forwarded: &forwarded,
    };
    let check = check_consensus_gossip(&view, &mut admission::VerifiedPayloads::default(), topic, data);
    let result = check.counted.map_or("not counted", |(_, result)| result);
    let input = match check.then {
        Then::Deliver { input, .. } => Some(input),
        Then::PayloadRefused { error, .. } => {
            assert_eq!(check.verdict, Validation::Ignore);
            return Outcome::Ignored(format!("invalid payload: {error}"));
        }
        Then::Resent(_) => panic!("a node that forwarded nothing saw a re-send"),
        Then::Drop => None,
    };
    if let Some(input) = input {
        match &input {
            Input::Vote(v) => {
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
                assert_eq!(topic, Topic::Votes, "a vote is delivered from the votes topic");
            }
            Input::Proposal(p) => {
                assert_eq!(
                    block_hash(p.block()),
                    Some(p.block_hash),
                    "checked proposal hashes to its block"
                );
                assert_eq!(g.members.get(p.proposer).id, p.proposal().proposer);
                assert_eq!(
                    topic,
                    Topic::Proposals,
                    "a proposal is delivered from the proposals topic"
                );
                // What the driver will decide about the block, computed here too
                // so that a panic in validate_block is attributed to it.
                let _ = w.head().validate_block(g, p.block());
            }
            _ => panic!("gossip delivers votes and proposals only"),
        }
        let fx = d
            .handle(NOW_MS, input)
            .expect("votes and proposals are never driver errors");
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::Decided { .. })),
            "one gossip message cannot decide a block"
        );
    }
    match check.verdict {
        Validation::Accept => Outcome::Accepted,
        Validation::Ignore => Outcome::Ignored(result.to_string()),
        Validation::Reject => rejected(result),
    }
}

/// An `AttestationBatch` received on the attestations topic, through the
/// engine's own `engine::gossip::check_attestation_batch`
/// (`admission::admit_batch`: `poi::check` per envelope, store and pool
/// duplicates, the pool; then the gossip verdict); every envelope it
/// admitted is re-checked against docs/PROTOCOL.md §10 independently.
pub fn fuzz_gossip_attestation(data: &[u8]) -> Outcome {
    let w = world();
    let mut pool = w.pool();
    let before = pool.len();
    let (validation, verdict) = check_attestation_batch(&w.genesis, &w.store, &mut pool, data, NOW_MS);
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
    let reason = match verdict {
        admission::BatchVerdict::Accept { .. } => String::new(),
        admission::BatchVerdict::Ignore { reason } | admission::BatchVerdict::Reject { reason, .. } => reason,
    };
    match validation {
        Validation::Accept => Outcome::Accepted,
        Validation::Ignore => Outcome::Ignored(reason),
        Validation::Reject => rejected(reason),
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
    let pool = bizra_node::evidence_pool::EvidencePool::new();
    match bizra_node::engine::evidence::check_gossip(g, head, &pool, data) {
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
        Err((Validation::Reject, why)) => rejected(why),
        Err((_, why)) => Outcome::Ignored(why.to_string()),
    }
}

/// docs/PROTOCOL.md §10, re-checked independently of `poi::check` for an
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
