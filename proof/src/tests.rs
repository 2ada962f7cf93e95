//! Unit tests of the artifact formats: weights, envelopes, agreement labels.

use crate::*;

#[test]
fn weight_reads_strings_and_integers_and_writes_strings() {
    let w: Weight = serde_json::from_str("\"340282366920938463463374607431768211455\"").unwrap();
    assert_eq!(w.0, u128::MAX);
    let w: Weight = serde_json::from_str("12345").unwrap();
    assert_eq!(w.0, 12345);
    assert_eq!(serde_json::to_string(&Weight(7)).unwrap(), "\"7\"");
    for bad in ["\"-1\"", "\"+1\"", "\"1 \"", "\"\"", "-3", "1.5", "\"0x10\"", "null"] {
        assert!(serde_json::from_str::<Weight>(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn agreement_labels_carry_hash_prefixes_only_when_hashes_differ() {
    let a = unhex_hash(&format!("9f2c1a3b{}", "00".repeat(28))).unwrap();
    let b = unhex_hash(&format!("0badf00d{}", "11".repeat(28))).unwrap();
    assert_eq!(agreement(3, &[a, a, a]), ("B3/B3/B3".to_string(), true));
    assert_eq!(
        agreement(3, &[a, b, a]),
        ("B3:9f2c1a3b/B3:0badf00d/B3:9f2c1a3b".to_string(), false)
    );
    assert_eq!(percent(10_000), "100.00%");
    assert_eq!(percent(6667), "66.67%");
    assert_eq!(percent(5), "0.05%");
}

#[test]
fn envelope_json_roundtrip_and_strict_base64() {
    let f = fixture::Fixture::new(3, 3, 1);
    let env = f.head_report(0, 3, f.block_hash);
    let j = EnvelopeJson::from_proto(&env);
    assert_eq!(j.to_proto().unwrap(), env);
    let text = serde_json::to_string(&j).unwrap();
    assert!(text.contains("\"payloadType\":\"application/vnd.bizra.head-report+protobuf\""));
    let mut bad = j.clone();
    bad.payload = bad.payload.trim_end_matches('=').to_string();
    if bad.payload != j.payload {
        assert!(bad.to_proto().unwrap_err().starts_with("payload:"));
    }
    let mut bad = j;
    bad.signatures[0].sig.insert(0, ' ');
    assert!(bad.to_proto().unwrap_err().starts_with("signatures[0].sig:"));
    assert!(unhex("AB").is_err());
    assert!(unhex_hash("ab").is_err());
}

#[test]
fn built_proof_has_contract_keys() {
    let f = fixture::Fixture::new(4, 3, 1);
    let p = f.valid_proof();
    let v: serde_json::Value = serde_json::from_str(&p.to_json_pretty()).unwrap();
    for k in [
        "version",
        "chain_id",
        "genesis_hash",
        "height",
        "block_hash",
        "deterministic_head",
        "agreement",
        "wq_head_agreement",
        "validators",
        "commit",
        "telemetry",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["agreement"], "B3/B3/B3");
    assert_eq!(v["deterministic_head"], "B3");
    assert!(v["commit"]["signed_weight"].is_string());
    assert!(v["telemetry"]["wq_weight"]
        .as_object()
        .unwrap()
        .values()
        .all(|w| w.is_string()));
    for k in ["stake", "poi", "rep"] {
        assert!(v["telemetry"]["components"][f.signers[0].id()][k].is_u64());
    }
    assert_eq!(
        agreement_line(&p),
        format!(
            "B3/B3/B3 agreement at height 3 (head {}…, 100.00% weight)",
            &p.block_hash[..8]
        )
    );
}
