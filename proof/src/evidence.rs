//! `evidence.json`: committed equivocation evidence with its inclusion in a
//! finalized block, written by `bizra evidence`.

use crate::attestation::{commit_json, InclusionJson};
use crate::encoding::{b64, signed_vote_envelope, EnvelopeJson};
use crate::wq_proof::{CommitPart, Telemetry};
use bizra_proto::{evidence, CommittedEvidence};
use prost::Message;
use serde::{Deserialize, Serialize};

/// `version` of `evidence.json`.
pub const EVIDENCE_VERSION: &str = "evidence/1";
/// `kind` of duplicate-vote evidence in `evidence.json`.
pub const DUPLICATE_VOTE_KIND: &str = "duplicate-vote";

/// `evidence.json`: equivocation evidence committed on chain (issue 15).
/// `inclusion` is the shape of `attestation.json`'s, with the Merkle proof
/// against the header's `evidence_root` (leaf `merkle::leaf_hash(id, "")`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceDoc {
    /// Always [`EVIDENCE_VERSION`] when written.
    pub version: String,
    /// `duplicate-vote`.
    pub kind: String,
    /// The offending validator (the signer of both votes).
    pub validator: String,
    /// Hex `BLAKE3(encode(Evidence))` (extra key; checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The two conflicting votes, each a DSSE envelope of payloadType
    /// `application/vnd.bizra.vote+protobuf` over the encoded `Vote`, in the
    /// evidence's canonical order (lower block hash first).
    pub votes: Vec<EnvelopeJson>,
    /// Where the evidence was finalized.
    pub inclusion: InclusionJson,
}

impl EvidenceDoc {
    /// Pretty-printed JSON with a trailing newline, as written to `evidence.json`.
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("evidence serializes");
        s.push('\n');
        s
    }
}

/// Assembles `evidence.json` from a `GetEvidence` item, the commit tally of its
/// block (`GetCommit(height)`) and, optionally, the weights of its epoch. It
/// copies what it is given (the header's hash is the block hash written); it
/// checks nothing but that the parts are present: checking is
/// [`crate::verify`]'s job.
pub fn build_evidence_doc(
    ce: &CommittedEvidence,
    commit: &CommitPart,
    telemetry: Option<Telemetry>,
) -> Result<EvidenceDoc, String> {
    let ev = ce.evidence.as_ref().ok_or("no evidence")?;
    let d = match &ev.kind {
        Some(evidence::Kind::DuplicateVote(d)) => d,
        None => return Err("evidence of an unknown kind".into()),
    };
    let (first, second) = match (&d.first, &d.second) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err("duplicate-vote evidence without its two votes".into()),
    };
    let header = ce.header.as_ref().ok_or("no block header")?;
    let proof = ce.proof.as_ref().ok_or("no inclusion proof")?;
    let header_bytes = header.encode_to_vec();
    Ok(EvidenceDoc {
        version: EVIDENCE_VERSION.to_string(),
        kind: DUPLICATE_VOTE_KIND.to_string(),
        validator: ce.validator.clone(),
        id: Some(hex::encode(bizra_consensus::evidence::evidence_id(ev))),
        votes: vec![
            EnvelopeJson::from_proto(&signed_vote_envelope(first)),
            EnvelopeJson::from_proto(&signed_vote_envelope(second)),
        ],
        inclusion: InclusionJson {
            height: ce.height,
            block_hash: hex::encode(bizra_consensus::types::hash_bytes(&header_bytes)),
            proof: proof.into(),
            commit: commit_json(commit),
            header: b64(&header_bytes),
            telemetry,
        },
    })
}
