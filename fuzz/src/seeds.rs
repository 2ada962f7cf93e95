//! The seed corpus: valid inputs for every target, built from the world
//! ([`seed_corpus`]); `fuzz/seeds/<target>/` holds them, written by the
//! ignored test `write_seeds` in `node/tests/fuzz_regressions.rs`.

use crate::world::{world, World, CHAIN_ID, EPOCH_LENGTH, NOW_MS, VALIDATORS};
use bizra_consensus::messages::block_hash;
use bizra_consensus::types::{epoch_of, Hash};
use bizra_consensus::{certificate, chain, merkle, quorum};
use bizra_node::config::NodeConfig;
use bizra_node::engine::sync::BATCH;
use bizra_proof::{
    self, build_proof, sign_envelope, signed_vote_envelope, CommitPart, HeadPart, ProofParts, Telemetry, TelemetryPart,
};
use bizra_proto::{
    consensus_message::Msg, payload_type, sync_request::Req, sync_response::Resp, AttestationBatch, BlockHeader,
    BlockRange, BlockRangeRequest, ChainStatus, ConsensusMessage, FinalizedBlock, HeadReport, InclusionProof,
    StatusRequest, SyncRequest, SyncResponse, VoteKind,
};
use prost::Message;

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
                .map(|t| (t.id.clone(), bizra_proof::Weight(t.wq_weight)))
                .collect(),
            components: parts.iter().map(|t| (t.id.clone(), t.components.into())).collect(),
            jailed: parts
                .iter()
                .filter_map(|t| Some((t.id.clone(), t.jailed_until?)))
                .collect(),
        }
    });
    let doc = bizra_proof::build_attestation_doc(
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
        // As senders put it on the wire: the last commit compact (ADR 0018).
        let full = ConsensusMessage {
            msg: Some(Msg::Proposal(p.clone())),
            attempt: 0,
        };
        out.push((
            "gossip_proposal",
            format!("compact-proposal-r{i}"),
            bizra_node::engine::gossip::wire_bytes(&w.genesis, &full),
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
        let vote = |h: u64, v: Option<Hash>| w.vote(2, h, 0, bizra_proto::VoteKind::Prevote, v);
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
        p2p: bizra_node::config::P2pSection {
            listen: "127.0.0.1:7401".into(),
            peers: vec![
                format!("{}@127.0.0.1:7400", w.signers[0].id()),
                format!("{}@node2:7402", w.signers[2].id()),
            ],
            ..defaults.p2p.clone()
        },
        log: bizra_node::config::LogSection {
            format: "json".into(),
            level: "bizra=debug,libp2p=warn".into(),
        },
        grpc: bizra_node::config::GrpcSection {
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
