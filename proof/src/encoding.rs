//! How values are written in the artifacts, and their DSSE envelopes.
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

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bizra_consensus::signing::Signer;
use bizra_consensus::types::Hash;
use bizra_proto::{payload_type, Envelope, EnvelopeSignature, SignedVote};
use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    /// The DSSE payload type, e.g. `application/vnd.bizra.vote+protobuf`.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 of the payload (a protobuf encoding).
    pub payload: String,
    /// The signatures over the payload's PAE.
    pub signatures: Vec<SignatureJson>,
}

/// Standard base64 with padding, as written in the artifacts.
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
    /// The JSON form of a protobuf envelope: payload and signatures base64-encoded.
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
