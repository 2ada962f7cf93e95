//! `attestation.json`: a PoI attestation with its inclusion in a finalized
//! block, written by `bizra attest --wait`. [`InclusionJson`] is shared with
//! `evidence.json`.

use crate::encoding::{b64, EnvelopeJson, Weight};
use crate::wq_proof::{CommitPart, ProofCommit, Telemetry};
use bizra_consensus::types::Hash;
use bizra_proto::{BlockHeader, Envelope, InclusionProof, PoiAttestation};
use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `version` of `attestation.json`.
pub const ATTESTATION_VERSION: &str = "poi-attestation/1";

/// The decoded fields of a `PoiAttestation`, as written in `attestation.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationFields {
    /// Hex BLAKE3 of the payload (extra key; checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Attestation format version (`"poi/1"`).
    pub version: String,
    /// The chain the attestation is for.
    pub chain_id: String,
    /// Validator id (hex public key) of the attester, who signed the envelope.
    pub attester: String,
    /// Who the attestation is about; a validator id other than the attester earns that validator PoI.
    pub subject: String,
    /// Hex.
    pub evidence_digest: String,
    /// Length of the evidence, in bytes.
    pub evidence_len: u64,
    /// Dimension name to value, in bps (0..=10000).
    pub dimensions: BTreeMap<String, u32>,
    /// Dimension name to weight, in bps; the same names, summing to 10000.
    pub weights: BTreeMap<String, u32>,
    /// Weighted sum of `dimensions`, in bps, rounded down.
    pub impact_bps: u32,
    /// Start of the observed window, Unix time in ms.
    pub window_start_ms: u64,
    /// End of the observed window, Unix time in ms (not before `window_start_ms`).
    pub window_end_ms: u64,
    /// Hex.
    pub nonce: String,
}

impl AttestationFields {
    /// The fields of a decoded `PoiAttestation`, hex-encoding the byte fields; `id` is the attestation id if given.
    pub fn from_proto(a: &PoiAttestation, id: Option<&Hash>) -> Self {
        AttestationFields {
            id: id.map(hex::encode),
            version: a.version.clone(),
            chain_id: a.chain_id.clone(),
            attester: a.attester.clone(),
            subject: a.subject.clone(),
            evidence_digest: hex::encode(&a.evidence_digest),
            evidence_len: a.evidence_len,
            dimensions: a.dimensions.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            weights: a.weights.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            impact_bps: a.impact_bps,
            window_start_ms: a.window_start_ms,
            window_end_ms: a.window_end_ms,
            nonce: hex::encode(&a.nonce),
        }
    }
}

/// A Merkle inclusion proof (see `bizra_consensus::merkle`): siblings bottom-up, hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleProofJson {
    /// Position of the leaf among the leaves, from 0.
    pub leaf_index: u64,
    /// Number of leaves in the tree.
    pub leaf_count: u64,
    /// Hex sibling hashes, from the leaf level up to the root.
    pub siblings: Vec<String>,
}

impl From<&InclusionProof> for MerkleProofJson {
    fn from(p: &InclusionProof) -> Self {
        MerkleProofJson {
            leaf_index: p.leaf_index,
            leaf_count: p.leaf_count,
            siblings: p.siblings.iter().map(hex::encode).collect(),
        }
    }
}

/// Where an attestation or evidence was finalized, with everything needed to
/// check it offline. `proof` leads to the header's `payload_root`
/// (`attestation.json`) or `evidence_root` (`evidence.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionJson {
    /// Height of the block that includes the item.
    pub height: u64,
    /// Hex hash of that block: BLAKE3 of the header bytes that `header` holds.
    pub block_hash: String,
    /// Merkle proof of the item's leaf under the header's root.
    pub proof: MerkleProofJson,
    /// The block's commit certificate with its weight tally.
    pub commit: ProofCommit,
    /// Base64 of the protobuf-encoded `BlockHeader`; `block_hash` = BLAKE3 of these bytes.
    pub header: String,
    /// Weights of the height's epoch. Required after epoch 0, where they cannot
    /// be recomputed from genesis alone; checked against genesis at epoch 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Telemetry>,
}

/// `attestation.json` (docs/PROTOCOL.md §9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationDoc {
    /// Always [`ATTESTATION_VERSION`] when written.
    pub version: String,
    /// The signed attestation as submitted (payload type `application/vnd.bizra.poi+protobuf`).
    pub envelope: EnvelopeJson,
    /// The envelope's payload, decoded for reading.
    pub attestation: AttestationFields,
    /// Where the attestation was finalized.
    pub inclusion: InclusionJson,
}

impl AttestationDoc {
    /// Pretty-printed JSON with a trailing newline, as written to `attestation.json`.
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("attestation serializes");
        s.push('\n');
        s
    }
}

/// A commit tally as served by `GetCommit`, in the proof's JSON shape.
pub fn commit_json(c: &CommitPart) -> ProofCommit {
    ProofCommit {
        signers: c.signers.clone(),
        signatures: c.signatures.iter().map(EnvelopeJson::from_proto).collect(),
        signed_weight: Weight(c.signed_weight),
        total_weight: Weight(c.total_weight),
        share_bps: c.share_bps,
        fast_final: c.fast_final,
        economic_final: c.economic_final,
    }
}

/// Assembles `attestation.json` (for `bizra attest --wait`). The envelope must
/// carry a `PoiAttestation` payload; returns an error if it does not decode.
pub fn build_attestation_doc(
    envelope: &Envelope,
    height: u64,
    header: &BlockHeader,
    proof: &InclusionProof,
    commit: &CommitPart,
    telemetry: Option<Telemetry>,
) -> Result<AttestationDoc, String> {
    let att = PoiAttestation::decode(envelope.payload.as_slice()).map_err(|e| format!("payload: {e}"))?;
    let id = bizra_consensus::types::hash_bytes(&envelope.payload);
    let header_bytes = header.encode_to_vec();
    Ok(AttestationDoc {
        version: ATTESTATION_VERSION.to_string(),
        envelope: EnvelopeJson::from_proto(envelope),
        attestation: AttestationFields::from_proto(&att, Some(&id)),
        inclusion: InclusionJson {
            height,
            block_hash: hex::encode(bizra_consensus::types::hash_bytes(&header_bytes)),
            proof: proof.into(),
            commit: commit_json(commit),
            header: b64(&header_bytes),
            telemetry,
        },
    })
}
