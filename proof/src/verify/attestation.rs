//! `attestation.json`: the signed PoI attestation, its field rules, and its
//! inclusion in a committed block.

use super::commit::{check_inclusion, MerkleRoot};
use super::{check_envelope, fail, load_genesis, TrustRoot};
use crate::attestation::{AttestationDoc, AttestationFields, ATTESTATION_VERSION};
use crate::encoding::unb64;
use crate::error::VerifyError;
use crate::wq_proof::percent;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::merkle;
use bizra_consensus::types::{hash_bytes, short_hex};
use bizra_proto::{payload_type, PoiAttestation};
use prost::Message;
use std::collections::BTreeSet;

/// Checks an `attestation.json` against a genesis file's bytes:
/// * `envelope`: payloadType `application/vnd.bizra.poi+protobuf`, exactly one signature
///   whose keyid is a genesis validator and the attester, valid under the one rule;
/// * the payload decodes to a `PoiAttestation` with version `poi/1`, genesis's chain id,
///   at least one dimension, every value in 0..=10000, weights over the same names summing
///   to 10000, `impact_bps == floor(sum(value * weight) / 10000)`,
///   `window_start_ms <= window_end_ms`, a 32-byte evidence digest and a nonce of at least
///   16 bytes; the JSON `attestation` fields equal the decoded ones (and `id`, if given,
///   is BLAKE3 of the payload);
/// * `inclusion` ([`check_inclusion`]): `inclusion.header` (base64 of the encoded
///   `BlockHeader`) hashes to `inclusion.block_hash`, is for `inclusion.height` on this
///   chain in the right epoch, and its `payload_root` admits the Merkle proof of the leaf
///   `BLAKE3(0x00 || id || signature)` at `leaf_index` of `leaf_count`;
///   `inclusion.commit` is a commit for (height, block_hash) reaching the fast quorum,
///   checked as a wq_proof commit (weights: genesis at epoch 0, else
///   `inclusion.telemetry`, with the same limitation).
pub fn verify_attestation(json: &[u8], genesis: &[u8]) -> Result<String, VerifyError> {
    let g = load_genesis(genesis)?;
    let d: AttestationDoc = serde_json::from_slice(json)
        .map_err(|e| VerifyError::malformed(format!("attestation.json is malformed: {e}")))?;
    if d.version != ATTESTATION_VERSION {
        return Err(VerifyError::malformed(format!(
            "version {:?} is not {ATTESTATION_VERSION:?}",
            d.version
        )));
    }
    let root = TrustRoot::from_genesis(&g);
    let (keyid, payload) = check_envelope(&d.envelope, "envelope", payload_type::POI, &root.keys, None)?;
    let pf = "envelope.payload";
    let a = PoiAttestation::decode(payload.as_slice())
        .map_err(|e| fail(pf, format!("does not decode as a PoiAttestation: {e}")))?;
    let id = hash_bytes(&payload);
    check_poi_fields(&a, &g, &keyid, pf)?;

    // The JSON view must be what was signed.
    let f = &d.attestation;
    let decoded = AttestationFields::from_proto(&a, Some(&id));
    if let Some(given) = &f.id {
        if *given != hex::encode(id) {
            return Err(fail(
                "attestation.id",
                format!("{given}, but the payload hashes to {}", hex::encode(id)),
            ));
        }
    }
    let mut f_cmp = f.clone();
    f_cmp.id = decoded.id.clone();
    if f_cmp != decoded {
        let name = first_difference(&f_cmp, &decoded);
        return Err(fail(&format!("attestation.{name}"), "differs from the signed payload"));
    }

    // Inclusion.
    let sig = unb64(&d.envelope.signatures[0].sig).map_err(|e| fail("envelope.signatures[0].sig", e))?;
    let leaf = merkle::leaf_hash(&id, &sig);
    let inc = check_inclusion(&g, &root, &d.inclusion, &leaf, MerkleRoot::Payload)?;
    let c = &inc.commit;
    Ok(format!(
        "valid: attestation {} by {} about {:?} (impact {} bps) included at height {} (block {}…, {} weight >= {} fast threshold)",
        hex::encode(id),
        a.attester,
        a.subject,
        a.impact_bps,
        inc.header.height,
        short_hex(&inc.block_hash),
        percent(c.share_bps),
        percent(c.threshold_bps),
    ))
}

/// The field rules of docs/PROTOCOL.md §10 that need no node state.
pub fn check_poi_fields(a: &PoiAttestation, g: &Genesis, signer: &str, field: &str) -> Result<(), VerifyError> {
    let f = |name: &str| format!("{field}.{name}");
    if a.version != "poi/1" {
        return Err(fail(&f("version"), format!("{:?}, expected \"poi/1\"", a.version)));
    }
    if a.chain_id != g.chain_id() {
        return Err(fail(
            &f("chain_id"),
            format!("{:?} is not this chain ({:?})", a.chain_id, g.chain_id()),
        ));
    }
    if g.members.index_of(&a.attester).is_none() {
        return Err(fail(&f("attester"), format!("{} is not a validator", a.attester)));
    }
    if a.attester != signer {
        return Err(fail(
            &f("attester"),
            format!("{} did not sign; {signer} did", a.attester),
        ));
    }
    if a.evidence_digest.len() != 32 {
        return Err(fail(
            &f("evidence_digest"),
            format!("{} bytes, expected 32", a.evidence_digest.len()),
        ));
    }
    if a.dimensions.is_empty() {
        return Err(fail(&f("dimensions"), "empty"));
    }
    if let Some((k, v)) = a.dimensions.iter().find(|(_, v)| **v > 10_000) {
        return Err(fail(&f("dimensions"), format!("{k} = {v} is above 10000 bps")));
    }
    let dims: BTreeSet<&String> = a.dimensions.keys().collect();
    let ws: BTreeSet<&String> = a.weights.keys().collect();
    if dims != ws {
        return Err(fail(&f("weights"), "names differ from the dimensions' names"));
    }
    let sum: u64 = a.weights.values().map(|&w| w as u64).sum();
    if sum != 10_000 {
        return Err(fail(&f("weights"), format!("sum to {sum}, expected 10000")));
    }
    let weighted: u64 = a
        .dimensions
        .iter()
        .map(|(k, &v)| v as u64 * a.weights[k] as u64)
        .sum::<u64>()
        / 10_000;
    if a.impact_bps as u64 != weighted {
        return Err(fail(
            &f("impact_bps"),
            format!("{}, but the weighted sum of the dimensions is {weighted}", a.impact_bps),
        ));
    }
    if a.window_start_ms > a.window_end_ms {
        return Err(fail(
            &f("window_start_ms"),
            format!("{} is after window_end_ms {}", a.window_start_ms, a.window_end_ms),
        ));
    }
    if a.nonce.len() < 16 {
        return Err(fail(
            &f("nonce"),
            format!("{} bytes, at least 16 required", a.nonce.len()),
        ));
    }
    Ok(())
}

fn first_difference(a: &AttestationFields, b: &AttestationFields) -> &'static str {
    if a.version != b.version {
        "version"
    } else if a.chain_id != b.chain_id {
        "chain_id"
    } else if a.attester != b.attester {
        "attester"
    } else if a.subject != b.subject {
        "subject"
    } else if a.evidence_digest != b.evidence_digest {
        "evidence_digest"
    } else if a.evidence_len != b.evidence_len {
        "evidence_len"
    } else if a.dimensions != b.dimensions {
        "dimensions"
    } else if a.weights != b.weights {
        "weights"
    } else if a.impact_bps != b.impact_bps {
        "impact_bps"
    } else if a.window_start_ms != b.window_start_ms {
        "window_start_ms"
    } else if a.window_end_ms != b.window_end_ms {
        "window_end_ms"
    } else {
        "nonce"
    }
}
