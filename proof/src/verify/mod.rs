//! Offline verification of `wq_proof.json`,
//! `attestation.json` (docs/PROTOCOL.md §9 and §10) and `evidence.json` (issue 15).
//! The file's `"version"` key picks the checker: `"wq-proof/1"`,
//! `"poi-attestation/1"` or `"evidence/1"`.
//!
//! `Ok` carries the one-line summary `bizra verify` prints. A check that fails
//! is [`VerifyError::Failed`], naming the failing field (`bizra verify` exits
//! 1); input that is not JSON of the schema, or a genesis that does not load, is
//! [`VerifyError::Malformed`] (exit 2).
//!
//! ## What a `wq_proof.json` must satisfy
//! * `chain_id` and `genesis_hash` are genesis's (BLAKE3 of the file's exact bytes);
//!   `height >= 1`; `deterministic_head` is `B{height}`.
//! * Every `validators[i]`: distinct genesis validator ids, `head == B{height}`,
//!   `block_hash == block_hash` of the proof; its `envelope` has payloadType
//!   `application/vnd.bizra.head-report+protobuf` and exactly one signature whose
//!   `keyid` is `validators[i].id`, valid under the one signature rule; the payload is a
//!   canonically encoded `HeadReport` for (chain_id, genesis_hash, height, block_hash,
//!   validator) of the JSON. `agreement` and `wq_head_agreement` are what those give.
//! * `commit.signatures`: each a `application/vnd.bizra.vote+protobuf` envelope with one
//!   valid signature by a genesis validator over a canonically encoded `Vote` that is a
//!   PRECOMMIT for (chain_id, height, block_hash) by that validator, all in one round,
//!   from distinct validators; `commit.signers` is exactly that set.
//! * Weights: the epoch of `height` is `(height - 1) / epoch_length`. In epoch 0 the
//!   weights are recomputed from genesis and `telemetry` must equal them. After epoch 0
//!   they depend on the chain's history (PoI carry, participation), which a verifier
//!   holding only genesis cannot replay: then `telemetry` is used, but it must give a
//!   weight and components for every genesis validator and no one else, each stake must
//!   be the genesis stake, `rep <= 10000`, `poi <= poi_cap`, and each weight must equal the
//!   `wq_weight` formula of genesis's parameters. **Limitation:** after epoch 0 a forged
//!   `poi`/`rep` within those bounds is not detected offline; the precommit signatures
//!   and the quorum still are checked.
//! * `signed_weight`, `total_weight` and `share_bps` equal the recomputed tally, which
//!   satisfies `signed * 10000 >= total * fast_threshold_bps` of genesis; `fast_final` is
//!   true; `economic_final`, when true, is backed by the precommits present.
//!
//! ## What an `attestation.json` must satisfy
//! See [`verify_attestation`].
//!
//! ## What an `evidence.json` must satisfy
//! See [`verify_evidence`].

mod attestation;
mod commit;
mod evidence;
#[cfg(test)]
mod tests;
mod weights;
mod wq_proof;

pub use attestation::{check_poi_fields, verify_attestation};
pub use commit::{check_commit, check_inclusion, CommitSummary, Included, MerkleRoot};
pub use evidence::verify_evidence;
pub use weights::{epoch_weights, telemetry_weights};
pub use wq_proof::{check_proof, check_wq_proof, ProofSummary};

use crate::attestation::ATTESTATION_VERSION;
use crate::encoding::{unb64, EnvelopeJson};
use crate::error::VerifyError;
use crate::evidence::EVIDENCE_VERSION;
use crate::wq_proof::WQ_PROOF_VERSION;
use bizra_consensus::genesis::Genesis;
use bizra_consensus::signing::{self, parse_validator_id};
use bizra_consensus::types::Hash;
use ed25519_dalek::VerifyingKey;
use prost::Message;
use std::collections::BTreeMap;

/// Checks either artifact, dispatching on its `"version"` key.
pub fn verify_document(json: &[u8], genesis: &[u8]) -> Result<String, VerifyError> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| VerifyError::malformed(format!("not JSON: {e}")))?;
    match v.get("version").and_then(|v| v.as_str()) {
        Some(WQ_PROOF_VERSION) => check_wq_proof(json, genesis),
        Some(ATTESTATION_VERSION) => verify_attestation(json, genesis),
        Some(EVIDENCE_VERSION) => verify_evidence(json, genesis),
        Some(other) => Err(VerifyError::malformed(format!(
            "version {other:?} is none of {WQ_PROOF_VERSION:?}, {ATTESTATION_VERSION:?}, {EVIDENCE_VERSION:?}"
        ))),
        None => Err(VerifyError::malformed("the file has no string \"version\" key")),
    }
}

// ---------------------------------------------------------------------------
// The trust root and shared checks
// ---------------------------------------------------------------------------

/// What a proof is checked against.
#[derive(Clone, Debug)]
pub struct TrustRoot {
    /// The chain id from genesis.
    pub chain_id: String,
    /// Hash of the genesis file.
    pub genesis_hash: Hash,
    /// The validator set: id -> public key.
    pub keys: BTreeMap<String, VerifyingKey>,
    /// `(fast_threshold_bps, economic_threshold_bps)` from genesis. `None` when
    /// unknown (`bizra wq-proof` without `--genesis`): the quorum is then checked at
    /// the lowest threshold any genesis may set, and finality flags are not judged.
    pub thresholds: Option<(u32, u32)>,
}

impl TrustRoot {
    /// The trust root of a parsed genesis: its chain id, hash, validator keys and finality thresholds.
    pub fn from_genesis(g: &Genesis) -> Self {
        TrustRoot {
            chain_id: g.chain_id().to_string(),
            genesis_hash: g.hash,
            keys: g.members.iter().map(|m| (m.id.clone(), m.key)).collect(),
            thresholds: Some((g.params().fast_threshold_bps, g.params().economic_threshold_bps)),
        }
    }
}

fn fail(field: &str, msg: impl std::fmt::Display) -> VerifyError {
    VerifyError::failed(field, msg)
}

/// Loads genesis bytes; failure is bad input (exit 2).
pub fn load_genesis(bytes: &[u8]) -> Result<Genesis, VerifyError> {
    Genesis::from_bytes(bytes).map_err(|e| VerifyError::malformed(format!("genesis: {e}")))
}

/// Checks a DSSE envelope of `ptype` with exactly one signature by a member of
/// `keys` (and by `expected` when given); returns the keyid and the payload.
pub fn check_envelope(
    env: &EnvelopeJson,
    field: &str,
    ptype: &str,
    keys: &BTreeMap<String, VerifyingKey>,
    expected: Option<&str>,
) -> Result<(String, Vec<u8>), VerifyError> {
    if env.payload_type != ptype {
        return Err(fail(
            &format!("{field}.payloadType"),
            format!("{:?}, expected {ptype:?}", env.payload_type),
        ));
    }
    let sig = match env.signatures.as_slice() {
        [s] => s,
        s => {
            return Err(fail(
                &format!("{field}.signatures"),
                format!("{} signatures, expected exactly one", s.len()),
            ))
        }
    };
    let kf = format!("{field}.signatures[0].keyid");
    let key = keys
        .get(&sig.keyid)
        .ok_or_else(|| fail(&kf, format!("{} is not a validator of this genesis", sig.keyid)))?;
    if let Some(want) = expected {
        if sig.keyid != want {
            return Err(fail(&kf, format!("{} is not the expected signer {want}", sig.keyid)));
        }
    }
    let payload = unb64(&env.payload).map_err(|e| fail(&format!("{field}.payload"), e))?;
    let sf = format!("{field}.signatures[0].sig");
    let sig_bytes = unb64(&sig.sig).map_err(|e| fail(&sf, e))?;
    signing::verify(key, ptype, &payload, &sig_bytes).map_err(|e| fail(&sf, e))?;
    Ok((sig.keyid.clone(), payload))
}

/// Decodes a payload and requires the canonical encoding (re-encoding yields
/// the same bytes), so the JSON view and the signed bytes cannot diverge.
fn decode_canonical<M: Message + Default>(payload: &[u8], field: &str) -> Result<M, VerifyError> {
    let m = M::decode(payload).map_err(|e| fail(field, format!("payload does not decode: {e}")))?;
    if m.encode_to_vec() != payload {
        return Err(fail(field, "payload is not canonically encoded"));
    }
    Ok(m)
}

/// Validator keys from ids (for `bizra wq-proof`, which learns the set over gRPC).
pub fn keys_from_ids<'a>(
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, VerifyingKey>, VerifyError> {
    ids.into_iter()
        .map(|id| {
            parse_validator_id(id)
                .map(|k| (id.to_string(), k))
                .map_err(|e| fail(&format!("validator id {id:?}"), e))
        })
        .collect()
}
