//! Proof-of-Impact attestation rules (docs/PROTOCOL.md §10).
//!
//! An attestation is a DSSE envelope whose payload is the protobuf encoding of
//! [`PoiAttestation`], payload type `application/vnd.bizra.poi+protobuf`, with
//! exactly one signature by the attester (a validator). Its id is the BLAKE3
//! of the payload bytes ([`attestation_id`]).
//!
//! [`check`] is the one gate: the node runs it on `SubmitAttestation`, on
//! gossip and on every attestation of a proposed block. It is pure; the time
//! comes in as `now_ms`. The rules, in the order they are checked (cheap and
//! structural first, the signature only for members, then the content):
//!
//! | # | rule | error | kind |
//! |---|------|-------|------|
//! | 1 | encoded envelope at most [`MAX_ATTESTATION_BYTES`] | [`PoiError::TooLarge`] | too large |
//! | 2 | payload type is `application/vnd.bizra.poi+protobuf` | [`PoiError::PayloadType`] | invalid |
//! | 3 | exactly one signature | [`PoiError::SignatureCount`] | invalid |
//! | 4 | payload decodes as `PoiAttestation` | [`PoiError::Malformed`] | invalid |
//! | 5 | `version == "poi/1"` | [`PoiError::Version`] | invalid |
//! | 6 | signature `keyid` equals `attester` | [`PoiError::KeyIdMismatch`] | invalid |
//! | 7 | `chain_id` is this chain's | [`PoiError::WrongChain`] | precondition |
//! | 8 | `attester` is a validator | [`PoiError::NotAValidator`] | precondition |
//! | 9 | signature verifies ([`signing::verify`], the one rule) | [`PoiError::BadSignature`] | invalid |
//! | 10 | `evidence_digest` is 32 bytes | [`PoiError::EvidenceDigest`] | invalid |
//! | 11 | `subject` is 1 to [`MAX_SUBJECT_BYTES`] bytes | [`PoiError::Subject`] | invalid |
//! | 12 | at most [`MAX_DIMENSIONS`] dimensions | [`PoiError::TooManyDimensions`] | invalid |
//! | 13 | names are 1 to [`MAX_NAME_BYTES`] bytes of `[a-z0-9_.-]` | [`PoiError::DimensionName`] | invalid |
//! | 14 | every dimension value is in `0..=10000` | [`PoiError::DimensionValue`] | invalid |
//! | 15 | `dimensions` and `weights` have the same names | [`PoiError::NameSets`] | invalid |
//! | 16 | weights sum to 10000 | [`PoiError::WeightSum`] | invalid |
//! | 17 | `impact_bps` equals [`impact_bps`] | [`PoiError::Impact`] | invalid |
//! | 18 | `window_start_ms <= window_end_ms` | [`PoiError::WindowReversed`] | invalid |
//! | 19 | `window_end_ms <= now_ms + MAX_CLOCK_SKEW_MS` | [`PoiError::WindowInFuture`] | invalid |
//! | 20 | nonce is [`MIN_NONCE_BYTES`] to [`MAX_NONCE_BYTES`] bytes | [`PoiError::Nonce`] | invalid |
//!
//! Duplicates (same id, or same attester and nonce) are not a property of one
//! attestation; the node's pool and store refuse them.
//!
//! The payload is not required to be canonically encoded: the id is the hash
//! of the exact signed bytes, and only the attester can produce another
//! encoding (which the pool refuses as a duplicate nonce).

use crate::signing::{self, SigError, Signer};
use crate::types::{hash_bytes, Hash};
use crate::validators::Membership;
use bizra_proto::{payload_type, Envelope, EnvelopeSignature, PoiAttestation};
use prost::Message;
use std::collections::BTreeMap;

/// Largest accepted attestation: the protobuf-encoded [`Envelope`], in bytes.
pub const MAX_ATTESTATION_BYTES: usize = 16 * 1024;
/// Most dimensions (and so weights) one attestation may carry.
pub const MAX_DIMENSIONS: usize = 64;
/// Longest dimension name, in bytes. Names use `[a-z0-9_.-]`.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest subject, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 256;
/// Shortest nonce, in bytes (docs/PROTOCOL.md §10).
pub const MIN_NONCE_BYTES: usize = 16;
/// Longest nonce, in bytes (bounds what the pool remembers per attestation).
pub const MAX_NONCE_BYTES: usize = 64;
/// How far `window_end_ms` may lie past the checker's clock: 5 s, to absorb
/// clock skew between the attester and the validators. An attestation whose
/// window ends later than `now_ms + MAX_CLOCK_SKEW_MS` is "in the future".
pub const MAX_CLOCK_SKEW_MS: u64 = 5_000;
/// The `version` field of every attestation.
pub const VERSION: &str = "poi/1";
/// Basis points: values are in `0..=BPS`, weights sum to `BPS`.
pub const BPS: u32 = 10_000;

/// How a refusal maps to a gRPC status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `INVALID_ARGUMENT`: the attestation itself is wrong.
    InvalidArgument,
    /// `FAILED_PRECONDITION`: well-formed, but not for this chain or not by a validator.
    FailedPrecondition,
    /// `RESOURCE_EXHAUSTED`: the message is oversized.
    TooLarge,
}

/// Why an attestation is refused. One variant per rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoiError {
    /// Rule 1: the encoded envelope exceeds the limit.
    #[error("attestation is {size} bytes, above the limit of {max}")]
    TooLarge {
        /// Encoded size of the envelope, in bytes.
        size: usize,
        /// [`MAX_ATTESTATION_BYTES`].
        max: usize,
    },
    /// Rule 2: the envelope's payload type (given) is not the PoI type.
    #[error("payload type {0:?} is not application/vnd.bizra.poi+protobuf")]
    PayloadType(String),
    /// Rule 3: the envelope carries this many signatures instead of one.
    #[error("attestation must carry exactly one signature, found {0}")]
    SignatureCount(usize),
    /// Rule 4: the payload does not decode as `PoiAttestation`; prost's message.
    #[error("malformed attestation payload: {0}")]
    Malformed(String),
    /// Rule 5: the `version` (given) is not [`VERSION`].
    #[error("version {0:?} is not \"poi/1\"")]
    Version(String),
    /// Rule 6: the signature's `keyid` is not the `attester`.
    #[error("signature keyid {keyid:?} is not the attester {attester:?}")]
    KeyIdMismatch {
        /// The envelope signature's `keyid`.
        keyid: String,
        /// The payload's `attester`.
        attester: String,
    },
    /// Rule 7: the attestation names another chain.
    #[error("wrong chain id {found:?}, expected {expected:?}")]
    WrongChain {
        /// This chain's id.
        expected: String,
        /// The payload's `chain_id`.
        found: String,
    },
    /// Rule 8: the `attester` (given) is not a genesis validator.
    #[error("attester {0:?} is not in the validator set")]
    NotAValidator(String),
    /// Rule 9: the signature fails the one signature rule under the attester's key.
    #[error("bad signature: {0}")]
    BadSignature(SigError),
    /// Rule 10: `evidence_digest` has this many bytes instead of 32.
    #[error("evidence_digest must be 32 bytes (BLAKE3), got {0}")]
    EvidenceDigest(usize),
    /// Rule 11: `subject` has this many bytes, outside 1..=[`MAX_SUBJECT_BYTES`].
    #[error("subject must be 1 to {MAX_SUBJECT_BYTES} bytes, got {0}")]
    Subject(usize),
    /// Rule 12: this many dimensions (or weights), above [`MAX_DIMENSIONS`].
    #[error("{0} dimensions, above the limit of {MAX_DIMENSIONS}")]
    TooManyDimensions(usize),
    /// Rule 13: this dimension or weight name is not 1 to [`MAX_NAME_BYTES`]
    /// bytes of `[a-z0-9_.-]`.
    #[error("invalid dimension name {0:?}: names are 1 to {MAX_NAME_BYTES} bytes of [a-z0-9_.-]")]
    DimensionName(String),
    /// Rule 14: a dimension's value is above [`BPS`].
    #[error("dimension {name:?} = {value} is outside 0..=10000")]
    DimensionValue {
        /// The dimension.
        name: String,
        /// Its value, in bps.
        value: u32,
    },
    /// Rule 15: `dimensions` and `weights` do not name the same set.
    #[error("dimensions and weights name different sets (only in dimensions: {only_dims:?}; only in weights: {only_weights:?})")]
    NameSets {
        /// Names with a value but no weight, sorted.
        only_dims: Vec<String>,
        /// Names with a weight but no value, sorted.
        only_weights: Vec<String>,
    },
    /// Rule 16: the weights sum to this, not [`BPS`].
    #[error("weights sum to {0}, not 10000")]
    WeightSum(u64),
    /// Rule 17: `impact_bps` is not the weighted sum of the dimensions.
    #[error("impact_bps is {claimed}, but the weighted sum (rounded down) is {computed}")]
    Impact {
        /// The payload's `impact_bps`.
        claimed: u32,
        /// [`impact_bps`] of the payload's dimensions and weights.
        computed: u32,
    },
    /// Rule 18: the window starts after it ends.
    #[error("window is reversed: start {start} ms is after end {end} ms")]
    WindowReversed {
        /// `window_start_ms`, Unix ms.
        start: u64,
        /// `window_end_ms`, Unix ms.
        end: u64,
    },
    /// Rule 19: the window ends more than [`MAX_CLOCK_SKEW_MS`] after the
    /// checker's clock.
    #[error("window ends in the future: end {end} ms is more than {MAX_CLOCK_SKEW_MS} ms after now ({now} ms)")]
    WindowInFuture {
        /// `window_end_ms`, Unix ms.
        end: u64,
        /// The checker's `now_ms`.
        now: u64,
    },
    /// Rule 20: the nonce has this many bytes, outside
    /// [`MIN_NONCE_BYTES`]..=[`MAX_NONCE_BYTES`].
    #[error("nonce is {0} bytes; it must be {MIN_NONCE_BYTES} to {MAX_NONCE_BYTES}")]
    Nonce(usize),
}

impl PoiError {
    /// The gRPC status class of the refusal: `TooLarge` is
    /// `RESOURCE_EXHAUSTED`, another chain or a non-validator attester
    /// `FAILED_PRECONDITION`, everything else `INVALID_ARGUMENT`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PoiError::TooLarge { .. } => ErrorKind::TooLarge,
            PoiError::WrongChain { .. } | PoiError::NotAValidator(_) => ErrorKind::FailedPrecondition,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// The id of an attestation: BLAKE3 of its payload bytes.
pub fn attestation_id(payload: &[u8]) -> Hash {
    hash_bytes(payload)
}

/// Whether `name` is a valid dimension name: 1 to [`MAX_NAME_BYTES`] bytes of `[a-z0-9_.-]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-'))
}

/// The impact of an attestation: `floor(sum(value * weight) / 10000)`, in u64.
///
/// Checks the dimension rules first (count, names, values in `0..=10000`,
/// the same names in both maps, weights summing to 10000), so the result is
/// always in `0..=10000`.
pub fn impact_bps(dims: &BTreeMap<String, u32>, weights: &BTreeMap<String, u32>) -> Result<u32, PoiError> {
    let n = dims.len().max(weights.len());
    if n > MAX_DIMENSIONS {
        return Err(PoiError::TooManyDimensions(n));
    }
    if let Some(bad) = dims.keys().chain(weights.keys()).find(|k| !valid_name(k)) {
        return Err(PoiError::DimensionName(bad.clone()));
    }
    if let Some((name, &value)) = dims.iter().find(|(_, &v)| v > BPS) {
        return Err(PoiError::DimensionValue {
            name: name.clone(),
            value,
        });
    }
    if !dims.keys().eq(weights.keys()) {
        return Err(PoiError::NameSets {
            only_dims: dims.keys().filter(|k| !weights.contains_key(*k)).cloned().collect(),
            only_weights: weights.keys().filter(|k| !dims.contains_key(*k)).cloned().collect(),
        });
    }
    let sum: u64 = weights.values().map(|&w| w as u64).sum();
    if sum != BPS as u64 {
        return Err(PoiError::WeightSum(sum));
    }
    let total: u64 = dims.iter().map(|(k, &v)| v as u64 * weights[k] as u64).sum();
    Ok((total / BPS as u64) as u32)
}

/// What an attester fills in; [`build`] adds `version`, `attester` and
/// `impact_bps`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Draft {
    /// The chain the attestation is for.
    pub chain_id: String,
    /// Who the attestation is about (1 to [`MAX_SUBJECT_BYTES`] bytes); a
    /// validator id other than the attester's earns that validator PoI.
    pub subject: String,
    /// BLAKE3 of the evidence bytes.
    pub evidence_digest: Hash,
    /// Length of the evidence, in bytes.
    pub evidence_len: u64,
    /// Dimension name to value, in bps (`0..=10000`).
    pub dimensions: BTreeMap<String, u32>,
    /// Dimension name to weight, in bps: the same names, summing to 10000.
    pub weights: BTreeMap<String, u32>,
    /// Start of the observed window, Unix ms.
    pub window_start_ms: u64,
    /// End of the observed window, Unix ms; not before the start, and at
    /// most [`MAX_CLOCK_SKEW_MS`] past the checker's clock.
    pub window_end_ms: u64,
    /// [`MIN_NONCE_BYTES`] to [`MAX_NONCE_BYTES`] bytes, unique per attester
    /// (the pool refuses a reused nonce).
    pub nonce: Vec<u8>,
}

/// Builds and signs an attestation. Fails only if the dimensions or weights
/// break a rule (so `impact_bps` cannot be computed); the other rules are
/// [`check`]'s business.
pub fn build(signer: &Signer, draft: Draft) -> Result<Envelope, PoiError> {
    let impact = impact_bps(&draft.dimensions, &draft.weights)?;
    let att = PoiAttestation {
        version: VERSION.to_string(),
        chain_id: draft.chain_id,
        attester: signer.id().to_string(),
        subject: draft.subject,
        evidence_digest: draft.evidence_digest.to_vec(),
        evidence_len: draft.evidence_len,
        dimensions: draft.dimensions,
        weights: draft.weights,
        impact_bps: impact,
        window_start_ms: draft.window_start_ms,
        window_end_ms: draft.window_end_ms,
        nonce: draft.nonce,
    };
    Ok(sign(signer, &att))
}

/// Signs an attestation as is: payload = its protobuf encoding, one signature
/// `{keyid: signer id, sig}` over `PAE(poi payload type, payload)`.
pub fn sign(signer: &Signer, att: &PoiAttestation) -> Envelope {
    let payload = att.encode_to_vec();
    let sig = signer.sign(payload_type::POI, &payload);
    Envelope {
        payload_type: payload_type::POI.to_string(),
        payload,
        signatures: vec![EnvelopeSignature {
            keyid: signer.id().to_string(),
            sig: sig.to_vec(),
        }],
    }
}

/// An attestation that passed [`check`].
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedAttestation {
    /// BLAKE3 of the payload.
    pub id: Hash,
    /// The decoded payload.
    pub att: PoiAttestation,
    /// Index of the attester in the membership.
    pub attester: usize,
    /// Index of the subject, if the subject is a validator id.
    pub subject_validator: Option<usize>,
}

/// Checks every rule of docs/PROTOCOL.md §10 that concerns one attestation (see
/// the module table for the order). `now_ms` is the checker's clock.
pub fn check(
    envelope: &Envelope,
    chain_id: &str,
    members: &Membership,
    now_ms: u64,
) -> Result<CheckedAttestation, PoiError> {
    let size = envelope.encoded_len();
    if size > MAX_ATTESTATION_BYTES {
        return Err(PoiError::TooLarge {
            size,
            max: MAX_ATTESTATION_BYTES,
        });
    }
    if envelope.payload_type != payload_type::POI {
        return Err(PoiError::PayloadType(envelope.payload_type.clone()));
    }
    let [sig] = envelope.signatures.as_slice() else {
        return Err(PoiError::SignatureCount(envelope.signatures.len()));
    };
    let att = PoiAttestation::decode(envelope.payload.as_slice()).map_err(|e| PoiError::Malformed(e.to_string()))?;
    if att.version != VERSION {
        return Err(PoiError::Version(att.version));
    }
    if sig.keyid != att.attester {
        return Err(PoiError::KeyIdMismatch {
            keyid: sig.keyid.clone(),
            attester: att.attester,
        });
    }
    if att.chain_id != chain_id {
        return Err(PoiError::WrongChain {
            expected: chain_id.to_string(),
            found: att.chain_id,
        });
    }
    let attester = members
        .index_of(&att.attester)
        .ok_or_else(|| PoiError::NotAValidator(att.attester.clone()))?;
    signing::verify(
        &members.get(attester).key,
        payload_type::POI,
        &envelope.payload,
        &sig.sig,
    )
    .map_err(PoiError::BadSignature)?;
    if att.evidence_digest.len() != 32 {
        return Err(PoiError::EvidenceDigest(att.evidence_digest.len()));
    }
    if att.subject.is_empty() || att.subject.len() > MAX_SUBJECT_BYTES {
        return Err(PoiError::Subject(att.subject.len()));
    }
    let computed = impact_bps(&att.dimensions, &att.weights)?;
    if computed != att.impact_bps {
        return Err(PoiError::Impact {
            claimed: att.impact_bps,
            computed,
        });
    }
    if att.window_start_ms > att.window_end_ms {
        return Err(PoiError::WindowReversed {
            start: att.window_start_ms,
            end: att.window_end_ms,
        });
    }
    if att.window_end_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(PoiError::WindowInFuture {
            end: att.window_end_ms,
            now: now_ms,
        });
    }
    if !(MIN_NONCE_BYTES..=MAX_NONCE_BYTES).contains(&att.nonce.len()) {
        return Err(PoiError::Nonce(att.nonce.len()));
    }
    Ok(CheckedAttestation {
        id: attestation_id(&envelope.payload),
        subject_validator: members.index_of(&att.subject),
        attester,
        att,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validators::Member;
    use proptest::prelude::*;

    const CHAIN: &str = "bizra-test";
    const NOW: u64 = 1_700_000_000_000;

    fn signer(i: u8) -> Signer {
        Signer::from_secret([i + 1; 32])
    }

    fn members(n: u8) -> Membership {
        Membership::new(
            (0..n)
                .map(|i| {
                    let s = signer(i);
                    Member {
                        id: s.id().to_string(),
                        name: format!("v{i}"),
                        stake: 1000,
                        key: s.public_key(),
                    }
                })
                .collect(),
        )
    }

    fn map(kv: &[(&str, u32)]) -> BTreeMap<String, u32> {
        kv.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn draft() -> Draft {
        Draft {
            chain_id: CHAIN.into(),
            subject: signer(1).id().to_string(),
            evidence_digest: hash_bytes(b"evidence"),
            evidence_len: 8,
            dimensions: map(&[("accuracy", 9000), ("uptime", 7501)]),
            weights: map(&[("accuracy", 3000), ("uptime", 7000)]),
            window_start_ms: NOW - 3_600_000,
            window_end_ms: NOW,
            nonce: vec![7; 16],
        }
    }

    fn decoded(env: &Envelope) -> PoiAttestation {
        PoiAttestation::decode(env.payload.as_slice()).unwrap()
    }

    /// Re-signs an attestation after a change, so only the changed rule can fail.
    fn resigned(f: impl FnOnce(&mut PoiAttestation)) -> Envelope {
        let mut att = decoded(&build(&signer(0), draft()).unwrap());
        f(&mut att);
        sign(&signer(0), &att)
    }

    fn run(env: &Envelope) -> Result<CheckedAttestation, PoiError> {
        check(env, CHAIN, &members(4), NOW)
    }

    #[test]
    fn valid_attestation_passes() {
        let env = build(&signer(0), draft()).unwrap();
        assert_eq!(env.payload_type, payload_type::POI);
        assert_eq!(env.signatures.len(), 1);
        assert_eq!(env.signatures[0].keyid, signer(0).id());
        assert_eq!(env.signatures[0].sig.len(), 64);
        let c = run(&env).unwrap();
        assert_eq!(c.id, attestation_id(&env.payload));
        assert_eq!(c.id, *blake3::hash(&env.payload).as_bytes());
        assert_eq!(c.attester, 0);
        assert_eq!(c.subject_validator, Some(1));
        // floor((9000*3000 + 7501*7000) / 10000) = floor(79_507_000 / 10000)
        assert_eq!(c.att.impact_bps, 7950);
        assert_eq!(c.att.version, "poi/1");
        // Edges: window of one instant at now + skew, 64-byte nonce, subject not a validator.
        let env = resigned(|a| {
            a.window_start_ms = NOW + MAX_CLOCK_SKEW_MS;
            a.window_end_ms = NOW + MAX_CLOCK_SKEW_MS;
            a.nonce = vec![1; MAX_NONCE_BYTES];
            a.subject = "model:gpt-x".into();
        });
        assert_eq!(run(&env).unwrap().subject_validator, None);
    }

    #[test]
    fn impact_rounds_down_with_u64_math() {
        let d = map(&[("a", 10_000), ("b", 1)]);
        let w = map(&[("a", 9_999), ("b", 1)]);
        assert_eq!(impact_bps(&d, &w), Ok(9_999)); // 99_990_001 / 10000
        let d = map(&[("a", 10_000)]);
        let w = map(&[("a", 10_000)]);
        assert_eq!(impact_bps(&d, &w), Ok(10_000));
        assert_eq!(impact_bps(&map(&[("a", 1)]), &w), Ok(1));
        let d = map(&[("a", 1), ("b", 0)]);
        let w = map(&[("a", 9_999), ("b", 1)]);
        assert_eq!(impact_bps(&d, &w), Ok(0)); // 9_999 / 10000
    }

    #[test]
    fn rejects_oversized() {
        let env = resigned(|a| a.subject = "s".repeat(MAX_ATTESTATION_BYTES));
        let e = run(&env).unwrap_err();
        assert!(
            matches!(
                e,
                PoiError::TooLarge {
                    max: MAX_ATTESTATION_BYTES,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        // Junk in unsigned fields counts too.
        let mut env = build(&signer(0), draft()).unwrap();
        env.signatures[0].sig = vec![0; MAX_ATTESTATION_BYTES];
        assert!(matches!(run(&env), Err(PoiError::TooLarge { .. })));
    }

    #[test]
    fn rejects_wrong_payload_type() {
        let mut env = build(&signer(0), draft()).unwrap();
        env.payload_type = payload_type::VOTE.into();
        let e = run(&env).unwrap_err();
        assert_eq!(e, PoiError::PayloadType(payload_type::VOTE.into()));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn rejects_not_exactly_one_signature() {
        let mut env = build(&signer(0), draft()).unwrap();
        let s = env.signatures[0].clone();
        env.signatures.push(s);
        assert_eq!(run(&env), Err(PoiError::SignatureCount(2)));
        env.signatures.clear();
        assert_eq!(run(&env), Err(PoiError::SignatureCount(0)));
    }

    #[test]
    fn rejects_bad_signature() {
        let mut env = build(&signer(0), draft()).unwrap();
        env.signatures[0].sig[10] ^= 1;
        let e = run(&env).unwrap_err();
        assert_eq!(e, PoiError::BadSignature(SigError::Invalid));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        // A payload changed after signing.
        let mut env = build(&signer(0), draft()).unwrap();
        let mut att = decoded(&env);
        att.impact_bps = 0;
        att.dimensions = map(&[("accuracy", 0), ("uptime", 0)]);
        env.payload = att.encode_to_vec();
        assert_eq!(run(&env), Err(PoiError::BadSignature(SigError::Invalid)));
        // Signed by another validator, claiming to be validator 0.
        let mut env = build(&signer(0), draft()).unwrap();
        env.signatures[0].sig = signer(2).sign(payload_type::POI, &env.payload).to_vec();
        assert_eq!(run(&env), Err(PoiError::BadSignature(SigError::Invalid)));
        // Wrong length.
        let mut env = build(&signer(0), draft()).unwrap();
        env.signatures[0].sig.pop();
        assert_eq!(run(&env), Err(PoiError::BadSignature(SigError::SigLength)));
    }

    #[test]
    fn rejects_keyid_not_attester() {
        let mut env = build(&signer(0), draft()).unwrap();
        env.signatures[0].keyid = signer(1).id().to_string();
        let e = run(&env).unwrap_err();
        assert!(matches!(e, PoiError::KeyIdMismatch { .. }), "{e}");
        env.signatures[0].keyid = signer(0).id().to_uppercase();
        assert!(matches!(run(&env), Err(PoiError::KeyIdMismatch { .. })));
    }

    #[test]
    fn rejects_malformed_payload() {
        let mut env = build(&signer(0), draft()).unwrap();
        env.payload = vec![0xff, 0xff, 0xff];
        env.signatures[0].sig = signer(0).sign(payload_type::POI, &env.payload).to_vec();
        let e = run(&env).unwrap_err();
        assert!(matches!(e, PoiError::Malformed(_)), "{e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn rejects_wrong_version() {
        let env = resigned(|a| a.version = "poi/2".into());
        assert_eq!(run(&env), Err(PoiError::Version("poi/2".into())));
    }

    #[test]
    fn rejects_wrong_chain() {
        let env = resigned(|a| a.chain_id = "other-chain".into());
        let e = run(&env).unwrap_err();
        assert_eq!(
            e,
            PoiError::WrongChain {
                expected: CHAIN.into(),
                found: "other-chain".into()
            }
        );
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    }

    #[test]
    fn rejects_non_validator_attester() {
        let outsider = signer(9);
        let env = build(&outsider, draft()).unwrap();
        let e = run(&env).unwrap_err();
        assert_eq!(e, PoiError::NotAValidator(outsider.id().to_string()));
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
        assert!(e.to_string().contains("not in the validator set"));
    }

    #[test]
    fn rejects_evidence_digest_not_32_bytes() {
        let env = resigned(|a| a.evidence_digest.truncate(20));
        assert_eq!(run(&env), Err(PoiError::EvidenceDigest(20)));
        let env = resigned(|a| a.evidence_digest.clear());
        assert_eq!(run(&env), Err(PoiError::EvidenceDigest(0)));
    }

    #[test]
    fn rejects_bad_subject() {
        let env = resigned(|a| a.subject.clear());
        assert_eq!(run(&env), Err(PoiError::Subject(0)));
        let env = resigned(|a| a.subject = "x".repeat(MAX_SUBJECT_BYTES + 1));
        assert_eq!(run(&env), Err(PoiError::Subject(MAX_SUBJECT_BYTES + 1)));
    }

    #[test]
    fn rejects_too_many_dimensions() {
        let n = MAX_DIMENSIONS + 1;
        let env = resigned(|a| {
            a.dimensions = (0..n).map(|i| (format!("d{i}"), 100)).collect();
            a.weights = (0..n)
                .map(|i| (format!("d{i}"), if i == 0 { 10_000 } else { 0 }))
                .collect();
        });
        assert_eq!(run(&env), Err(PoiError::TooManyDimensions(n)));
    }

    #[test]
    fn rejects_bad_dimension_names() {
        for bad in ["", "Upper", "sp ace", "ü", &"n".repeat(MAX_NAME_BYTES + 1)] {
            let env = resigned(|a| {
                a.dimensions = map(&[(bad, 100)]);
                a.weights = map(&[(bad, 10_000)]);
            });
            assert_eq!(run(&env), Err(PoiError::DimensionName(bad.into())), "{bad:?}");
        }
        assert!(valid_name("a-b_c.9"));
        assert!(valid_name(&"n".repeat(MAX_NAME_BYTES)));
    }

    #[test]
    fn rejects_dimension_value_out_of_range() {
        let env = resigned(|a| {
            a.dimensions.insert("uptime".into(), 10_001);
        });
        assert_eq!(
            run(&env),
            Err(PoiError::DimensionValue {
                name: "uptime".into(),
                value: 10_001
            })
        );
    }

    #[test]
    fn rejects_different_name_sets() {
        let env = resigned(|a| {
            a.weights = map(&[("accuracy", 3000), ("latency", 7000)]);
        });
        assert_eq!(
            run(&env),
            Err(PoiError::NameSets {
                only_dims: vec!["uptime".into()],
                only_weights: vec!["latency".into()],
            })
        );
        let env = resigned(|a| {
            a.dimensions.remove("uptime");
        });
        assert!(matches!(run(&env), Err(PoiError::NameSets { .. })));
    }

    #[test]
    fn rejects_weights_not_summing_to_10000() {
        let env = resigned(|a| {
            a.weights = map(&[("accuracy", 3000), ("uptime", 6999)]);
        });
        let e = run(&env).unwrap_err();
        assert_eq!(e, PoiError::WeightSum(9999));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let env = resigned(|a| {
            a.weights = map(&[("accuracy", u32::MAX), ("uptime", u32::MAX)]);
        });
        assert_eq!(run(&env), Err(PoiError::WeightSum(2 * u32::MAX as u64)));
        let env = resigned(|a| {
            a.dimensions.clear();
            a.weights.clear();
        });
        assert_eq!(run(&env), Err(PoiError::WeightSum(0)));
    }

    #[test]
    fn rejects_wrong_impact() {
        let env = resigned(|a| a.impact_bps += 1);
        let e = run(&env).unwrap_err();
        assert_eq!(
            e,
            PoiError::Impact {
                claimed: 7951,
                computed: 7950
            }
        );
        // Rounding up is wrong too.
        let env = resigned(|a| {
            a.dimensions = map(&[("a", 1), ("b", 0)]);
            a.weights = map(&[("a", 9_999), ("b", 1)]);
            a.impact_bps = 1;
        });
        assert!(matches!(
            run(&env),
            Err(PoiError::Impact {
                claimed: 1,
                computed: 0
            })
        ));
    }

    #[test]
    fn rejects_reversed_window() {
        let env = resigned(|a| {
            a.window_start_ms = NOW;
            a.window_end_ms = NOW - 1;
        });
        assert_eq!(
            run(&env),
            Err(PoiError::WindowReversed {
                start: NOW,
                end: NOW - 1
            })
        );
    }

    #[test]
    fn rejects_window_in_the_future() {
        let env = resigned(|a| a.window_end_ms = NOW + MAX_CLOCK_SKEW_MS + 1);
        let e = run(&env).unwrap_err();
        assert_eq!(
            e,
            PoiError::WindowInFuture {
                end: NOW + MAX_CLOCK_SKEW_MS + 1,
                now: NOW
            }
        );
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        // No overflow near u64::MAX.
        let env = resigned(|a| {
            a.window_start_ms = u64::MAX;
            a.window_end_ms = u64::MAX;
        });
        assert!(check(&env, CHAIN, &members(4), u64::MAX - 1).is_ok());
        assert!(matches!(run(&env), Err(PoiError::WindowInFuture { .. })));
    }

    #[test]
    fn rejects_short_or_long_nonce() {
        let env = resigned(|a| a.nonce = vec![1; 15]);
        assert_eq!(run(&env), Err(PoiError::Nonce(15)));
        let env = resigned(|a| a.nonce.clear());
        assert_eq!(run(&env), Err(PoiError::Nonce(0)));
        let env = resigned(|a| a.nonce = vec![1; MAX_NONCE_BYTES + 1]);
        assert_eq!(run(&env), Err(PoiError::Nonce(MAX_NONCE_BYTES + 1)));
    }

    #[test]
    fn build_refuses_what_it_cannot_score() {
        let mut d = draft();
        d.weights.insert("uptime".into(), 1);
        assert_eq!(build(&signer(0), d).unwrap_err(), PoiError::WeightSum(3001));
    }

    /// Dimension names, values and weights summing to 10000 (cut points on 0..=10000).
    fn dims_strategy() -> impl Strategy<Value = (BTreeMap<String, u32>, BTreeMap<String, u32>)> {
        (1usize..=MAX_DIMENSIONS).prop_flat_map(|n| {
            (
                proptest::collection::vec(0u32..=BPS, n),
                proptest::collection::vec(0u32..=BPS, n - 1),
            )
                .prop_map(move |(values, mut cuts)| {
                    cuts.sort_unstable();
                    let mut bounds = vec![0];
                    bounds.extend(cuts);
                    bounds.push(BPS);
                    let dims = (0..n).map(|i| (format!("d{i}"), values[i])).collect();
                    let weights = (0..n).map(|i| (format!("d{i}"), bounds[i + 1] - bounds[i])).collect();
                    (dims, weights)
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn built_attestations_always_pass_check(
            (dims, weights) in dims_strategy(),
            start in 0u64..NOW,
            len in 0u64..=3_600_000,
            nonce in proptest::collection::vec(any::<u8>(), MIN_NONCE_BYTES..=MAX_NONCE_BYTES),
            who in 0u8..4,
        ) {
            let d = Draft {
                dimensions: dims.clone(),
                weights: weights.clone(),
                window_start_ms: start,
                window_end_ms: (start + len).min(NOW),
                nonce,
                ..draft()
            };
            let env = build(&signer(who), d).unwrap();
            let c = run(&env).unwrap();
            prop_assert_eq!(c.attester, who as usize);
            let exact: u64 = dims.iter().map(|(k, &v)| v as u64 * weights[k] as u64).sum();
            prop_assert!(c.att.impact_bps as u64 * 10_000 <= exact);
            prop_assert!(exact < (c.att.impact_bps as u64 + 1) * 10_000);
            prop_assert!(c.att.impact_bps <= BPS);
        }
    }
}
