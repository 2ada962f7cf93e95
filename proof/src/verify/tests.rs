//! Unit tests of the verifiers' parts.

use super::*;
use crate::fixture::Fixture;
use crate::{build_proof, Telemetry, Weight};
use bizra_consensus::chain::ChainState;
use bizra_consensus::quorum::MIN_SAFE_THRESHOLD_BPS;
use bizra_proto::PoiAttestation;

fn poi(f: &Fixture) -> PoiAttestation {
    PoiAttestation {
        version: "poi/1".into(),
        chain_id: f.chain_id().into(),
        attester: f.signers[0].id().into(),
        subject: "s".into(),
        evidence_digest: vec![0; 32],
        evidence_len: 1,
        dimensions: [("a".to_string(), 3333u32), ("b".to_string(), 10_000)]
            .into_iter()
            .collect(),
        weights: [("a".to_string(), 5000u32), ("b".to_string(), 5000)]
            .into_iter()
            .collect(),
        // (3333 * 5000 + 10000 * 5000) / 10000 = 6666.5 -> 6666
        impact_bps: 6666,
        window_start_ms: 5,
        window_end_ms: 5,
        nonce: vec![0; 16],
    }
}

#[test]
fn poi_field_rules_at_their_boundaries() {
    let f = Fixture::new(3, 3, 1);
    let me = f.signers[0].id();
    let ok = poi(&f);
    check_poi_fields(&ok, &f.genesis, me, "p").unwrap();
    let mut a = ok.clone();
    a.impact_bps = 6667;
    assert!(check_poi_fields(&a, &f.genesis, me, "p")
        .unwrap_err()
        .to_string()
        .contains("p.impact_bps"));
    let mut a = ok.clone();
    a.dimensions.insert("a".into(), 0);
    a.impact_bps = 5000;
    check_poi_fields(&a, &f.genesis, me, "p").unwrap();
    let mut a = ok.clone();
    a.nonce.pop();
    assert!(check_poi_fields(&a, &f.genesis, me, "p")
        .unwrap_err()
        .to_string()
        .contains("p.nonce"));
    let mut a = ok.clone();
    a.evidence_digest.pop();
    assert!(check_poi_fields(&a, &f.genesis, me, "p").is_err());
    // Signed by a validator that is not the attester.
    assert!(check_poi_fields(&ok, &f.genesis, f.signers[1].id(), "p")
        .unwrap_err()
        .to_string()
        .contains("p.attester"));
    let mut a = ok;
    a.dimensions.clear();
    a.weights.clear();
    assert!(check_poi_fields(&a, &f.genesis, me, "p").is_err());
}

#[test]
fn without_genesis_thresholds_the_floor_applies_and_flags_are_not_judged() {
    let f = Fixture::new(4, 3, 1);
    let mut root = TrustRoot::from_genesis(&f.genesis);
    root.thresholds = None;
    let weights: BTreeMap<String, u128> = f.weights().into_iter().map(|(id, w, _)| (id, w)).collect();
    let mut p = build_proof(&f.parts(&[(0, None)], &[0, 1, 2]));
    p.commit.fast_final = false;
    let s = check_proof(&p, &root, &weights, true).unwrap();
    assert_eq!(s.threshold_bps, MIN_SAFE_THRESHOLD_BPS);
    assert_eq!(s.signers, 3);
    // With genesis thresholds the same flag is a lie.
    let full = TrustRoot::from_genesis(&f.genesis);
    assert!(check_proof(&p, &full, &weights, true).is_err());
    // Two of four is below even the floor.
    let p = build_proof(&f.parts(&[(0, None)], &[0, 1]));
    let e = check_proof(&p, &root, &weights, true).unwrap_err().to_string();
    assert!(e.contains("below the fast quorum of 6667 bps"), "{e}");
}

#[test]
fn telemetry_must_cover_exactly_the_set() {
    let f = Fixture::new(3, 3, 1);
    let keys = TrustRoot::from_genesis(&f.genesis).keys;
    let mut t = f.valid_proof().telemetry;
    assert_eq!(telemetry_weights(&t, &keys).unwrap().len(), 3);
    t.wq_weight.insert("ab".repeat(32), Weight(1));
    assert!(telemetry_weights(&t, &keys)
        .unwrap_err()
        .to_string()
        .contains("not in the validator set"));
    t.wq_weight.remove(&"ab".repeat(32));
    t.wq_weight.remove(f.signers[2].id());
    assert!(telemetry_weights(&t, &keys)
        .unwrap_err()
        .to_string()
        .contains("missing"));
}

/// Telemetry of an epoch with a jailed validator (ADR 0014): it weighs 0
/// and its term lies ahead; anything else is refused, naming the field.
#[test]
fn jailed_validators_weigh_zero_in_telemetry() {
    let f = Fixture::new(3, 3, 1);
    let g = &f.genesis;
    let state = ChainState::genesis(g);
    let mut t = Telemetry::default();
    for (i, m) in g.members.iter().enumerate() {
        t.wq_weight.insert(m.id.clone(), Weight(state.weights.weights[i]));
        t.components.insert(m.id.clone(), state.weights.components[i].into());
    }
    let jailed = g.members.get(1).id.clone();
    let epoch_3 = 3 * g.params().epoch_length + 1;
    assert!(epoch_weights(g, epoch_3, Some(&t), "telemetry").is_ok());
    t.jailed.insert(jailed.clone(), 5);
    let e = epoch_weights(g, epoch_3, Some(&t), "telemetry")
        .unwrap_err()
        .to_string();
    assert!(e.contains("a jailed validator weighs 0"), "{e}");
    t.wq_weight.insert(jailed.clone(), Weight(0));
    let (w, _) = epoch_weights(g, epoch_3, Some(&t), "telemetry").unwrap();
    assert_eq!(w[&jailed], 0);
    t.jailed.insert(jailed.clone(), 3);
    let e = epoch_weights(g, epoch_3, Some(&t), "telemetry")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not jailed in epoch 3"), "{e}");
    t.jailed.insert(jailed.clone(), 5);
    t.jailed.insert("ab".repeat(32), 5);
    let e = epoch_weights(g, epoch_3, Some(&t), "telemetry")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a genesis validator"), "{e}");
    t.jailed.remove(&"ab".repeat(32));
    let e = epoch_weights(g, 5, Some(&t), "telemetry").unwrap_err().to_string();
    assert!(e.contains("nobody is jailed in epoch 0"), "{e}");
}
