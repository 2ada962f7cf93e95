//! The JSON artifacts of CONTRACT section 6 (`wq_proof.json`, `attestation.json`,
//! `evidence.json`) and their DSSE envelope form, shared by `bizra wq-proof`,
//! `bizra attest`, `bizra evidence` and `bizra verify`.
//!
//! Encoding rules (what an outside verifier can rely on):
//! * DSSE envelope: `{"payloadType", "payload": base64, "signatures": [{"keyid", "sig": base64}]}`,
//!   base64 being the standard alphabet with padding (RFC 4648 section 4); `keyid` is the
//!   signer's validator id (lower-case hex of its Ed25519 public key).
//! * Hashes, ids, digests and nonces: lower-case hex.
//! * Weights (`signed_weight`, `total_weight`, `telemetry.wq_weight`) are u128 and are
//!   written as JSON strings of decimal digits, e.g. `"3309300"`, because JSON numbers above
//!   2^53 are not portable. Readers accept a JSON integer too.
//! * Every other integer is a JSON number.
//!
//! [`build_proof`] assembles a `wq_proof.json` from collected parts; `bizra wq-proof`
//! and the tests both use it. [`fixture`] builds signed proofs offline.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bizra_consensus::signing::Signer;
use bizra_consensus::types::{block_label, short_hex, Hash};
use bizra_consensus::weights::Components;
use bizra_proto::{
    evidence, payload_type, BlockHeader, CommittedEvidence, Envelope, EnvelopeSignature, InclusionProof,
    PoiAttestation, SignedVote,
};
use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// `version` of `wq_proof.json`.
pub const WQ_PROOF_VERSION: &str = "wq-proof/1";
/// `version` of `attestation.json`.
pub const ATTESTATION_VERSION: &str = "poi-attestation/1";
/// `version` of `evidence.json`.
pub const EVIDENCE_VERSION: &str = "evidence/1";
/// `kind` of duplicate-vote evidence in `evidence.json`.
pub const DUPLICATE_VOTE_KIND: &str = "duplicate-vote";

// ---------------------------------------------------------------------------
// u128 as a decimal string
// ---------------------------------------------------------------------------

/// A u128 weight: written as a JSON string of decimal digits, read from such a
/// string or from a JSON integer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Weight(pub u128);

impl Serialize for Weight {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

/// Parses a decimal u128: digits only, no sign, no spaces.
pub fn parse_u128(s: &str) -> Option<u128> {
    if s.is_empty() || s.len() > 39 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Weight;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a non-negative integer weight, as a string of decimal digits or a JSON integer")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Weight, E> {
                parse_u128(v)
                    .map(Weight)
                    .ok_or_else(|| E::custom(format!("weight {v:?} is not a decimal u128")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Weight, E> {
                Ok(Weight(v as u128))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Weight, E> {
                Ok(Weight(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Weight, E> {
                u128::try_from(v)
                    .map(Weight)
                    .map_err(|_| E::custom(format!("weight {v} is negative")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Weight, E> {
                Err(E::custom(format!(
                    "weight {v} is not an exact integer; write large weights as decimal strings"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// DSSE envelopes
// ---------------------------------------------------------------------------

/// One DSSE signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureJson {
    /// The signer's validator id (lower-case hex public key).
    pub keyid: String,
    /// Base64 of the 64-byte Ed25519 signature.
    pub sig: String,
}

/// A DSSE envelope in its JSON form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeJson {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 of the payload (a protobuf encoding).
    pub payload: String,
    pub signatures: Vec<SignatureJson>,
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Strict base64: standard alphabet, canonical padding, no whitespace.
pub fn unb64(s: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(s)
        .map_err(|e| format!("not standard padded base64 ({e})"))
}

/// Strict lower-case hex.
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return Err(format!("{s:?} is not lower-case hex"));
    }
    hex::decode(s).map_err(|e| format!("{s:?} is not hex ({e})"))
}

/// Strict lower-case hex of a 32-byte hash.
pub fn unhex_hash(s: &str) -> Result<Hash, String> {
    let b = unhex(s)?;
    b.as_slice()
        .try_into()
        .map_err(|_| format!("{s:?} is {} bytes, a hash has 32", b.len()))
}

impl EnvelopeJson {
    pub fn from_proto(e: &Envelope) -> Self {
        EnvelopeJson {
            payload_type: e.payload_type.clone(),
            payload: b64(&e.payload),
            signatures: e
                .signatures
                .iter()
                .map(|s| SignatureJson {
                    keyid: s.keyid.clone(),
                    sig: b64(&s.sig),
                })
                .collect(),
        }
    }

    /// Decodes the base64 fields. The error names the field that failed.
    pub fn to_proto(&self) -> Result<Envelope, String> {
        let payload = unb64(&self.payload).map_err(|e| format!("payload: {e}"))?;
        let signatures = self
            .signatures
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(EnvelopeSignature {
                    keyid: s.keyid.clone(),
                    sig: unb64(&s.sig).map_err(|e| format!("signatures[{i}].sig: {e}"))?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Envelope {
            payload_type: self.payload_type.clone(),
            payload,
            signatures,
        })
    }
}

/// Signs `payload` as a one-signature DSSE envelope.
pub fn sign_envelope(signer: &Signer, payload_type: &str, payload: Vec<u8>) -> Envelope {
    let sig = signer.sign(payload_type, &payload);
    Envelope {
        payload_type: payload_type.to_string(),
        payload,
        signatures: vec![EnvelopeSignature {
            keyid: signer.id().to_string(),
            sig: sig.to_vec(),
        }],
    }
}

/// A certificate's precommit as a DSSE envelope: payload = the encoded vote,
/// keyid = the vote's validator. The signature is unchanged (it is over the same PAE).
pub fn signed_vote_envelope(sv: &SignedVote) -> Envelope {
    let vote = sv.vote.clone().unwrap_or_default();
    Envelope {
        payload_type: payload_type::VOTE.to_string(),
        payload: vote.encode_to_vec(),
        signatures: vec![EnvelopeSignature {
            keyid: vote.validator,
            sig: sv.signature.clone(),
        }],
    }
}

// ---------------------------------------------------------------------------
// wq_proof.json
// ---------------------------------------------------------------------------

/// One queried validator in `wq_proof.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofValidator {
    /// Validator id (hex public key) of the node behind `endpoint`.
    pub id: String,
    /// The gRPC endpoint queried.
    pub endpoint: String,
    /// `B{height}` of the proof height.
    pub head: String,
    /// Hex block hash this validator finalized at the proof height.
    pub block_hash: String,
    /// DSSE envelope over `HeadReport` for exactly the proof height, signed by `id`.
    pub envelope: EnvelopeJson,
}

/// The commit certificate of the proof height, with its weight tally.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofCommit {
    pub signers: Vec<String>,
    /// DSSE envelopes of the precommit votes.
    pub signatures: Vec<EnvelopeJson>,
    pub signed_weight: Weight,
    pub total_weight: Weight,
    pub share_bps: u32,
    pub fast_final: bool,
    pub economic_final: bool,
}

/// `wq_weight` components of one validator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentsJson {
    pub stake: u64,
    pub poi: u64,
    pub rep: u64,
}

impl From<Components> for ComponentsJson {
    fn from(c: Components) -> Self {
        ComponentsJson {
            stake: c.stake,
            poi: c.poi,
            rep: c.rep,
        }
    }
}

impl From<ComponentsJson> for Components {
    fn from(c: ComponentsJson) -> Self {
        Components {
            stake: c.stake,
            poi: c.poi,
            rep: c.rep,
        }
    }
}

/// Weights of the epoch that certifies the proof height, per validator id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telemetry {
    pub wq_weight: BTreeMap<String, Weight>,
    pub components: BTreeMap<String, ComponentsJson>,
    /// Validators jailed in this epoch for committed evidence (wq_weight 0),
    /// each with the first epoch it is free again (ADR 0014). Absent in
    /// artifacts written before jailing existed: read as none.
    #[serde(default)]
    pub jailed: BTreeMap<String, u64>,
}

/// `wq_proof.json` (CONTRACT section 6). Unknown keys are ignored when reading.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WqProof {
    pub version: String,
    pub chain_id: String,
    pub genesis_hash: String,
    pub height: u64,
    pub block_hash: String,
    pub deterministic_head: String,
    pub agreement: String,
    pub wq_head_agreement: bool,
    pub validators: Vec<ProofValidator>,
    pub commit: ProofCommit,
    pub telemetry: Telemetry,
    /// The epoch whose weights `telemetry` holds (extra key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_epoch: Option<u64>,
    /// Why telemetry is not from the proof height's epoch, if it is not (extra key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_note: Option<String>,
}

impl WqProof {
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("proof serializes");
        s.push('\n');
        s
    }
}

/// What one endpoint said about the proof height.
#[derive(Clone, Debug)]
pub struct HeadPart {
    pub id: String,
    pub endpoint: String,
    pub block_hash: Hash,
    /// The signed `HeadReport` envelope.
    pub envelope: Envelope,
}

/// The commit of the proof height as served by `GetCommit`.
#[derive(Clone, Debug, Default)]
pub struct CommitPart {
    pub signers: Vec<String>,
    /// Precommit votes as DSSE envelopes.
    pub signatures: Vec<Envelope>,
    pub signed_weight: u128,
    pub total_weight: u128,
    pub share_bps: u32,
    pub fast_final: bool,
    pub economic_final: bool,
}

/// One validator's weight and components, from `GetValidators`.
#[derive(Clone, Debug)]
pub struct TelemetryPart {
    pub id: String,
    pub wq_weight: u128,
    pub components: Components,
    /// While jailed: the first epoch the validator is free again.
    pub jailed_until: Option<u64>,
}

/// Everything `build_proof` needs.
#[derive(Clone, Debug)]
pub struct ProofParts {
    pub chain_id: String,
    pub genesis_hash: Hash,
    pub height: u64,
    /// The hash the commit certifies (the first endpoint's block).
    pub block_hash: Hash,
    /// One per queried endpoint, in the order queried.
    pub heads: Vec<HeadPart>,
    pub commit: CommitPart,
    pub telemetry: Vec<TelemetryPart>,
    pub telemetry_epoch: Option<u64>,
    pub telemetry_note: Option<String>,
}

/// The agreement string: each endpoint's label for `height` joined with `/`.
/// When the hashes are not all equal, every label carries `:` plus the first
/// 8 hex digits of its hash. Returns the string and whether all hashes agree.
pub fn agreement(height: u64, hashes: &[Hash]) -> (String, bool) {
    let all_equal = hashes.windows(2).all(|w| w[0] == w[1]);
    let label = block_label(height);
    let parts: Vec<String> = hashes
        .iter()
        .map(|h| {
            if all_equal {
                label.clone()
            } else {
                format!("{label}:{}", short_hex(h))
            }
        })
        .collect();
    (parts.join("/"), all_equal)
}

/// `12.34%` from basis points.
pub fn percent(bps: u32) -> String {
    format!("{}.{:02}%", bps / 100, bps % 100)
}

/// The line `bizra wq-proof` prints last, e.g.
/// `B3/B3/B3 agreement at height 3 (head 9f2c1a3b…, 100.00% weight)`.
pub fn agreement_line(p: &WqProof) -> String {
    let word = if p.wq_head_agreement {
        "agreement"
    } else {
        "disagreement"
    };
    format!(
        "{} {word} at height {} (head {}…, {} weight)",
        p.agreement,
        p.height,
        &p.block_hash[..p.block_hash.len().min(8)],
        percent(p.commit.share_bps)
    )
}

/// Assembles `wq_proof.json` from collected parts. It copies what the parts
/// say (including the node's weight tally) and derives `agreement`,
/// `wq_head_agreement` and the labels; it checks nothing: checking is
/// [`crate::cli::verify`]'s job.
pub fn build_proof(p: &ProofParts) -> WqProof {
    let hashes: Vec<Hash> = p.heads.iter().map(|h| h.block_hash).collect();
    let (agreement, agree) = agreement(p.height, &hashes);
    WqProof {
        version: WQ_PROOF_VERSION.to_string(),
        chain_id: p.chain_id.clone(),
        genesis_hash: hex::encode(p.genesis_hash),
        height: p.height,
        block_hash: hex::encode(p.block_hash),
        deterministic_head: block_label(p.height),
        agreement,
        wq_head_agreement: agree && hashes.first() == Some(&p.block_hash),
        validators: p
            .heads
            .iter()
            .map(|h| ProofValidator {
                id: h.id.clone(),
                endpoint: h.endpoint.clone(),
                head: block_label(p.height),
                block_hash: hex::encode(h.block_hash),
                envelope: EnvelopeJson::from_proto(&h.envelope),
            })
            .collect(),
        commit: ProofCommit {
            signers: p.commit.signers.clone(),
            signatures: p.commit.signatures.iter().map(EnvelopeJson::from_proto).collect(),
            signed_weight: Weight(p.commit.signed_weight),
            total_weight: Weight(p.commit.total_weight),
            share_bps: p.commit.share_bps,
            fast_final: p.commit.fast_final,
            economic_final: p.commit.economic_final,
        },
        telemetry: Telemetry {
            wq_weight: p
                .telemetry
                .iter()
                .map(|t| (t.id.clone(), Weight(t.wq_weight)))
                .collect(),
            components: p
                .telemetry
                .iter()
                .map(|t| (t.id.clone(), t.components.into()))
                .collect(),
            jailed: p
                .telemetry
                .iter()
                .filter_map(|t| Some((t.id.clone(), t.jailed_until?)))
                .collect(),
        },
        telemetry_epoch: p.telemetry_epoch,
        telemetry_note: p.telemetry_note.clone(),
    }
}

// ---------------------------------------------------------------------------
// attestation.json
// ---------------------------------------------------------------------------

/// The decoded fields of a `PoiAttestation`, as written in `attestation.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationFields {
    /// Hex BLAKE3 of the payload (extra key; checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub version: String,
    pub chain_id: String,
    pub attester: String,
    pub subject: String,
    /// Hex.
    pub evidence_digest: String,
    pub evidence_len: u64,
    pub dimensions: BTreeMap<String, u32>,
    pub weights: BTreeMap<String, u32>,
    pub impact_bps: u32,
    pub window_start_ms: u64,
    pub window_end_ms: u64,
    /// Hex.
    pub nonce: String,
}

impl AttestationFields {
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
    pub leaf_index: u64,
    pub leaf_count: u64,
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
    pub height: u64,
    pub block_hash: String,
    pub proof: MerkleProofJson,
    pub commit: ProofCommit,
    /// Base64 of the protobuf-encoded `BlockHeader`; `block_hash` = BLAKE3 of these bytes.
    pub header: String,
    /// Weights of the height's epoch. Required after epoch 0, where they cannot
    /// be recomputed from genesis alone; checked against genesis at epoch 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Telemetry>,
}

/// `attestation.json` (CONTRACT section 6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationDoc {
    pub version: String,
    pub envelope: EnvelopeJson,
    pub attestation: AttestationFields,
    pub inclusion: InclusionJson,
}

impl AttestationDoc {
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

// ---------------------------------------------------------------------------
// evidence.json
// ---------------------------------------------------------------------------

/// `evidence.json`: equivocation evidence committed on chain (issue 15).
/// `inclusion` is the shape of `attestation.json`'s, with the Merkle proof
/// against the header's `evidence_root` (leaf `merkle::leaf_hash(id, "")`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceDoc {
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
    pub inclusion: InclusionJson,
}

impl EvidenceDoc {
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
/// [`crate::cli::verify`]'s job.
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

// ---------------------------------------------------------------------------
// Offline fixtures
// ---------------------------------------------------------------------------

/// Signed proofs built offline from deterministic keys, for tests and tooling.
pub mod fixture {
    use super::*;
    use bizra_consensus::chain::ChainState;
    use bizra_consensus::genesis::{Genesis, GenesisDoc, GenesisParams, GenesisValidator};
    use bizra_consensus::messages::{new_vote, sign_vote};
    use bizra_consensus::quorum;
    use bizra_proto::{HeadReport, VoteKind};

    /// Block 2 of [`Fixture::evidence_chain`], its evidence of interest and the
    /// `GetEvidence` item for it.
    pub struct EvidenceChain {
        pub block: bizra_proto::Block,
        pub evidence: bizra_proto::Evidence,
        pub committed: bizra_proto::CommittedEvidence,
    }

    /// A genesis of `n` validators with their signers, and one block.
    pub struct Fixture {
        pub genesis_bytes: Vec<u8>,
        pub genesis: Genesis,
        pub signers: Vec<Signer>,
        pub height: u64,
        pub block_hash: Hash,
        pub round: u32,
    }

    impl Fixture {
        /// `n` validators with keys derived from `seed`, proving `height`.
        pub fn new(n: usize, height: u64, seed: u8) -> Self {
            let signers: Vec<Signer> = (0..n)
                .map(|i| {
                    let mut s = [seed; 32];
                    s[0] = i as u8;
                    Signer::from_secret(s)
                })
                .collect();
            let doc = GenesisDoc {
                chain_id: format!("bizra-fixture-{seed}"),
                genesis_time_ms: 1_700_000_000_000,
                params: GenesisParams::default(),
                validators: signers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| GenesisValidator {
                        id: s.id().to_string(),
                        stake: 1000 + 500 * i as u64,
                        name: format!("validator-{i}"),
                    })
                    .collect(),
            };
            let (genesis, genesis_bytes) = Genesis::from_doc(&doc).expect("fixture genesis");
            let block_hash = bizra_consensus::types::hash_bytes(format!("block {height} of {seed}").as_bytes());
            Fixture {
                genesis_bytes,
                genesis,
                signers,
                height,
                block_hash,
                round: 0,
            }
        }

        pub fn chain_id(&self) -> &str {
            self.genesis.chain_id()
        }

        /// A head report of validator `i` for (`height`, `hash`).
        pub fn head_report(&self, i: usize, height: u64, hash: Hash) -> Envelope {
            let r = HeadReport {
                chain_id: self.chain_id().to_string(),
                genesis_hash: self.genesis.hash.to_vec(),
                height,
                block_hash: hash.to_vec(),
                validator: self.signers[i].id().to_string(),
                time_ms: 1_700_000_000_000 + height * 1000,
            };
            sign_envelope(&self.signers[i], payload_type::HEAD_REPORT, r.encode_to_vec())
        }

        /// A precommit of validator `i` for `hash` at the fixture height, as an envelope.
        pub fn precommit(&self, i: usize, hash: Hash) -> Envelope {
            let v = new_vote(
                self.chain_id(),
                self.height,
                self.round,
                VoteKind::Precommit,
                Some(hash),
                self.signers[i].id(),
            );
            signed_vote_envelope(&sign_vote(&self.signers[i], v))
        }

        /// Epoch-0 weights from genesis, per member in genesis order.
        pub fn weights(&self) -> Vec<(String, u128, Components)> {
            let w = ChainState::genesis(&self.genesis).weights;
            self.genesis
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| (m.id.clone(), w.weights[i], w.components[i]))
                .collect()
        }

        /// The commit of `signers` (validator indices) for `hash` at the fixture
        /// height, tallied with the epoch-0 weights and genesis thresholds.
        pub fn commit_part(&self, signers: &[usize], hash: Hash) -> CommitPart {
            let weights = self.weights();
            let total: u128 = weights.iter().map(|w| w.1).sum();
            let signed: u128 = signers.iter().map(|&i| weights[i].1).sum();
            let p = self.genesis.params();
            CommitPart {
                signers: signers.iter().map(|&i| self.signers[i].id().to_string()).collect(),
                signatures: signers.iter().map(|&i| self.precommit(i, hash)).collect(),
                signed_weight: signed,
                total_weight: total,
                share_bps: quorum::share_bps(signed, total),
                fast_final: quorum::reaches(signed, total, p.fast_threshold_bps),
                economic_final: quorum::reaches(signed, total, p.economic_threshold_bps),
            }
        }

        /// Epoch-0 telemetry of every validator.
        pub fn telemetry_parts(&self) -> Vec<TelemetryPart> {
            self.weights()
                .into_iter()
                .map(|(id, wq_weight, components)| TelemetryPart {
                    id,
                    wq_weight,
                    components,
                    jailed_until: None,
                })
                .collect()
        }

        /// Parts of a proof queried from validators `queried` (with the given
        /// hashes, `None` = the fixture's block) and committed by `signers`.
        pub fn parts(&self, queried: &[(usize, Option<Hash>)], signers: &[usize]) -> ProofParts {
            ProofParts {
                chain_id: self.chain_id().to_string(),
                genesis_hash: self.genesis.hash,
                height: self.height,
                block_hash: self.block_hash,
                heads: queried
                    .iter()
                    .map(|&(i, h)| {
                        let h = h.unwrap_or(self.block_hash);
                        HeadPart {
                            id: self.signers[i].id().to_string(),
                            endpoint: format!("http://127.0.0.1:{}", 7600 + i),
                            block_hash: h,
                            envelope: self.head_report(i, self.height, h),
                        }
                    })
                    .collect(),
                commit: self.commit_part(signers, self.block_hash),
                telemetry: self.telemetry_parts(),
                telemetry_epoch: Some(bizra_consensus::types::epoch_of(
                    self.height,
                    self.genesis.params().epoch_length,
                )),
                telemetry_note: None,
            }
        }

        /// A real two-block chain on this genesis (each block validated by
        /// [`ChainState::validate_block`], block 2 on block 1's commit by all):
        /// block 2 carries two pieces of duplicate-vote evidence about height 1,
        /// validator 1's conflicting precommits (round 0), then `offender`'s
        /// conflicting prevotes (round 0). The fixture moves to height 2 and
        /// block 2's hash; the answer is what `GetEvidence` would serve for
        /// `offender`'s evidence (index 1 of 2 in the block), with block 2's
        /// commit certificate by all validators.
        pub fn evidence_chain(&mut self, offender: usize) -> EvidenceChain {
            use bizra_consensus::evidence;
            use bizra_proto::{CommitCertificate, CommittedEvidence};
            let g = &self.genesis;
            let mut state = ChainState::genesis(g);
            let proposer = |s: &ChainState| g.members.get(s.proposer(0)).id.clone();
            let b1 = state.build_block(g, &proposer(&state), g.doc.genesis_time_ms + 1000, None, vec![]);
            let h1 = state.validate_block(g, &b1).expect("fixture block 1 is valid");
            state.apply(g, &b1, h1);
            let cert = |height: u64, hash: Hash| CommitCertificate {
                height,
                round: 0,
                block_hash: hash.to_vec(),
                precommits: self
                    .signers
                    .iter()
                    .map(|s| {
                        sign_vote(
                            s,
                            new_vote(self.chain_id(), height, 0, VoteKind::Precommit, Some(hash), s.id()),
                        )
                    })
                    .collect(),
            };
            let conflict = |who: usize, kind: VoteKind| {
                let s = &self.signers[who];
                let other = bizra_consensus::types::hash_bytes(format!("not block 1 ({who})").as_bytes());
                evidence::duplicate_vote(
                    sign_vote(s, new_vote(self.chain_id(), 1, 0, kind, Some(h1), s.id())),
                    sign_vote(s, new_vote(self.chain_id(), 1, 0, kind, Some(other), s.id())),
                )
                .expect("the hashes differ")
            };
            let evs = vec![conflict(1, VoteKind::Precommit), conflict(offender, VoteKind::Prevote)];
            let b2 = state.build_block_with(
                g,
                &proposer(&state),
                state.last_time_ms + 1000,
                Some(cert(1, h1)),
                vec![],
                evs.clone(),
            );
            let h2 = state
                .validate_block(g, &b2)
                .expect("fixture block 2 (with evidence) is valid");
            let leaves: Vec<Hash> = evs.iter().map(evidence::leaf).collect();
            let committed = CommittedEvidence {
                evidence: Some(evs[1].clone()),
                id: hex::encode(evidence::evidence_id(&evs[1])),
                validator: self.signers[offender].id().to_string(),
                height: 2,
                block_hash: h2.to_vec(),
                proof: Some(InclusionProof {
                    leaf_index: 1,
                    leaf_count: 2,
                    siblings: bizra_consensus::merkle::proof(&leaves, 1)
                        .expect("leaf 1 of 2")
                        .iter()
                        .map(|s| s.to_vec())
                        .collect(),
                }),
                commit: Some(cert(2, h2)),
                header: b2.header.clone(),
            };
            self.height = 2;
            self.block_hash = h2;
            self.round = 0;
            EvidenceChain {
                block: b2,
                evidence: evs[1].clone(),
                committed,
            }
        }

        /// `evidence.json` of [`Fixture::evidence_chain`]'s evidence, committed by
        /// `signers` (validator indices) with epoch-0 telemetry.
        pub fn evidence_doc(&self, chain: &EvidenceChain, signers: &[usize]) -> EvidenceDoc {
            let commit = self.commit_part(signers, self.block_hash);
            let telemetry = build_proof(&self.parts(&[], signers)).telemetry;
            build_evidence_doc(&chain.committed, &commit, Some(telemetry)).expect("fixture evidence doc")
        }

        /// A valid proof: validators 0..3 queried and agreeing, all validators signing.
        pub fn valid_proof(&self) -> WqProof {
            let n = self.signers.len();
            let queried: Vec<(usize, Option<Hash>)> = (0..n.min(3)).map(|i| (i, None)).collect();
            let signers: Vec<usize> = (0..n).collect();
            build_proof(&self.parts(&queried, &signers))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
