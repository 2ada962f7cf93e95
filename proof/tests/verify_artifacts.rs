//! `wq_proof.json`, `attestation.json` and `evidence.json`: built offline from signed fixtures,
//! checked by the offline verifiers (what `bizra verify` runs) and by the independent
//! Python spec verifier (tests/spec_verifier/verify_wq_proof.py). Every tampering must
//! fail naming the field, every malformed input must be refused as malformed.
//! (`bizra wq-proof` and `bizra evidence` against fake nodes are in cli/tests/wq_proof_verify.rs.)

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bizra_consensus::chain;
use bizra_consensus::merkle;
use bizra_consensus::signing::Signer;
use bizra_consensus::types::{hash_bytes, Hash};
use bizra_proof::verify::{check_wq_proof, verify_attestation, verify_document, verify_evidence};
use bizra_proof::{
    self as proof, agreement, build_proof, fixture, fixture::Fixture, sign_envelope, AttestationDoc, EnvelopeJson,
    EvidenceDoc, VerifyError, WqProof,
};
use bizra_proto::{payload_type, BlockHeader, HeadReport, InclusionProof, PoiAttestation, Vote, VoteKind};
use bizra_testkit::spec_verifier::{self, python_ready, python_verdict, tmpdir};
use prost::Message;
use std::process::Command;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

fn json(p: &WqProof) -> Vec<u8> {
    p.to_json_pretty().into_bytes()
}

fn expect_invalid(r: Result<String, VerifyError>, field: &str) -> String {
    match r {
        Err(e @ VerifyError::Failed { .. }) => {
            let m = e.to_string();
            assert!(m.contains(field), "reason {m:?} does not name {field:?}");
            m
        }
        Err(VerifyError::Malformed(m)) => panic!("expected an invalid proof (exit 1), got bad input (exit 2): {m}"),
        Ok(s) => panic!("expected an invalid proof naming {field:?}, got valid: {s}"),
    }
}

fn expect_usage(r: Result<String, VerifyError>) -> String {
    match r {
        Err(VerifyError::Malformed(m)) => m,
        other => panic!("expected bad input (exit 2), got {other:?}"),
    }
}

fn flip_b64(s: &str, byte: usize) -> String {
    let mut b = STANDARD.decode(s).unwrap();
    b[byte] ^= 0x01;
    STANDARD.encode(b)
}

/// Re-signs a modified HeadReport of validators[i] with its own key.
fn resign_head(f: &Fixture, p: &mut WqProof, i: usize, edit: impl FnOnce(&mut HeadReport)) {
    let env = p.validators[i].envelope.to_proto().unwrap();
    let mut r = HeadReport::decode(env.payload.as_slice()).unwrap();
    edit(&mut r);
    let signer = f.signers.iter().find(|s| s.id() == p.validators[i].id).unwrap();
    p.validators[i].envelope =
        EnvelopeJson::from_proto(&sign_envelope(signer, payload_type::HEAD_REPORT, r.encode_to_vec()));
}

/// Re-signs a modified precommit of commit.signatures[i] with its signer's key.
fn resign_vote(f: &Fixture, p: &mut WqProof, i: usize, edit: impl FnOnce(&mut Vote)) {
    let env = p.commit.signatures[i].to_proto().unwrap();
    let mut v = Vote::decode(env.payload.as_slice()).unwrap();
    edit(&mut v);
    let signer = f.signers.iter().find(|s| s.id() == env.signatures[0].keyid).unwrap();
    p.commit.signatures[i] = EnvelopeJson::from_proto(&sign_envelope(signer, payload_type::VOTE, v.encode_to_vec()));
}

// ---------------------------------------------------------------------------
// The Python spec verifier (bizra_testkit::spec_verifier)
// ---------------------------------------------------------------------------

fn rust_verdict(r: &Result<String, VerifyError>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(VerifyError::Failed { .. }) => 1,
        Err(VerifyError::Malformed(_)) => 2,
    }
}

// ---------------------------------------------------------------------------
// wq_proof.json: valid and tampered
// ---------------------------------------------------------------------------

#[test]
fn valid_proof_verifies() {
    let f = Fixture::new(4, 3, 1);
    let p = f.valid_proof();
    assert_eq!(p.agreement, "B3/B3/B3");
    assert!(p.wq_head_agreement);
    let s = check_wq_proof(&json(&p), &f.genesis_bytes).unwrap();
    assert!(s.starts_with("valid: B3/B3/B3 agreement at height 3"), "{s}");
    assert!(s.contains("100.00% weight"), "{s}");
    // The dispatcher picks the same checker.
    assert_eq!(verify_document(&json(&p), &f.genesis_bytes).unwrap(), s);
    // A quorum that is not unanimous is still valid: 3 of 4.
    let p3 = build_proof(&f.parts(&[(0, None), (1, None), (2, None)], &[0, 1, 3]));
    check_wq_proof(&json(&p3), &f.genesis_bytes).unwrap();
    // Weights written as JSON integers are accepted too.
    let mut v: serde_json::Value = serde_json::from_slice(&json(&p)).unwrap();
    let sw: u64 = v["commit"]["signed_weight"].as_str().unwrap().parse().unwrap();
    v["commit"]["signed_weight"] = serde_json::json!(sw);
    check_wq_proof(&serde_json::to_vec(&v).unwrap(), &f.genesis_bytes).unwrap();
}

/// (name, tampered proof, field the reason must name). Each must fail with exit 1.
fn tampered_proofs(f: &Fixture) -> Vec<(&'static str, WqProof, &'static str)> {
    let valid = f.valid_proof();
    let mut out = Vec::new();

    let mut p = valid.clone();
    let s = &mut p.validators[1].envelope.signatures[0].sig;
    *s = flip_b64(s, 10);
    out.push((
        "flipped head report signature byte",
        p,
        "validators[1].envelope.signatures[0].sig",
    ));

    let mut p = valid.clone();
    let s = &mut p.commit.signatures[2].signatures[0].sig;
    *s = flip_b64(s, 40);
    out.push((
        "flipped precommit signature byte",
        p,
        "commit.signatures[2].signatures[0].sig",
    ));

    // The payload's height changed, the signature kept.
    let mut p = valid.clone();
    let env = p.validators[0].envelope.to_proto().unwrap();
    let mut r = HeadReport::decode(env.payload.as_slice()).unwrap();
    r.height += 1;
    p.validators[0].envelope.payload = STANDARD.encode(r.encode_to_vec());
    out.push((
        "head report height changed",
        p,
        "validators[0].envelope.signatures[0].sig",
    ));

    // A correctly signed head report, but for another height.
    let mut p = valid.clone();
    resign_head(f, &mut p, 2, |r| r.height = 2);
    out.push(("head report for another height", p, "validators[2].envelope.payload"));

    // A precommit's payload height changed, the signature kept.
    let mut p = valid.clone();
    let env = p.commit.signatures[0].to_proto().unwrap();
    let mut v = Vote::decode(env.payload.as_slice()).unwrap();
    v.height = 4;
    p.commit.signatures[0].payload = STANDARD.encode(v.encode_to_vec());
    out.push(("precommit height changed", p, "commit.signatures[0].signatures[0].sig"));

    let mut p = valid.clone();
    p.height = 4;
    out.push(("proof height changed", p, "deterministic_head"));

    let mut p = valid.clone();
    p.commit.signed_weight.0 += 1;
    out.push(("signed_weight changed", p, "commit.signed_weight"));

    let mut p = valid.clone();
    p.commit.total_weight.0 -= 1;
    out.push(("total_weight changed", p, "commit.total_weight"));

    // 3 of 4 signed (75%); drop one more and fix the tally: 2 of 4 < 66.67%.
    let mut p = build_proof(&f.parts(&[(0, None), (1, None), (2, None)], &[0, 1, 2]));
    p.commit.signatures.remove(2);
    p.commit.signers.remove(2);
    let w: std::collections::BTreeMap<_, _> = f.weights().into_iter().map(|(id, w, _)| (id, w)).collect();
    p.commit.signed_weight.0 = p.commit.signers.iter().map(|s| w[s]).sum();
    p.commit.share_bps = bizra_consensus::quorum::share_bps(p.commit.signed_weight.0, p.commit.total_weight.0);
    out.push(("signer removed below quorum", p, "below the fast quorum"));

    let mut p = valid.clone();
    p.commit.signers.pop();
    out.push(("signer missing from the signers list", p, "commit.signers"));

    let mut p = valid.clone();
    let dup = p.commit.signatures[0].clone();
    p.commit.signatures.push(dup);
    out.push(("duplicate precommit", p, "signed twice"));

    // A foreign key signs a head report under its own keyid.
    let stranger = Signer::from_secret([0xEE; 32]);
    let mut p = valid.clone();
    let env = p.validators[0].envelope.to_proto().unwrap();
    p.validators[0].envelope =
        EnvelopeJson::from_proto(&sign_envelope(&stranger, payload_type::HEAD_REPORT, env.payload));
    out.push((
        "foreign keyid on a head report",
        p,
        "validators[0].envelope.signatures[0].keyid",
    ));

    // ... or poses as a queried validator.
    let mut p = valid.clone();
    p.validators[0].id = stranger.id().to_string();
    out.push(("foreign validator id", p, "validators[0].id"));

    // A foreign key's precommit.
    let mut p = valid.clone();
    let env = p.commit.signatures[3].to_proto().unwrap();
    let mut v = Vote::decode(env.payload.as_slice()).unwrap();
    v.validator = stranger.id().to_string();
    p.commit.signatures[3] = EnvelopeJson::from_proto(&sign_envelope(&stranger, payload_type::VOTE, v.encode_to_vec()));
    p.commit.signers[3] = stranger.id().to_string();
    out.push((
        "foreign keyid on a precommit",
        p,
        "commit.signatures[3].signatures[0].keyid",
    ));

    // A validator signs under another's keyid.
    let mut p = valid.clone();
    let env = p.validators[1].envelope.to_proto().unwrap();
    let mut e = sign_envelope(&f.signers[0], payload_type::HEAD_REPORT, env.payload);
    e.signatures[0].keyid = f.signers[1].id().to_string();
    p.validators[1].envelope = EnvelopeJson::from_proto(&e);
    out.push((
        "signature by another validator",
        p,
        "validators[1].envelope.signatures[0].sig",
    ));

    let mut p = valid.clone();
    resign_vote(f, &mut p, 1, |v| v.kind = VoteKind::Prevote as i32);
    out.push(("prevote instead of precommit", p, "not PRECOMMIT"));

    let mut p = valid.clone();
    resign_vote(f, &mut p, 1, |v| v.block_hash = vec![7; 32]);
    out.push(("precommit for another block", p, "commit.signatures[1].payload"));

    let mut p = valid.clone();
    resign_vote(f, &mut p, 2, |v| v.round = 1);
    out.push(("precommit of another round", p, "round"));

    let mut p = valid.clone();
    p.validators[0].envelope.payload_type = payload_type::VOTE.into();
    out.push(("wrong payload type", p, "validators[0].envelope.payloadType"));

    // A payload with an unknown field: signed, but not the canonical encoding.
    let mut p = valid.clone();
    let env = p.validators[0].envelope.to_proto().unwrap();
    let mut payload = env.payload.clone();
    payload.extend_from_slice(&[15 << 3, 1]);
    p.validators[0].envelope =
        EnvelopeJson::from_proto(&sign_envelope(&f.signers[0], payload_type::HEAD_REPORT, payload));
    out.push(("non-canonical head report", p, "not canonically encoded"));

    let mut p = valid.clone();
    let env = p.commit.signatures[0].to_proto().unwrap();
    let mut payload = env.payload.clone();
    payload.extend_from_slice(&[2 << 3, 3]); // the height again: last one wins
    let signer = f.signers.iter().find(|s| s.id() == env.signatures[0].keyid).unwrap();
    p.commit.signatures[0] = EnvelopeJson::from_proto(&sign_envelope(signer, payload_type::VOTE, payload));
    out.push(("non-canonical precommit", p, "commit.signatures[0].payload"));

    // Two signatures on one envelope.
    let mut p = valid.clone();
    let extra = p.validators[0].envelope.signatures[0].clone();
    p.validators[0].envelope.signatures.push(extra);
    out.push((
        "two signatures on a head report",
        p,
        "validators[0].envelope.signatures",
    ));

    // economic_final claimed without the weight for it: 3 of 4 is 75% < 80%.
    let mut p = build_proof(&f.parts(&[(0, None), (1, None), (2, None)], &[0, 1, 2]));
    assert!(!p.commit.economic_final);
    p.commit.economic_final = true;
    out.push(("economic_final unbacked", p, "commit.economic_final"));

    let mut p = valid.clone();
    p.agreement = "B3/B3".into();
    out.push(("agreement string", p, "agreement"));

    let mut p = valid.clone();
    p.commit.fast_final = false;
    out.push(("fast_final false", p, "commit.fast_final"));

    // Heads that disagree, each correctly signed.
    let other = hash_bytes(b"another block");
    let p = build_proof(&f.parts(&[(0, None), (1, Some(other)), (2, None)], &[0, 1, 2, 3]));
    assert!(!p.wq_head_agreement);
    out.push(("heads disagree", p, "validators[1].block_hash"));

    // Epoch-0 telemetry that is not genesis's, with a consistent tally.
    let mut p = valid.clone();
    let id0 = f.signers[0].id().to_string();
    p.telemetry.wq_weight.get_mut(&id0).unwrap().0 += 1_000_000;
    p.commit.signed_weight.0 += 1_000_000;
    p.commit.total_weight.0 += 1_000_000;
    p.commit.share_bps = bizra_consensus::quorum::share_bps(p.commit.signed_weight.0, p.commit.total_weight.0);
    out.push(("telemetry weight inflated", p, "telemetry.wq_weight"));

    let mut p = valid.clone();
    p.telemetry.wq_weight.remove(&id0);
    out.push(("telemetry weight missing", p, "telemetry.wq_weight"));

    out
}

#[test]
fn tampered_proofs_fail_with_a_reason_naming_the_field() {
    let f = Fixture::new(4, 3, 1);
    for (name, p, field) in tampered_proofs(&f) {
        let m = expect_invalid(check_wq_proof(&json(&p), &f.genesis_bytes), field);
        eprintln!("{name}: {m}");
    }
}

#[test]
fn different_genesis_fails() {
    let f = Fixture::new(4, 3, 1);
    let p = f.valid_proof();
    // Another chain.
    let other = Fixture::new(4, 3, 2);
    expect_invalid(check_wq_proof(&json(&p), &other.genesis_bytes), "chain_id");
    // The same chain id and validators, but other bytes: another genesis hash.
    let mut g = f.genesis_bytes.clone();
    g.extend_from_slice(b"\n");
    expect_invalid(check_wq_proof(&json(&p), &g), "genesis_hash");
    // Same chain id, other validators and bytes.
    let mut doc: serde_json::Value = serde_json::from_slice(&other.genesis_bytes).unwrap();
    doc["chain_id"] = serde_json::json!(f.chain_id());
    let g = serde_json::to_vec_pretty(&doc).unwrap();
    expect_invalid(check_wq_proof(&json(&p), &g), "genesis_hash");
}

#[test]
fn malformed_input_is_exit_2() {
    let f = Fixture::new(4, 3, 1);
    let p = json(&f.valid_proof());
    expect_usage(check_wq_proof(b"{not json", &f.genesis_bytes));
    expect_usage(check_wq_proof(b"{\"version\":\"wq-proof/1\"}", &f.genesis_bytes));
    expect_usage(check_wq_proof(&p, b"{}"));
    expect_usage(verify_document(b"{\"version\":\"wq-proof/9\"}", &f.genesis_bytes));
    expect_usage(verify_document(b"[]", &f.genesis_bytes));
    let mut v: serde_json::Value = serde_json::from_slice(&p).unwrap();
    v["commit"]["signed_weight"] = serde_json::json!("12x");
    expect_usage(check_wq_proof(&serde_json::to_vec(&v).unwrap(), &f.genesis_bytes));
    v["commit"]["signed_weight"] = serde_json::json!(-1);
    expect_usage(check_wq_proof(&serde_json::to_vec(&v).unwrap(), &f.genesis_bytes));
}

#[test]
fn agreement_string_marks_differing_hashes() {
    let h = |prefix: &str| -> Hash { proof::unhex_hash(&format!("{prefix}{}", "ab".repeat(28))).unwrap() };
    let (s, all) = agreement(3, &[h("9f2c1a3b"), h("0badf00d"), h("9f2c1a3b")]);
    assert_eq!(s, "B3:9f2c1a3b/B3:0badf00d/B3:9f2c1a3b");
    assert!(!all);
    assert_eq!(agreement(3, &[h("9f2c1a3b"); 3]), ("B3/B3/B3".to_string(), true));
    // A built proof with a disagreeing head carries it, and prints it.
    let f = Fixture::new(3, 3, 1);
    let other = h("0badf00d");
    let p = build_proof(&f.parts(&[(0, None), (1, Some(other)), (2, None)], &[0, 1, 2]));
    let mine = &p.block_hash[..8];
    assert_eq!(p.agreement, format!("B3:{mine}/B3:0badf00d/B3:{mine}"));
    assert!(proof::agreement_line(&p).contains("disagreement at height 3"));
}

#[test]
fn later_epochs_use_checked_telemetry() {
    // epoch_length is 100 by default: height 150 is in epoch 1.
    let f = Fixture::new(4, 150, 1);
    let p = f.valid_proof();
    let s = check_wq_proof(&json(&p), &f.genesis_bytes).unwrap();
    assert!(s.contains("epoch 1"), "{s}");
    let id = f.signers[1].id().to_string();

    // A weight that does not follow its components.
    let mut q = p.clone();
    q.telemetry.wq_weight.get_mut(&id).unwrap().0 += 5;
    expect_invalid(check_wq_proof(&json(&q), &f.genesis_bytes), "formula");

    // Components that follow the formula but lie about the stake.
    let mut q = p.clone();
    q.telemetry.components.get_mut(&id).unwrap().stake = 1_000_000;
    expect_invalid(check_wq_proof(&json(&q), &f.genesis_bytes), "stake");

    // rep out of range.
    let mut q = p.clone();
    q.telemetry.components.get_mut(&id).unwrap().rep = 10_001;
    expect_invalid(check_wq_proof(&json(&q), &f.genesis_bytes), "rep");

    // Telemetry of the wrong epoch.
    let mut q = p.clone();
    q.telemetry_epoch = Some(0);
    expect_invalid(check_wq_proof(&json(&q), &f.genesis_bytes), "telemetry_epoch");

    // A non-genesis validator in telemetry.
    let mut q = p;
    let stranger = Signer::from_secret([0xEE; 32]).id().to_string();
    let w = q.telemetry.wq_weight[&id];
    let c = q.telemetry.components[&id];
    q.telemetry.wq_weight.insert(stranger.clone(), w);
    q.telemetry.components.insert(stranger, c);
    expect_invalid(check_wq_proof(&json(&q), &f.genesis_bytes), "not a genesis validator");
}

#[test]
fn python_spec_verifier_agrees() {
    if !python_ready() {
        return;
    }
    let f = Fixture::new(4, 3, 1);
    let valid = json(&f.valid_proof());
    assert_eq!(python_verdict("valid", &valid, &f.genesis_bytes), 0);
    let f150 = Fixture::new(4, 150, 1);
    assert_eq!(
        python_verdict("valid-epoch1", &json(&f150.valid_proof()), &f150.genesis_bytes),
        0
    );

    // Every tampering the Rust checker catches, the spec verifier catches too
    // (the inflated epoch-0 weight through the wq_weight formula and genesis params).
    let mut cases: Vec<(String, Vec<u8>, Vec<u8>)> = tampered_proofs(&f)
        .into_iter()
        .map(|(name, p, _)| (name.to_string(), json(&p), f.genesis_bytes.clone()))
        .collect();
    cases.push((
        "other genesis".into(),
        valid.clone(),
        Fixture::new(4, 3, 2).genesis_bytes,
    ));
    let mut g = f.genesis_bytes.clone();
    g.push(b'\n');
    cases.push(("genesis bytes differ".into(), valid.clone(), g));
    for (name, proof, genesis) in cases {
        let rust = rust_verdict(&check_wq_proof(&proof, &genesis));
        assert_eq!(rust, 1, "{name}: Rust verdict");
        assert_eq!(
            python_verdict(&name, &proof, &genesis),
            rust,
            "{name}: the spec verifier disagrees"
        );
    }
    assert_eq!(python_verdict("not json", b"{", &f.genesis_bytes), 2);
}

#[test]
fn python_blake3_matches() {
    if !python_ready() {
        return;
    }
    let d = tmpdir("blake3");
    for len in [
        0usize, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 5000, 8193, 31_745,
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let path = d.join(format!("in-{len}"));
        std::fs::write(&path, &data).unwrap();
        let out = Command::new("python3")
            .arg(spec_verifier::script())
            .arg("--blake3")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            hex::encode(hash_bytes(&data)),
            "BLAKE3 of {len} bytes"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

// ---------------------------------------------------------------------------
// attestation.json
// ---------------------------------------------------------------------------

struct AttWorld {
    f: Fixture,
    doc: AttestationDoc,
    att: PoiAttestation,
}

fn poi(f: &Fixture, attester: usize) -> PoiAttestation {
    let mut dims = std::collections::BTreeMap::new();
    dims.insert("accuracy".to_string(), 9000u32);
    dims.insert("latency".to_string(), 7001u32);
    let mut weights = std::collections::BTreeMap::new();
    weights.insert("accuracy".to_string(), 6000u32);
    weights.insert("latency".to_string(), 4000u32);
    PoiAttestation {
        version: "poi/1".into(),
        chain_id: f.chain_id().to_string(),
        attester: f.signers[attester].id().to_string(),
        subject: f.signers[3].id().to_string(),
        evidence_digest: hash_bytes(b"evidence").to_vec(),
        evidence_len: 8,
        dimensions: dims,
        weights,
        // (9000*6000 + 7001*4000) / 10000 = 8200.4 -> 8200
        impact_bps: 8200,
        window_start_ms: 1_700_000_000_000,
        window_end_ms: 1_700_000_360_000,
        nonce: vec![5; 16],
    }
}

/// An attestation by validator 0, the second of two in block 3, committed by all.
fn att_world(signers: &[usize], edit: impl FnOnce(&mut PoiAttestation)) -> AttWorld {
    let mut f = Fixture::new(4, 3, 1);
    let mut att = poi(&f, 0);
    edit(&mut att);
    let env = sign_envelope(&f.signers[0], payload_type::POI, att.encode_to_vec());
    let other = sign_envelope(&f.signers[1], payload_type::POI, poi(&f, 1).encode_to_vec());
    let atts = vec![other, env.clone()];
    let leaves = chain::attestation_leaves(&atts).unwrap();
    let header = BlockHeader {
        chain_id: f.chain_id().to_string(),
        height: 3,
        parent_hash: vec![2; 32],
        proposer: f.signers[2].id().to_string(),
        time_ms: 1_700_000_400_000,
        payload_root: merkle::root(&leaves).to_vec(),
        last_commit_hash: vec![1; 32],
        epoch: 0,
        evidence_root: vec![],
    };
    f.block_hash = hash_bytes(&header.encode_to_vec());
    let proof = InclusionProof {
        leaf_index: 1,
        leaf_count: 2,
        siblings: merkle::proof(&leaves, 1).unwrap().iter().map(|s| s.to_vec()).collect(),
    };
    let commit = f.commit_part(signers, f.block_hash);
    let doc = proof::build_attestation_doc(&env, 3, &header, &proof, &commit, None).unwrap();
    AttWorld { f, doc, att }
}

fn att_json(d: &AttestationDoc) -> Vec<u8> {
    d.to_json_pretty().into_bytes()
}

#[test]
fn valid_attestation_verifies() {
    let w = att_world(&[0, 1, 2, 3], |_| {});
    let s = verify_attestation(&att_json(&w.doc), &w.f.genesis_bytes).unwrap();
    assert!(s.starts_with("valid: attestation"), "{s}");
    assert!(s.contains("impact 8200 bps"), "{s}");
    assert_eq!(verify_document(&att_json(&w.doc), &w.f.genesis_bytes).unwrap(), s);
    // With epoch-0 telemetry that matches genesis, too.
    let mut d = w.doc.clone();
    d.inclusion.telemetry = Some(w.f.valid_proof().telemetry);
    verify_attestation(&att_json(&d), &w.f.genesis_bytes).unwrap();
}

#[test]
fn bad_attestations_fail_naming_the_field() {
    let genesis = Fixture::new(4, 3, 1).genesis_bytes;
    let check = |d: &AttestationDoc, field: &str| {
        let m = expect_invalid(verify_attestation(&att_json(d), &genesis), field);
        eprintln!("{field}: {m}");
    };
    // Field rules, each signed correctly by the attester.
    check(&att_world(&[0, 1, 2, 3], |a| a.impact_bps = 8201).doc, "impact_bps");
    check(
        &att_world(&[0, 1, 2, 3], |a| {
            a.weights.insert("accuracy".into(), 6001);
        })
        .doc,
        "weights",
    );
    check(
        &att_world(&[0, 1, 2, 3], |a| {
            a.weights.remove("latency");
            a.weights.insert("speed".into(), 4000);
        })
        .doc,
        "weights",
    );
    check(
        &att_world(&[0, 1, 2, 3], |a| {
            a.dimensions.insert("accuracy".into(), 10_001);
        })
        .doc,
        "dimensions",
    );
    check(
        &att_world(&[0, 1, 2, 3], |a| a.window_start_ms = a.window_end_ms + 1).doc,
        "window_start_ms",
    );
    check(&att_world(&[0, 1, 2, 3], |a| a.nonce = vec![1; 15]).doc, "nonce");
    check(&att_world(&[0, 1, 2, 3], |a| a.version = "poi/2".into()).doc, "version");
    check(
        &att_world(&[0, 1, 2, 3], |a| a.chain_id = "elsewhere".into()).doc,
        "chain_id",
    );
    check(
        &att_world(&[0, 1, 2, 3], |a| a.attester = Signer::from_secret([9; 32]).id().into()).doc,
        "attester",
    );

    let w = att_world(&[0, 1, 2, 3], |_| {});
    // Signature.
    let mut d = w.doc.clone();
    d.envelope.signatures[0].sig = flip_b64(&d.envelope.signatures[0].sig, 3);
    check(&d, "envelope.signatures[0].sig");
    // The JSON view differs from the signed payload.
    let mut d = w.doc.clone();
    d.attestation.subject = "someone else".into();
    check(&d, "attestation.subject");
    let mut d = w.doc.clone();
    d.attestation.id = Some(hex::encode([0u8; 32]));
    check(&d, "attestation.id");
    // Merkle proof.
    let mut d = w.doc.clone();
    d.inclusion.proof.siblings[0] = hex::encode([3u8; 32]);
    check(&d, "inclusion.proof");
    let mut d = w.doc.clone();
    d.inclusion.proof.leaf_index = 0;
    check(&d, "inclusion.proof");
    // Header vs block hash.
    let mut d = w.doc.clone();
    let mut h = BlockHeader::decode(STANDARD.decode(&d.inclusion.header).unwrap().as_slice()).unwrap();
    h.time_ms += 1;
    d.inclusion.header = STANDARD.encode(h.encode_to_vec());
    check(&d, "inclusion.header");
    let mut d = w.doc.clone();
    d.inclusion.height = 4;
    check(&d, "inclusion.height");
    // Commit.
    let mut d = w.doc.clone();
    let s = &mut d.inclusion.commit.signatures[0].signatures[0].sig;
    *s = flip_b64(s, 0);
    check(&d, "inclusion.commit.signatures[0]");
    let below = att_world(&[0, 1], |_| {});
    check(&below.doc, "below the fast quorum");
    assert_eq!(w.att.impact_bps, 8200);
}

// ---------------------------------------------------------------------------
// evidence.json
// ---------------------------------------------------------------------------

/// A real chain (genesis, block 1, block 2 carrying two pieces of evidence,
/// each validated by `ChainState`) with validator 3's conflicting prevotes at
/// index 1, and its `evidence.json` committed by `signers`.
fn ev_world(signers: &[usize]) -> (Fixture, fixture::EvidenceChain, EvidenceDoc) {
    let mut f = Fixture::new(4, 2, 1);
    let chain = f.evidence_chain(3);
    let doc = f.evidence_doc(&chain, signers);
    (f, chain, doc)
}

fn ev_json(d: &EvidenceDoc) -> Vec<u8> {
    d.to_json_pretty().into_bytes()
}

/// Rewrites votes[i]'s Vote and re-signs it with `by`'s key (keyid = `by`).
fn resign_ev_vote(f: &Fixture, d: &mut EvidenceDoc, i: usize, by: usize, edit: impl FnOnce(&mut Vote)) {
    let env = d.votes[i].to_proto().unwrap();
    let mut v = Vote::decode(env.payload.as_slice()).unwrap();
    edit(&mut v);
    d.votes[i] = EnvelopeJson::from_proto(&sign_envelope(&f.signers[by], payload_type::VOTE, v.encode_to_vec()));
}

#[test]
fn valid_evidence_verifies() {
    let (f, chain, doc) = ev_world(&[0, 1, 2, 3]);
    // The document carries the block's evidence, in canonical order, by validator 3.
    assert_eq!(doc.version, "evidence/1");
    assert_eq!(doc.kind, "duplicate-vote");
    assert_eq!(doc.validator, f.signers[3].id());
    assert_eq!(chain.block.evidence.len(), 2);
    assert_eq!(chain.block.evidence[1], chain.evidence);
    let v: Vec<Vote> = doc
        .votes
        .iter()
        .map(|e| Vote::decode(e.to_proto().unwrap().payload.as_slice()).unwrap())
        .collect();
    assert!(v[0].block_hash < v[1].block_hash);
    assert_eq!((v[0].height, v[0].kind), (1, VoteKind::Prevote as i32));
    let s = verify_evidence(&ev_json(&doc), &f.genesis_bytes).unwrap();
    assert!(s.starts_with("valid: duplicate-vote evidence"), "{s}");
    assert!(
        s.contains("two prevotes at height 1 round 0, committed at height 2"),
        "{s}"
    );
    assert_eq!(verify_document(&ev_json(&doc), &f.genesis_bytes).unwrap(), s);
    // The votes in either order, without the optional id or telemetry (epoch 0): still valid.
    let mut d = doc.clone();
    d.votes.swap(0, 1);
    d.id = None;
    d.inclusion.telemetry = None;
    verify_evidence(&ev_json(&d), &f.genesis_bytes).unwrap();
    // A quorum that is not unanimous: 3 of 4.
    let (f3, _, d3) = ev_world(&[0, 1, 3]);
    verify_evidence(&ev_json(&d3), &f3.genesis_bytes).unwrap();
}

/// (name, tampered evidence.json, field the reason must name). Each must fail with exit 1.
fn tampered_evidence() -> (Fixture, Vec<(&'static str, EvidenceDoc, &'static str)>) {
    let (f, _, valid) = ev_world(&[0, 1, 2, 3]);
    let mut out = Vec::new();

    // One vote altered: a byte of its block hash, the signature kept.
    let mut d = valid.clone();
    let env = d.votes[0].to_proto().unwrap();
    let mut v = Vote::decode(env.payload.as_slice()).unwrap();
    v.block_hash[5] ^= 1;
    d.votes[0].payload = STANDARD.encode(v.encode_to_vec());
    out.push(("vote block hash byte flipped", d, "votes[0].signatures[0].sig"));

    let mut d = valid.clone();
    let s = &mut d.votes[1].signatures[0].sig;
    *s = flip_b64(s, 33);
    out.push(("vote signature byte flipped", d, "votes[1].signatures[0].sig"));

    // Two votes that do not conflict: the same block hash, both validly signed.
    let mut d = valid.clone();
    d.votes[1] = d.votes[0].clone();
    out.push(("the same vote twice", d, "no conflict"));
    let mut d = valid.clone();
    resign_ev_vote(&f, &mut d, 1, 3, |v| v.round = 1);
    out.push(("other round", d, "round differs"));
    let mut d = valid.clone();
    resign_ev_vote(&f, &mut d, 1, 3, |v| v.kind = VoteKind::Precommit as i32);
    out.push(("other kind", d, "kind differs"));
    let mut d = valid.clone();
    resign_ev_vote(&f, &mut d, 0, 3, |v| v.height = 2);
    out.push(("other height", d, "height differs"));
    let mut d = valid.clone();
    resign_ev_vote(&f, &mut d, 0, 3, |v| v.chain_id = "elsewhere".into());
    out.push(("vote on another chain", d, "votes[0].payload"));
    // A vote by another validator, signed by it.
    let mut d = valid.clone();
    resign_ev_vote(&f, &mut d, 1, 2, |v| v.validator = f.signers[2].id().into());
    out.push(("a vote by another validator", d, "votes[1].signatures[0].keyid"));
    // The document names another validator than the signer.
    let mut d = valid.clone();
    d.validator = f.signers[2].id().to_string();
    out.push(("validator is not the signer", d, "votes[0].signatures[0].keyid"));
    let mut d = valid.clone();
    d.validator = Signer::from_secret([0xEE; 32]).id().to_string();
    out.push(("validator not in genesis", d, "validator"));
    // The payload's validator is not the signer.
    let mut d = valid.clone();
    resign_ev_vote(&f, &mut d, 1, 3, |v| v.validator = f.signers[2].id().into());
    out.push(("vote names another validator", d, "votes[1].payload"));
    // A signed, non-canonical vote payload.
    let mut d = valid.clone();
    let mut payload = d.votes[0].to_proto().unwrap().payload;
    payload.extend_from_slice(&[2 << 3, 1]); // the height again
    d.votes[0] = EnvelopeJson::from_proto(&sign_envelope(&f.signers[3], payload_type::VOTE, payload));
    out.push(("non-canonical vote", d, "not canonically encoded"));
    let mut d = valid.clone();
    d.votes[0].payload_type = payload_type::HEAD_REPORT.into();
    out.push(("wrong payload type", d, "votes[0].payloadType"));
    let mut d = valid.clone();
    d.votes.pop();
    out.push(("one vote", d, "votes"));
    let mut d = valid.clone();
    d.kind = "light-client-attack".into();
    out.push(("unknown kind", d, "kind"));
    let mut d = valid.clone();
    d.id = Some(hex::encode([0u8; 32]));
    out.push(("wrong id", d, "id"));

    // Inclusion.
    let mut d = valid.clone();
    d.inclusion.proof.siblings[0] = hex::encode([3u8; 32]);
    out.push(("wrong Merkle sibling", d, "inclusion.proof"));
    let mut d = valid.clone();
    d.inclusion.proof.leaf_index = 0;
    out.push(("wrong leaf index", d, "inclusion.proof"));
    let mut d = valid.clone();
    let mut h = BlockHeader::decode(STANDARD.decode(&d.inclusion.header).unwrap().as_slice()).unwrap();
    h.time_ms += 1;
    d.inclusion.header = STANDARD.encode(h.encode_to_vec());
    out.push(("header changed", d, "inclusion.header"));
    let mut d = valid.clone();
    d.inclusion.height = 3;
    out.push(("inclusion height changed", d, "inclusion.height"));

    // Commit.
    let mut d = valid.clone();
    let s = &mut d.inclusion.commit.signatures[0].signatures[0].sig;
    *s = flip_b64(s, 0);
    out.push(("precommit signature flipped", d, "inclusion.commit.signatures[0]"));
    let (_, _, below) = ev_world(&[0, 1]);
    out.push(("commit below quorum", below, "below the fast quorum"));
    let mut d = valid.clone();
    d.inclusion.commit.signed_weight.0 += 1;
    out.push(("signed_weight changed", d, "inclusion.commit.signed_weight"));
    let mut d = valid.clone();
    let id0 = f.signers[0].id().to_string();
    d.inclusion
        .telemetry
        .as_mut()
        .unwrap()
        .wq_weight
        .get_mut(&id0)
        .unwrap()
        .0 += 1;
    out.push(("epoch-0 telemetry not genesis's", d, "inclusion.telemetry"));
    (f, out)
}

#[test]
fn tampered_evidence_fails_naming_the_field() {
    let (f, cases) = tampered_evidence();
    for (name, d, field) in cases {
        let m = expect_invalid(verify_evidence(&ev_json(&d), &f.genesis_bytes), field);
        eprintln!("{name}: {m}");
    }
    // Another chain's genesis.
    let (_, _, d) = ev_world(&[0, 1, 2, 3]);
    expect_invalid(
        verify_evidence(&ev_json(&d), &Fixture::new(4, 2, 2).genesis_bytes),
        "validator",
    );
}

#[test]
fn malformed_evidence_is_exit_2() {
    let (f, _, d) = ev_world(&[0, 1, 2, 3]);
    let g = &f.genesis_bytes;
    expect_usage(verify_evidence(b"{", g));
    expect_usage(verify_document(b"{\"version\":\"evidence/1\"}", g));
    expect_usage(verify_document(b"{\"version\":\"evidence/2\"}", g));
    let mut v: serde_json::Value = serde_json::from_slice(&ev_json(&d)).unwrap();
    v["votes"] = serde_json::json!("not a list");
    expect_usage(verify_document(&serde_json::to_vec(&v).unwrap(), g));
    let mut v: serde_json::Value = serde_json::from_slice(&ev_json(&d)).unwrap();
    v["inclusion"].as_object_mut().unwrap().remove("commit");
    expect_usage(verify_document(&serde_json::to_vec(&v).unwrap(), g));
    expect_usage(verify_evidence(&ev_json(&d), b"{}"));
}

#[test]
fn python_spec_verifier_agrees_on_evidence() {
    if !python_ready() {
        return;
    }
    let (f, _, valid) = ev_world(&[0, 1, 2, 3]);
    assert_eq!(python_verdict("ev-valid", &ev_json(&valid), &f.genesis_bytes), 0);
    let mut swapped = valid.clone();
    swapped.votes.swap(0, 1);
    swapped.id = None;
    assert_eq!(python_verdict("ev-swapped", &ev_json(&swapped), &f.genesis_bytes), 0);
    let (f, cases) = tampered_evidence();
    for (name, d, _) in cases {
        let json = ev_json(&d);
        assert_eq!(
            rust_verdict(&verify_evidence(&json, &f.genesis_bytes)),
            1,
            "{name}: Rust verdict"
        );
        assert_eq!(
            python_verdict(name, &json, &f.genesis_bytes),
            1,
            "{name}: the spec verifier disagrees"
        );
    }
    assert_eq!(
        python_verdict(
            "ev-other-genesis",
            &ev_json(&valid),
            &Fixture::new(4, 2, 2).genesis_bytes
        ),
        1
    );
    assert_eq!(python_verdict("ev-not-json", b"{", &f.genesis_bytes), 2);
    let mut v: serde_json::Value = serde_json::from_slice(&ev_json(&valid)).unwrap();
    v["votes"] = serde_json::json!("not a list");
    assert_eq!(
        python_verdict("ev-malformed", &serde_json::to_vec(&v).unwrap(), &f.genesis_bytes),
        2
    );
}
